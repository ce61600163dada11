// Connect a modality: polls /api/connect until the first study arrives, showing the device that
// called (a C-ECHO is enough) and then its first study.  Built with textContent: AE titles and
// patient names come from the network.
"use strict";
(() => {
  const panel = document.getElementById("contact");
  if (!panel) return;
  const POLL_MS = 1500;
  const MAX_POLLS = 4800;  // two hours; then the page says to reload
  const url = `/api/connect?since=${encodeURIComponent(panel.dataset.since)}&after=${encodeURIComponent(panel.dataset.after)}`;
  const { text } = lightbox;
  const show = (...parts) => panel.replaceChildren(...parts);

  const deviceLine = (device) => {
    const line = text("p", null, { class: "heard" });
    line.append(text("strong", "✔ Contact: "), text("code", device.aet), ` from ${device.address}`);
    if (device.implementation) line.append(text("span", ` (${device.implementation})`, { class: "muted" }));
    if (device.status === "refused" || device.status === "ignored") {
      line.append(text("span", " — refused by the device policy: approve it on the Devices page.", { class: "outcome" }));
    }
    return line;
  };

  const studyLine = (study) => {
    const line = text("p", null, { class: "arrived" });
    line.append(text("strong", "✔ First study: "));
    if (study.study) {
      const label = study.study;
      line.append(text("a", lightbox.person(label.patient_name) || "(no name)", { href: `/studies/${encodeURIComponent(study.study_uid)}` }));
      const about = [label.description, lightbox.date(label.study_date)].filter(Boolean).join(" · ");
      if (about) line.append(text("span", ` ${about}`, { class: "muted" }));
    } else {
      line.append("received, and since deleted");
    }
    return line;
  };

  const arrived = () => {
    const next = document.querySelector("#modality-next button");
    if (next) next.textContent = "Go on";
  };

  let polls = 0;
  const poll = async () => {
    polls += 1;
    try {
      const contact = (await lightbox.api(url)).contact;
      if (contact && contact.study) {
        show(deviceLine(contact.device), studyLine(contact.study));
        arrived();
        return;
      }
      if (contact) {
        const waiting = text("p", null, { class: "waiting" });
        waiting.append(text("span", "", { class: "spinner", "aria-hidden": "true" }), " Waiting for the first image…");
        show(deviceLine(contact.device), waiting);
      }
    } catch (error) {
      show(text("p", `Cannot ask Lightbox: ${error.message}`, { class: "outcome" }));
    }
    if (polls < MAX_POLLS) setTimeout(poll, POLL_MS);
    else show(text("p", "Stopped waiting: reload the page to look again.", { class: "muted" }));
  };
  setTimeout(poll, 500);
})();
