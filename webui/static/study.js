// The study page: a series opens in the viewer in place; a notice when new images arrive.
"use strict";
(() => {
  const study = document.getElementById("study");
  const viewer = document.getElementById("viewer");
  const shown = Number(study.dataset.images);

  for (const button of document.querySelectorAll("button.view")) {
    button.addEventListener("click", () => {
      for (const other of document.querySelectorAll("button.view")) other.removeAttribute("aria-pressed");
      button.setAttribute("aria-pressed", "true");
      window.LightboxViewer.open(viewer, button.dataset.seriesUid);
      viewer.scrollIntoView({ block: "nearest" });
      const surface = viewer.querySelector("[tabindex]");
      if (surface) surface.focus(); // arrow keys page through the frames at once
    });
  }

  setInterval(async () => {
    if (document.hidden) return;
    try {
      const head = await lightbox.api("/api/changes?study=" + encodeURIComponent(study.dataset.studyUid));
      if (head.study_instances !== shown && !study.firstChild) {
        const notice = lightbox.text("p", `New images arrived (${head.study_instances} now). `, { class: "notice", role: "status" });
        notice.append(lightbox.text("a", "Show them", { href: location.pathname }));
        study.append(notice);
      }
    } catch (error) { /* the next poll tries again */ }
  }, 5000);
})();
