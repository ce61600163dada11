// The Backup page: the set-up form shows the recovery sheet from its answer (once; never stored),
// and while a run or verification is going the page polls /api/backup, then reloads to show the outcome.
"use strict";
(() => {
  const form = document.getElementById("backup-setup");
  const sheet = document.getElementById("sheet");
  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const output = form.querySelector("output");
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      output.className = "";
      output.textContent = "Setting up: checking the bucket and making the key…";
      try {
        const answer = await lightbox.api(form.action, { method: "POST", body: new URLSearchParams(new FormData(form)) });
        const s = answer.recovery_sheet;
        form.reset();
        document.getElementById("sheet-target").textContent = s.target;
        document.getElementById("sheet-created").textContent = s.created;
        document.getElementById("sheet-public").textContent = s.public_key;
        document.getElementById("sheet-key").textContent = s.secret_key;
        document.getElementById("sheet-qr").src = s.qr;
        document.getElementById("setup").hidden = true;
        document.querySelectorAll("#warnings .notice").forEach((notice) => notice.remove());
        sheet.hidden = false;
        document.body.classList.add("sheet-shown");
        sheet.querySelector("h2").setAttribute("tabindex", "-1");
        sheet.querySelector("h2").focus();
      } catch (error) {
        output.className = "error";
        output.textContent = error.message;
        button.disabled = false;
      }
    });
  }
  const print = document.getElementById("print-sheet");
  if (print) print.addEventListener("click", () => window.print());
  // Leaving with the sheet unconfirmed loses it: the browser asks first.
  window.addEventListener("beforeunload", (event) => {
    if (sheet && !sheet.hidden && !sheet.dataset.confirmed) event.preventDefault();
  });
  const confirm = document.getElementById("sheet-confirm");
  if (confirm) confirm.addEventListener("submit", () => { sheet.dataset.confirmed = "1"; }, true);

  const activity = document.getElementById("activity");
  if (activity && activity.dataset.busy) {
    const poll = async () => {
      try {
        const state = (await lightbox.api("/api/backup")).activity;
        const run = state.running;
        if (!run && state.asked.length === 0) { window.location.reload(); return; }
        if (run) {
          const what = run.kind === "backup" ? "Backing up" : "Verifying";
          activity.textContent = run.total ? `${what}: ${run.done} of ${run.total}…` : `${what}…`;
        }
      } catch (error) {
        activity.textContent = error.message;
      }
      setTimeout(poll, 1500);
    };
    setTimeout(poll, 1000);
  }
})();
