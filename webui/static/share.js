// The study page's "Share with a colleague": make a link, list the study's links, revoke one.
"use strict";
(() => {
  const panel = document.querySelector("section.sharing");
  if (!panel) return;
  const study = panel.dataset.studyUid;
  const form = panel.querySelector(".share-form");
  const table = panel.querySelector(".share-list");
  const error = panel.querySelector(".share-error");
  const when = (seconds) => (seconds ? new Date(seconds * 1000).toLocaleString() : "");

  function show(answer) {
    const days = form.elements.days;
    days.max = String(answer.max_days);
    if (!days.value) days.value = String(answer.default_days);
    const body = table.querySelector("tbody");
    body.replaceChildren();
    for (const share of answer.shares) {
      const row = document.createElement("tr");
      row.dataset.shareId = String(share.id);
      const terms = [share.needs_pin ? "PIN" : "", share.deidentify ? "de-identified" : ""].filter(Boolean).join(", ") || "—";
      const state = share.state === "revoked" ? `revoked by ${share.revoked_by}` : share.state;
      for (const value of [share.created_by, when(share.created_at), when(share.expires_at), lightbox.plural(share.uses, "time"), terms, state]) {
        row.append(lightbox.text("td", value));
      }
      const cell = document.createElement("td");
      if (share.state === "active") {
        const button = lightbox.text("button", "Revoke", { type: "button", class: "share-revoke" });
        button.addEventListener("click", () => act(`/api/shares/${share.id}/revoke`, new URLSearchParams()));
        cell.append(button);
      }
      row.append(cell);
      body.append(row);
    }
    table.hidden = answer.shares.length === 0;
  }

  async function act(url, body) {
    error.hidden = true;
    try {
      const answer = await lightbox.api(url, { method: "POST", body });
      show(answer);
      return answer;
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
      return null;
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const answer = await act(form.action, new URLSearchParams(new FormData(form)));
    if (!answer) return;
    panel.querySelector(".share-url").value = answer.url;
    panel.querySelector(".share-made").hidden = false;
    form.elements.pin.value = "";
  });
  panel.querySelector(".share-copy").addEventListener("click", () => {
    const field = panel.querySelector(".share-url");
    field.select();
    if (navigator.clipboard) navigator.clipboard.writeText(field.value).catch(() => {});
  });
  lightbox.api(`/api/studies/${encodeURIComponent(study)}/shares`).then(show).catch((failure) => {
    error.textContent = failure.message;
    error.hidden = false;
  });
})();
