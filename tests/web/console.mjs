// Drives sluice's web console in headless Chromium (the system's, via playwright-core) for
// crates/sluice/tests/web_console.rs: log in (a wrong password first), see the summary, see
// the published stream with its codec and resolution, preview it, kick a player, reload the
// config, start a DVR, open the player, publisher and landing pages, and open the console on
// the API's own port. Every request the browser makes is recorded, every view screenshotted
// (and measured for blankness in the browser itself), and the console's page weight and load
// time measured. Prints one JSON line; a step that fails records its error and ends the run.
// Usage: node console.mjs PARAMS_JSON
// PARAMS: {chromium, http, api, deadApi, user, pass, stream, flvUrl, shots, timeoutSecs}
import { chromium } from "playwright-core";
import { writeFileSync } from "node:fs";

const P = JSON.parse(process.argv[2]);
const timeout = (P.timeoutSecs || 15) * 1000;
const out = { steps: [], requests: [], shots: {}, logs: [] };
const browser = await chromium.launch({
  executablePath: P.chromium,
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-features=Translate,OptimizationHints,MediaRouter",
    "--autoplay-policy=no-user-gesture-required",
  ],
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls `f` (in node) until it returns a truthy value or the time runs out.
async function until(what, f, ms = timeout) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    last = await f();
    if (last) return last;
    await sleep(150);
  }
  throw new Error("timed out waiting for " + what + (last !== undefined ? " (last: " + JSON.stringify(last) + ")" : ""));
}

// How much of a screenshot is not background: decoded by the browser on a blank page.
async function blankness(png) {
  const p = await ctx.newPage();
  try {
    return await p.evaluate(async (b64) => {
      const img = new Image();
      img.src = "data:image/png;base64," + b64;
      await img.decode();
      const c = document.createElement("canvas");
      c.width = img.width; c.height = img.height;
      const g = c.getContext("2d");
      g.drawImage(img, 0, 0);
      const d = g.getImageData(0, 0, c.width, c.height).data;
      const counts = new Map();
      for (let i = 0; i < d.length; i += 4) {
        const k = ((d[i] >> 4) << 8) | ((d[i + 1] >> 4) << 4) | (d[i + 2] >> 4);
        counts.set(k, (counts.get(k) || 0) + 1);
      }
      const total = d.length / 4;
      const top = Math.max(...counts.values());
      return { width: c.width, height: c.height, colors: counts.size, notBackground: 1 - top / total };
    }, png.toString("base64"));
  } finally {
    await p.close();
  }
}

async function shot(page, name) {
  const png = await page.screenshot({ fullPage: true });
  const path = P.shots + "/" + name + ".png";
  writeFileSync(path, png);
  out.shots[name] = Object.assign({ path }, await blankness(png));
}

async function step(name, f) {
  const t0 = Date.now();
  try {
    const r = await f();
    out.steps.push({ name, ok: true, ms: Date.now() - t0 });
    return r;
  } catch (e) {
    out.steps.push({ name, ok: false, ms: Date.now() - t0, error: String(e && e.message || e) });
    throw e;
  }
}

const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
ctx.on("request", (r) => out.requests.push(r.url()));
const page = await ctx.newPage();
page.on("console", (m) => out.logs.push(m.text()));
page.on("pageerror", (e) => out.logs.push("pageerror: " + e.message));
const C = () => page.evaluate(() => window.__console && {
  ready: window.__console.ready, needLogin: window.__console.needLogin, apiError: window.__console.apiError,
  api: window.__console.api, readyAt: window.__console.readyAt, history: window.__console.history.length,
});
const consoleUrl = P.http + "/console/";

