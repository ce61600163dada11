// The study list: search as you type, filters, sorting, and new studies appearing on their own.
"use strict";
(() => {
  const form = document.getElementById("filters");
  const table = document.getElementById("studies");
  const status = document.getElementById("status");
  const POLL_MS = 5000;
  let lastChange = table.dataset.lastChange;
  let pending = null;
  let generation = 0;

  function params() {
    const p = new URLSearchParams(new FormData(form));
    for (const [key, value] of [...p.entries()]) if (!value) p.delete(key);
    return p;
  }

  function row(s) {
    const tr = document.createElement("tr");
    const cell = (cls, label, ...children) => {
      const [name, short] = label.split("|"); // "Patient ID|ID": the column's label, and the phone's
      const td = lightbox.text("td", undefined, { class: cls, "data-label": name, ...(short ? { "data-short": short } : {}) });
      td.append(...children);
      tr.append(td);
    };
    const link = lightbox.text("a", lightbox.person(s.patient_name) || "(no name)", { href: "/studies/" + encodeURIComponent(s.study_uid) });
    const vet = [s.species, s.breed, s.owner ? "owner " + lightbox.person(s.owner) : ""].filter(Boolean).join(" · ");
    cell("patient full", "Patient", link, ...(vet ? [lightbox.text("span", vet, { class: "vet" })] : []));
    cell("pid", "Patient ID|ID", s.patient_id);
    cell("born date", "Born|born", lightbox.date(s.birth_date));
    cell("sex", "Sex", s.sex);
    cell("when date", "Study date", lightbox.date(s.study_date));
    cell("desc", "Description", s.description);
    cell("mod", "Modalities", s.modalities.join(" "));
    cell("acc", "Accession|acc.", s.accession);
    cell("count", "Images", lightbox.plural(s.num_instances, "image") + (s.num_series > 1 ? ` in ${s.num_series} series` : ""));
    return tr;
  }

  function modalityChoices(present) {
    // New modalities arrive with new studies: the filter offers what the archive holds.
    const select = form.elements.modality;
    const shown = [...select.options].slice(1).map((o) => o.value);
    if (shown.join() === present.join()) return;
    const chosen = select.value;
    select.replaceChildren(select.options[0], ...present.map((m) => lightbox.text("option", m, { value: m })));
    select.value = chosen;
  }

  function pager(data, query) {
    const nav = document.querySelector("nav.pages");
    nav.replaceChildren();
    const to = (page) => { const q = new URLSearchParams(query); q.set("page", page); return "/?" + q; };
    if (data.page > 1) nav.append(lightbox.text("a", "← Previous page", { href: to(data.page - 1), rel: "prev", id: "prev" }));
    nav.append(lightbox.text("span", `Page ${data.page}`));
    if (data.more) nav.append(lightbox.text("a", "Next page →", { href: to(data.page + 1), rel: "next", id: "next" }));
  }

  async function refresh(keepPage) {
    const query = params();
    if (keepPage) { const page = new URLSearchParams(location.search).get("page"); if (page) query.set("page", page); }
    const mine = ++generation;
    let data;
    try { data = await lightbox.api("/api/studies?" + query); }
    catch (error) { status.textContent = "Could not load the studies: " + error.message; return; }
    if (mine !== generation) return; // a newer search answered first
    table.tBodies[0].replaceChildren(...data.studies.map(row));
    lastChange = String(data.last_change);
    status.textContent = `${lightbox.plural(data.studies.length, "study", "studies")} shown${data.more ? " (more on the next page)" : ""} · ${data.total_studies} in the archive`;
    modalityChoices(data.modalities);
    pager(data, query);
    history.replaceState(null, "", query.toString() ? "/?" + query : "/");
  }

  form.addEventListener("input", (event) => {
    if (event.target.id === "date") {
      for (const f of form.querySelectorAll(".field.range")) f.hidden = event.target.value !== "range";
    }
    clearTimeout(pending);
    pending = setTimeout(() => refresh(false), event.target.id === "q" ? 150 : 0);
  });
  form.addEventListener("submit", (event) => { event.preventDefault(); clearTimeout(pending); refresh(false); });

  for (const button of table.querySelectorAll("button.sort")) {
    button.addEventListener("click", () => {
      const sort = form.elements.sort, order = form.elements.order;
      if (sort.value === button.dataset.sort) order.value = order.value === "desc" ? "asc" : "desc";
      else { sort.value = button.dataset.sort; order.value = ["date", "images"].includes(sort.value) ? "desc" : "asc"; }
      for (const b of table.querySelectorAll("button.sort")) {
        const here = b === button;
        b.closest("th").setAttribute("aria-sort", here ? (order.value === "desc" ? "descending" : "ascending") : "none");
        b.querySelector(".arrow").textContent = here ? (order.value === "desc" ? "▼" : "▲") : "";
      }
      refresh(false);
    });
  }

  setInterval(async () => {
    if (document.hidden) return;
    try {
      const head = await lightbox.api("/api/changes");
      if (String(head.last_change) !== lastChange) refresh(true);
    } catch (error) { /* the next poll tries again */ }
  }, POLL_MS);
})();
