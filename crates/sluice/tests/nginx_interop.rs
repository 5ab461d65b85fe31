//! sluice's cluster against another RTMP server: nginx with its RTMP module (Debian's
//! `libnginx-mod-rtmp`) as the origin of a sluice edge, and as a forward destination.
//!
//! Needs `nginx`, the module, ffmpeg and ffprobe; panics with what to install otherwise.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use media::codec::{AudioCodec, VideoCodec};

/// Debian's path of the module; nginx -V does not list dynamic modules.
const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
const PLAY_TIMEOUT: Duration = Duration::from_secs(30);

fn require_nginx() {
    let ok = Command::new("nginx")
        .arg("-v")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok && Path::new(RTMP_MODULE).exists(),
        "nginx with the RTMP module is needed: apt-get install nginx libnginx-mod-rtmp \
         (expected {RTMP_MODULE})"
    );
}

/// nginx in the foreground, one process, everything in its own temp dir; killed on drop.
struct Nginx {
    port: u16,
    dir: PathBuf,
    _proc: Proc,
}

impl Nginx {
    fn start(tag: &str) -> Nginx {
        require_nginx();
        let dir = unique_dir(tag);
        let port = free_port();
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "load_module {RTMP_MODULE};
daemon off;
master_process off;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        application live {{ live on; wait_key on; wait_video on; }}
    }}
}}
",
                dir = dir.display()
            ),
        )
        .expect("write nginx.conf");
        let mut cmd = Command::new("nginx");
        cmd.arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf);
        let mut proc = Proc::spawn("nginx", cmd, dir.join("nginx.out"));
        let up = wait_for(Duration::from_secs(10), || {
            if !proc.is_running() {
                return Some(false);
            }
            TcpStream::connect_timeout(&addr(port), Duration::from_millis(200))
                .ok()
                .map(|_| true)
        });
        assert_eq!(
            up,
            Some(true),
            "nginx did not start:\n{}\n{}",
            proc.output(),
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        Nginx {
            port,
            dir,
            _proc: proc,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- nginx error log -----\n{}",
                std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
            );
        }
    }
}

fn looped_publisher(log_dir: &Path, url: &str, tag: &str) -> Proc {
    let input = fixture(AVC_AAC);
    let input = input.to_str().expect("utf-8 fixture path");
    Proc::spawn(
        &format!("ffmpeg looped publisher {tag}"),
        ffmpeg(&[
            "-re",
            "-stream_loop",
            "-1",
            "-i",
            input,
            "-c",
            "copy",
            "-f",
            "flv",
            url,
        ]),
        log_dir.join(format!("publisher-{tag}.log")),
    )
}

fn player(dir: &Path, url: &str, tag: &str) -> (Proc, PathBuf) {
    let out = dir.join(format!("player-{tag}.flv"));
    let out_s = out.to_str().expect("utf-8 temp path").to_owned();
    let proc = Proc::spawn(
        &format!("ffmpeg player {tag}"),
        ffmpeg(&[
            "-i", url, "-t", "4", "-c", "copy", "-f", "flv", "-y", &out_s,
        ]),
        dir.join(format!("player-{tag}.log")),
    );
    (proc, out)
}

fn assert_good_recording(label: &str, path: &Path) {
    let s = flv_stats(path);
    assert_eq!(s.video_codec, Some(VideoCodec::Avc), "{label}: {s:?}");
    assert_eq!(s.audio_codec, Some(AudioCodec::Aac), "{label}: {s:?}");
    assert_eq!(s.width_height, Some((640, 360)), "{label}: {s:?}");
    assert!(s.video_seq_before_frames, "{label}: {s:?}");
    assert!(s.audio_seq_before_frames, "{label}: {s:?}");
    assert_eq!(s.first_video_frame_key, Some(true), "{label}: {s:?}");
    assert_eq!(s.video_ts_regressions, 0, "{label}: {s:?}");
    assert_eq!(s.audio_ts_regressions, 0, "{label}: {s:?}");
    let span = s
        .last_ts
        .unwrap_or(0)
        .saturating_sub(s.first_ts.unwrap_or(0));
    assert!(span >= 3000, "{label}: only {span} ms: {s:?}");
}

const BASE: &str = "daemon off;\nsrs_log_tank console;\nmax_connections 100;\n";

#[test]
fn edge_pulls_from_nginx() {
    require_ffmpeg();
    let nginx = Nginx::start("ngx-origin");
    let edge = Server::start_with(
        "ngx-edge",
        &format!(
            "{BASE}vhost __defaultVhost__ {{ cluster {{ mode remote; origin 127.0.0.1:{}; }} }}\n",
            nginx.port
        ),
    );
    let _publisher = looped_publisher(&nginx.dir, &nginx.url("live/n"), "nginx");
    std::thread::sleep(Duration::from_millis(1500));
    let (mut p, f) = player(&edge.dir, &edge.url("live/n"), "edge");
    p.expect_success(PLAY_TIMEOUT);
    assert_good_recording("sluice edge of nginx", &f);
}

#[test]
fn forward_into_nginx() {
    require_ffmpeg();
    let nginx = Nginx::start("ngx-dest");
    let origin = Server::start_with(
        "ngx-fw",
        &format!(
            "{BASE}vhost __defaultVhost__ {{ forward {{ enabled on; destination 127.0.0.1:{}; }} }}\n",
            nginx.port
        ),
    );
    let _publisher = looped_publisher(&origin.dir, &origin.url("live/fw"), "sluice");
    std::thread::sleep(Duration::from_millis(1500));
    let (mut p, f) = player(&origin.dir, &nginx.url("live/fw"), "nginx");
    p.expect_success(PLAY_TIMEOUT);
    assert_good_recording("nginx fed by sluice's forward", &f);
}
