// The study page's report (study_report.tpl): write, save a draft, finalise, amend, see the history.
// Each save names the version it was edited from; a 409 says someone else saved first.
"use strict";
(() => {
  const printNow = document.querySelector(".rp-print-now");  // the print page's button
  if (printNow) printNow.addEventListener("click", () => window.print());
  const section = document.getElementById("report");
  if (!section) return;
  const $ = (selector) => section.querySelector(selector);
  const url = "/api/studies/" + encodeURIComponent(section.dataset.studyUid) + "/report";
  const editor = $("#report-text");
  let state = null;  // the JSON twin's answer
  let amending = false;

  function when(v) {
    const t = v.time || "";
    return `${lightbox.date(v.date)} ${t.slice(0, 2)}:${t.slice(2, 4)}`.trim();
  }

  function describe(v) {
    if (!v.final) return `${v.amends ? "Draft amendment" : "Draft"}, saved by ${lightbox.person(v.author)} on ${when(v)}`;
    return `${v.amends ? "Final (amended)" : "Final"}, signed by ${lightbox.person(v.author)} on ${when(v)}`;
  }

  function show(answer) {
    state = answer;
    const current = answer.current;
    const editing = !current || !current.final || amending;
    $(".rp-status").textContent = !current ? "No report yet." : describe(current) + (amending ? " — amending it: the final stays in the history." : "");
    $(".rp-status").dataset.status = !current ? "none" : current.final ? (current.amends ? "amended" : "final") : "draft";
    $(".rp-text").hidden = editing;
    $(".rp-text").textContent = current ? current.text : "";
    $(".rp-editor").hidden = !editing;
    if (editing && !amending && document.activeElement !== editor) editor.value = current ? current.text : "";
    $(".rp-author").textContent = editing ? section.dataset.user : lightbox.person(current.author);
    if (current && !editing) $(".rp-date").textContent = lightbox.date(current.date);
    $(".rp-save").hidden = $(".rp-finalise").hidden = !editing;
    $(".rp-save").textContent = amending || (current && current.amends && !current.final) ? "Save draft amendment" : "Save draft";
    $(".rp-amend").hidden = editing;
    $(".rp-cancel").hidden = !amending;
    $(".rp-discard").hidden = !current || current.final;
    $(".rp-print").hidden = !current;
    const list = $(".rp-history ol");
    list.replaceChildren(...answer.history.map((v) => {
      const item = lightbox.text("li", `Version ${v.instance_number}: ${describe(v)} `, { "data-sop-uid": v.sop_uid });
      item.append(lightbox.text("a", "Print", { href: `/studies/${section.dataset.studyUid}/report/print?version=${v.sop_uid}`, target: "_blank", rel: "noopener" }));
      return item;
    }));
    $(".rp-history").hidden = answer.history.length < 2 && !(current && current.amends);
  }

  async function send(path, body) {
    $(".rp-error").textContent = "";
    for (const b of section.querySelectorAll("button")) b.disabled = true;
    try {
      const answer = await lightbox.api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      amending = false;
      document.getElementById("study").dataset.images = answer.study_instances;  // not "new images arrived"
      show(answer);
      editor.value = answer.current ? answer.current.text : "";
    } catch (error) {
      $(".rp-error").textContent = error.message;
    } finally {
      for (const b of section.querySelectorAll("button")) b.disabled = false;
    }
  }

  const base = () => (state && state.current ? state.current.sop_uid : "");
  const save = (final) => send(url, { text: editor.value, base: base(), final, amend: amending });
  $(".rp-save").addEventListener("click", () => save(false));
  $(".rp-finalise").addEventListener("click", () => save(true));
  $(".rp-discard").addEventListener("click", () => send(url + "/discard", { base: base() }));
  $(".rp-amend").addEventListener("click", () => {
    amending = true;
    editor.value = state.current.text;
    show(state);
    editor.focus();
  });
  $(".rp-cancel").addEventListener("click", () => { amending = false; show(state); });

  // Leaving the page with unsaved text: the browser asks first.
  window.addEventListener("beforeunload", (event) => {
    const current = state && state.current;
    if (!$(".rp-editor").hidden && editor.value.trim() && editor.value !== (current ? current.text : "")) event.preventDefault();
  });

  lightbox.api(url).then(show).catch((error) => { $(".rp-error").textContent = error.message; });
})();
