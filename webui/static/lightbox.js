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
  date(value) { return /^\d{8}$/.test(value) ? `${value.slice(0, 4)}-${value.slice(4, 6)}-${value.slice(6)}` : value; },
  person(value) { return (value || "").split("=")[0].split("^").filter(Boolean).join(" "); },
};

document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!form.hasAttribute("data-api")) return;
  event.preventDefault();
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
  const output = form.querySelector("output");
  try {
    await lightbox.api(form.action, { method: form.dataset.method || "POST", body: new URLSearchParams(new FormData(form)) });
    if (!form.dataset.done) { window.location.reload(); return; }
    form.reset();
    if (output) { output.className = "ok"; output.textContent = form.dataset.done; }
  } catch (error) {
    if (output) { output.className = "error"; output.textContent = error.message; }
  }
});
