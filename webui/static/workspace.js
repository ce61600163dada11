/* The viewer page (view.tpl): viewports in a 1×1, 1×2 or 2×2 layout, each a LightboxViewer
   (viewer.js); the series strip; the patient's other studies; scrolling linked by position;
   synchronised window/level; full screen; the keyboard.  Plain JavaScript, no build step.

   The address keeps the layout and the series shown (?layout=2&series=A&series=B), replaced
   as they change, so a page can be bookmarked and the browser's Back returns to the study. */
"use strict";
(() => {
  const MAX_FRAMES_IN_ALL = 400;  // decoded frames kept across the viewports: shared out between them
  const LAYOUTS = [1, 2, 4];
  const SERIES_TYPE = "application/x-lightbox-series";
  const workspace = document.getElementById("workspace");
  const grid = document.getElementById("viewer");
  const strip = workspace.querySelector(".ws-strip");
  const priors = document.getElementById("priors");
  const help = document.getElementById("help");
  const linkButton = workspace.querySelector(".ws-link");
  const syncButton = workspace.querySelector(".ws-sync");
  const priorsButton = workspace.querySelector(".ws-priors-toggle");
  const printLink = workspace.querySelector(".ws-print");
  const viewports = [];  // {element, seriesUid, viewer}: one per cell, made as layouts need them
  const geometries = new Map();  // series UID -> Promise of /api/series/<uid>/geometry (or null)
  let layout = 1;
  let active = 0;

  const isOn = (button) => button.getAttribute("aria-pressed") === "true";
  const toggle = (button) => button.setAttribute("aria-pressed", String(!isOn(button)));
  const activeViewer = () => viewports[active] && viewports[active].viewer;

  // ------------------------------------------------------------------ viewports

  function cell(index) {
    while (viewports.length <= index) {
      const element = lightbox.text("div", "Choose a series in the strip, or drop one here.",
        { class: "ws-vp", "data-index": String(viewports.length) });
      const i = viewports.length;
      element.addEventListener("pointerdown", () => activate(i));
      element.addEventListener("focusin", () => activate(i));
      element.addEventListener("dragover", (event) => {
        if (event.dataTransfer.types.includes(SERIES_TYPE)) event.preventDefault();
      });
      element.addEventListener("drop", (event) => {
        const uid = event.dataTransfer.getData(SERIES_TYPE);
        if (!uid) return;
        event.preventDefault();
        activate(i);
        open(i, uid);
      });
      viewports.push({ element, seriesUid: "", viewer: null });
    }
    return viewports[index];
  }

  function activate(index) {
    active = index;
    viewports.forEach((vp, i) => vp.element.classList.toggle("ws-active", i === index));
    markStrip();
    aimPrint();
  }

  /** The Print link follows the active viewport: its series, the image shown, its window (when
      changed from the file's) and the presentation state applied ("none" when it shows none). */
  function aimPrint() {
    const viewer = activeViewer();
    if (!viewer || !viewer.frames.length) return;
    const params = new URLSearchParams({ series: viewer.seriesUid, image: String(viewer.index + 1) });
    const round = (value) => String(Math.round(value * 100) / 100);
    if (viewer.window) params.set("window", `${round(viewer.window.center)},${round(viewer.window.width)}`);
    params.set("state", viewer.states.applied || "none");
    printLink.href = `/studies/${encodeURIComponent(workspace.dataset.studyUid)}/print?${params}`;
  }

  function open(index, seriesUid) {
    const vp = cell(index);
    vp.seriesUid = seriesUid;
    vp.element.dataset.seriesUid = seriesUid;
    vp.viewer = window.LightboxViewer.open(vp.element, seriesUid, { maxCachedFrames: Math.floor(MAX_FRAMES_IN_ALL / layout) });
    vp.viewer.ready.then(() => {
      if (isOn(linkButton) && index !== active && activeViewer()) follow(activeViewer());
    });
    markStrip();
    remember();
  }

  function setLayout(count) {
    layout = LAYOUTS.includes(count) ? count : 1;
    grid.dataset.layout = String(layout);
    for (const button of workspace.querySelectorAll("button[data-layout]")) {
      button.setAttribute("aria-pressed", String(Number(button.dataset.layout) === layout));
    }
    const unshown = seriesInStrip().filter((uid) => !viewports.slice(0, layout).some((vp) => vp.seriesUid === uid));
    viewports.forEach((vp, i) => {
      // Viewports out of the layout give their frames back; their series comes back with them.
      if (i >= layout && vp.viewer) { vp.viewer.destroy(); vp.viewer = null; }
      if (vp.viewer) vp.viewer.maxCachedFrames = Math.floor(MAX_FRAMES_IN_ALL / layout);
    });
    const cells = [];
    for (let i = 0; i < layout; i += 1) {
      const vp = cell(i);
      if (!vp.seriesUid && unshown.length) vp.seriesUid = unshown.shift();  // a new cell: the next series
      if (vp.seriesUid && !vp.viewer) open(i, vp.seriesUid);
      cells.push(vp.element);
    }
    grid.replaceChildren(...cells);
    activate(active < layout ? active : 0);
    remember();
  }

  function remember() {
    const params = new URLSearchParams({ layout: String(layout) });
    for (const vp of viewports.slice(0, layout)) if (vp.seriesUid) params.append("series", vp.seriesUid);
    history.replaceState(null, "", `${location.pathname}?${params}`);
  }

  // ------------------------------------------------------------------ series strip

  function seriesInStrip() {
    return [...strip.querySelectorAll(".ws-series")].map((button) => button.dataset.seriesUid);
  }

  function markStrip() {
    const shown = new Set(viewports.slice(0, layout).map((vp) => vp.seriesUid));
    const current = viewports[active] ? viewports[active].seriesUid : "";
    for (const button of strip.querySelectorAll(".ws-series")) {
      button.classList.toggle("ws-shown", shown.has(button.dataset.seriesUid));
      if (button.dataset.seriesUid === current) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    }
  }

  strip.addEventListener("click", (event) => {
    const button = event.target.closest(".ws-series");
    if (button) open(active, button.dataset.seriesUid);
  });
  strip.addEventListener("dragstart", (event) => {
    const button = event.target.closest(".ws-series");
    if (button) event.dataTransfer.setData(SERIES_TYPE, button.dataset.seriesUid);
  });

  function seriesButton(series) {
    const label = [series.modality, series.series_number != null ? `#${series.series_number}` : "", series.description]
      .filter(Boolean).join(" ");
    const button = lightbox.text("button", undefined, { type: "button", class: "ws-series", draggable: "true",
      "data-series-uid": series.series_uid, title: label });
    button.append(
      lightbox.text("img", undefined, { src: `/api/series/${encodeURIComponent(series.series_uid)}/thumbnail`,
        alt: "", width: "96", height: "96", loading: "lazy" }),
      lightbox.text("span", label));
    return button;
  }

  // ------------------------------------------------------------------ the patient's other studies

  async function openPrior(button) {
    const studyUid = button.dataset.studyUid;
    let group = strip.querySelector(`.ws-group[data-study-uid="${CSS.escape(studyUid)}"]`);
    if (!group) {
      button.disabled = true;
      let detail;
      try {
        detail = await lightbox.api(`/api/studies/${encodeURIComponent(studyUid)}`);
      } catch (error) {
        button.disabled = false;
        button.title = `Cannot open it: ${error.message}`;
        return;
      } finally {
        button.disabled = false;
      }
      group = lightbox.text("div", undefined, { class: "ws-group", "data-study-uid": studyUid });
      const s = detail.study;
      group.append(lightbox.text("h2", [lightbox.date(s.study_date), s.description].filter(Boolean).join(" · ") || "Prior"));
      for (const series of detail.series) if (series.front.kind === "image") group.append(seriesButton(series));
      strip.append(group);
    }
    const first = group.querySelector(".ws-series");
    if (!first) return;
    // Beside the current study: the next viewport (two side by side from one).
    if (layout === 1) setLayout(2);
    const target = (active + 1) % layout;
    activate(target);
    open(target, first.dataset.seriesUid);
  }

  priors.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-study-uid]");
    if (button) openPrior(button);
  });
  priorsButton.addEventListener("click", () => {
    priors.hidden = !priors.hidden;
    priorsButton.setAttribute("aria-expanded", String(!priors.hidden));
  });

  // ------------------------------------------------------------------ linked scrolling, synchronised W/L

  function geometryOf(seriesUid) {
    if (!geometries.has(seriesUid)) {
      geometries.set(seriesUid, lightbox.api(`/api/series/${encodeURIComponent(seriesUid)}/geometry`).catch(() => null));
    }
    return geometries.get(seriesUid);
  }

  const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
  const normal = (o) => [o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3]];
  const placed = (p) => p && p.position && p.orientation;
  /** Where a frame lies: its own place in an enhanced multi-frame image, else its image's. */
  const where = (geometry, entry) => {
    const image = geometry && entry && geometry.instances[entry.instance];
    return image && image.frames ? image.frames[entry.frame - 1] : image;
  };

  /** Show, in each other viewport of the same Frame of Reference and plane, the image nearest
      to the position of the one ``source`` shows. */
  async function follow(source) {
    if (!isOn(linkButton) || layout < 2 || !source.frames.length) return;
    const from = await geometryOf(source.seriesUid);
    const entry = source.frames[source.index];
    const here = where(from, entry);
    if (!from || !from.frame_of_reference || !placed(here)) return;
    const n = normal(here.orientation);
    const depth = dot(here.position, n);
    for (const vp of viewports.slice(0, layout)) {
      const target = vp.viewer;
      if (!target || target === source || !target.frames.length) continue;
      const to = await geometryOf(target.seriesUid);
      if (!to || to.frame_of_reference !== from.frame_of_reference) continue;
      let best = -1, distance = Infinity;
      target.frames.forEach((frame, k) => {
        const there = where(to, frame);
        if (!placed(there) || Math.abs(dot(normal(there.orientation), n)) < 0.99) return;  // another plane
        const d = Math.abs(dot(there.position, n) - depth);
        if (d < distance) { best = k; distance = d; }
      });
      if (best >= 0 && best !== target.index) {
        target.followed = best;  // its own "lbv:frame" is not followed back
        target.show(best);
      }
    }
  }

  grid.addEventListener("lbv:frame", (event) => {
    const viewer = event.detail.viewer;
    if (viewer === activeViewer()) aimPrint();
    if (viewer.followed === viewer.index) { viewer.followed = null; return; }
    follow(viewer);
  });
  grid.addEventListener("lbv:window", (event) => {
    const source = event.detail.viewer;
    if (source === activeViewer()) aimPrint();
    if (!isOn(syncButton)) return;
    const modality = source.info && source.info.series.modality;
    for (const vp of viewports.slice(0, layout)) {
      const v = vp.viewer;
      if (v && v !== source && v.info && v.info.series.modality === modality) v.setWindow(source.window);
    }
  });
  linkButton.addEventListener("click", () => { toggle(linkButton); if (activeViewer()) follow(activeViewer()); });
  syncButton.addEventListener("click", () => toggle(syncButton));
  // Built again as it is followed: a state saved or a window typed since the last frame counts.
  for (const name of ["pointerenter", "focus", "click", "auxclick", "contextmenu"]) printLink.addEventListener(name, aimPrint);

  // ------------------------------------------------------------------ full screen, help, keyboard

  function fullScreen() {
    if (document.fullscreenElement) document.exitFullscreen();
    else if (grid.requestFullscreen) grid.requestFullscreen().catch(() => {});
  }

  function showHelp(on) {
    help.hidden = !on;
    if (on) help.querySelector("button").focus();
    else if (activeViewer()) activeViewer().root.focus({ preventScroll: true });
  }

  grid.addEventListener("dblclick", fullScreen);
  workspace.querySelector(".ws-full").addEventListener("click", fullScreen);
  workspace.querySelector(".ws-help-toggle").addEventListener("click", () => showHelp(help.hidden));
  help.querySelector(".ws-help-close").addEventListener("click", () => showHelp(false));
  for (const button of workspace.querySelectorAll("button[data-layout]")) {
    button.addEventListener("click", () => setLayout(Number(button.dataset.layout)));
  }

  document.addEventListener("keydown", (event) => {
    // The viewer with the focus has had the key first (its own arrows, tools): used, it is done.
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (["INPUT", "SELECT", "TEXTAREA"].includes(event.target.tagName)) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (key === "?") showHelp(help.hidden);
    else if (key === "Escape" && !help.hidden) showHelp(false);
    else if (["1", "2", "4"].includes(key)) setLayout(Number(key));
    else if (key === "f") fullScreen();
    else if (key === "l") linkButton.click();
    else if (key === "s") syncButton.click();
    else if (!(activeViewer() && activeViewer().handleKey(event))) return;
    event.preventDefault();
  });

  // ------------------------------------------------------------------ start

  const query = new URLSearchParams(location.search);
  const asked = query.getAll("series").filter(Boolean);
  const first = seriesInStrip()[0];
  (asked.length ? asked : first ? [first] : []).slice(0, 4).forEach((uid, i) => { cell(i).seriesUid = uid; });
  setLayout(Number(query.get("layout")) || [1, 2, 4, 4][Math.max(asked.length, 1) - 1]);
  if (activeViewer()) activeViewer().root.focus({ preventScroll: true });
})();
