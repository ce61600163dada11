/* Lightbox video player: a stored video (MPEG-2, H.264, HEVC) in a <video> element.

   LightboxPlayer.open(element, sopUid)

   The server makes an MP4 of the video first (a quick remux, or a transcode to H.264 that can
   take a while on a small box): this asks /api/instances/<sop>/video until it is ready, then
   plays it.  A browser that cannot play HEVC is given an H.264 copy instead.
*/
(function () {
  "use strict";

  const POLL_MS = 1000;
  let current = 0;  // the newest open(): an older one still polling gives up

  function describe(info) {
    const parts = [];
    if (info.frames) parts.push(`${info.frames} frame${info.frames === 1 ? "" : "s"}`);
    if (info.duration) parts.push(`${info.duration.toFixed(1)} s`);
    if (info.columns && info.rows) parts.push(`${info.columns}×${info.rows}`);
    if (info.transcoded) parts.push("converted to H.264 for the browser");
    return parts.join(" · ");
  }

  async function ready(sop, h264, status, ticket) {
    const url = `/api/instances/${encodeURIComponent(sop)}/video${h264 ? "?codec=h264" : ""}`;
    for (;;) {
      const info = await lightbox.api(url);
      if (ticket !== current) return null;
      if (info.state === "ready") return info;
      if (info.state !== "preparing" && info.state !== "busy") throw new Error(info.reason || info.state);
      status.textContent = info.state === "busy" ? info.reason : "Preparing the video for the browser…";
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  async function open(element, sop) {
    const ticket = ++current;
    const root = lightbox.text("div", undefined, { class: "player" });
    const status = lightbox.text("p", "Preparing the video for the browser…", { class: "player-status", role: "status" });
    root.append(status);
    element.replaceChildren(root);
    try {
      let info = await ready(sop, false, status, ticket);
      if (!info) return;
      const probe = document.createElement("video");
      if (info.codec === "hevc" && !probe.canPlayType('video/mp4; codecs="hvc1"')) {
        info = await ready(sop, true, status, ticket);  // this browser has no HEVC decoder
        if (!info) return;
      }
      show(root, status, sop, info, ticket);
    } catch (error) {
      if (ticket === current) status.textContent = `This video cannot be played: ${error.message}`;
    }
  }

  function show(root, status, sop, info, ticket) {
    const video = lightbox.text("video", undefined, { class: "player-video", controls: "", preload: "auto", playsinline: "" });
    video.addEventListener("error", async () => {
      if (info.codec === "h264" || ticket !== current) {
        status.textContent = "This browser cannot play this video; download it as MP4.";
        return;
      }
      try {  // e.g. HEVC that canPlayType promised but the decoder refused
        const h264 = await ready(sop, true, status, ticket);
        if (h264) show(root, status, sop, h264, ticket);
      } catch (error) {
        status.textContent = `This video cannot be played: ${error.message}`;
      }
    }, { once: true });
    video.src = info.url;
    const caption = lightbox.text("p", describe(info) + " ", { class: "player-caption" });
    caption.append(lightbox.text("a", "Download MP4", { href: `${info.url}${info.url.includes("?") ? "&" : "?"}download=1`, download: "" }));
    status.textContent = "";
    root.replaceChildren(video, caption, status);
  }

  window.LightboxPlayer = { open };
})();
