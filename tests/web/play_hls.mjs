// Opens a page in headless Chromium (the system's, via playwright-core) and polls the
// page's window.__hls until fragments are loaded and media is buffered (and, where the
// browser decodes H.264, playback time advances) or the time runs out. Prints the last
// state as one JSON line. Usage: node play_hls.mjs PAGE_URL CHROMIUM_PATH TIMEOUT_SECONDS
// (CHROMIUM_EXTRA_ARGS in the environment: more flags for the browser, space-separated).
import { chromium } from "playwright-core";

const [url, executablePath, timeoutArg] = process.argv.slice(2);
const timeoutMs = Number(timeoutArg || 30) * 1000;
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
    // e.g. --ignore-certificate-errors-spki-list=HASH for a test's own certificate.
    ...(process.env.CHROMIUM_EXTRA_ARGS || "").split(" ").filter((a) => a),
  ],
});
let state = null;
const logs = [];
try {
  const page = await browser.newPage();
  page.on("console", (m) => logs.push(m.text()));
  page.on("pageerror", (e) => logs.push("pageerror: " + e.message));
  await page.goto(url);
  const deadline = Date.now() + timeoutMs;
  let firstTime = null;
  while (Date.now() < deadline) {
    state = await page.evaluate(() => window.__hls);
    if (state && state.error) break;
    if (state && state.fragsLoaded > 0 && state.buffered > 0) {
      if (!state.h264) break;
      if (firstTime === null) firstTime = state.currentTime;
      if (state.currentTime > firstTime + 1) break;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  state = { ...state, startTime: firstTime };
} finally {
  await browser.close();
}
console.log(JSON.stringify({ ...state, logs: logs.slice(-20) }));
