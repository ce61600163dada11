// The study page's attach section: files dropped on the page or chosen (a phone offers its camera) are
// sent one at a time to POST /api/studies/<uid>/attachments, with progress; the page reloads when all are in.
"use strict";
(() => {
  const section = document.getElementById("attach");
  if (!section) return;
  const list = document.getElementById("attach-progress");
  const url = `/api/studies/${encodeURIComponent(section.dataset.studyUid)}/attachments`;
  let queue = Promise.resolve();
  let pending = 0;
  let stored = 0;

  function send(file, line, bar) {
    return new Promise((resolve) => {
      const request = new XMLHttpRequest();
      request.open("POST", `${url}?name=${encodeURIComponent(file.name)}`);
      request.setRequestHeader("X-CSRF-Token", lightbox.csrf());
      request.setRequestHeader("Content-Type", file.type || "application/octet-stream");
      request.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) bar.value = event.loaded / event.total;
      });
      request.addEventListener("load", () => {
        let reason = request.statusText;
        try { reason = JSON.parse(request.responseText).error || reason; } catch { reason = request.responseText.trim() || reason; }
        if (request.status === 413) reason = "the file is larger than this Lightbox accepts (its attach_max_mb setting)";
        if (request.status === 201) {
          stored += 1;
          line.textContent = `${file.name}: attached.`;
        } else {
          line.textContent = `${file.name}: not attached (${request.status}): ${reason}`;
          line.classList.add("error");
        }
        resolve();
      });
      request.addEventListener("error", () => {
        line.textContent = `${file.name}: not attached: the connection failed.`;
        line.classList.add("error");
        resolve();
      });
      line.textContent = `${file.name}: sending… `;
      line.append(bar);
      request.send(file);
    });
  }

  function add(files) {
    for (const file of files) {
      const line = lightbox.text("li", `${file.name}: waiting`);
      const bar = document.createElement("progress");
      bar.max = 1;
      bar.value = 0;
      list.append(line);
      pending += 1;
      queue = queue.then(() => send(file, line, bar)).then(() => {
        pending -= 1;
        if (pending > 0) return;
        section.dataset.done = String(stored);
        if (stored > 0 && !list.querySelector(".error")) location.reload();
        else if (stored > 0) {
          const item = document.createElement("li");
          item.append(lightbox.text("a", "Show the attached files", { href: location.pathname }));
          list.append(item);
        }
      });
    }
  }

  for (const input of section.querySelectorAll("input[type=file]")) {
    input.addEventListener("change", () => {
      add(input.files);
      input.value = "";
    });
  }
  document.addEventListener("dragover", (event) => {
    if (event.dataTransfer && [...event.dataTransfer.types].includes("Files")) {
      event.preventDefault();
      section.classList.add("dropping");
    }
  });
  document.addEventListener("dragleave", () => section.classList.remove("dropping"));
  document.addEventListener("drop", (event) => {
    if (!event.dataTransfer || !event.dataTransfer.files.length) return;
    event.preventDefault();
    section.classList.remove("dropping");
    add(event.dataTransfer.files);
  });
})();
