// Glass-to-glass latency WHIP -> sluice -> WHEP, measured inside one headless Chromium.
//
//   node bench/webrtc_latency.mjs API_BASE CHROMIUM WARMUP_S SECONDS APP STREAM
//
// One page (the API's own origin, so WHIP/WHEP are same-origin) does both ends, so both
// read the same clock (performance.now()):
// - publisher: a 640x360 canvas on which, 30 times a second, the current performance.now()
//   (ms, 32 bits) and an 8-bit check are drawn as 40 large black/white blocks (64x90 px
//   each, 10 columns x 4 rows: far bigger than an H.264 macroblock, so they survive the
//   encoder at any rate Chromium picks); `canvas.captureStream(30)` is published by WHIP
//   with H.264 first in the codec list.
// - player: a second peer connection plays the stream by WHEP into a <video>; on every
//   `requestVideoFrameCallback` the frame is drawn into a canvas, the blocks are read back
//   (the mean of each block's centre), and `now - drawn time` is one sample (the callback's
//   `now` is when the frame is handed to the compositor; `expectedDisplayTime` when it
//   should be on the glass, also reported).
// Samples are taken for SECONDS after WARMUP_S. Then the same is measured with the two
// peer connections connected directly to each other in the page (no server): the share of
// the browser's own capture, encode, jitter buffer, decode and render. Prints one JSON
// line: per run ("sluice", "direct") the samples' percentiles, how many frames could not
// be read, and both ends' WebRTC stats.
// playwright-core comes from tests/web's node_modules (npm ci --prefix tests/web).
import { createRequire } from "node:module";
const require = createRequire(new URL("../tests/web/package.json", import.meta.url));
const { chromium } = require("playwright-core");

