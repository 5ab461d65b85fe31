// WHIP publisher: the camera and microphone to sluice over WebRTC, H.264 first.
"use strict";
(function () {
  const $ = (s) => document.querySelector(s);
  const params = new URLSearchParams(location.search);
  $("#whip-api").value = params.get("api") || location.protocol + "//" + location.hostname + ":1985";
  let pc = null;
  let media = null;
  let resource = null;
  let timer = null;
  const state = (t) => { $("#whip-state").textContent = t; };

  async function stop() {
    if (timer) clearInterval(timer);
    timer = null;
    if (resource) fetch(resource, { method: "DELETE" }).catch(() => {});
    resource = null;
    if (pc) pc.close();
    pc = null;
    if (media) media.getTracks().forEach((t) => t.stop());
    media = null;
  }

  async function publish(ev) {
    ev.preventDefault();
    await stop();
    const api = $("#whip-api").value.replace(/\/$/, "");
    const app = $("#whip-app").value;
    const name = $("#whip-stream").value;
    const q = new URLSearchParams({ app, stream: name });
    const extra = $("#whip-query").value.trim();
    const url = api + "/rtc/v1/whip/?" + q.toString() + (extra ? "&" + extra : "");
    $("#whip-whep").href = "/players/whep.html?" + new URLSearchParams({ api, app, stream: name }).toString();
    try {
      media = await navigator.mediaDevices.getUserMedia({ video: { width: 1280, height: 720 }, audio: true });
      $("#whip-video").srcObject = media;
      pc = new RTCPeerConnection();
      pc.onconnectionstatechange = () => state("connection: " + (pc ? pc.connectionState : "closed"));
      for (const t of media.getTracks()) {
        const tr = pc.addTransceiver(t, { direction: "sendonly" });
        if (t.kind === "video" && RTCRtpSender.getCapabilities) {
          const caps = RTCRtpSender.getCapabilities("video").codecs;
          const h264 = caps.filter((c) => c.mimeType === "video/H264");
          if (h264.length && tr.setCodecPreferences) {
            tr.setCodecPreferences([...h264, ...caps.filter((c) => c.mimeType !== "video/H264")]);
          }
        }
      }
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
      if (s.type !== "outbound-rtp") return;
      if (s.kind === "video") {
        lines.push(`video ${s.frameWidth || 0}x${s.frameHeight || 0} ${Math.round(s.framesPerSecond || 0)} fps, ` +
          `sent ${s.framesSent || 0} frames, ${Math.round((s.bytesSent || 0) / 1024)} KiB, ` +
          `encoder ${s.encoderImplementation || "?"}, NACK ${s.nackCount || 0}, PLI ${s.pliCount || 0}`);
      } else if (s.kind === "audio") {
        lines.push(`audio ${Math.round((s.bytesSent || 0) / 1024)} KiB`);
      }
    });
    $("#whip-stats").textContent = lines.join("\n") || "no media yet";
  }

  $("#whip-form").addEventListener("submit", publish);
  $("#whip-stop").addEventListener("click", () => { stop(); state("stopped"); });
  window.addEventListener("pagehide", stop);
})();
