/* Lightbox viewer: presentation states (GSPS, or Color SPS for colour) saved, listed and applied.

   new LightboxStates(viewer, toolbar) adds a Save button and a list of the series' states
   (/api/series/<uid>/presentation-states: label, author, time, newest first).  Saving posts
   the viewport as appliance/presentation/description.py takes it: the annotations (one
   graphic annotation per item, its layer naming its kind, its value as a text object), the
   window, the displayed area (the part of the image on screen), rotation and flip; on a
   multi-frame image each annotation names the frame it was drawn on.  Choosing a state applies
   it: its annotations replace the viewport's (shown on the frames they name), its window, area,
   rotation and flip are taken.  When a series opens, its newest state is applied (the list says which;
   "As stored" goes back to the image as it came).
*/
(function () {
  "use strict";

  const LAYERS = { length: "LENGTH", angle: "ANGLE", cobb: "COBB", norberg: "NORBERG", tplo: "TPLO",
                   ellipse: "ELLIPSE ROI", rect: "RECTANGLE ROI", text: "TEXT", arrow: "ARROW", calibrate: "CALIBRATION" };
  const KINDS = Object.fromEntries(Object.entries(LAYERS).map(([kind, layer]) => [layer, kind]));

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const polyline = (points) => ({ type: "POLYLINE", units: "PIXEL", points });

  /** An item's graphic objects, in pixel units. */
  function graphics(item) {
    const p = item.points;
    const [x0, y0, x1, y1] = window.LightboxAnnotate.bounds(p);
    switch (item.kind) {
      case "cobb": case "tplo": return [polyline(p.slice(0, 2)), polyline(p.slice(2, 4))];
      case "norberg": return [{ type: "CIRCLE", units: "PIXEL", points: p.slice(0, 2) },
                              { type: "CIRCLE", units: "PIXEL", points: p.slice(2, 4) }, polyline([p[4], p[0], p[2], p[5]])];
      case "rect": return [polyline([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]])];
      case "ellipse": {  // major axis, then minor axis
        const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
        const across = [[x0, cy], [x1, cy]], down = [[cx, y0], [cx, y1]];
        return [{ type: "ELLIPSE", units: "PIXEL", points: x1 - x0 >= y1 - y0 ? [...across, ...down] : [...down, ...across] }];
      }
      case "arrow": return [polyline(window.LightboxAnnotate.arrow(p[0], p[1], Math.max(4, Math.hypot(p[1][0] - p[0][0], p[1][1] - p[0][1]) / 8)))];
      case "text": return [];
      default: return [polyline(p)];
    }
  }

  /** The points of one of our kinds back from its graphics, or null if they are not ours. */
  function points(kind, g) {
    const shape = g.map((x) => `${x.units === "PIXEL" ? x.type : "?"}${x.points.length}`).join(" ");
    const p = (i) => g[i].points;
    const box = (pts) => { const [x0, y0, x1, y1] = window.LightboxAnnotate.bounds(pts); return [[x0, y0], [x1, y1]]; };
    const expected = { length: "POLYLINE2", calibrate: "POLYLINE2", angle: "POLYLINE3", cobb: "POLYLINE2 POLYLINE2",
                       tplo: "POLYLINE2 POLYLINE2", norberg: "CIRCLE2 CIRCLE2 POLYLINE4", ellipse: "ELLIPSE4",
                       rect: "POLYLINE5", arrow: "POLYLINE5", text: "" }[kind];
    if (shape !== expected) return null;
    if (kind === "cobb" || kind === "tplo") return [...p(0), ...p(1)];
    if (kind === "norberg") return [...p(0), ...p(1), p(2)[0], p(2)[3]];
    if (kind === "ellipse" || kind === "rect") return box(p(0));
    if (kind === "arrow") return p(0).slice(0, 2);
    return kind === "text" ? [] : p(0);
  }

  class States {
    constructor(viewer, bar) {
      this.viewer = viewer;
      this.list = el("select", { class: "lbv-states", title: "Presentation states of this series" });
      this.list.addEventListener("change", () => this.choose(this.list.value));
      this.saveButton = el("button", { type: "button", class: "lbv-save", title: "Save the annotations, window, zoom and orientation as a presentation state" }, "Save");
      this.saveButton.addEventListener("click", () => this.save());
      bar.append(this.saveButton, this.list);
      this.applied = "";
    }

    url() {
      return `/api/series/${encodeURIComponent(this.viewer.seriesUid)}/presentation-states`;
    }

    /** List the states; the newest is applied when the series opens. */
    async load() {
      const states = await this.refresh();
      if (states.length) await this.choose(states[0].sop_uid);
    }

    async refresh() {
      let states = [];
      try {
        states = (await lightbox.api(this.url())).presentation_states;
      } catch (error) {
        this.viewer.status.textContent = `Presentation states: ${error.message}`;
      }
      this.list.replaceChildren(el("option", { value: "" }, states.length ? "As stored" : "No presentation states"));
      for (const s of states) {
        const when = [lightbox.date(s.creation_date), (s.creation_time || "").replace(/^(\d\d)(\d\d).*/, "$1:$2")].filter(Boolean).join(" ");
        const who = s.creator ? lightbox.person(s.creator) : "";
        this.list.append(el("option", { value: s.sop_uid }, [s.label, who, when].filter(Boolean).join(" · ")));
      }
      this.list.value = this.applied;
      this.list.disabled = !states.length;
      return states;
    }

    async choose(sop) {
      const viewer = this.viewer;
      if (!sop) {
        viewer.notes.clear();
        this.applied = "";
        viewer.reset();
        return;
      }
      try {
        this.apply(await lightbox.api(`/api/presentation-states/${encodeURIComponent(sop)}`));
        this.applied = sop;
      } catch (error) {
        viewer.status.textContent = `Cannot apply this presentation state: ${error.message}`;
      }
      this.list.value = this.applied;
    }

    /** A state as GET /api/presentation-states/<sop> gives it: applied to the viewport. */
    apply(state) {
      const viewer = this.viewer;
      const shown = new Set(viewer.info.instances.map((i) => i.sop_uid));
      const mine = (refs) => !refs.length || refs.some((uid) => shown.has(uid));
      viewer.notes.clear();
      for (const annotation of state.annotations) {
        const sops = annotation.images.length ? annotation.images : [null];
        // Drawn on some frames of a multi-frame image: one item per frame (none: every frame).
        const frames = annotation.frames && annotation.frames.length ? annotation.frames : [null];
        for (const sop of sops) for (const frame of frames) this.addItem(annotation, sop, frame);
      }
      const voi = state.voi.find((w) => w.center !== null && w.width !== null && mine(w.images));
      if (voi && viewer.info.image.grayscale) viewer.window = { center: voi.center, width: voi.width };
      viewer.rotation = [0, 90, 180, 270].includes(state.rotation) ? state.rotation : 0;
      viewer.flip = state.flip;
      const area = state.displayed_areas.find((a) => mine(a.images) && a.top_left.length === 2 && a.bottom_right.length === 2);
      const whole = !area || (area.top_left[0] === 1 && area.top_left[1] === 1 && viewer.current
        && area.bottom_right[0] === viewer.current.columns && area.bottom_right[1] === viewer.current.rows);
      viewer.fitView(whole ? undefined : [area.top_left[0] - 1, area.top_left[1] - 1, area.bottom_right[0], area.bottom_right[1]]);
      viewer.presetSelect.value = "";
      viewer.repaint();
      viewer.emit("lbv:window");
    }

    addItem(annotation, sop, frame) {
      const kind = KINDS[annotation.layer];
      const p = kind ? points(kind, annotation.graphics) : null;
      const text = annotation.texts[0];
      const base = { sop, frame };
      if (p && kind === "text" && text && text.anchor && text.units === "PIXEL") {
        this.viewer.notes.add({ ...base, kind, points: [text.anchor], text: text.text });
      } else if (p && kind === "calibrate" && text && /Calibration ([0-9.]+) mm/.test(text.text)) {
        const mm = Number(text.text.match(/Calibration ([0-9.]+) mm/)[1]);
        this.viewer.notes.add({ ...base, kind, points: p, text: text.text, mm });
      } else if (p && kind !== "text" && kind !== "calibrate") {
        this.viewer.notes.add({ ...base, kind, points: p, text: "" });
      } else {  // another system's, or not in our shape: drawn as it is
        const pixels = annotation.graphics.filter((g) => g.units === "PIXEL").flatMap((g) => g.points);
        this.viewer.notes.add({ ...base, kind: "foreign", layer: annotation.layer, graphics: annotation.graphics,
                                texts: annotation.texts, points: pixels, text: "" });
      }
    }

    /** The viewport as the description of a presentation state. */
    describe() {
      const viewer = this.viewer;
      const notes = viewer.notes;
      const entry = viewer.frames[viewer.index];
      const items = notes.items.filter((item) => item !== notes.pending);
      const sops = [...new Set([entry.sop, ...items.map((item) => item.sop).filter(Boolean)])];
      const layers = [...new Set(items.map((item) => (item.kind === "foreign" ? item.layer : LAYERS[item.kind])))];
      const multiframe = new Set(viewer.info.instances.filter((i) => i.frames > 1).map((i) => i.sop_uid));
      const annotations = items.map((item) => {
        const value = notes.text(item);
        const anchor = item.points[item.kind === "text" ? 0 : item.points.length - 1];
        return {
          layer: item.kind === "foreign" ? item.layer : LAYERS[item.kind],
          images: item.sop ? [item.sop] : [],
          frames: item.sop && item.frame && multiframe.has(item.sop) ? [item.frame] : [],  // the frame it was drawn on
          graphics: item.kind === "foreign" ? item.graphics : graphics(item),
          texts: item.kind === "foreign" ? item.texts : value ? [{ text: value, anchor, anchor_visible: false, units: "PIXEL" }] : [],
        };
      }).filter((a) => a.graphics.length || a.texts.length);
      const { columns, rows } = viewer.current;
      const [x0, y0, x1, y1] = viewer.view.fit ? [0, 0, columns, rows] : viewer.visibleArea();
      const w = viewer.activeWindow();
      return {
        label: "LIGHTBOX",
        description: [...new Set(items.map((item) => window.LightboxAnnotate.LABELS[item.kind] || "Annotation"))].join(", ").slice(0, 64),
        images: sops.map((sop) => ({ sop_uid: sop })),
        voi: viewer.info.image.grayscale ? [{ center: w.center, width: Math.max(1, w.width) }] : [],
        displayed_areas: [{ top_left: [Math.floor(x0) + 1, Math.floor(y0) + 1], bottom_right: [Math.max(Math.ceil(x1), Math.floor(x0) + 1), Math.max(Math.ceil(y1), Math.floor(y0) + 1)], size_mode: "SCALE TO FIT" }],
        rotation: viewer.rotation,
        flip: viewer.flip,
        layers: layers.map((name, i) => ({ name, order: i + 1 })),
        annotations,
      };
    }

    async save() {
      const viewer = this.viewer;
      if (!viewer.current) return;
      this.saveButton.disabled = true;
      try {
        const answer = await lightbox.api(this.url(), { method: "POST", headers: { "Content-Type": "application/json" },
                                                       body: JSON.stringify(this.describe()) });
        this.applied = answer.sop_uid;
        await this.refresh();
        viewer.status.textContent = "";
        viewer.element.dataset.savedState = answer.sop_uid;
      } catch (error) {
        viewer.status.textContent = `Not saved: ${error.message}`;
      } finally {
        this.saveButton.disabled = false;
      }
    }
  }

  window.LightboxStates = States;
})();