const [apiBase, executablePath, warmupArg, secondsArg, app, stream] = process.argv.slice(2);
const warmup = Number(warmupArg || 5);
const seconds = Number(secondsArg || 30);

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
  ],
});
const logs = [];
let result = null;
try {
  const page = await browser.newPage({ viewport: { width: 1300, height: 800 } });
  page.on("console", (m) => logs.push(m.text()));
  page.on("pageerror", (e) => logs.push("pageerror: " + e.message));
  await page.goto(apiBase + "/api/v1/versions");
  const runs = await page.evaluate(
    async ({ apiBase, warmup, seconds, app, stream }) => {
      const W = 640, H = 360, COLS = 10, ROWS = 4, CW = W / COLS, CH = H / ROWS;
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      const q = `app=${encodeURIComponent(app)}&stream=${encodeURIComponent(stream)}`;
      const check = (v) => (((v & 255) + ((v >>> 8) & 255) + ((v >>> 16) & 255) + (v >>> 24)) & 255) ^ 0x5a;
      const bitsOf = (v) => {
        const out = [];
        for (let i = 0; i < 32; i++) out.push((v >>> (31 - i)) & 1);
        const c = check(v);
        for (let i = 0; i < 8; i++) out.push((c >>> (7 - i)) & 1);
        return out;
      };
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

      // Publisher: the clock drawn as blocks.
      const src = document.createElement("canvas");
      src.width = W;
      src.height = H;
      document.body.appendChild(src);
      const sctx = src.getContext("2d");
      function draw() {
        const t = Math.round(performance.now()) >>> 0;
        const bits = bitsOf(t);
        for (let i = 0; i < bits.length; i++) {
          sctx.fillStyle = bits[i] ? "#fff" : "#000";
          sctx.fillRect((i % COLS) * CW, Math.floor(i / COLS) * CH, CW, CH);
        }
      }
      draw();
      const timer = setInterval(draw, 1000 / 30);
      const media = src.captureStream(30);
      const track = media.getVideoTracks()[0];
      track.contentHint = "detail";
      const caps = RTCRtpSender.getCapabilities("video").codecs;
      const h264 = caps.filter((c) => c.mimeType === "video/H264");
      const dst = document.createElement("canvas");
      dst.width = W;
      dst.height = H;
      const dctx = dst.getContext("2d", { willReadFrequently: true });
      function read(video) {
        dctx.drawImage(video, 0, 0, W, H);
        const img = dctx.getImageData(0, 0, W, H).data;
        const bits = [];
        for (let i = 0; i < COLS * ROWS; i++) {
          const cx = (i % COLS) * CW + CW / 2, cy = Math.floor(i / COLS) * CH + CH / 2;
          let sum = 0, n = 0;
          for (let y = cy - 12; y < cy + 12; y += 3)
            for (let x = cx - 12; x < cx + 12; x += 3) {
              const o = (y * W + x) * 4;
              sum += (img[o] + img[o + 1] + img[o + 2]) / 3;
              n++;
            }
          bits.push(sum / n >= 128 ? 1 : 0);
        }
        let v = 0, c = 0;
        for (let i = 0; i < 32; i++) v = ((v << 1) | bits[i]) >>> 0;
        for (let i = 32; i < 40; i++) c = (c << 1) | bits[i];
        return c === check(v) ? v : null;
      }

      // via "sluice": WHIP publish, WHEP play. via "direct": the same two peer connections
      // connected to each other in the page (no server), the browser's own share.
      async function measure(via) {
        const pub = new RTCPeerConnection();
        const tx = pub.addTransceiver(track, { direction: "sendonly", streams: [media] });
        tx.setCodecPreferences([...h264, ...caps.filter((c) => c.mimeType !== "video/H264")]);
        const play = new RTCPeerConnection();
        play.addTransceiver("video", { direction: "recvonly" });
        if (via === "sluice") play.addTransceiver("audio", { direction: "recvonly" });
        const video = document.createElement("video");
        video.muted = true;
        video.autoplay = true;
        video.playsInline = true;
        document.body.appendChild(video);
        play.ontrack = (e) => {
          if (e.track.kind !== "video") return;
          video.srcObject = new MediaStream([e.track]);
        };
        let pubLocation = null, playLocation = null;
        if (via === "sluice") {
          pubLocation = await exchange(pub, "/rtc/v1/whip/");
          await sleep(1000);
          playLocation = await exchange(play, "/rtc/v1/whep/");
        } else {
          pub.onicecandidate = (e) => e.candidate && play.addIceCandidate(e.candidate);
          play.onicecandidate = (e) => e.candidate && pub.addIceCandidate(e.candidate);
          await pub.setLocalDescription(await pub.createOffer());
          await play.setRemoteDescription(pub.localDescription);
          await play.setLocalDescription(await play.createAnswer());
          await pub.setRemoteDescription(play.localDescription);
        }

        let collecting = false, frames = 0, unreadable = 0;
        const samples = [], display = [];
        function onFrame(now, meta) {
          if (collecting) {
            frames++;
            const t = read(video);
            if (t === null) unreadable++;
            else {
              // Compare in the same 32-bit ms space as the drawn clock.
              const nowMs = Math.round(now) >>> 0;
              samples.push(((nowMs - t) >>> 0) + (now - Math.round(now)));
              if (meta && meta.expectedDisplayTime)
                display.push(meta.expectedDisplayTime - now + samples[samples.length - 1]);
            }
          }
          video.requestVideoFrameCallback(onFrame);
        }
        video.requestVideoFrameCallback(onFrame);
        await sleep(warmup * 1000);
        const sentMid = (await stats(pub, "outbound-rtp", "video")).framesSent || 0;
        const recvMid = (await stats(play, "inbound-rtp", "video")).framesDecoded || 0;
        const at = performance.now();
        collecting = true;
        await sleep(seconds * 1000);
        collecting = false;
        const secs = (performance.now() - at) / 1000;
        const out = await stats(pub, "outbound-rtp", "video");
        const inb = await stats(play, "inbound-rtp", "video");
        const result = {
          via,
          samples,
          display,
          frames,
          unreadable,
          seconds: secs,
          sentFps: ((out.framesSent || 0) - sentMid) / secs,
          decodedFps: ((inb.framesDecoded || 0) - recvMid) / secs,
          sentSize: `${out.frameWidth || 0}x${out.frameHeight || 0}`,
          qualityLimitation: out.qualityLimitationReason || "",
          recvSize: `${inb.frameWidth || 0}x${inb.frameHeight || 0}`,
          jitterBufferMs: inb.jitterBufferEmittedCount
            ? (1000 * inb.jitterBufferDelay) / inb.jitterBufferEmittedCount
            : null,
          freezeCount: inb.freezeCount || 0,
          states: [pub.connectionState, play.connectionState],
        };
        for (const [pc, loc] of [[play, playLocation], [pub, pubLocation]]) {
          if (loc) await fetch(loc, { method: "DELETE" });
          pc.close();
        }
        video.remove();
        return result;
      }
      const runs = [await measure("sluice"), await measure("direct")];
      clearInterval(timer);
      return runs;
    },
    { apiBase, warmup, seconds, app, stream },
  );
  const pct = (xs, p) => {
    if (!xs.length) return null;
    const s = [...xs].sort((a, b) => a - b);
    return Math.round(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] * 10) / 10;
  };
  const summary = (xs) => ({
    count: xs.length,
    min: pct(xs, 0),
    p50: pct(xs, 50),
    p95: pct(xs, 95),
    p99: pct(xs, 99),
    max: pct(xs, 100),
  });
  for (const r of runs) {
    r.latency = summary(r.samples);
    r.displayLatency = summary(r.display);
    delete r.samples;
    delete r.display;
  }
  result = { runs };
} catch (e) {
  result = { error: String(e) };
} finally {
  await browser.close();
}
console.log(JSON.stringify({ ...result, logs: logs.slice(-20) }));
