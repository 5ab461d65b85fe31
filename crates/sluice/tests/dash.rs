//! DASH over HLS's fMP4 segments (`dash { enabled on; }` with `hls_use_fmp4 on`): ffprobe
//! reads the live MPD over HTTP while ffmpeg publishes, and ffmpeg reads the whole static MPD
//! once the stream ended.

mod common;

use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn ffprobe_codecs(url: &str) -> Result<Vec<String>, String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-of", "json"])
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("run ffprobe");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let mut c: Vec<String> = v["streams"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["codec_name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    c.sort();
    Ok(c)
}

#[test]
fn ffprobe_reads_the_live_mpd_and_ffmpeg_the_ended_one() {
    require_ffmpeg();
    let root = unique_dir("dash-root").join("hls");
    fs::create_dir_all(&root).expect("root");
    let http = free_port();
    let api = free_port();
    let body = format!(
        "max_connections 100;
daemon off;
srs_log_tank console;
http_api {{ enabled on; listen 127.0.0.1:{api}; }}
http_server {{ enabled on; listen 127.0.0.1:{http}; dir {root}; }}
vhost __defaultVhost__ {{
    hls {{ enabled on; hls_use_fmp4 on; hls_path {root}; hls_fragment 2; hls_window 20; hls_dispose 0; }}
    dash {{ enabled on; dash_path {root}; dash_fragment 2; dash_update_period 2; dash_timeshift 30; }}
}}
",
        root = root.display()
    );
    let server = Server::start_with("dash", &body);
    let mut publisher = spawn_publisher(&server, AVC_AAC, &server.url("live/test"), "dash");
    let mpd = root.join("live/test.mpd");
    let live = wait_for(Duration::from_secs(20), || {
        let text = fs::read_to_string(&mpd).ok()?;
        (text.matches("<S ").count() >= 2).then_some(text)
    })
    .expect("a live MPD with two segments");
    assert!(live.contains("type=\"dynamic\""), "{live}");
    assert!(
        live.contains("initialization=\"test/init.mp4\" media=\"test-$Number$.m4s\""),
        "{live}"
    );
    assert!(live.contains("codecs=\"avc1."), "{live}");
    let url = format!("http://127.0.0.1:{http}/live/test.mpd");
    let codecs = ffprobe_codecs(&url).unwrap_or_else(|e| panic!("ffprobe {url}: {e}\n{live}"));
    assert_eq!(codecs, vec!["aac", "h264"], "{live}");
    // The API names the MPD of the stream.
    let mut s = std::net::TcpStream::connect(addr(api)).expect("api");
    std::io::Write::write_all(
        &mut s,
        b"GET /api/v1/hls HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .expect("send");
    let mut raw = String::new();
    std::io::Read::read_to_string(&mut s, &mut raw).expect("read");
    assert!(raw.contains("\"mpd_url\":\"live/test.mpd\""), "{raw}");
    assert!(raw.contains("\"format\":\"fmp4\""), "{raw}");
    publisher.expect_success(Duration::from_secs(60));
    let ended = wait_for(Duration::from_secs(10), || {
        let text = fs::read_to_string(&mpd).ok()?;
        text.contains("type=\"static\"").then_some(text)
    })
    .expect("a static MPD once the stream ended");
    let out = server.tmp("dash-recorded.mkv");
    let st = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-i",
            &url,
            "-c",
            "copy",
            "-y",
        ])
        .arg(&out)
        .stdin(Stdio::null())
        .status()
        .expect("run ffmpeg");
    assert!(
        st.success(),
        "ffmpeg could not read the ended MPD:\n{ended}"
    );
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "default=nw=1:nk=1",
        ])
        .arg(&out)
        .output()
        .expect("ffprobe");
    let secs: f64 = String::from_utf8_lossy(&probe.stdout)
        .trim()
        .parse()
        .expect("duration");
    assert!(
        (secs - 10.0).abs() < 1.5,
        "recorded {secs} s of a 10 s clip:\n{ended}"
    );
    drop(server);
    let _ = fs::remove_dir_all(root.parent().expect("parent"));
}