try {
  await step("login form on a cold load", async () => {
    await page.goto(consoleUrl);
    await page.waitForSelector("#login:not([hidden])", { timeout });
    out.coldLoginMs = await page.evaluate(() => performance.now());
    // The console's own files, as sent (compressed where they were).
    out.consoleWeight = await page.evaluate(() => performance.getEntriesByType("navigation").concat(performance.getEntriesByType("resource"))
      .filter((e) => new URL(e.name).origin === location.origin)
      .map((e) => ({ url: new URL(e.name).pathname, bytes: e.encodedBodySize })));
    out.api = (await C()).api;
    await shot(page, "login");
  });

  await step("a wrong password is refused", async () => {
    await page.fill("#login-user", P.user);
    await page.fill("#login-pass", P.pass + "-wrong");
    await page.click("#login-go");
    await until("the login form again", async () => (await page.textContent("#login-error")).includes("Wrong"));
  });

  await step("log in and see the summary", async () => {
    await page.fill("#login-user", P.user);
    await page.fill("#login-pass", P.pass);
    await page.click("#login-go");
    await until("the summary", async () => (await C()).ready);
    out.version = await page.textContent("#ov-version");
  });

  await step("reload: ready time", async () => {
    await page.reload();
    await until("the summary after reload", async () => (await C()).ready);
    out.readyMs = (await C()).readyAt;
    await until("two samples for the graph", async () => (await C()).history >= 2);
    out.overview = await page.evaluate(() => ({
      uptime: document.querySelector("#ov-uptime").textContent,
      conns: document.querySelector("#ov-conns").textContent,
      mem: document.querySelector("#ov-mem").textContent,
      in: document.querySelector("#ov-in").textContent,
    }));
    await shot(page, "overview");
  });

  await step("the stream appears with codec and resolution", async () => {
    const t0 = Date.now();
    await page.click('nav a[data-view="streams"]');
    out.streamRow = await until("the stream's row", () => page.evaluate((name) => {
      for (const tr of document.querySelectorAll("#streams-body tr[data-stream-id]")) {
        const cells = [...tr.children].map((td) => td.textContent);
        if (cells[2] === name && /H264/.test(cells[3]) && /\d+×\d+/.test(cells[4])) return { id: tr.dataset.streamId, cells };
      }
      return null;
    }, P.stream));
    out.streamShownMs = Date.now() - t0;
  });

  await step("the preview decodes video", async () => {
    await page.click(`#streams-body tr[data-stream-id="${out.streamRow.id}"] .preview-flv`);
    const h264 = await page.evaluate(() => typeof MediaSource !== "undefined" &&
      MediaSource.isTypeSupported('video/mp4; codecs="avc1.42E01E,mp4a.40.2"'));
    out.h264 = h264;
    const v = () => page.evaluate(() => {
      const v = document.querySelector("#preview-video");
      const q = v.getVideoPlaybackQuality();
      const b = v.buffered;
      return { t: v.currentTime, frames: q.totalVideoFrames, w: v.videoWidth, h: v.videoHeight, buffered: b.length ? b.end(b.length - 1) - b.start(0) : 0 };
    });
    if (h264) {
      const first = await until("the first frame", async () => { const s = await v(); return s.frames > 0 && s; });
      out.preview = await until("playback advancing", async () => { const s = await v(); return s.t > first.t + 1 && s.frames > first.frames && s; });
    } else {
      out.preview = await until("media buffered", async () => { const s = await v(); return s.buffered > 0 && s; });
    }
    await sleep(600);
    out.previewStats = await page.textContent("#preview-stats");
    await shot(page, "streams");
  });

  await step("the HLS preview decodes video", async () => {
    // The HLS button shows once the playlist lists a segment.
    const btn = `#streams-body tr[data-stream-id="${out.streamRow.id}"] .preview-hls`;
    await page.waitForSelector(btn, { timeout });
    await page.click(btn);
    const v = () => page.evaluate(() => {
      const v = document.querySelector("#preview-video");
      const q = v.getVideoPlaybackQuality();
      const b = v.buffered;
      return { t: v.currentTime, frames: q.totalVideoFrames, w: v.videoWidth, h: v.videoHeight, buffered: b.length ? b.end(b.length - 1) - b.start(0) : 0,
        title: document.querySelector("#preview-title").textContent };
    });
    if (out.h264) {
      const first = await until("the first HLS frame", async () => { const s = await v(); return s.frames > 0 && s.t > 0 && s; });
      out.hlsPreview = await until("HLS playback advancing", async () => { const s = await v(); return s.t > first.t + 1 && s.frames > first.frames && s; });
    } else {
      out.hlsPreview = await until("HLS media buffered", async () => { const s = await v(); return s.buffered > 0 && s; });
    }
    await page.click("#preview-close");
  });

  await step("kick the player", async () => {
    await page.click('nav a[data-view="clients"]');
    await page.fill("#cl-filter", "rtmp-play");
    const id = await until("the player in the list", () => page.evaluate(() => {
      const rows = document.querySelectorAll("#cl-body tr[data-client-id]");
      return rows.length === 1 ? rows[0].dataset.clientId : null;
    }));
    out.kickedId = id;
    await page.fill("#cl-filter", "");
    await shot(page, "clients");
    await page.fill("#cl-filter", "rtmp-play");
    await page.click(`#cl-body tr[data-client-id="${id}"] .kick`);
    await page.waitForSelector("#confirm[open]", { timeout });
    await page.click("#confirm-ok");
    // Gone from the list, and still gone after two more polls of the API.
    await until("the row gone", () => page.evaluate((id) => !document.querySelector(`#cl-body tr[data-client-id="${id}"]`), id));
    await sleep(4500);
    out.kickedStillListed = await page.evaluate((id) => !!document.querySelector(`#cl-body tr[data-client-id="${id}"]`) ||
      window.__console.clients.some((c) => c.id === id), id);
    await page.fill("#cl-filter", "");
  });

  await step("actions: reload and DVR", async () => {
    await page.click('nav a[data-view="actions"]');
    await until("reload enabled", () => page.evaluate(() => !document.querySelector("#reload-btn").disabled));
    await page.click("#reload-btn");
    await page.waitForSelector("#confirm[open]", { timeout });
    await page.click("#confirm-ok");
    out.reload = await until("the reload result", async () => (await page.textContent("#reload-result")) || null);
    await page.click(`#dvr-body tr[data-stream-id="${out.streamRow.id}"] .dvr-start`);
    await page.waitForSelector("#confirm[open]", { timeout });
    await page.click("#confirm-ok");
    out.dvr = await until("recording", () => page.evaluate((id) => {
      const tr = document.querySelector(`#dvr-body tr[data-stream-id="${id}"]`);
      return tr && tr.children[1].textContent === "recording" ? document.querySelector("#dvr-result").textContent : null;
    }, out.streamRow.id));
    await shot(page, "actions");
    // The preview's player, loaded on demand, counts in the page weight.
    out.playersWeight = await page.evaluate(() => performance.getEntriesByType("resource")
      .filter((e) => new URL(e.name).pathname.startsWith("/console/vendor/"))
      .map((e) => ({ url: new URL(e.name).pathname, bytes: e.encodedBodySize })));
  });

  await step("the player page plays HTTP-FLV", async () => {
    const p = await ctx.newPage();
    p.on("pageerror", (e) => out.logs.push("player pageerror: " + e.message));
    await p.goto(P.http + "/players/?url=" + encodeURIComponent(P.flvUrl));
    const st = () => p.evaluate(() => {
      const v = document.querySelector("#player-video");
      const b = v.buffered;
      return { t: v.currentTime, buffered: b.length ? b.end(b.length - 1) : 0, stats: document.querySelector("#player-stats").textContent };
    });
    if (out.h264) {
      const first = await until("the player playing", async () => { const s = await st(); return s.t > 0 && s; });
      out.player = await until("the player advancing", async () => { const s = await st(); return s.t > first.t + 1 && s; });
    } else {
      out.player = await until("the player buffering", async () => { const s = await st(); return s.buffered > 0 && s; });
    }
    await shot(p, "player");
    await p.goto(P.http + "/players/publisher.html?app=live&stream=" + encodeURIComponent(P.stream));
    out.publisherCommand = await p.textContent("#ff-file");
    await shot(p, "publisher");
    await p.goto(P.http + "/");
    out.landingLinks = await p.evaluate(() => [...document.querySelectorAll("a")].map((a) => a.getAttribute("href")));
    await shot(p, "landing");
    await p.close();
  });

  await step("the console on the API port", async () => {
    const p = await ctx.newPage();
    await p.goto(P.api + "/console/");
    await p.waitForSelector("#login:not([hidden])", { timeout });
    await p.fill("#login-user", P.user);
    await p.fill("#login-pass", P.pass);
    await p.click("#login-go");
    await until("the summary on the API port", () => p.evaluate(() => window.__console.ready));
    out.apiPortConsole = await p.evaluate(() => window.__console.api);
    await p.close();
  });

  await step("a banner when the API does not answer", async () => {
    // A fresh context: the API address chosen here is remembered by the browser.
    const c2 = await browser.newContext();
    c2.on("request", (r) => out.requests.push(r.url()));
    const p = await c2.newPage();
    await p.goto(P.http + "/console/?api=" + encodeURIComponent(P.deadApi));
    await p.waitForSelector("#banner:not([hidden])", { timeout });
    out.banner = await p.textContent("#banner");
    await c2.close();
  });
} catch (e) {
  out.error = String(e && e.message || e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
