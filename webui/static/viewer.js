/* Lightbox viewer: one series on a canvas.  Plain JavaScript, no build step.

   LightboxViewer.open(element, seriesUid, {maxCachedFrames}) -> viewer; viewer.destroy() ends it.
   Several viewers live side by side (workspace.js): each keeps its own state and cache, and
   tells the page what it shows through events on its element: "lbv:frame" after a frame is
   shown (element.dataset.frame is its number, from 1), "lbv:window" when the user changes W/L.

   Grayscale frames come as raw 16-bit values (/api/instances/<sop>/frames/<n>/raw) and are
   windowed here, so window/level needs no round trip; colour frames come rendered (JPEG).
   Overlay planes (60xx) come apart, as a transparent PNG per frame laid over the picture, so
   that the Overlays button shows and hides them at once.
   Measurements and annotations live in annotate.js (viewer.notes); presentation states are
   saved, listed and applied by states.js (viewer.states).
   Mouse: wheel = next/previous frame, Ctrl/Shift+wheel = zoom, drag = the active tool
   (window/level, pan, zoom, scroll through the frames, a measurement or annotation), middle drag = pan.  Keys (handleKey):
   arrows, Page Up/Down, Home/End, space = cine, W/P/Z/M/A/E/T = tool, Delete = delete the
   selected annotation, I = invert, O = rotate, H = flip, R = reset.
   Touch: one finger = the active tool, two fingers = pinch zoom and pan.
*/
(function () {
  "use strict";

  const PREFETCH_AHEAD = 8;      // frames fetched ahead of the one shown
  const PARALLEL_FETCHES = 4;
  const MAX_CACHED_FRAMES = 400; // decoded frames kept (per viewer, unless told fewer); the oldest are dropped past this
  const DEFAULT_CINE_FPS = 10;
  const TOOLS = [["wl", "W/L"], ["pan", "Pan"], ["zoom", "Zoom"], ["scroll", "Scroll"], ["measure", "Measure"]];
  const SCROLL_PIXELS = 8;       // the Scroll tool: one frame per this many pixels dragged
  const TOOL_KEYS = { w: "wl", p: "pan", z: "zoom", m: "measure", a: "angle", e: "ellipse", t: "text" };
  // The annotation tools of annotate.js ("measure" is its length); the others are the viewer's.
  const NOTE_TOOLS = ["angle", "cobb", "norberg", "tplo", "ellipse", "rect", "text", "arrow", "calibrate", "select"];
  const noteKind = (tool) => (tool === "measure" ? "length" : NOTE_TOOLS.includes(tool) ? tool : null);
  const MOVES = { ArrowDown: 1, ArrowRight: 1, PageDown: 10, ArrowUp: -1, ArrowLeft: -1, PageUp: -10 };

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // Names and dates read as on the pages around the viewer (lightbox.js).
  const personName = (value) => lightbox.person(value);
  const dicomDate = (value) => lightbox.date(value);

  class Viewer {
    constructor(element, seriesUid, options) {
      this.element = element;
      this.seriesUid = seriesUid;
      this.maxCachedFrames = Math.max(16, (options && options.maxCachedFrames) || MAX_CACHED_FRAMES);
      this.frames = [];          // [{sop, frame, instance}] in display order
      this.index = 0;
      this.cache = new Map();    // "sop/frame" -> Promise of decoded frame data
      this.queue = [];
      this.fetching = 0;
      this.tool = "wl";
      this.window = null;        // {center, width} in modality units, null: the frame's own
      this.invert = false;
      this.showOverlays = true;  // as DCMTK and the rendered pictures: overlays on by default
      this.view = { scale: 1, tx: 0, ty: 0, fit: true };
      this.rotation = 0;         // degrees clockwise, then flipped horizontally (as a presentation state)
      this.flip = false;
      this.notes = new window.LightboxAnnotate.Layer(this);
      this.playing = false;
      this.speed = 1;
      this.pointers = new Map();
      this.current = null;       // the decoded frame shown
      this.build();
    }

    // ------------------------------------------------------------------ set-up

    build() {
      const root = el("div", { class: "lbv", tabindex: "0" });
      const bar = el("div", { class: "lbv-toolbar" });
      this.toolButtons = {};
      for (const [name, label] of TOOLS) {
        const button = el("button", { type: "button", "data-tool": name }, label);
        button.addEventListener("click", () => this.setTool(name));
        this.toolButtons[name] = button;
        bar.append(button);
      }
      this.noteSelect = el("select", { class: "lbv-tools", title: "Measurements and annotations" });
      this.noteSelect.append(el("option", { value: "" }, "More tools…"));
      for (const name of NOTE_TOOLS) this.noteSelect.append(el("option", { value: name }, window.LightboxAnnotate.LABELS[name]));
      this.noteSelect.addEventListener("change", () => { if (this.noteSelect.value) this.setTool(this.noteSelect.value); });
      bar.append(this.noteSelect);
      this.presetSelect = el("select", { class: "lbv-presets", title: "Window presets" });
      this.presetSelect.addEventListener("change", () => this.applyPreset(this.presetSelect.value));
      bar.append(this.presetSelect);
      // The window typed in: centre and width in modality units (HU for CT).
      this.windowInputs = {};
      for (const [name, label] of [["center", "L"], ["width", "W"]]) {
        const input = el("input", { type: "number", class: `lbv-${name}`, step: "any", "aria-label": name === "center" ? "Window level (centre)" : "Window width", title: name === "center" ? "Level (centre)" : "Width" });
        input.addEventListener("change", () => this.typedWindow());
        this.windowInputs[name] = input;
        bar.append(el("span", { class: "lbv-wl", "aria-hidden": "true" }, label), input);
      }
      const action = (label, cls, handler, title) => {
        const button = el("button", { type: "button", class: cls, title: title || label }, label);
        button.addEventListener("click", handler);
        bar.append(button);
        return button;
      };
      action("Invert", "lbv-invert", () => { this.invert = !this.invert; this.draw(); });
      this.overlayButton = action("Overlays", "lbv-overlays", () => this.toggleOverlays(),
        "Show or hide the overlay planes (outlines, annotations)");
      this.overlayButton.classList.add("lbv-active");
      this.overlayButton.setAttribute("aria-pressed", "true");
      action("Rotate", "lbv-rotate", () => this.orient((this.rotation + 90) % 360, this.flip), "Rotate 90° clockwise (O)");
      action("Flip", "lbv-flip", () => this.orient(this.rotation, !this.flip), "Flip left-right (H)");
      action("Reset", "lbv-reset", () => this.reset());
      action("Fit", "lbv-fit", () => { this.fitView(); this.draw(); });
      action("1:1", "lbv-actual", () => this.actualSize(), "Actual size");
      this.playButton = action("Play", "lbv-play", () => this.togglePlay());
      this.speedSelect = el("select", { class: "lbv-speed", title: "Cine speed" });
      for (const factor of [0.25, 0.5, 1, 2, 4]) {
        this.speedSelect.append(el("option", { value: String(factor) }, `${factor}x`));
      }
      this.speedSelect.value = "1";
      this.speedSelect.addEventListener("change", () => { this.speed = Number(this.speedSelect.value); });
      bar.append(this.speedSelect);
      action("PNG", "lbv-export-png", () => this.exportImage("png"), "Save this image as PNG");
      action("JPEG", "lbv-export-jpeg", () => this.exportImage("jpeg"), "Save this image as JPEG");
      const burn = el("label", { class: "lbv-burn", title: "Draw the measurements and annotations into the PNG/JPEG" });
      this.burnIn = el("input", { type: "checkbox", class: "lbv-burn-in" });
      burn.append(this.burnIn, " with annotations");
      bar.append(burn);
      this.gifLink = el("a", { class: "lbv-export-gif", title: "Save the cine loop as GIF" }, "GIF");
      this.webpLink = el("a", { class: "lbv-export-webp", title: "Save the cine loop as WebP" }, "WebP");
      this.gifLink.hidden = this.webpLink.hidden = true;  // until a multi-frame image is shown (updateLinks)
      bar.append(this.gifLink, this.webpLink);

      const stage = el("div", { class: "lbv-stage" });
      this.canvas = el("canvas", { class: "lbv-canvas" });
      this.overlays = {};
      for (const corner of ["tl", "tr", "bl", "br"]) {
        this.overlays[corner] = el("div", { class: `lbv-overlay lbv-${corner}` });
        stage.append(this.overlays[corner]);
      }
      stage.prepend(this.canvas);
      this.status = el("div", { class: "lbv-status", role: "status" });
      stage.append(this.status);

      const scroll = el("div", { class: "lbv-scroll" });
      this.slider = el("input", { type: "range", class: "lbv-slider", min: "1", max: "1", value: "1", "aria-label": "Frame" });
      this.slider.addEventListener("input", () => this.show(Number(this.slider.value) - 1));
      this.frameLabel = el("span", { class: "lbv-frame" });
      scroll.append(this.slider, this.frameLabel);

      this.states = new window.LightboxStates(this, bar);
      root.append(bar, stage, scroll);
      this.element.replaceChildren(root);
      this.root = root;
      this.stage = stage;
      this.offscreen = document.createElement("canvas");
      this.bindInput();
      this.resizer = new ResizeObserver(() => this.resize());
      this.resizer.observe(stage);
      this.setTool("wl");
    }

    /** Stop everything this viewer runs (cine, fetches, resize watch) and drop its frames. */
    destroy() {
      this.playing = false;
      this.destroyed = true;
      this.resizer.disconnect();
      for (const job of this.queue) job.reject(new Error("closed"));
      this.queue = [];
      this.cache.clear();
      this.current = null;
    }

    emit(name) {
      this.element.dispatchEvent(new CustomEvent(name, { bubbles: true, detail: { viewer: this } }));
    }

    async load() {
      const response = await fetch(`/api/series/${encodeURIComponent(this.seriesUid)}/viewer`, { credentials: "same-origin" });
      if (!response.ok) throw new Error(await this.reason(response));
      this.info = await response.json();
      this.frames = [];
      this.info.instances.forEach((instance, i) => {
        for (let n = 1; n <= instance.frames; n += 1) this.frames.push({ sop: instance.sop_uid, frame: n, instance: i });
      });
      this.slider.max = String(Math.max(this.frames.length, 1));
      this.presetSelect.replaceChildren(el("option", { value: "" }, "Default from file"));
      this.info.presets.forEach((preset, i) => {
        this.presetSelect.append(el("option", { value: String(i) }, `${preset.name} (${preset.center}/${preset.width})`));
      });
      this.presetSelect.disabled = !this.info.image.grayscale;
      for (const input of Object.values(this.windowInputs)) input.disabled = !this.info.image.grayscale;
      this.overlayButton.disabled = !(this.info.image.overlays || []).length;
      if (!this.info.image.grayscale && this.tool === "wl") this.setTool("pan");
      if (this.info.image.too_large) this.status.textContent = "This image is too large to display.";
      this.resize();
      await this.show(0);
      await this.states.load();
      return this;
    }

    // ------------------------------------------------------------------ frames

    key(entry) {
      return `${entry.sop}/${entry.frame}`;
    }

    /** The decoded frame at ``position`` (a promise); ``first``: fetched before those queued (the
        frame to show, ahead of the ones prefetched). */
    fetchFrame(position, first = false) {
      const entry = this.frames[position];
      const key = this.key(entry);
      if (this.cache.has(key)) {
        const promise = this.cache.get(key);
        this.cache.delete(key);  // re-insert: the Map's order is the LRU order
        this.cache.set(key, promise);
        const queued = first ? this.queue.findIndex((job) => this.key(job.entry) === key) : -1;
        if (queued > 0) this.queue.unshift(...this.queue.splice(queued, 1));
        return promise;
      }
      const promise = new Promise((resolve, reject) => this.queue[first ? "unshift" : "push"]({ entry, resolve, reject }));
      this.cache.set(key, promise);
      promise.catch(() => this.cache.delete(key));
      while (this.cache.size > this.maxCachedFrames) this.cache.delete(this.cache.keys().next().value);
      this.pump();
      return promise;
    }

    pump() {
      while (this.fetching < PARALLEL_FETCHES && this.queue.length) {
        const job = this.queue.shift();
        this.fetching += 1;
        this.decode(job.entry).then(job.resolve, job.reject).finally(() => { this.fetching -= 1; this.pump(); });
      }
    }

    async decode(entry) {
      const base = `/api/instances/${encodeURIComponent(entry.sop)}/frames/${entry.frame}`;
      if (this.info.image.grayscale) {
        const response = await fetch(`${base}/raw`, { credentials: "same-origin" });
        if (!response.ok) throw new Error(await this.reason(response));
        const p = JSON.parse(response.headers.get("X-Lightbox-Pixels"));
        const buffer = await response.arrayBuffer();
        const values = p.dtype === "int16" ? new Int16Array(buffer) : new Uint16Array(buffer);
        let min = Infinity, max = -Infinity;
        for (let i = 0; i < values.length; i += 1) {
          const v = values[i];
          if (v < min) min = v;
          if (v > max) max = v;
        }
        const overlay = p.overlays > 0 ? await this.fetchOverlay(base) : null;
        return { kind: "raw", values, min, max, rows: p.rows, columns: p.columns, slope: p.slope,
                 intercept: p.intercept, window: p.window, invert: p.invert, overlay, entry };
      }
      const response = await fetch(`${base}/rendered?format=jpeg&quality=92&overlays=0`, { credentials: "same-origin" });
      if (!response.ok) throw new Error(await this.reason(response));
      const bitmap = await createImageBitmap(await response.blob());
      const planes = Number(response.headers.get("X-Lightbox-Overlays") || 0);
      const overlay = planes > 0 ? await this.fetchOverlay(base) : null;
      return { kind: "bitmap", bitmap, rows: bitmap.height, columns: bitmap.width, overlay, entry };
    }

    async fetchOverlay(base) {
      const response = await fetch(`${base}/overlay`, { credentials: "same-origin" });
      if (!response.ok) throw new Error(await this.reason(response));
      return createImageBitmap(await response.blob());
    }

    async reason(response) {
      try {
        return (await response.json()).error || `HTTP ${response.status}`;
      } catch (error) {
        return `HTTP ${response.status}`;
      }
    }

    prefetch(from, count) {
      for (let k = 1; k <= count && k < this.frames.length; k += 1) this.fetchFrame((from + k) % this.frames.length);
    }

    async show(position) {
      if (!this.frames.length || this.destroyed) return;
      position = Math.max(0, Math.min(this.frames.length - 1, position));
      if (position !== this.index) this.notes.abandon();
      this.index = position;
      this.slider.value = String(position + 1);
      this.frameLabel.textContent = `${position + 1} / ${this.frames.length}`;
      const wanted = this.fetchFrame(position, true);
      this.prefetch(position, this.playing ? this.frames.length : PREFETCH_AHEAD);
      let frame;
      try {
        frame = await wanted;
      } catch (error) {
        this.status.textContent = `Cannot show this frame: ${error.message}`;
        return;
      }
      if (this.index !== position || this.destroyed) return;  // another frame was asked for meanwhile
      this.status.textContent = "";
      const sizeChanged = !this.current || this.current.rows !== frame.rows || this.current.columns !== frame.columns;
      this.current = frame;
      if (frame.overlay) this.overlayButton.disabled = false;
      if (sizeChanged && this.view.fit) this.fitView();
      this.paintFrame();
      this.draw();
      this.updateLinks();
      this.element.dataset.frame = String(position + 1);
      this.emit("lbv:frame");
    }

    // ------------------------------------------------------------------ window/level

    activeWindow() {
      if (this.window) return this.window;
      const w = this.current && this.current.window;
      return w ? { center: w.center, width: w.width } : { center: 128, width: 256 };
    }

    paintFrame() {
      const frame = this.current;
      const canvas = this.offscreen;
      canvas.width = frame.columns;
      canvas.height = frame.rows;
      const ctx = canvas.getContext("2d");
      if (frame.kind === "bitmap") {
        ctx.drawImage(frame.bitmap, 0, 0);
        return;
      }
      // One table over the frame's stored range: stored -> modality -> LINEAR window -> 0..255.
      const { center, width } = this.activeWindow();
      const invert = frame.invert !== this.invert;
      const span = frame.max - frame.min + 1;
      const lut = new Uint8ClampedArray(span);
      const low = center - 0.5 - (width - 1) / 2;
      for (let i = 0; i < span; i += 1) {
        const x = (frame.min + i) * frame.slope + frame.intercept;
        let y = width <= 1 ? (x <= center - 0.5 ? 0 : 255) : ((x - low) / (width - 1)) * 255;
        y = y < 0 ? 0 : y > 255 ? 255 : y;
        lut[i] = invert ? 255 - y : y;
      }
      const image = ctx.createImageData(frame.columns, frame.rows);
      const out = image.data;
      const values = frame.values;
      for (let i = 0, j = 0; i < values.length; i += 1, j += 4) {
        const g = lut[values[i] - frame.min];
        out[j] = out[j + 1] = out[j + 2] = g;
        out[j + 3] = 255;
      }
      ctx.putImageData(image, 0, 0);
    }

    applyPreset(value) {
      const preset = value === "" ? null : this.info.presets[Number(value)];
      this.window = preset ? { center: preset.center, width: preset.width } : null;
      this.repaint();
      this.emit("lbv:window");
    }

    typedWindow() {
      const center = Number(this.windowInputs.center.value), width = Number(this.windowInputs.width.value);
      if (!Number.isFinite(center) || !Number.isFinite(width) || width < 1 || this.windowInputs.center.value === "") return;
      this.window = { center, width };
      this.presetSelect.value = "";
      this.repaint();
      this.emit("lbv:window");
    }

    /** Window/level set from outside (synchronised viewports): no event back. */
    setWindow(window) {
      if (!this.info || !this.info.image.grayscale) return;
      this.window = window ? { center: window.center, width: window.width } : null;
      this.presetSelect.value = "";
      this.repaint();
    }

    repaint() {
      if (this.current) this.paintFrame();
      this.draw();
      this.updateLinks();
    }

    reset() {
      this.window = null;
      this.invert = false;
      this.rotation = 0;
      this.flip = false;
      this.presetSelect.value = "";
      this.fitView();
      this.repaint();
      this.emit("lbv:window");
    }

    // ------------------------------------------------------------------ geometry

    resize() {
      const ratio = window.devicePixelRatio || 1;
      const rect = this.stage.getBoundingClientRect();
      this.canvas.width = Math.max(1, Math.round(rect.width * ratio));
      this.canvas.height = Math.max(1, Math.round(rect.height * ratio));
      if (this.view.fit) this.fitView();
      this.draw();
    }

    cssSize() {
      const rect = this.canvas.getBoundingClientRect();
      return [rect.width, rect.height];
    }

    /** The image's width and height as shown (turned by a quarter: swapped). */
    orientedSize() {
      const { columns, rows } = this.current;
      return this.rotation % 180 ? [rows, columns] : [columns, rows];
    }

    /** Image pixels -> the oriented image (rotated, then flipped): [a, b, c, d, e, f] as canvas transforms take. */
    orientation() {
      return lightbox.orientation(this.current.columns, this.current.rows, this.rotation, this.flip);
    }

    /** Rotation (0, 90, 180, 270 clockwise) and horizontal flip, as a presentation state has them. */
    orient(rotation, flip) {
      this.rotation = rotation;
      this.flip = flip;
      if (this.current) this.fitView();
      this.draw();
    }

    /** Fit the image, or the part of it from ``area`` = [x0, y0, x1, y1] (image pixels). */
    fitView(area) {
      if (!this.current) return;
      const [w, h] = this.cssSize();
      this.view = { scale: 1, tx: 0, ty: 0, fit: !area };
      const [ow, oh] = this.orientedSize();
      const box = area || [0, 0, this.current.columns, this.current.rows];
      const [ax, ay] = this.orientedPoint(box[0], box[1]), [bx, by] = this.orientedPoint(box[2], box[3]);
      const aw = Math.abs(bx - ax) || ow, ah = Math.abs(by - ay) || oh;
      const scale = Math.min(w / aw, h / ah) || 1;
      this.view = { scale, tx: w / 2 - ((ax + bx) / 2) * scale, ty: h / 2 - ((ay + by) / 2) * scale, fit: !area };
    }

    actualSize() {
      if (!this.current) return;
      const [w, h] = this.cssSize();
      const [ow, oh] = this.orientedSize();
      this.view = { scale: 1, tx: (w - ow) / 2, ty: (h - oh) / 2, fit: false };
      this.draw();
    }

    orientedPoint(x, y) {
      const m = this.orientation();
      return [m[0] * x + m[2] * y + m[4], m[1] * x + m[3] * y + m[5]];
    }

    zoomAt(factor, cx, cy) {
      const v = this.view;
      const scale = Math.max(0.05, Math.min(40, v.scale * factor));
      const k = scale / v.scale;
      this.view = { scale, tx: cx - (cx - v.tx) * k, ty: cy - (cy - v.ty) * k, fit: false };
      this.draw();
    }

    /** Image pixel (column, row) -> position in the canvas, in CSS pixels. */
    imageToCanvas(x, y) {
      const [ox, oy] = this.current ? this.orientedPoint(x, y) : [x, y];
      return [this.view.tx + ox * this.view.scale, this.view.ty + oy * this.view.scale];
    }

    canvasToImage(x, y) {
      const ox = (x - this.view.tx) / this.view.scale, oy = (y - this.view.ty) / this.view.scale;
      if (!this.current) return [ox, oy];
      const [a, b, c, d, e, f] = this.orientation();  // a quarter turn and a flip: its inverse is its transpose
      return [a * (ox - e) + b * (oy - f), c * (ox - e) + d * (oy - f)];
    }

    /** The part of the image on the canvas, [x0, y0, x1, y1] in image pixels. */
    visibleArea() {
      const [w, h] = this.cssSize();
      const corners = [[0, 0], [w, h]].map(([x, y]) => this.canvasToImage(x, y));
      return [Math.min(corners[0][0], corners[1][0]), Math.min(corners[0][1], corners[1][1]),
              Math.max(corners[0][0], corners[1][0]), Math.max(corners[0][1], corners[1][1])];
    }

    /** Image pixel -> client (page viewport) coordinates: for tests and embedding pages. */
    imageToClient(x, y) {
      const rect = this.canvas.getBoundingClientRect();
      const [cx, cy] = this.imageToCanvas(x, y);
      return [rect.left + cx, rect.top + cy];
    }

    localPoint(event) {
      const rect = this.canvas.getBoundingClientRect();
      return [event.clientX - rect.left, event.clientY - rect.top];
    }

    // ------------------------------------------------------------------ drawing

    draw() {
      const ctx = this.canvas.getContext("2d");
      const ratio = window.devicePixelRatio || 1;
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.fillStyle = "#000";
      ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
      if (!this.current) return;
      const v = this.view;
      const [a, b, c, d, e, f] = this.orientation();
      const k = ratio * v.scale;
      ctx.setTransform(k * a, k * b, k * c, k * d, k * e + ratio * v.tx, k * f + ratio * v.ty);
      ctx.imageSmoothingEnabled = v.scale < 1;
      this.composeFrame(ctx);
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      // DISPLAY units of a presentation state: 0-1 across the canvas.
      const [w, h] = this.cssSize();
      this.notes.draw(ctx, (x, y) => this.imageToCanvas(x, y), (x, y) => [x * w, y * h]);
      this.writeOverlays();
    }

    /** The frame (inverted here when it came rendered) and, over it, its overlays in white. */
    composeFrame(ctx) {
      ctx.filter = this.current.kind === "bitmap" && this.invert ? "invert(1)" : "none";
      ctx.drawImage(this.offscreen, 0, 0);
      ctx.filter = "none";
      if (this.showOverlays && this.current.overlay) ctx.drawImage(this.current.overlay, 0, 0);
    }

    toggleOverlays() {
      this.showOverlays = !this.showOverlays;
      this.overlayButton.classList.toggle("lbv-active", this.showOverlays);
      this.overlayButton.setAttribute("aria-pressed", String(this.showOverlays));
      this.draw();
      this.updateLinks();
    }

    writeOverlays() {
      const info = this.info;
      if (!info) return;
      const study = info.study, series = info.series, patient = info.patient;
      this.overlays.tl.textContent = [
        personName(patient.name), patient.id, dicomDate(study.date),
        [series.modality, series.number != null ? `#${series.number}` : "", series.description].filter(Boolean).join(" "),
      ].filter(Boolean).join("\n");
      const entry = this.frames[this.index];
      const instances = info.instances.length;
      this.overlays.tr.textContent = [
        `Frame ${this.index + 1} / ${this.frames.length}`,
        instances > 1 && entry ? `Image ${entry.instance + 1} / ${instances}` : "",
        this.playing ? `Cine ${this.fps().toFixed(0)} fps` : "",
      ].filter(Boolean).join("\n");
      const w = this.activeWindow();
      const raw = this.current && this.current.kind === "raw";
      for (const [name, input] of Object.entries(this.windowInputs)) {
        if (raw && document.activeElement !== input) input.value = String(Math.round(w[name] * 10) / 10);
      }
      this.overlays.bl.textContent = [
        raw && this.probe ? this.probe : "",
        raw ? `W ${Math.round(w.width)} L ${Math.round(w.center)}` : "",
        `Zoom ${Math.round(this.view.scale * 100)}%`,
      ].filter(Boolean).join("\n");
      this.overlays.br.textContent = this.notes.summary();
    }

    // ------------------------------------------------------------------ input

    setTool(name) {
      if (name === "wl" && this.info && !this.info.image.grayscale) return;  // colour: no window to level
      if (name !== this.tool) this.notes.abandon();
      this.tool = name;
      for (const [tool, button] of Object.entries(this.toolButtons)) button.classList.toggle("lbv-active", tool === name);
      this.noteSelect.value = NOTE_TOOLS.includes(name) ? name : "";
      this.noteSelect.classList.toggle("lbv-active", NOTE_TOOLS.includes(name));
    }

    bindInput() {
      const canvas = this.canvas;
      canvas.addEventListener("wheel", (event) => {
        event.preventDefault();
        if (event.ctrlKey || event.shiftKey || event.metaKey) {
          const [x, y] = this.localPoint(event);
          this.zoomAt(event.deltaY < 0 ? 1.15 : 1 / 1.15, x, y);
        } else {
          this.step(event.deltaY > 0 ? 1 : -1);
        }
      }, { passive: false });
      this.root.addEventListener("keydown", (event) => {
        if (event.target.tagName === "SELECT" || event.target.tagName === "INPUT") return;
        if (this.handleKey(event)) event.preventDefault();
      });
      canvas.addEventListener("pointerdown", (event) => this.pointerDown(event));
      canvas.addEventListener("pointermove", (event) => this.pointerMove(event));
      canvas.addEventListener("pointerup", (event) => this.pointerUp(event));
      canvas.addEventListener("pointercancel", (event) => this.pointerUp(event));
      canvas.addEventListener("contextmenu", (event) => event.preventDefault());
      canvas.style.touchAction = "none";
    }

    /** A key for this viewer (from its own surface, or passed on by the page): true if used. */
    handleKey(event) {
      if (event.ctrlKey || event.metaKey || event.altKey) return false;
      const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
      if (key in MOVES) this.step(MOVES[key]);
      else if (key === "Home") this.show(0);
      else if (key === "End") this.show(this.frames.length - 1);
      else if (key === " ") this.togglePlay();
      else if (key in TOOL_KEYS) this.setTool(TOOL_KEYS[key]);
      else if (key === "Delete" || key === "Backspace") return this.notes.deleteSelected();
      else if (key === "Escape" && this.notes.pending) { this.notes.abandon(); this.draw(); }
      else if (key === "i") { this.invert = !this.invert; this.repaint(); }
      else if (key === "o") this.orient((this.rotation + 90) % 360, this.flip);
      else if (key === "h") this.orient(this.rotation, !this.flip);
      else if (key === "r") this.reset();
      else return false;
      return true;
    }

    step(delta) {
      if (!this.frames.length) return;
      const n = this.frames.length;
      this.show(Math.max(0, Math.min(n - 1, this.index + delta)));
    }

    pointerDown(event) {
      this.root.focus({ preventScroll: true });
      try {
        this.canvas.setPointerCapture(event.pointerId);
      } catch (error) {
        // a pointer the browser no longer tracks: nothing to capture
      }
      const point = this.localPoint(event);
      this.pointers.set(event.pointerId, point);
      if (this.pointers.size === 2) {
        this.gesture = { ...this.pinchState(), view: { ...this.view } };
        this.drag = null;
        return;
      }
      const tool = event.button === 1 || event.shiftKey ? "pan" : this.tool;
      this.drag = { tool, start: point, last: point, window: this.activeWindow() };
      if (noteKind(tool) && this.current) {
        this.notes.down(noteKind(tool), this.canvasToImage(...point), 4 / this.view.scale);
        this.draw();
      }
    }

    /** The value under the pointer, in modality units (HU for CT), for the corner text. */
    probeAt(point) {
      const frame = this.current;
      if (!frame || frame.kind !== "raw") return;
      const [x, y] = this.canvasToImage(...point).map(Math.floor);
      const inside = x >= 0 && y >= 0 && x < frame.columns && y < frame.rows;
      const value = inside ? frame.values[y * frame.columns + x] * frame.slope + frame.intercept : null;
      const text = inside ? `(${x}, ${y}) ${Math.round(value * 100) / 100}${this.info.series.modality === "CT" ? " HU" : ""}` : "";
      if (text !== this.probe) { this.probe = text; this.writeOverlays(); }
    }

    pointerMove(event) {
      if (event.pointerType === "mouse" && !this.pointers.size) this.probeAt(this.localPoint(event));
      if (!this.pointers.has(event.pointerId)) return;
      const point = this.localPoint(event);
      this.pointers.set(event.pointerId, point);
      if (this.gesture && this.pointers.size === 2) {
        // Reckoned from where the fingers began, not move by move: the fingers' moves come one
        // finger at a time, and steps in between (clamped at the zoom's limits) would drift.
        const start = this.gesture, now = this.pinchState();
        this.view = { ...start.view, tx: start.view.tx + now.x - start.x, ty: start.view.ty + now.y - start.y };
        this.zoomAt(now.distance / start.distance, now.x, now.y);
        return;
      }
      const drag = this.drag;
      if (!drag) return;
      const dx = point[0] - drag.last[0], dy = point[1] - drag.last[1];
      drag.last = point;
      if (drag.tool === "pan") {
        this.view.tx += dx;
        this.view.ty += dy;
        this.view.fit = false;
        this.draw();
      } else if (drag.tool === "zoom") {
        this.zoomAt(Math.exp(-dy / 200), drag.start[0], drag.start[1]);
      } else if (drag.tool === "scroll") {  // down: on, up: back (a finger has no wheel)
        drag.travel = (drag.travel || 0) + dy;
        const steps = Math.trunc(drag.travel / SCROLL_PIXELS);
        if (steps) { drag.travel -= steps * SCROLL_PIXELS; this.step(steps); }
      } else if (noteKind(drag.tool)) {
        this.notes.move(this.canvasToImage(...point));
        this.draw();
      } else if (drag.tool === "wl" && this.current && this.current.kind === "raw") {
        // Right: wider; down: higher level.  Sensitivity follows the window the drag began with,
        // itself scaled to the image's values: a brain window of 80 HU moves by 0.3 HU a pixel,
        // a bone window of 2500 by 10 (and never by less than a quarter of a stored step).
        const gain = Math.max(drag.window.width / 256, Math.abs(this.current.slope) / 4);
        const w = this.activeWindow();
        this.window = { center: w.center + dy * gain, width: Math.max(1, w.width + dx * gain) };
        this.presetSelect.value = "";
        this.repaint();
        this.emit("lbv:window");
      }
    }

    pointerUp(event) {
      this.pointers.delete(event.pointerId);
      if (this.pointers.size < 2) this.gesture = null;
      if (this.pointers.size === 0) {
        if (this.drag && noteKind(this.drag.tool)) { this.notes.up(); this.draw(); }
        this.drag = null;
        this.updateLinks();
      }
    }

    pinchState() {
      const [[ax, ay], [bx, by]] = [...this.pointers.values()];
      return { x: (ax + bx) / 2, y: (ay + by) / 2, distance: Math.max(Math.hypot(bx - ax, by - ay), 1) };
    }

    // ------------------------------------------------------------------ cine

    fps() {
      const image = this.info.image;
      let base = DEFAULT_CINE_FPS;
      if (image.frame_time_ms > 0) base = 1000 / image.frame_time_ms;
      else if (image.recommended_frame_rate > 0) base = image.recommended_frame_rate;
      else if (image.cine_rate > 0) base = image.cine_rate;
      return base * this.speed;
    }

    togglePlay() {
      if (this.frames.length < 2) return;
      this.playing = !this.playing;
      this.playButton.textContent = this.playing ? "Pause" : "Play";
      this.playButton.classList.toggle("lbv-active", this.playing);
      if (!this.playing) {
        this.writeOverlays();
        return;
      }
      this.prefetch(this.index, this.frames.length);
      let last = performance.now();
      const tick = async (now) => {
        if (!this.playing || this.destroyed) return;
        if (now - last >= 1000 / this.fps()) {
          last = now;
          const next = (this.index + 1) % this.frames.length;  // loop
          await this.show(next);  // waits for the frame rather than skipping it
        }
        requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
    }

    // ------------------------------------------------------------------ export

    exportImage(format) {
      if (!this.current) return;
      const type = format === "png" ? "image/png" : "image/jpeg";
      const source = this.offscreen;
      const canvas = document.createElement("canvas");
      canvas.width = source.width;
      canvas.height = source.height;
      const ctx = canvas.getContext("2d");
      this.composeFrame(ctx);
      // Burnt in at the image's own size: the same shapes and values as on screen.
      if (this.burnIn.checked) this.notes.draw(ctx, (x, y) => [x, y], (x, y) => [x * canvas.width, y * canvas.height]);
      canvas.toBlob((blob) => {
        const link = el("a", { href: URL.createObjectURL(blob), download: `image-${this.index + 1}.${format === "png" ? "png" : "jpg"}` });
        document.body.append(link);
        link.click();
        link.remove();
        setTimeout(() => URL.revokeObjectURL(link.href), 10000);
      }, type, 0.92);
    }

    updateLinks() {
      const entry = this.frames[this.index];
      if (!entry) return;
      // A cine loop needs frames to loop: offered for multi-frame images only.
      this.gifLink.hidden = this.webpLink.hidden = this.info.instances[entry.instance].frames < 2;
      const params = new URLSearchParams({ download: "1" });
      if (this.window) params.set("window", `${this.window.center},${this.window.width}`);
      if (this.invert) params.set("invert", "1");
      if (!this.showOverlays) params.set("overlays", "0");
      const base = `/api/instances/${encodeURIComponent(entry.sop)}/animation?`;
      params.set("format", "gif");
      this.gifLink.href = base + params;
      params.set("format", "webp");
      this.webpLink.href = base + params;
    }

    /** A small summary of the state, for tests and the page around the viewer. */
    state() {
      const w = this.activeWindow();
      return { frame: this.index + 1, frames: this.frames.length, center: w.center, width: w.width,
               scale: this.view.scale, playing: this.playing, invert: this.invert, overlays: this.showOverlays,
               rotation: this.rotation, flip: this.flip,
               measurement: this.notes.summary() || null, annotations: this.notes.items.length };
    }
  }

  window.LightboxViewer = {
    open(element, seriesUid, options) {
      if (element.lightboxViewer) element.lightboxViewer.destroy();
      const viewer = new Viewer(element, seriesUid, options);
      viewer.ready = viewer.load().catch((error) => {
        viewer.status.textContent = `Cannot open this series: ${error.message}`;
        return viewer;
      });
      element.lightboxViewer = viewer;
      return viewer;
    },
  };
})();
