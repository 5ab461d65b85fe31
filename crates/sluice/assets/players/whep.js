// WHEP player: plays APP/STREAM from sluice over WebRTC and shows the receiver's stats.
"use strict";
(function () {
  const $ = (s) => document.querySelector(s);
  const params = new URLSearchParams(location.search);
  $("#whep-api").value = params.get("api") || location.protocol + "//" + location.hostname + ":1985";
  if (params.get("app")) $("#whep-app").value = params.get("app");
  if (params.get("stream")) $("#whep-stream").value = params.get("stream");
  let pc = null;
  let resource = null;
  let timer = null;
  const state = (t) => { $("#whep-state").textContent = t; };

  async function stop() {
    if (timer) clearInterval(timer);
    timer = null;
    if (resource) fetch(resource, { method: "DELETE" }).catch(() => {});
    resource = null;
    if (pc) pc.close();
    pc = null;
  }

  async function play(ev) {
    ev.preventDefault();
    await stop();
    const api = $("#whep-api").value.replace(/\/$/, "");
    const q = new URLSearchParams({ app: $("#whep-app").value, stream: $("#whep-stream").value });
    const extra = $("#whep-query").value.trim();
    const url = api + "/rtc/v1/whep/?" + q.toString() + (extra ? "&" + extra : "");
    pc = new RTCPeerConnection();
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    const stream = new MediaStream();
    $("#whep-video").srcObject = stream;
    pc.ontrack = (e) => stream.addTrack(e.track);
    pc.onconnectionstatechange = () => state("connection: " + (pc ? pc.connectionState : "closed"));
    try {
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      state("offer sent to " + url);
      const r = await fetch(url, { method: "POST", headers: { "Content-Type": "application/sdp" }, body: offer.sdp });
      const text = await r.text();
      if (r.status !== 201) throw new Error("HTTP " + r.status + ": " + text);
      const loc = r.headers.get("Location");
      resource = loc ? new URL(loc, api).toString() : null;
      await pc.setRemoteDescription({ type: "answer", sdp: text });
      state("answered; connecting");
    } catch (e) {
      state("error: " + e.message);
      return;
    }
    timer = setInterval(showStats, 1000);
  }

  async function showStats() {
    if (!pc) return;
    const lines = [];
    (await pc.getStats()).forEach((s) => {
      if (s.type !== "inbound-rtp") return;
      if (s.kind === "video") {
        lines.push(`video ${s.frameWidth || 0}x${s.frameHeight || 0} ${Math.round(s.framesPerSecond || 0)} fps, ` +
          `decoded ${s.framesDecoded || 0}, dropped ${s.framesDropped || 0}, freezes ${s.freezeCount || 0}, ` +
          `lost ${s.packetsLost || 0}, NACK ${s.nackCount || 0}, PLI ${s.pliCount || 0}, ` +
          `jitter ${Math.round((s.jitter || 0) * 1000)} ms, ${Math.round((s.bytesReceived || 0) / 1024)} KiB`);
      } else if (s.kind === "audio") {
        lines.push(`audio samples ${s.totalSamplesReceived || 0}, lost ${s.packetsLost || 0}`);
      }
    });
    $("#whep-stats").textContent = lines.join("\n") || "no media yet";
  }

  $("#whep-form").addEventListener("submit", play);
  $("#whep-stop").addEventListener("click", () => { stop(); state("stopped"); });
  window.addEventListener("pagehide", stop);
})();
