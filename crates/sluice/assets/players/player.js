// Plays a sluice URL in a <video>: HTTP-FLV with mpegts.js, HLS with hls.js (or the
// browser's own HLS where it has no MediaSource). The players are loaded from sluice
// itself, only when first needed, so pages that never play stay light. Shared by the
// console's preview and the player page (which this file also drives when present).
"use strict";
(function () {
  const PLAYERS = { flv: "/console/vendor/mpegts-1.8.2.min.js", hls: "/console/vendor/hls-1.7.4.light.min.js" };
  const loaded = {};
  function loadScript(src) {
    if (!loaded[src]) {
      loaded[src] = new Promise((resolve, reject) => {
        const s = document.createElement("script");
        s.src = src;
        s.onload = resolve;
        s.onerror = () => reject(new Error("could not load " + src));
        document.head.appendChild(s);
      });
    }
    return loaded[src];
  }
  function kindOf(url) {
    const path = url.split(/[?#]/)[0].toLowerCase();
    if (path.endsWith(".m3u8")) return "hls";
    if (path.endsWith(".flv")) return "flv";
    return null;
  }
  // Starts playing `url` in `video`; returns a handle with stats() and destroy().
  async function attach(video, url, onError) {
    const kind = kindOf(url);
    const h = { kind, url, info: null, speed: null, error: null, destroy() {} };
    const fail = (msg) => { h.error = msg; if (onError) onError(msg); };
    if (!kind) { fail("not an HTTP-FLV (.flv) or HLS (.m3u8) URL"); return h; }
    if (kind === "flv") {
      await loadScript(PLAYERS.flv);
      if (!window.mpegts || !mpegts.isSupported()) { fail("this browser has no MediaSource: HTTP-FLV cannot play"); return h; }
      const p = mpegts.createPlayer({ type: "flv", isLive: true, url }, { enableWorker: false, enableStashBuffer: false, liveBufferLatencyChasing: true });
      p.on(mpegts.Events.MEDIA_INFO, (i) => { h.info = { video: i.videoCodec, audio: i.audioCodec, width: i.width, height: i.height, fps: i.fps }; });
      p.on(mpegts.Events.STATISTICS_INFO, (s) => { h.speed = s.speed; });
      p.on(mpegts.Events.ERROR, (t, d, i) => fail(t + ": " + d + (i && i.msg ? " (" + i.msg + ")" : "")));
      p.attachMediaElement(video);
      p.load();
      const r = p.play(); if (r && r.catch) r.catch(() => {});
      h.destroy = () => { try { p.pause(); p.unload(); p.detachMediaElement(); p.destroy(); } catch (e) { /* already gone */ } };
      return h;
    }
    await loadScript(PLAYERS.hls);
    if (window.Hls && Hls.isSupported()) {
      const hls = new Hls({ lowLatencyMode: true, enableWorker: true });
      hls.on(Hls.Events.MANIFEST_PARSED, (e, d) => {
        const l = d.levels && d.levels[0];
        if (l) h.info = { video: l.videoCodec, audio: l.audioCodec, width: l.width, height: l.height };
      });
      hls.on(Hls.Events.ERROR, (e, d) => { if (d.fatal) fail("hls.js: " + d.type + " " + d.details); });
      hls.on(Hls.Events.FRAG_LOADED, () => { h.speed = hls.bandwidthEstimate / 8192; });
      hls.loadSource(url);
      hls.attachMedia(video);
      const r = video.play(); if (r && r.catch) r.catch(() => {});
      h.destroy = () => hls.destroy();
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = url;
      const r = video.play(); if (r && r.catch) r.catch(() => {});
      h.destroy = () => { video.removeAttribute("src"); video.load(); };
    } else {
      fail("this browser can play HLS neither natively nor with hls.js");
    }
    return h;
  }
  // What a viewer wants to know about the playback, as label/value pairs.
  function stats(video, h) {
    const b = video.buffered;
    const end = b.length ? b.end(b.length - 1) : 0;
    const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
    const rows = [
      ["Player", h.kind === "flv" ? "mpegts.js (HTTP-FLV)" : "hls.js (HLS)"],
      ["Resolution", video.videoWidth ? video.videoWidth + "×" + video.videoHeight : "–"],
      ["Codecs", h.info ? [h.info.video, h.info.audio].filter(Boolean).join(", ") : "–"],
      ["Time", video.currentTime.toFixed(1) + " s"],
      ["Buffer ahead", Math.max(0, end - video.currentTime).toFixed(2) + " s"],
      ["Frames decoded / dropped", q ? q.totalVideoFrames + " / " + q.droppedVideoFrames : "–"],
      ["Download", h.speed != null ? (h.speed * 8).toFixed(0) + " kbps" : "–"],
      ["State", h.error ? "error: " + h.error : video.paused ? "paused" : video.readyState >= 3 ? "playing" : "loading"],
    ];
    return rows;
  }
  function renderStats(dl, rows) {
    dl.replaceChildren(...rows.flatMap(([k, v]) => {
      const dt = document.createElement("dt"); dt.textContent = k;
      const dd = document.createElement("dd"); dd.textContent = v;
      return [dt, dd];
    }));
  }
  window.SluicePlayer = { attach, stats, renderStats, kindOf };

  // The player page.
  const form = document.getElementById("player-form");
  if (!form) return;
  const input = document.getElementById("player-url");
  const video = document.getElementById("player-video");
  const dl = document.getElementById("player-stats");
  const err = document.getElementById("player-error");
  let handle = null;
  async function play(url) {
    if (handle) handle.destroy();
    err.textContent = "";
    history.replaceState(null, "", "?url=" + encodeURIComponent(url));
    handle = await attach(video, url, (m) => { err.textContent = m; });
    window.__player = handle;
  }
  form.addEventListener("submit", (e) => { e.preventDefault(); if (input.value.trim()) play(input.value.trim()); });
  setInterval(() => { if (handle) renderStats(dl, stats(video, handle)); }, 500);
  const given = new URLSearchParams(location.search).get("url");
  if (given) { input.value = given; play(given); }
  else input.value = location.protocol + "//" + location.host + "/live/livestream.flv";
})();
