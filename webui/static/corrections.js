// The study page's admin part: delete a study, series or image (a dialog that names the patient
// and asks for the Patient ID), merge this patient into another (search, pick, confirm).
"use strict";
(() => {
  const manage = document.getElementById("manage");
  if (!manage) return;
  const studyUid = manage.dataset.studyUid;
  const dialog = document.getElementById("delete-dialog");
  const input = document.getElementById("delete-confirm");
  const submit = dialog.querySelector("button[type=submit]");
  const output = dialog.querySelector("output");
  let pending = null; // {collection, uid, confirmation}

  const size = (bytes) => bytes >= 1e9 ? `${(bytes / 1e9).toFixed(1)} GB` : `${Math.max(0.1, bytes / 1e6).toFixed(1)} MB`;
  const what = { studies: "the study", series: "a series of the study", instances: "an image of the study" };

  async function askToDelete(collection, uid) {
    const target = await lightbox.api(`/api/${collection}/${encodeURIComponent(uid)}/deletion`);
    pending = { collection, uid, confirmation: target.confirmation };
    const patient = lightbox.person(target.patient_name) || "(no name)";
    document.getElementById("delete-title").textContent =
      { studies: "Delete this study?", series: "Delete this series?", instances: "Delete this image?" }[collection];
    document.getElementById("delete-what").textContent =
      `You are deleting ${what[collection]} “${target.study_description || "no description"}” of ` +
      `${lightbox.date(target.study_date) || "unknown date"} for ${patient} (Patient ID ${target.patient_id || "none"}, ` +
      `born ${lightbox.date(target.birth_date) || "unknown"}): ${lightbox.plural(target.series, "series", "series")}, ` +
      `${lightbox.plural(target.instances, "image")}, ${size(target.bytes)}.`;
    document.getElementById("delete-ask").textContent = target.patient_id
      ? `To confirm, type the Patient ID: ${target.patient_id}` : "To confirm, type: delete";
    input.value = "";
    output.textContent = "";
    submit.disabled = true;
    dialog.showModal();
    input.focus();
  }

  input.addEventListener("input", () => { submit.disabled = input.value.trim() !== pending.confirmation; });
  dialog.querySelector("button[value=cancel]").addEventListener("click", () => dialog.close());
  dialog.querySelector("form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const body = new URLSearchParams({ confirm: input.value.trim() });
      const done = await lightbox.api(`/api/${pending.collection}/${encodeURIComponent(pending.uid)}/delete`, { method: "POST", body });
      window.location.assign(done.next);
    } catch (error) {
      output.className = "error";
      output.textContent = error.message;
    }
  });

  function deleteButton(collection, uid, label) {
    return lightbox.text("button", label, { type: "button", class: "danger small", "data-delete": collection, "data-uid": uid });
  }
  for (const item of document.querySelectorAll(".series-item[data-series-uid]")) {
    const line = lightbox.text("p", "");
    line.append(deleteButton("series", item.dataset.seriesUid, "Delete series…"));
    (item.querySelector(".series-text") || item).append(line);
  }
  for (const item of document.querySelectorAll("[data-sop-uid]")) {
    item.append(" ", deleteButton("instances", item.dataset.sopUid, "Delete…"));
  }
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-delete]");
    if (button) askToDelete(button.dataset.delete, button.dataset.uid).catch((error) => window.alert(error.message));
  });

  // Fix the patient's details: the form posts family and given names; the server keeps the
  // name's other components (middle name, prefix, suffix).
  // Merge: search the study list, one entry per other patient, confirm, post.
  async function merge(into, label) {
    const here = lightbox.person(manage.dataset.patientName) || "(no name)";
    if (!window.confirm(`Merge ${here} (Patient ID ${manage.dataset.patientId || "none"}) into ${label}?\n\n` +
        "Every study of this patient takes the other patient's name, Patient ID and birth date. The images are rewritten; the change is audited.")) return;
    try {
      await lightbox.api(`/api/studies/${encodeURIComponent(studyUid)}/merge`, { method: "POST", body: new URLSearchParams({ into }) });
      window.location.reload();
    } catch (error) { window.alert(error.message); }
  }
  for (const button of manage.querySelectorAll("button.merge-into")) {
    button.addEventListener("click", () => merge(button.dataset.into, button.dataset.label));
  }
  const search = document.getElementById("merge-search");
  const found = document.getElementById("merge-found");
  let timer = null;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      found.replaceChildren();
      if (search.value.trim().length < 2) return;
      const list = await lightbox.api("/api/studies?limit=50&q=" + encodeURIComponent(search.value.trim()));
      const seen = new Set();
      for (const s of list.studies) {
        const key = [s.patient_name, s.patient_id, s.birth_date].join("|");
        const same = s.patient_name === manage.dataset.patientName && s.patient_id === manage.dataset.patientId && s.birth_date === manage.dataset.birthDate;
        if (seen.has(key) || same) continue;
        seen.add(key);
        const label = `${lightbox.person(s.patient_name) || "(no name)"}, Patient ID ${s.patient_id || "none"}, born ${lightbox.date(s.birth_date) || "unknown"}`;
        const li = lightbox.text("li", label + " ");
        const pick = lightbox.text("button", "Merge into this patient", { type: "button", class: "small" });
        pick.addEventListener("click", () => merge(s.study_uid, label));
        li.append(pick);
        found.append(li);
      }
      if (!found.firstChild) found.append(lightbox.text("li", "No other patient found."));
    }, 250);
  });
})();
