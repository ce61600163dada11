// The print page (print.tpl): loads each image, with the presentation state's window if it has
// one, and draws it on its canvas as the state displays it (its displayed area, rotation and
// flip), the state's graphics and texts over it, and lists the texts under it.  <main> gets data-ready="1" when every image is drawn, so printing can wait for it.
"use strict";
(() => {
  const root = document.getElementById("print");
  const figures = [...root.querySelectorAll(".pr-figure")];
  const printButton = document.querySelector(".pr-print");
  if (printButton) printButton.addEventListener("click", () => window.print());

  // Does a part of the state (its `images`: SOP Instance UIDs, none meaning all) apply here?
  const applies = (images, sop) => !images || !images.length || images.includes(sop);

  function shows(state, sop, frame) {
    if (!state.images || !state.images.length) return true;
    return state.images.some((ref) => ref.sop_uid === sop && (!ref.frames.length || ref.frames.includes(frame)));
  }

  function windowFor(state, sop) {
    if (root.dataset.window) return root.dataset.window;
    const voi = state && (state.voi || []).find((v) => applies(v.images, sop));
    return voi ? `${voi.center},${voi.width}` : "";
  }

  // The part of the image shown, [x0, y0, x1, y1] in image pixels: the state's displayed area
  // (1-based corners, inclusive) for this image, else the whole image.
  function areaFor(state, sop, columns, rows) {
    const area = state && (state.displayed_areas || []).find((a) => applies(a.images, sop)
      && (a.top_left || []).length === 2 && (a.bottom_right || []).length === 2);
    if (!area) return [0, 0, columns, rows];
    const [x0, y0] = area.top_left, [x1, y1] = area.bottom_right;
    return [Math.min(x0, x1) - 1, Math.min(y0, y1) - 1, Math.max(x0, x1, Math.min(x0, x1) + 1), Math.max(y0, y1, Math.min(y0, y1) + 1)];
  }

  function drawGraphic(context, graphic, at) {
    const points = graphic.points.map(at);
    context.beginPath();
    if (graphic.type === "POINT") {
      context.arc(points[0][0], points[0][1], context.lineWidth * 1.5, 0, 2 * Math.PI);
      context.fill();
      return;
    }
    if (graphic.type === "CIRCLE") {
      const [[cx, cy], [px, py]] = points;
      context.arc(cx, cy, Math.hypot(px - cx, py - cy), 0, 2 * Math.PI);
    } else if (graphic.type === "ELLIPSE") {  // major axis end points, then minor axis end points
      const [[ax, ay], [bx, by], [cx, cy], [dx, dy]] = points;
      const rotation = Math.atan2(by - ay, bx - ax);
      context.ellipse((ax + bx) / 2, (ay + by) / 2, Math.hypot(bx - ax, by - ay) / 2, Math.hypot(dx - cx, dy - cy) / 2,
        rotation, 0, 2 * Math.PI);
    } else {  // POLYLINE, INTERPOLATED (drawn as straight segments)
      points.forEach(([x, y], i) => (i ? context.lineTo(x, y) : context.moveTo(x, y)));
    }
    if (graphic.filled) context.fill();
    context.stroke();
  }

  function drawText(context, text, at, size) {
    // The box's corners turned and flipped: the text starts at the one now top left.
    const corners = text.box ? text.box.map(at) : [at(text.anchor)];
    const [x, y] = [Math.min(...corners.map((c) => c[0])), Math.min(...corners.map((c) => c[1]))];
    if (text.anchor && text.box && text.anchor_visible) {
      const [ax, ay] = at(text.anchor);
      context.beginPath();
      context.moveTo(ax, ay);
      context.lineTo(x, y + size / 2);
      context.stroke();
    }
    const line = text.text.split(/\r?\n/)[0];
    context.save();  // a dark outline: readable on white bone and on black air alike
    Object.assign(context, { strokeStyle: "#000", lineWidth: size / 5 });
    context.strokeText(line, x, y);
    context.restore();
    context.fillText(line, x, y);
  }

  /** The image on the canvas as the state shows it — its displayed area, rotated, then flipped —
      and the state's graphics and texts over it, placed the same way; its texts listed below. */
  function draw(figure, state) {
    const sop = figure.dataset.sopUid;
    const image = figure.querySelector("img");
    const canvas = figure.querySelector("canvas");
    const list = figure.querySelector(".pr-measurements");
    const [columns, rows] = [canvas.width, canvas.height];  // the image's matrix (print.tpl)
    const shown = state && shows(state, sop, Number(figure.dataset.frame)) ? state : null;
    const [x0, y0, x1, y1] = areaFor(shown, sop, columns, rows);
    const rotation = shown && [0, 90, 180, 270].includes(shown.rotation) ? shown.rotation : 0;
    const flip = Boolean(shown && shown.flip);
    const [w, h] = rotation % 180 ? [y1 - y0, x1 - x0] : [x1 - x0, y1 - y0];
    // Drawn at 1024 pixels or more on the long side (a small matrix would print blocky lines),
    // at most 4096; lines and letters about the same size on paper whatever the matrix.
    const side = Math.max(w, h);
    const k = Math.min(Math.max(1, Math.ceil(1024 / side)), 4096 / side);
    Object.assign(canvas, { width: Math.round(w * k), height: Math.round(h * k) });
    const context = canvas.getContext("2d");
    const [a, b, c, d, e, f] = lightbox.orientation(x1 - x0, y1 - y0, rotation, flip);
    // Image pixels -> canvas: into the displayed area, oriented, scaled.
    const pixel = ([x, y]) => [k * (a * (x - x0) + c * (y - y0) + e), k * (b * (x - x0) + d * (y - y0) + f)];
    // DISPLAY units run 0..1 over what is displayed: the canvas.
    const display = ([x, y]) => [x * canvas.width, y * canvas.height];
    if (image.naturalWidth) {
      context.setTransform(k * a, k * b, k * c, k * d, k * (e - a * x0 - c * y0), k * (f - b * x0 - d * y0));
      context.imageSmoothingEnabled = k < 1 || image.naturalWidth < columns;
      context.drawImage(image, 0, 0, columns, rows);
      context.setTransform(1, 0, 0, 1, 0, 0);
    }
    if (!shown) return;
    const scale = Math.max(canvas.width, canvas.height) / 512;
    const size = Math.max(10, 14 * scale);
    Object.assign(context, { lineWidth: 1.5 * scale, strokeStyle: "#ffd400", fillStyle: "#ffd400",
      font: `${size}px sans-serif`, textBaseline: "top", lineJoin: "round" });
    const layers = new Map((shown.layers || []).map((layer) => [layer.name, layer.order]));
    const annotations = (shown.annotations || []).filter((item) => applies(item.images, sop))
      .sort((p, q) => (layers.get(p.layer) || 0) - (layers.get(q.layer) || 0));
    const at = (units) => (units === "DISPLAY" ? display : pixel);
    for (const annotation of annotations) {
      for (const graphic of annotation.graphics || []) drawGraphic(context, graphic, at(graphic.units));
      for (const text of annotation.texts || []) {
        drawText(context, text, at(text.units), size);
        list.append(lightbox.text("li", text.text));
      }
    }
  }

  function load(figure, state) {
    const image = figure.querySelector("img");
    const window = windowFor(state, figure.dataset.sopUid);
    return new Promise((resolve) => {
      image.addEventListener("load", resolve, { once: true });
      image.addEventListener("error", resolve, { once: true });
      image.src = image.dataset.src + (window ? `&window=${encodeURIComponent(window)}` : "");
    }).then(() => draw(figure, state));
  }

  async function start() {
    let state = null;
    if (root.dataset.state) {
      try {
        state = await lightbox.api(`/api/presentation-states/${encodeURIComponent(root.dataset.state)}`);
      } catch (error) {
        root.prepend(lightbox.text("p", `The annotations could not be read: ${error.message}`, { class: "pr-note" }));
      }
    }
    await Promise.all(figures.map((figure) => load(figure, state)));
    root.dataset.ready = "1";
  }

  start();
})();
