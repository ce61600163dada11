// Shared by every page: calling the JSON API with the session's CSRF token, and forms that post to it.
"use strict";
const lightbox = {
  csrf() {
    const field = document.querySelector("input[name=csrf]");
    return field ? field.value : "";
  },
  async api(url, options = {}) {
    const headers = { "X-Lightbox-UI": "1", "Accept": "application/json", ...(options.headers || {}) };
    if (options.method && options.method !== "GET") headers["X-CSRF-Token"] = lightbox.csrf();
    const response = await fetch(url, { credentials: "same-origin", ...options, headers });
    if (response.status === 401) { window.location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search)); }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  },
  text(tag, value, attributes = {}) {
    // Elements are built with textContent: data from DICOM headers is never parsed as HTML.
    const element = document.createElement(tag);
    if (value !== undefined && value !== null) element.textContent = String(value);
    for (const [name, v] of Object.entries(attributes)) element.setAttribute(name, v);
    return element;
  },
  // Formatted as appliance/web/display.py does for the server-side pages (a test holds them equal).
  MONTHS: ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
  date(value) {
    // 20261201 -> 1 Dec 2026: no day/month order to guess.
    const month = /^\d{8}$/.test(value || "") ? Number(value.slice(4, 6)) : 0;
    return month >= 1 && month <= 12 ? `${Number(value.slice(6))} ${lightbox.MONTHS[month - 1]} ${value.slice(0, 4)}` : value || "";
  },
  person(value) {
    // DOE^JOHN^PAUL^DR^JR -> "DOE, DR JOHN PAUL, JR": family name, other names, suffix.
    const group = (value || "").split("=").find((g) => g.replace(/[\^ ]/g, "")) || "";
    const parts = group.split("^").map((p) => p.trim());
    const [family = "", given = "", middle = "", prefix = ""] = parts;
    const suffix = parts.slice(4).filter(Boolean).join("^");
    const join = (glue, ...items) => items.filter(Boolean).join(glue);
    return join(", ", join(", ", family, join(" ", prefix, given, middle)), suffix);
  },
  /** A w x h image rotated (0, 90, 180, 270 degrees clockwise), then flipped left-right, as a
      presentation state orients it: [a, b, c, d, e, f] as canvas transforms take (the viewer, print). */
  orientation(w, h, rotation, flip) {
    const m = { 0: [1, 0, 0, 1, 0, 0], 90: [0, 1, -1, 0, h, 0], 180: [-1, 0, 0, -1, w, h], 270: [0, -1, 1, 0, 0, w] }[rotation] || [1, 0, 0, 1, 0, 0];
    if (flip) { m[0] = -m[0]; m[2] = -m[2]; m[4] = (rotation % 180 ? h : w) - m[4]; }
    return m;
  },
  plural(count, one, many) { return `${count} ${count === 1 ? one : many || one + "s"}`; },
};

document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!form.hasAttribute("data-api")) return;
  event.preventDefault();
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
  const output = form.querySelector("output");
  try {
    const answer = await lightbox.api(form.action, { method: form.dataset.method || "POST", body: new URLSearchParams(new FormData(form)) });
    if (answer.next) { window.location.assign(answer.next); return; }  // the wizard's next step
    if (!form.dataset.done) { window.location.reload(); return; }
    form.reset();
    if (output) { output.className = "ok"; output.textContent = form.dataset.done; }
  } catch (error) {
    if (output) { output.className = "error"; output.textContent = error.message; }
  }
});
