// Devices page: the Test (C-ECHO) buttons, and a reload when /api/devices shows something new
// (a device connected or was refused, a forwarding job moved) unless the admin is editing.
"use strict";
document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!form.hasAttribute("data-echo")) return;
  event.preventDefault();
  const output = form.querySelector("output");
  const button = form.querySelector("button");
  const show = (state, text) => {
    output.classList.remove("ok", "error");
    if (state) output.classList.add(state);
    output.textContent = text;
  };
  show("", "testing…");
  button.disabled = true;
  try {
    const answer = await lightbox.api(form.action, { method: "POST" });
    show(answer.ok ? "ok" : "error", (answer.ok ? "C-ECHO ok: " : "C-ECHO failed: ") + answer.message);
  } catch (error) {
    show("error", error.message);
  } finally {
    button.disabled = false;
  }
});

(() => {
  const POLL_MS = 3000;
  const shown = document.getElementById("devices-h").dataset.version;
  const editing = () => {
    const active = document.activeElement;
    return document.querySelector("details[open]") !== null
      || (active && ["INPUT", "SELECT", "TEXTAREA"].includes(active.tagName))
      || [...document.querySelectorAll("output")].some((o) => o.textContent !== "");
  };
  const poll = async () => {
    try {
      const info = await lightbox.api("/api/devices");
      if (info.version !== shown && !editing()) { window.location.reload(); return; }
    } catch (error) { /* the next poll tries again */ }
    setTimeout(poll, POLL_MS);
  };
  setTimeout(poll, POLL_MS);
})();
