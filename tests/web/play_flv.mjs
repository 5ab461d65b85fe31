// Opens a page in headless Chromium (the system's, via playwright-core) and polls the
// page's window.__flv until mpegts.js has reported the stream's media info and media is
// buffered (and, where the browser decodes H.264, playback time has advanced by ADVANCE
// seconds) or the time runs out. Prints the last state as one JSON line.
// Usage: node play_flv.mjs PAGE_URL CHROMIUM_PATH TIMEOUT_SECONDS [ADVANCE_SECONDS]
import { chromium } from "playwright-core";

const [url, executablePath, timeoutArg, advanceArg] = process.argv.slice(2);
const timeoutMs = Number(timeoutArg || 30) * 1000;
const advance = Number(advanceArg || 2);
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
    "--autoplay-policy=no-user-gesture-required",
  ],
});
let state = null;
let firstTime = null;
let advancedAfterMs = null;
const started = Date.now();
const logs = [];
try {
  const page = await browser.newPage();
  page.on("console", (m) => logs.push(m.text()));
  page.on("pageerror", (e) => logs.push("pageerror: " + e.message));
  await page.goto(url);
  const deadline = started + timeoutMs;
  while (Date.now() < deadline) {
    state = await page.evaluate(() => window.__flv);
    if (state && state.error) break;
    if (state && state.mediaInfo && state.buffered > 0) {
      if (!state.h264) break;
      if (firstTime === null) firstTime = state.currentTime;
      if (state.currentTime > firstTime + advance) {
        advancedAfterMs = Date.now() - started;
        break;
      }
    }
    await new Promise((r) => setTimeout(r, 250));
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify({ ...state, startTime: firstTime, advancedAfterMs, logs: logs.slice(-20) }));
