// WebRTC against sluice in headless Chromium (the system's, via playwright-core).
//
//   node webrtc.mjs play    API_BASE CHROMIUM SECONDS APP STREAM [PLAYERS]
//   node webrtc.mjs publish API_BASE CHROMIUM SECONDS APP STREAM
//   node webrtc.mjs relay   API_BASE CHROMIUM SECONDS APP STREAM
//
// play: PLAYERS peer connections (default 1) play APP/STREAM by WHEP for SECONDS and
// report, per player, the inbound video stats (frames decoded, the rate over the last
// half of the run, freezes, NACKs sent) and inbound audio samples.
// publish: the fake camera (--use-fake-device-for-media-stream) is published by WHIP for
// SECONDS; reports the outbound video stats.
// relay: publishes the fake camera by WHIP and plays the same stream by WHEP in a second
// peer connection: Chromium to sluice to Chromium; reports both sides.
// The page is the API's own origin, so the WHIP/WHEP requests are same-origin. Prints one
// JSON line.
import { chromium } from "playwright-core";

const [mode, apiBase, executablePath, secondsArg, app, stream, playersArg] =
  process.argv.slice(2);
const seconds = Number(secondsArg || 20);
const players = Number(playersArg || 1);

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
  ],
});
const logs = [];
let result = null;
try {
  const page = await browser.newPage();
  page.on("console", (m) => logs.push(m.text()));
  page.on("pageerror", (e) => logs.push("pageerror: " + e.message));
  if (mode === "pages") {
    // The server's own pages: whip.html publishes the fake camera, whep.html plays it.
    // apiBase is "API_BASE|HTTP_SERVER_BASE" here.
    const [api, site] = apiBase.split("|");
    const q = new URLSearchParams({ api, app, stream }).toString();
    await page.goto(`${site}/players/whip.html?${q}`);
    await page.fill("#whip-stream", stream);
    await page.click("#whip-start");
    await page.waitForTimeout(3000);
    const viewer = await browser.newPage();
    viewer.on("console", (m) => logs.push(m.text()));
    await viewer.goto(`${site}/players/whep.html?${q}`);
    await viewer.click("#whep-play");
    await viewer.waitForTimeout(seconds * 1000);
    result = {
      whipState: await page.textContent("#whip-state"),
      whipStats: await page.textContent("#whip-stats"),
      whepState: await viewer.textContent("#whep-state"),
      whepStats: await viewer.textContent("#whep-stats"),
    };
    await viewer.click("#whep-stop");
    await page.click("#whip-stop");
    await page.waitForTimeout(500);
  } else {
  await page.goto(apiBase + "/api/v1/versions");
  result = await page.evaluate(
    async ({ mode, apiBase, seconds, app, stream, players }) => {
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      const q = `app=${encodeURIComponent(app)}&stream=${encodeURIComponent(stream)}`;
      async function exchange(pc, path) {
        const offer = await pc.createOffer();
        await pc.setLocalDescription(offer);
        const r = await fetch(`${apiBase}${path}?${q}`, {
          method: "POST",
          headers: { "Content-Type": "application/sdp" },
          body: offer.sdp,
        });
        const text = await r.text();
        if (r.status !== 201) throw new Error(`${path}: ${r.status} ${text}`);
        await pc.setRemoteDescription({ type: "answer", sdp: text });
        return r.headers.get("Location");
      }
      async function stats(pc, type, kind) {
        const out = {};
        (await pc.getStats()).forEach((s) => {
          if (s.type === type && s.kind === kind) Object.assign(out, s);
        });
        return out;
      }
      async function publisher() {
        const media = await navigator.mediaDevices.getUserMedia({
          video: { width: 640, height: 360, frameRate: 25 },
          audio: true,
        });
        const pc = new RTCPeerConnection();
        for (const t of media.getTracks()) pc.addTransceiver(t, { direction: "sendonly" });
        // H.264 first: sluice's WHIP takes H.264.
        for (const tr of pc.getTransceivers()) {
          if (tr.sender.track && tr.sender.track.kind === "video") {
            const caps = RTCRtpSender.getCapabilities("video").codecs;
            const h264 = caps.filter((c) => c.mimeType === "video/H264");
            tr.setCodecPreferences([...h264, ...caps.filter((c) => c.mimeType !== "video/H264")]);
          }
        }
        const location = await exchange(pc, "/rtc/v1/whip/");
        return { pc, location };
      }
      async function player() {
        const pc = new RTCPeerConnection();
        pc.addTransceiver("video", { direction: "recvonly" });
        pc.addTransceiver("audio", { direction: "recvonly" });
        const location = await exchange(pc, "/rtc/v1/whep/");
        return { pc, location };
      }
      async function inbound(p, mid) {
        const v = await stats(p.pc, "inbound-rtp", "video");
        const a = await stats(p.pc, "inbound-rtp", "audio");
        const secs = (performance.now() - mid.at) / 1000;
        return {
          location: p.location,
          state: p.pc.connectionState,
          framesDecoded: v.framesDecoded || 0,
          framesReceived: v.framesReceived || 0,
          fps: ((v.framesDecoded || 0) - (mid.v.framesDecoded || 0)) / secs,
          freezeCount: v.freezeCount || 0,
          nackCount: v.nackCount || 0,
          // Packets that came again on the RTX stream: the server answered NACKs.
          retransmitted: v.retransmittedPacketsReceived || 0,
          pliCount: v.pliCount || 0,
          packetsLost: v.packetsLost || 0,
          width: v.frameWidth || 0,
          audioSamples: a.totalSamplesReceived || 0,
          audioPackets: a.packetsReceived || 0,
          audioCodec: a.codecId || "",
          decoder: v.decoderImplementation || "",
        };
      }
      if (mode === "relay") {
        const pub = await publisher();
        await sleep(2000);
        const play = await player();
        const half = (seconds * 1000) / 2;
        await sleep(half);
        const mid = { at: performance.now(), v: await stats(play.pc, "inbound-rtp", "video") };
        const sentMid = (await stats(pub.pc, "outbound-rtp", "video")).framesSent || 0;
        await sleep(half);
        const sent = ((await stats(pub.pc, "outbound-rtp", "video")).framesSent || 0) - sentMid;
        const p = await inbound(play, mid);
        const sentFps = sent / ((performance.now() - mid.at) / 1000);
        for (const x of [play, pub]) {
          await fetch(x.location, { method: "DELETE" });
          x.pc.close();
        }
        return { players: [p], sentFps };
      }
      if (mode === "publish") {
        const { pc, location } = await publisher();
        await sleep(seconds * 1000);
        const v = await stats(pc, "outbound-rtp", "video");
        const state = pc.connectionState;
        await fetch(location, { method: "DELETE" });
        pc.close();
        return {
          location,
          state,
          framesEncoded: v.framesEncoded || 0,
          framesSent: v.framesSent || 0,
          fps: v.framesPerSecond || 0,
          encoder: v.encoderImplementation || "",
          codec: v.codecId || "",
        };
      }
      const pcs = [];
      for (let i = 0; i < players; i++) pcs.push(await player());
      const half = (seconds * 1000) / 2;
      await sleep(half);
      const mid = [];
      for (const p of pcs) mid.push({ at: performance.now(), v: await stats(p.pc, "inbound-rtp", "video") });
      await sleep(half);
      const out = [];
      for (let i = 0; i < pcs.length; i++) out.push(await inbound(pcs[i], mid[i]));
      for (const p of pcs) {
        await fetch(p.location, { method: "DELETE" });
        p.pc.close();
      }
      return { players: out };
    },
    { mode, apiBase, seconds, app, stream, players },
  );
  }
} catch (e) {
  result = { error: String(e) };
} finally {
  await browser.close();
}
console.log(JSON.stringify({ ...result, logs: logs.slice(-20) }));
