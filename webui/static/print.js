// The print page (print.tpl): loads each image, with the presentation state's window if it has
// one, and draws the state's graphics and texts on the canvas laid over the image (in the image's
// pixels: the canvas is the image's size and both are fitted the same way), and lists the texts
// under it.  <main> gets data-ready="1" when every image is drawn, so printing can wait for it.
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

  // DISPLAY units run 0..1 over what was displayed; printed whole, that is the image.
  function place(width, height, units) {
    return units === "DISPLAY" ? ([x, y]) => [x * width, y * height] : ([x, y]) => [x, y];
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
    const [x, y] = text.box ? at(text.box[0]) : at(text.anchor);
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

  function annotate(figure, state) {
    const sop = figure.dataset.sopUid;
    const canvas = figure.querySelector("canvas");
    const context = canvas.getContext("2d");
    const list = figure.querySelector(".pr-measurements");
    if (!state || !shows(state, sop, Number(figure.dataset.frame))) return;
    // Drawn at 1024 pixels or more on the long side (a small matrix would print blocky lines), in
    // the image's pixel units; lines and letters about the same size on paper whatever the matrix.
    const [width, height] = [canvas.width, canvas.height];
    const side = Math.max(width, height);
    const k = Math.max(1, Math.ceil(1024 / side));
    Object.assign(canvas, { width: canvas.width * k, height: canvas.height * k });
    context.scale(k, k);
    const scale = side / 512;
    const size = Math.max(10 / k, 14 * scale);
    Object.assign(context, { lineWidth: 1.5 * scale, strokeStyle: "#ffd400", fillStyle: "#ffd400",
      font: `${size}px sans-serif`, textBaseline: "top", lineJoin: "round" });
    const layers = new Map((state.layers || []).map((layer) => [layer.name, layer.order]));
    const annotations = (state.annotations || []).filter((a) => applies(a.images, sop))
      .sort((a, b) => (layers.get(a.layer) || 0) - (layers.get(b.layer) || 0));
    for (const annotation of annotations) {
      for (const graphic of annotation.graphics || []) drawGraphic(context, graphic, place(width, height, graphic.units));
      for (const text of annotation.texts || []) {
        drawText(context, text, place(width, height, text.units), size);
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
    }).then(() => annotate(figure, state));
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
