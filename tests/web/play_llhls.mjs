// Opens the LL-HLS test page in headless Chromium (the system's, via playwright-core),
// waits for playback to start, lets it play for PLAY_SECONDS and prints the page's
// window.__ll state as one JSON line, with the page's last log lines and the requests that
// went to another host than 127.0.0.1 (offHost).
// Usage: node play_llhls.mjs PAGE_URL CHROMIUM_PATH PLAY_SECONDS
import { chromium } from "playwright-core";

const [url, executablePath, playArg] = process.argv.slice(2);
const playMs = Number(playArg || 30) * 1000;
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
const logs = [];
const offHost = [];
try {
  const page = await browser.newPage();
  page.on("console", (m) => logs.push(m.text()));
  page.on("pageerror", (e) => logs.push("pageerror: " + e.message));
  page.on("response", (r) => {
    if (r.status() >= 400) logs.push(r.status() + " " + r.url());
  });
  // Every request for a host other than the test server's loopback address: a player
  // must not reach out of the operator's network (dash.js does for its clock when the
  // MPD has no UTCTiming).
  page.on("request", (r) => {
    const u = new URL(r.url());
    if ((u.protocol === "http:" || u.protocol === "https:") && u.hostname !== "127.0.0.1") offHost.push(r.url());
  });
  await page.goto(url);
  const startBy = Date.now() + 30000;
  while (Date.now() < startBy) {
    state = await page.evaluate(() => window.__ll);
    if (!state || state.error || state.playing) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  if (state && state.playing && !state.error) {
    const until = Date.now() + playMs;
    while (Date.now() < until) {
      await new Promise((r) => setTimeout(r, 1000));
      state = await page.evaluate(() => window.__ll);
      if (state.error) break;
    }
    state = { ...state, playedMs: Date.now() - state.playedAt };
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify({ ...state, logs: logs.slice(-20), offHost }));
