// The study page: tell the reader when new images of this study arrive.
"use strict";
(() => {
  const study = document.getElementById("study");
  const shown = Number(study.dataset.images);
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
