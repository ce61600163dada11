/* Lightbox viewer: measurements and annotations on the images (used by viewer.js).

   new LightboxAnnotate.Layer(viewer) keeps the viewer's annotations: each one an item
   {kind, points: [[x, y], ...] in image pixels (the top left corner of the first pixel is 0,0,
   as in a presentation state), sop, frame (null: every frame of that image), text}.
   Kinds: length, angle (3 points, the vertex second), cobb (two lines), norberg (two femoral
   head circles, centre then rim, then the acetabular rim point beside each head), tplo (the
   tibial plateau line, then the functional axis), ellipse and rect ROIs (two corners), text,
   arrow (tail, head), calibrate (a line of known length), and foreign (graphics and texts of
   a presentation state made elsewhere, drawn as they are).
   A press adds the points of the next stroke (two for a line, dragged; one for a point); an
   item is done when it has all its points.  The Select tool drags a handle of a shown item, or
   the item whole (pressed elsewhere in its bounds); Delete removes the selected one.
*/
(function () {
  "use strict";

  // Points each press adds, per kind: their sum is the item's number of points.
  const STROKES = { length: [2], angle: [2, 1], cobb: [2, 2], norberg: [2, 2, 1, 1], tplo: [2, 2],
                    ellipse: [2], rect: [2], text: [1], arrow: [2], calibrate: [2] };
  const LABELS = { length: "Length", angle: "Angle", cobb: "Cobb angle", norberg: "Norberg angle",
                   tplo: "TPLO plateau angle", ellipse: "Ellipse ROI", rect: "Rectangle ROI", text: "Text",
                   arrow: "Arrow", calibrate: "Calibrate", select: "Select / move" };
  const COLOUR = "#ffd400", SELECTED = "#4fc3f7", HANDLE = 4, GRAB = 8;

  const sub = (a, b) => [a[0] - b[0], a[1] - b[1]];
  const deg = (r) => (r * 180) / Math.PI;
  /** The angle between two directions, 0-180 degrees. */
  function between(u, v) {
    const d = Math.abs(Math.atan2(u[0] * v[1] - u[1] * v[0], u[0] * v[0] + u[1] * v[1]));
    return deg(d);
  }
  /** The acute angle between two lines, 0-90 degrees. */
  const acute = (u, v) => { const a = between(u, v); return a > 90 ? 180 - a : a; };

  class Layer {
    constructor(viewer) {
      this.viewer = viewer;
      this.items = [];
      this.pending = null;   // the item being drawn, until it has all its points
      this.selected = null;
      this.calibration = null;  // {mm, px}: a line of px image pixels is mm long
      this.grab = null;
    }

    // ------------------------------------------------------------------ what is shown

    /** The items of the frame shown. */
    shown() {
      const entry = this.viewer.frames[this.viewer.index];
      if (!entry) return [];
      return this.items.filter((item) => (item.sop === null || item.sop === entry.sop)
        && (item.frame === null || item.frame === entry.frame));
    }

    add(item) {
      this.items.push(item);
      if (item.kind === "calibrate") this.calibrate(item);
      return item;
    }

    clear() {
      this.items = [];
      this.pending = this.selected = this.calibration = null;
    }

    deleteSelected() {
      if (!this.selected) return false;
      this.items = this.items.filter((item) => item !== this.selected);
      if (this.selected.kind === "calibrate") this.calibration = null;
      this.selected = null;
      this.viewer.draw();
      return true;
    }

    /** The pending item is dropped when the tool or the frame changes. */
    abandon() {
      if (!this.pending) return;
      this.items = this.items.filter((item) => item !== this.pending);
      this.pending = null;
    }

    // ------------------------------------------------------------------ pointer

    /** A press with an annotation tool at ``point`` (image pixels); ``tolerance`` in image pixels. */
    down(tool, point, tolerance) {
      if (tool === "select") {
        const hit = this.hit(point, tolerance * GRAB / HANDLE);
        this.selected = hit ? hit.item : null;
        this.grab = hit ? { item: hit.item, index: hit.index, last: point } : null;
        return;
      }
      const entry = this.viewer.frames[this.viewer.index];
      if (!this.pending) {
        this.pending = this.add({ kind: tool, points: [], sop: entry.sop, frame: entry.frame, text: "", strokes: 0 });
      }
      const item = this.pending;
      const count = STROKES[item.kind][item.strokes];
      for (let i = 0; i < count; i += 1) item.points.push(point.slice());
      item.strokes += 1;
      this.selected = item;
      this.grab = { item, index: item.points.length - 1, last: point };
    }

    move(point) {
      const grab = this.grab;
      if (!grab) return;
      if (grab.index === null) {  // the whole item
        const d = sub(point, grab.last);
        for (const p of grab.item.points) { p[0] += d[0]; p[1] += d[1]; }
      } else {
        grab.item.points[grab.index] = point.slice();
      }
      grab.last = point;
      if (grab.item.kind === "calibrate" && !this.pending) this.calibrate(grab.item);
    }

    up() {
      const item = this.pending;
      this.grab = null;
      if (!item || item.strokes < STROKES[item.kind].length) return;
      this.pending = null;
      delete item.strokes;
      if (item.kind === "text" || item.kind === "calibrate") this.ask(item);
    }

    /** Text and calibration ask for their value; none given, the item goes. */
    ask(item) {
      const calibrating = item.kind === "calibrate";
      const answer = window.prompt(calibrating ? "Known length of this line, in mm:" : "Text:", item.text || "");
      const value = calibrating ? Number((answer || "").replace(",", ".")) : (answer || "").trim();
      const short = calibrating && Math.hypot(...sub(item.points[1], item.points[0])) < 1;
      if (!value || (calibrating && !(value > 0)) || short) {
        this.items = this.items.filter((i) => i !== item);
        this.selected = null;
        return;
      }
      item.text = calibrating ? `Calibration ${value} mm` : value.slice(0, 1024);
      if (calibrating) { item.mm = value; this.calibrate(item); }
    }

    calibrate(item) {
      if (item.points.length < 2) return;
      const pixels = Math.hypot(...sub(item.points[1], item.points[0]));
      if (item.mm > 0 && pixels >= 1) this.calibration = { mm: item.mm, px: pixels };
    }

    /** The item (and its point, or null for the item whole) within ``tolerance`` of ``point``. */
    hit(point, tolerance) {
      const items = this.shown().reverse();
      for (const item of items) {
        const index = item.points.findIndex((p) => Math.hypot(p[0] - point[0], p[1] - point[1]) <= tolerance);
        if (index >= 0 && item.kind !== "foreign") return { item, index };
      }
      for (const item of items) {
        const [x0, y0, x1, y1] = bounds(item.points);
        if (point[0] >= x0 - tolerance && point[0] <= x1 + tolerance && point[1] >= y0 - tolerance && point[1] <= y1 + tolerance) {
          return { item, index: null };
        }
      }
      return null;
    }

    // ------------------------------------------------------------------ values

    /** {mm: [row, column] mm per pixel, note} for these points, or null when uncalibrated. */
    spacing(points) {
      if (this.calibration) {
        const mm = this.calibration.mm / this.calibration.px;
        return { mm: [mm, mm], note: " (calibrated)" };
      }
      const image = this.viewer.info.image;
      if (image.pixel_spacing) return { mm: image.pixel_spacing, note: "" };
      // Imager Pixel Spacing is at the detector: the anatomy is magnified by the divergent beam,
      // unless the modality estimated by how much (ERMF).
      if (image.imager_pixel_spacing) {
        const m = image.estimated_magnification;
        if (m > 0) return { mm: image.imager_pixel_spacing.map((v) => v / m), note: " (corrected for magnification)" };
        return { mm: image.imager_pixel_spacing, note: " (at detector)" };
      }
      for (const region of image.ultrasound_regions || []) {
        const [x0, y0, x1, y1] = region.box;
        const inside = ([x, y]) => x >= x0 && x <= x1 + 1 && y >= y0 && y <= y1 + 1;
        if (region.mm_per_pixel && points.every(inside)) return { mm: region.mm_per_pixel, note: "" };
      }
      return null;
    }

    /** The item's value as text ("" for text, arrows and unfinished items). */
    text(item) {
      if (item.kind === "text" || item.kind === "foreign") return item.text;
      if (item.kind === "arrow" || item.strokes < STROKES[item.kind].length) return "";
      const spacing = this.spacing(item.points);
      // Angles and lengths in millimetres where the pixels are not square.
      const s = spacing && !(item.kind === "calibrate" && this.calibration) ? spacing.mm : [1, 1];
      const p = item.points.map(([x, y]) => [x * s[1], y * s[0]]);
      const length = (a, b) => Math.hypot(...sub(b, a));
      switch (item.kind) {
        case "calibrate":
          return item.text;
        case "length": {
          const value = length(p[0], p[1]);
          return spacing ? `${value.toFixed(1)} mm${spacing.note}` : `${value.toFixed(1)} px (uncalibrated)`;
        }
        case "angle":
          return `${between(sub(p[0], p[1]), sub(p[2], p[1])).toFixed(1)}°`;
        case "cobb":
          return `Cobb ${acute(sub(p[1], p[0]), sub(p[3], p[2])).toFixed(1)}°`;
        case "norberg": {
          const first = between(sub(p[2], p[0]), sub(p[4], p[0]));
          const second = between(sub(p[0], p[2]), sub(p[5], p[2]));
          return `Norberg ${first.toFixed(1)}° / ${second.toFixed(1)}°`;
        }
        case "tplo":
          return `TPA ${(90 - acute(sub(p[1], p[0]), sub(p[3], p[2]))).toFixed(1)}°`;
        default:
          return this.statistics(item, spacing);
      }
    }

    /** Mean, SD, min, max (modality units: HU for CT) and area of an ROI. */
    statistics(item, spacing) {
      const frame = this.viewer.current;
      const [x0, y0, x1, y1] = bounds(item.points);
      const s = spacing ? spacing.mm : [1, 1];
      const unit = spacing ? "mm²" : "px²";
      const area = (item.kind === "ellipse" ? Math.PI / 4 : 1) * (x1 - x0) * s[1] * (y1 - y0) * s[0];
      const areaText = `area ${area.toFixed(1)} ${unit}${spacing ? spacing.note : ""}`;
      if (!frame || frame.kind !== "raw") return areaText;
      const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2, rx = (x1 - x0) / 2, ry = (y1 - y0) / 2;
      let n = 0, sum = 0, squares = 0, min = Infinity, max = -Infinity;
      for (let y = Math.max(0, Math.floor(y0)); y < Math.min(frame.rows, Math.ceil(y1)); y += 1) {
        for (let x = Math.max(0, Math.floor(x0)); x < Math.min(frame.columns, Math.ceil(x1)); x += 1) {
          const px = x + 0.5, py = y + 0.5;  // a pixel is in when its centre is
          if (px < x0 || px > x1 || py < y0 || py > y1) continue;
          if (item.kind === "ellipse" && ((px - cx) / rx) ** 2 + ((py - cy) / ry) ** 2 > 1) continue;
          const v = frame.values[y * frame.columns + x] * frame.slope + frame.intercept;
          n += 1; sum += v; squares += v * v;
          if (v < min) min = v;
          if (v > max) max = v;
        }
      }
      if (!n) return areaText;
      const mean = sum / n;
      const sd = Math.sqrt(Math.max(0, squares / n - mean * mean));
      const hu = this.viewer.info.series.modality === "CT" ? " HU" : "";
      const r = (v) => Math.round(v * 10) / 10;
      return `mean ${mean.toFixed(1)}${hu} SD ${sd.toFixed(1)}\nmin ${r(min)} max ${r(max)}\n${areaText}`;
    }

    /** The text of the selected item, else of the last shown one. */
    summary() {
      const items = this.shown().filter((item) => item.kind !== "arrow" && item.kind !== "text" && item.kind !== "foreign");
      const item = this.selected && items.includes(this.selected) ? this.selected : items[items.length - 1];
      return item ? this.text(item) : "";
    }

    // ------------------------------------------------------------------ drawing

    /** Draw the shown items; ``map`` takes image pixels to the context's units, ``display``
        a presentation state's DISPLAY units (0-1 across the picture). */
    draw(ctx, map, display) {
      ctx.save();
      ctx.lineWidth = 1.5;
      ctx.font = "13px sans-serif";
      ctx.textBaseline = "bottom";
      for (const item of this.shown()) {
        const colour = item === this.selected ? SELECTED : COLOUR;
        ctx.strokeStyle = ctx.fillStyle = colour;
        const p = item.points.map(([x, y]) => map(x, y));
        if (item.kind === "foreign") { drawForeign(ctx, item, map, display); continue; }
        drawShape(ctx, item.kind, p, item.points, map);
        if (item.kind !== "text") for (const [x, y] of p) { ctx.beginPath(); ctx.arc(x, y, HANDLE - 1, 0, 2 * Math.PI); ctx.stroke(); }
        const text = this.text(item);
        if (!text) continue;
        const at = p[item.kind === "text" ? 0 : p.length - 1];
        text.split("\n").forEach((line, i, all) => {
          ctx.strokeStyle = "#000";
          ctx.lineWidth = 3;
          const y = at[1] - 6 - (all.length - 1 - i) * 15;
          ctx.strokeText(line, at[0] + 6, y);
          ctx.fillText(line, at[0] + 6, y);
          ctx.lineWidth = 1.5;
        });
      }
      ctx.restore();
    }

  }

  /** A presentation state's graphics and texts, as they are. */
  function drawForeign(ctx, item, map, display) {
    const place = (units, [x, y]) => (units === "DISPLAY" ? display(x, y) : map(x, y));
    for (const g of item.graphics) {
      const p = g.points.map((point) => place(g.units, point));
      ctx.beginPath();
      if (g.type === "CIRCLE") {
        ctx.arc(p[0][0], p[0][1], Math.hypot(...sub(p[1], p[0])), 0, 2 * Math.PI);
      } else if (g.type === "ELLIPSE") {
        const c = [(p[0][0] + p[1][0]) / 2, (p[0][1] + p[1][1]) / 2];
        const major = sub(p[1], p[0]);
        ctx.ellipse(c[0], c[1], Math.hypot(...major) / 2, Math.hypot(...sub(p[3], p[2])) / 2, Math.atan2(major[1], major[0]), 0, 2 * Math.PI);
      } else if (g.type === "POINT") {
        ctx.arc(p[0][0], p[0][1], 2, 0, 2 * Math.PI);
      } else {
        p.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      }
      if (g.filled) ctx.fill(); else ctx.stroke();
    }
    for (const t of item.texts) {
      const at = t.anchor ? place(t.units, t.anchor) : t.box ? place(t.units, t.box[0]) : null;
      if (at) ctx.fillText(t.text, at[0] + (t.anchor ? 6 : 0), at[1] + (t.anchor ? -6 : 15));
    }
  }

  function bounds(points) {
    const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
    return [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
  }

  function line(ctx, ...points) {
    ctx.beginPath();
    points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.stroke();
  }

  /** One item's lines; ``p`` are its points mapped, ``raw`` in image pixels (ellipses and
      rectangles are axis-aligned in the image, not on a rotated screen). */
  function drawShape(ctx, kind, p, raw, map) {
    if (kind === "length" || kind === "calibrate" || kind === "cobb" || kind === "tplo") {
      if (kind === "calibrate") ctx.setLineDash([6, 4]);
      for (let i = 0; i + 1 < p.length; i += 2) line(ctx, p[i], p[i + 1]);
      ctx.setLineDash([]);
    } else if (kind === "angle") {
      line(ctx, ...p);
    } else if (kind === "norberg") {
      for (const i of [0, 2]) {
        if (!p[i + 1]) continue;
        ctx.beginPath();
        ctx.arc(p[i][0], p[i][1], Math.hypot(...sub(p[i + 1], p[i])), 0, 2 * Math.PI);
        ctx.stroke();
      }
      if (p[2]) line(ctx, ...[p[4], p[0], p[2], p[5]].filter(Boolean));
    } else if (kind === "rect" || kind === "ellipse") {
      const [x0, y0, x1, y1] = bounds(raw);
      const corners = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]].map(([x, y]) => map(x, y));
      if (kind === "rect") { line(ctx, ...corners, corners[0]); return; }
      const c = map((x0 + x1) / 2, (y0 + y1) / 2);
      const u = map(x1, (y0 + y1) / 2), v = map((x0 + x1) / 2, y1);
      ctx.beginPath();
      ctx.ellipse(c[0], c[1], Math.hypot(...sub(u, c)), Math.hypot(...sub(v, c)), Math.atan2(u[1] - c[1], u[0] - c[0]), 0, 2 * Math.PI);
      ctx.stroke();
    } else if (kind === "arrow") {
      line(ctx, ...arrow(p[0], p[1], 12));
    }
  }

  /** Tail, head and the two barbs of an arrow as one polyline: tail, head, barb, head, barb. */
  function arrow(tail, head, size) {
    const angle = Math.atan2(head[1] - tail[1], head[0] - tail[0]);
    const barb = (turn) => [head[0] - size * Math.cos(angle + turn), head[1] - size * Math.sin(angle + turn)];
    return [tail, head, barb(0.45), head, barb(-0.45)];
  }

  window.LightboxAnnotate = { Layer, STROKES, LABELS, arrow, bounds };
})();
