// The publisher page: the ffmpeg and OBS settings that publish a chosen stream to this
// server over RTMP, with the server's own RTMP and HTTP ports (from /console/config.json).
"use strict";
(async function () {
  const $ = (s) => document.querySelector(s);
  let settings = {};
  try { settings = await (await fetch("/console/config.json", { cache: "no-store" })).json(); } catch (e) { /* defaults below */ }
  $("#pub-host").value = location.hostname;
  $("#pub-port").value = (settings.rtmp_ports || [1935])[0];
  const q = new URLSearchParams(location.search);
  for (const k of ["vhost", "app", "stream"]) if (q.get(k)) $("#pub-" + k).value = q.get(k);
  function update() {
    const host = $("#pub-host").value.trim(), port = $("#pub-port").value.trim();
    const vhost = $("#pub-vhost").value.trim(), app = $("#pub-app").value.trim(), stream = $("#pub-stream").value.trim();
    const server = "rtmp://" + host + ":" + port + "/" + app + (vhost ? "?vhost=" + vhost : "");
    const url = server + "/" + stream;
    $("#obs-server").textContent = server;
    $("#obs-key").textContent = stream;
    $("#ff-file").textContent = "ffmpeg -re -stream_loop -1 -i input.flv -c copy -f flv '" + url + "'";
    $("#ff-cam").textContent = "ffmpeg -f v4l2 -framerate 30 -video_size 1280x720 -i /dev/video0 -f pulse -i default \\\n" +
      "  -c:v libx264 -preset veryfast -tune zerolatency -b:v 2500k -g 60 -keyint_min 60 -bf 0 \\\n" +
      "  -c:a aac -b:a 128k -ar 44100 -f flv '" + url + "'";
    $("#ff-test").textContent = "ffmpeg -re -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440 \\\n" +
      "  -c:v libx264 -preset veryfast -tune zerolatency -g 60 -bf 0 -c:a aac -f flv '" + url + "'";
    const play = $("#pub-play");
    play.replaceChildren();
    const v = (settings.vhosts || []).find((x) => vhost ? x.name === vhost : x.default) || {};
    const links = [["RTMP", url]];
    if (settings.http_port && v.flv_mount) {
      const path = v.flv_mount.replace("[vhost]", vhost).replace("[app]", app).replace("[stream]", stream).replace(/\/+/g, "/").replace(/^\/?/, "/");
      links.push(["HTTP-FLV", location.protocol + "//" + host + ":" + settings.http_port + path + (vhost ? "?vhost=" + vhost : "")]);
    }
    if (settings.http_port && v.hls) links.push(["HLS (default hls_m3u8_file)", location.protocol + "//" + host + ":" + settings.http_port + "/" + app + "/" + stream + ".m3u8"]);
    for (const [k, u] of links) {
      const p = document.createElement("p");
      const b = document.createElement("b"); b.textContent = k + ": ";
      const c = document.createElement("code"); c.textContent = u;
      p.append(b, c);
      if (!u.startsWith("rtmp:")) {
        const a = document.createElement("a"); a.href = "/players/?url=" + encodeURIComponent(u); a.textContent = " play";
        p.append(a);
      }
      play.append(p);
    }
  }
  $("#pub-form").addEventListener("input", update);
  update();
})();
