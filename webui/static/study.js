// The study page: a video plays in place (a series opens in the viewer page, /studies/<uid>/view); a notice when new images arrive.
"use strict";
(() => {
  const study = document.getElementById("study");
  const viewer = document.getElementById("viewer");

  function pressed(button) {
    for (const other of document.querySelectorAll("button[aria-controls=viewer]")) other.removeAttribute("aria-pressed");
    button.setAttribute("aria-pressed", "true");
    viewer.scrollIntoView({ block: "nearest" });
  }

  // A video plays in the same place, in the browser's own player (it is not a stack of frames).
  for (const button of document.querySelectorAll("button[data-video-sop]")) {
    button.addEventListener("click", () => {
      pressed(button);
      window.LightboxPlayer.open(viewer, button.dataset.videoSop);
    });
  }

  setInterval(async () => {
    if (document.hidden) return;
    try {
      const head = await lightbox.api("/api/changes?study=" + encodeURIComponent(study.dataset.studyUid));
      if (head.study_instances !== Number(study.dataset.images) && !study.firstChild) {
        const notice = lightbox.text("p", `New images arrived (${head.study_instances} now). `, { class: "notice", role: "status" });
        notice.append(lightbox.text("a", "Show them", { href: location.pathname }));
        study.append(notice);
      }
    } catch (error) { /* the next poll tries again */ }
  }, 5000);
})();
