// sluice's web console: polls the HTTP API (/api/v1) every two seconds and shows the
// server, its streams and clients, with the few actions the API offers. Plain DOM, no
// framework: the whole console is a few tens of kilobytes and loads nothing from
// outside the server. window.__console exposes its state to the browser test.
"use strict";
(function () {
  const $ = (s) => document.querySelector(s);
  const POLL_MS = 2000;
  const HISTORY = 150; // samples: 5 minutes at POLL_MS
  const PAGE = 20;
  const S = window.__console = {
    ready: false, api: null, apiError: null, needLogin: false, settings: null,
    summary: null, streams: [], clients: [], vhosts: [], hls: [], dvr: null, raw: null,
    history: [], prevStream: {}, fps: {}, readyAt: null,
  };
  let auth = sessionStorage.getItem("sluice.auth") || null;
  let view = "overview";
  let sortKey = "id", sortDir = 1, page = 0;
  let preview = null;

  // ---- formatting
  const esc = (v) => String(v == null ? "" : v).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
  const kbps = (v) => v >= 10000 ? (v / 1000).toFixed(1) + " Mbps" : Math.round(v) + " kbps";
  const dur = (s) => { s = Math.floor(s); const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    return d ? d + "d " + h + "h" : h ? h + "h " + m + "m" : m ? m + "m " + (s % 60) + "s" : s + "s"; };
  const mb = (kb) => kb >= 1048576 ? (kb / 1048576).toFixed(2) + " GB" : (kb / 1024).toFixed(1) + " MB";
  function b64(s) { return btoa(String.fromCharCode(...new TextEncoder().encode(s))); }

  // ---- where the API is: ?api=, then what the operator chose, then what the server says
  async function findApi() {
    const q = new URLSearchParams(location.search).get("api");
    if (q) localStorage.setItem("sluice.api", q.replace(/\/+$/, ""));
    try {
      const r = await fetch("/console/config.json", { cache: "no-store" });
      S.settings = await r.json();
    } catch (e) { S.settings = null; }
    const chosen = localStorage.getItem("sluice.api");
    if (chosen) return chosen;
    const a = S.settings && S.settings.api;
    if (a && a.same_origin) return location.origin;
    const port = (a && a.port) || 1985;
    return location.protocol + "//" + location.hostname + ":" + port;
  }

  class AuthNeeded extends Error {}
  async function api(path, opts) {
    const headers = {};
    if (auth) headers.Authorization = "Basic " + b64(auth);
    let r;
    try {
      // credentials "omit": a same-origin 401 then comes back to us instead of raising the
      // browser's own login prompt; the Authorization header we set is sent all the same.
      r = await fetch(S.api + path, Object.assign({ cache: "no-store", credentials: "omit", headers }, opts || {}));
    } catch (e) {
      unreachable("no answer (" + e.message + ")");
      throw e;
    }
    if (r.status === 401) { showLogin(); throw new AuthNeeded("401"); }
    let j = null;
    try { j = await r.json(); } catch (e) { /* not JSON */ }
    if (!j) { unreachable("HTTP " + r.status + " without an API reply: is this sluice's API?"); throw new Error("not the API"); }
    return j;
  }

  function unreachable(why) {
    S.apiError = why;
    const b = $("#banner");
    b.hidden = false;
    b.textContent = "The API at " + S.api + " is unreachable: " + why + ". Set its address at the top right" +
      (S.settings && S.settings.api && !S.settings.api.same_origin ? " (from another port it must answer CORS: http_api { crossdomain on; })" : "") + ".";
  }
  function reachable() { S.apiError = null; $("#banner").hidden = true; }

  // ---- login
  function showLogin() {
    S.needLogin = true;
    $("#login").hidden = false;
    $("#app").hidden = true;
    if (auth) $("#login-error").textContent = "Wrong username or password.";
    auth = null;
    sessionStorage.removeItem("sluice.auth");
  }
  $("#login").addEventListener("submit", (e) => {
    e.preventDefault();
    auth = $("#login-user").value + ":" + $("#login-pass").value;
    sessionStorage.setItem("sluice.auth", auth);
    S.needLogin = false;
    $("#login").hidden = true;
    $("#app").hidden = false;
    tick();
  });

  // ---- views
  function show(v) {
    view = ["overview", "streams", "clients", "actions"].includes(v) ? v : "overview";
    document.querySelectorAll("nav a[data-view]").forEach((a) => a.classList.toggle("on", a.dataset.view === view));
    document.querySelectorAll("main > section").forEach((s) => { s.hidden = s.id !== "view-" + view; });
    render();
  }
  window.addEventListener("hashchange", () => show(location.hash.slice(1)));

  // ---- confirmation
  function confirmThen(text, action) {
    const d = $("#confirm");
    $("#confirm-text").textContent = text;
    $("#confirm-ok").onclick = () => { d.close(); action(); };
    $("#confirm-cancel").onclick = () => d.close();
    d.showModal();
  }

  // ---- polling
  let busy = false;
  async function tick() {
    if (busy || S.needLogin || !S.api) return;
    busy = true;
    try {
      const [sum, st, cl, vh, hls, dvr, fwd, edge] = await Promise.all([
        api("/api/v1/summaries"), api("/api/v1/streams?count=1000"), api("/api/v1/clients?count=1000"),
        api("/api/v1/vhosts"), api("/api/v1/hls"), api("/api/v1/dvrs"), api("/api/v1/forwards"), api("/api/v1/edges"),
      ]);
      reachable();
      S.summary = sum.data;
      S.streams = st.streams || [];
      S.clients = cl.clients || [];
      S.vhosts = vh.vhosts || [];
      S.hls = (hls.hls) || [];
      S.dvr = dvr.dvr || null;
      S.forwards = (fwd.forward && fwd.forward.forwards) || [];
      S.edges = (edge.edge && edge.edge.edges) || [];
      sample();
      render();
      if (!S.ready) { S.ready = true; S.readyAt = performance.now(); }
      if (!S.raw) api("/api/v1/raw?rpc=raw").then((r) => { S.raw = r.http_api || null; renderActions(); }).catch(() => {});
    } catch (e) {
      /* the banner or the login form says why */
    } finally { busy = false; }
  }

  // One point of the graphs per poll: rates from the byte counters' change since the
  // previous poll (the first poll only sets the baseline).
  function sample() {
    const sys = S.summary.system, self = S.summary.self;
    const t = sys.srs_sample_time;
    const base = S.baseline;
    S.baseline = { t, rb: sys.srs_recv_bytes, sb: sys.srs_send_bytes };
    if (base && t > base.t) {
      S.history.push({
        t, cpu: self.cpu_percent * 100, conns: sys.conn_srs,
        inK: Math.max(0, (sys.srs_recv_bytes - base.rb) * 8 / (t - base.t)),
        outK: Math.max(0, (sys.srs_send_bytes - base.sb) * 8 / (t - base.t)),
      });
      if (S.history.length > HISTORY) S.history.shift();
    }
    const now = Date.now();
    for (const s of S.streams) {
      const p = S.prevStream[s.id];
      if (p && now > p.t) S.fps[s.id] = (s.video_frames - p.f) * 1000 / (now - p.t);
      S.prevStream[s.id] = { f: s.video_frames, t: now };
    }
  }

  function render() {
    if (!S.summary) return;
    if (view === "overview") renderOverview();
    if (view === "streams") renderStreams();
    if (view === "clients") renderClients();
    if (view === "actions") renderActions();
    if (preview) renderPreview();
  }

  function renderOverview() {
    const self = S.summary.self, sys = S.summary.system;
    const last = S.history[S.history.length - 1] || { inK: 0, outK: 0 };
    // sluice_version: the summaries' `version` is the SRS version sluice answers as (docs/api.md).
    $("#ov-version").textContent = self.sluice_version || self.version;
    $("#ov-uptime").textContent = dur(self.srs_uptime);
    $("#ov-cpu").textContent = (self.cpu_percent * 100).toFixed(1) + " %";
    $("#ov-mem").textContent = mb(self.mem_kbyte);
    $("#ov-conns").textContent = sys.conn_srs;
    $("#ov-streams").textContent = S.streams.filter((s) => s.publish && s.publish.active).length;
    $("#ov-in").textContent = kbps(last.inK);
    $("#ov-out").textContent = kbps(last.outK);
    $("#ov-host").textContent = "pid " + self.pid + " · " + sys.cpus + " CPUs, host CPU " + (sys.cpu_percent * 100).toFixed(0) +
      " %, load " + sys.load_1m.toFixed(2) + " · RAM " + mb(sys.mem_ram_kbyte) + " (" + (sys.mem_ram_percent * 100).toFixed(0) + " % used)";
    graph($("#g-kbps"), [{ key: "inK", color: "#5ad17a" }, { key: "outK", color: "#4fb3ff" }], kbps);
    graph($("#g-cpu"), [{ key: "cpu", color: "#f0b429" }, { key: "conns", color: "#c38bff" }], (v) => v.toFixed(v < 10 ? 1 : 0));
  }

  // A line graph of the history on a canvas, scaled to its largest value.
  function graph(canvas, series, fmt) {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (!w || !h) return;
    canvas.width = w * dpr; canvas.height = h * dpr;
    const g = canvas.getContext("2d");
    g.scale(dpr, dpr);
    g.clearRect(0, 0, w, h);
    const pts = S.history;
    const max = Math.max(1, ...pts.flatMap((p) => series.map((s) => p[s.key])));
    g.strokeStyle = "#2a3440"; g.fillStyle = "#8b98a5"; g.font = "11px system-ui, sans-serif"; g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = 6 + (h - 12) * i / 4;
      g.beginPath(); g.moveTo(0, y); g.lineTo(w, y); g.stroke();
      g.fillText(fmt(max * (4 - i) / 4), 4, y + (i === 0 ? 11 : -3));
    }
    const step = w / (HISTORY - 1);
    const x0 = w - (pts.length - 1) * step;
    for (const s of series) {
      g.strokeStyle = s.color; g.lineWidth = 2; g.beginPath();
      pts.forEach((p, i) => { const x = x0 + i * step, y = 6 + (h - 12) * (1 - p[s.key] / max); i ? g.lineTo(x, y) : g.moveTo(x, y); });
      g.stroke();
    }
  }

  const pill = (label, on, title) => '<span class="pill' + (on ? " on" : "") + '" title="' + esc(title || "") + '">' + esc(label) + "</span>";
  const vhostName = (id) => { const v = S.vhosts.find((x) => x.id === id); return v ? v.name : id; };
  const clientOf = (id) => S.clients.find((c) => c.id === id);

  // Play URLs of a stream over every protocol the server offers.
  function urlsOf(s) {
    const set = S.settings || {};
    const host = location.hostname;
    const vname = vhostName(s.vhost);
    const vcfg = (set.vhosts || []).find((v) => v.name === vname) || {};
    const isDefault = vcfg.default || vname === "__defaultVhost__";
    const out = [];
    const rtmpPort = (set.rtmp_ports || [1935])[0];
    out.push(["RTMP", "rtmp://" + host + ":" + rtmpPort + "/" + s.app + (isDefault ? "" : "?vhost=" + vname) + "/" + s.name]);
    const http = set.http_port ? location.protocol + "//" + host + ":" + set.http_port : null;
    if (http && vcfg.flv_mount) {
      const path = vcfg.flv_mount.replace("[vhost]", isDefault ? "" : vname).replace("[app]", s.app).replace("[stream]", s.name).replace(/\/+/g, "/").replace(/^\/?/, "/");
      out.push(["HTTP-FLV", http + path + (isDefault ? "" : "?vhost=" + vname)]);
    }
    const h = S.hls.find((x) => x.vhost === vname && x.app === s.app && x.stream === s.name);
    // Offered once the playlist lists a segment: before that a player would get a 404.
    if (http && h && h.publishing && h.segments > 0 && h.playlist_url) out.push(["HLS", http + (h.playlist_url.startsWith("/") ? "" : "/") + h.playlist_url]);
    return out;
  }

  function renderStreams() {
    const body = $("#streams-body");
    if (!S.streams.length) { body.innerHTML = '<tr><td class="empty" colspan="12">No stream. Publish one: see the Publisher page.</td></tr>'; return; }
    body.innerHTML = S.streams.map((s) => {
      const v = s.video, a = s.audio, pub = s.publish && s.publish.active ? clientOf(s.publish.cid) : null;
      const players = {};
      S.clients.filter((c) => c.stream === s.id && !c.publish).forEach((c) => { players[c.type] = (players[c.type] || 0) + 1; });
      const vname = vhostName(s.vhost);
      const hls = S.hls.find((x) => x.vhost === vname && x.app === s.app && x.stream === s.name && x.publishing);
      const dvr = S.dvr && (S.dvr.recorders || []).find((r) => r.vhost === vname && r.app === s.app && r.stream === s.name && r.running);
      const fwds = (S.forwards || []).filter((f) => f.source_id === s.id);
      const pull = (S.edges || []).find((p) => p.source_id === s.id);
      const services = pill("HLS", hls, hls ? "segment " + hls.sequence : "not writing HLS") + pill("DVR", dvr, dvr ? dvr.file : "not recording") +
        (fwds.length ? pill("FWD " + fwds.filter((f) => f.connected).length + "/" + fwds.length, fwds.some((f) => f.connected), fwds.map((f) => f.url + (f.last_error ? " (" + f.last_error + ")" : "")).join("\n")) : "") +
        (pull ? pill("EDGE " + pull.state, String(pull.state).toLowerCase() === "pulling", pull.origin + (pull.last_error ? " (" + pull.last_error + ")" : "")) : "");
      const urls = urlsOf(s);
      const canFlv = urls.some((u) => u[0] === "HTTP-FLV"), canHls = urls.some((u) => u[0] === "HLS");
      const fps = S.fps[s.id];
      return '<tr data-stream-id="' + esc(s.id) + '"><td>' + esc(vname) + "</td><td>" + esc(s.app) + "</td><td><b>" + esc(s.name) + "</b></td>" +
        "<td class=\"codec\">" + (v ? esc(v.codec + " " + (v.profile || "") + " " + (v.level || "")) : '<span class="dim">none</span>') + "</td>" +
        "<td class=\"res\">" + (v && v.width ? v.width + "×" + v.height : "–") + "</td>" +
        "<td>" + (fps != null ? fps.toFixed(1) : "–") + "</td>" +
        "<td>" + (a ? esc(a.codec + " " + (a.sample_rate || "") + "Hz " + (a.channel || "") + "ch") : '<span class="dim">none</span>') + "</td>" +
        "<td>" + s.kbps.recv_30s + " / " + s.kbps.send_30s + "</td>" +
        "<td>" + (pub ? esc(pub.ip) + ' <span class="dim">' + dur(pub.alive) + "</span>" : s.publish && s.publish.active ? "yes" : '<span class="dim">idle</span>') + "</td>" +
        "<td>" + (Object.entries(players).map(([k, n]) => '<span class="pill">' + esc(k) + " " + n + "</span>").join("") || "0") + "</td>" +
        "<td>" + services + "</td>" +
        "<td>" + (canFlv ? '<button class="preview-flv">▶ FLV</button> ' : "") + (canHls ? '<button class="preview-hls">▶ HLS</button>' : "") + "</td></tr>";
    }).join("");
  }
  $("#streams-body").addEventListener("click", (e) => {
    const tr = e.target.closest("tr[data-stream-id]");
    if (!tr) return;
    if (e.target.classList.contains("preview-flv")) openPreview(tr.dataset.streamId, "HTTP-FLV");
    if (e.target.classList.contains("preview-hls")) openPreview(tr.dataset.streamId, "HLS");
  });

  async function openPreview(id, proto) {
    closePreview();
    const s = S.streams.find((x) => x.id === id);
    if (!s) return;
    const url = (urlsOf(s).find((u) => u[0] === proto) || [])[1];
    if (!url) return;
    const video = $("#preview-video");
    $("#preview").hidden = false;
    $("#preview-title").textContent = s.app + "/" + s.name + " over " + proto;
    const urls = $("#preview-urls");
    urls.innerHTML = "";
    for (const [k, u] of urlsOf(s)) {
      const label = document.createElement("span"); label.textContent = k;
      const input = document.createElement("input"); input.readOnly = true; input.value = u;
      const copy = document.createElement("button"); copy.textContent = "Copy";
      copy.onclick = () => copyText(input, copy);
      urls.append(label, input, copy);
    }
    const open = document.createElement("a"); open.className = "btn"; open.textContent = "Open in player"; open.href = "/players/?url=" + encodeURIComponent(url);
    urls.append(document.createElement("span"), open, document.createElement("span"));
    preview = { id, proto, handle: null };
    const handle = await SluicePlayer.attach(video, url);
    if (preview && preview.id === id) preview.handle = handle; else handle.destroy();
    S.preview = { url, proto };
  }
  function closePreview() {
    if (preview && preview.handle) preview.handle.destroy();
    preview = null;
    S.preview = null;
    $("#preview").hidden = true;
  }
  $("#preview-close").addEventListener("click", closePreview);
  function renderPreview() {
    if (!preview.handle) return;
    SluicePlayer.renderStats($("#preview-stats"), SluicePlayer.stats($("#preview-video"), preview.handle));
  }
  setInterval(() => { if (preview) renderPreview(); }, 500);

  // The clipboard API needs a secure context; a console reached over plain HTTP by name
  // is not one, so fall back to selecting the text and the old copy command.
  function copyText(input, btn) {
    const done = () => { btn.textContent = "Copied"; setTimeout(() => { btn.textContent = "Copy"; }, 1200); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, () => { input.select(); document.execCommand("copy"); done(); });
    } else { input.select(); document.execCommand("copy"); done(); }
  }

  // ---- clients
  const clientKey = {
    id: (c) => c.id, ip: (c) => c.ip, type: (c) => c.type, url: (c) => c.url, alive: (c) => c.alive,
    recv: (c) => c.kbps.recv_30s, send: (c) => c.kbps.send_30s,
  };
  function renderClients() {
    const f = $("#cl-filter").value.trim().toLowerCase();
    let list = S.clients.filter((c) => !f || [c.id, c.ip, c.type, c.url, c.tcUrl].some((x) => String(x || "").toLowerCase().includes(f)));
    const key = clientKey[sortKey];
    list.sort((a, b) => { const x = key(a), y = key(b); return (x < y ? -1 : x > y ? 1 : 0) * sortDir; });
    const pages = Math.max(1, Math.ceil(list.length / PAGE));
    page = Math.min(page, pages - 1);
    $("#cl-count").textContent = list.length + " of " + S.clients.length + " clients";
    $("#cl-page").textContent = " page " + (page + 1) + " / " + pages + " ";
    $("#cl-prev").disabled = page === 0;
    $("#cl-next").disabled = page >= pages - 1;
    document.querySelectorAll("#view-clients th.sort").forEach((th) => {
      th.textContent = th.textContent.replace(/ [▲▼]$/, "") + (th.dataset.key === sortKey ? (sortDir > 0 ? " ▲" : " ▼") : "");
    });
    list = list.slice(page * PAGE, page * PAGE + PAGE);
    const body = $("#cl-body");
    if (!list.length) { body.innerHTML = '<tr><td class="empty" colspan="8">No client.</td></tr>'; return; }
    body.innerHTML = list.map((c) => '<tr data-client-id="' + esc(c.id) + '"><td>' + esc(c.id) + "</td><td>" + esc(c.ip) + "</td><td>" +
      '<span class="pill' + (c.publish ? " on" : "") + '">' + esc(c.type) + "</span></td><td>" + esc(c.url) + "</td><td>" + dur(c.alive) +
      "</td><td>" + c.kbps.recv_30s + "</td><td>" + c.kbps.send_30s + '</td><td><button class="kick danger">Kick</button></td></tr>').join("");
  }
  $("#cl-filter").addEventListener("input", () => { page = 0; renderClients(); });
  $("#cl-prev").addEventListener("click", () => { page = Math.max(0, page - 1); renderClients(); });
  $("#cl-next").addEventListener("click", () => { page++; renderClients(); });
  document.querySelectorAll("#view-clients th.sort").forEach((th) => th.addEventListener("click", () => {
    if (sortKey === th.dataset.key) sortDir = -sortDir; else { sortKey = th.dataset.key; sortDir = 1; }
    renderClients();
  }));
  $("#cl-body").addEventListener("click", (e) => {
    if (!e.target.classList.contains("kick")) return;
    const id = e.target.closest("tr").dataset.clientId;
    const c = clientOf(id);
    confirmThen("Kick client " + id + (c ? " (" + c.type + " " + c.url + " from " + c.ip + ")" : "") + "?", async () => {
      try {
        const r = await api("/api/v1/clients/" + encodeURIComponent(id), { method: "DELETE" });
        if (r.code !== 0) alertBanner("Kick failed: " + (r.msg || "code " + r.code));
        S.clients = S.clients.filter((x) => x.id !== id);
        renderClients();
        S.kicked = (S.kicked || []).concat(id);
      } catch (err) { /* banner shown */ }
    });
  });
  function alertBanner(text) { const b = $("#banner"); b.hidden = false; b.textContent = text; }

  // ---- actions
  function renderActions() {
    const raw = S.raw;
    const btn = $("#reload-btn");
    if (raw) {
      const allowed = raw.raw_api && raw.raw_api.enabled && raw.raw_api.allow_reload;
      btn.disabled = !allowed;
      $("#reload-state").textContent = allowed ? "The raw API allows reload: sluice re-reads its config file, as on SIGHUP."
        : "Reload by the API is off: set http_api { raw_api { enabled on; allow_reload on; } } (or send sluice a SIGHUP).";
    }
    const body = $("#dvr-body");
    if (!S.streams.length) { body.innerHTML = '<tr><td class="empty" colspan="6">No stream.</td></tr>'; return; }
    body.innerHTML = S.streams.map((s) => {
      const vname = vhostName(s.vhost);
      const r = S.dvr && (S.dvr.recorders || []).find((x) => x.vhost === vname && x.app === s.app && x.stream === s.name);
      const on = r && r.running;
      return '<tr data-stream-id="' + esc(s.id) + '"><td>' + esc(s.url) + "</td><td>" + (on ? '<span class="ok">recording</span>' : '<span class="dim">no</span>') +
        "</td><td>" + (r ? r.files : 0) + "</td><td>" + (r ? r.bytes : 0) + "</td><td>" + esc(r && r.last_error || "") + "</td><td>" +
        (on ? '<button class="dvr-stop danger">Stop</button>' : '<button class="dvr-start">Start</button>') + "</td></tr>";
    }).join("");
  }
  $("#dvr-body").addEventListener("click", (e) => {
    const action = e.target.classList.contains("dvr-start") ? "start" : e.target.classList.contains("dvr-stop") ? "stop" : null;
    if (!action) return;
    const id = e.target.closest("tr").dataset.streamId;
    confirmThen((action === "start" ? "Start" : "Stop") + " recording stream " + id + "?", async () => {
      try {
        const r = await api("/api/v1/dvrs/" + encodeURIComponent(id) + "/" + action, { method: "POST" });
        $("#dvr-result").textContent = r.code === 0 ? "DVR " + action + ": " + r.stream : "DVR " + action + " failed: " + (r.msg || r.code);
        tick();
      } catch (err) { /* banner shown */ }
    });
  });
  $("#reload-btn").addEventListener("click", () => confirmThen("Reload sluice's configuration now?", async () => {
    try {
      const r = await api("/api/v1/raw?rpc=reload");
      $("#reload-result").textContent = r.code === 0 ? "Reloaded." : "Refused: " + (r.msg || "code " + r.code);
      $("#reload-result").className = r.code === 0 ? "ok" : "bad";
    } catch (err) { /* banner shown */ }
  }));

  // ---- start
  $("#api-set").addEventListener("click", () => {
    const v = $("#api-url").value.trim().replace(/\/+$/, "");
    if (v) localStorage.setItem("sluice.api", v); else localStorage.removeItem("sluice.api");
    location.reload();
  });
  (async () => {
    S.api = await findApi();
    $("#api-url").value = S.api;
    show(location.hash.slice(1));
    tick();
    setInterval(tick, POLL_MS);
  })();
})();
