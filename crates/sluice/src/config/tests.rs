use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::parser::{parse_tree, Directive};
use super::types::*;
use super::*;

const VECTORS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/vectors.json"
));
const DEFAULT_CONF: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../conf/sluice.conf"
));
const FULL_CONF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../conf/full.conf");

fn err_of(text: &str) -> ConfigError {
    match Config::parse(text, "t.conf") {
        Ok(c) => panic!("expected an error for {text:?}, got {c:?}"),
        Err(e) => e,
    }
}

fn ok(text: &str) -> Config {
    match Config::parse(text, "t.conf") {
        Ok(c) => c,
        Err(e) => panic!("{text:?}: {e}"),
    }
}

/// A fresh scratch directory per test (no tempfile dependency).
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-config-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(&p, text).expect("write");
    p
}

// ---------------------------------------------------------------- vectors

fn compare(got: &[Directive], want: &serde_json::Value, vector: &str) {
    let want = want.as_array().expect("array");
    assert_eq!(got.len(), want.len(), "{vector}: directive count");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.name, w["name"].as_str().expect("name"), "{vector}");
        let args: Vec<&str> = w["args"]
            .as_array()
            .expect("args")
            .iter()
            .map(|a| a.as_str().expect("arg"))
            .collect();
        assert_eq!(g.args, args, "{vector}: args of {}", g.name);
        if let Some(line) = w.get("line") {
            assert_eq!(u64::from(g.line), line.as_u64().expect("line"), "{vector}");
        }
        compare(&g.children, &w["children"], vector);
    }
}

#[test]
fn config_vectors() {
    let v: serde_json::Value = serde_json::from_str(VECTORS).expect("vectors.json");
    let mut n = 0;
    for vec in v["vectors"].as_array().expect("vectors") {
        if vec["category"] != "config" {
            continue;
        }
        n += 1;
        let name = vec["name"].as_str().expect("name");
        let hex = vec["input_hex"].as_str().expect("hex");
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        let text = String::from_utf8(bytes).expect("utf8");
        assert_eq!(text, vec["input_text"].as_str().expect("text"), "{name}");
        let got = parse_tree(&text, "v.conf");
        if vec["expected"]["ok"].as_bool().expect("ok") {
            let got = got.unwrap_or_else(|e| panic!("{name}: {e}"));
            compare(&got, &vec["expected"]["directives"], name);
        } else {
            assert!(got.is_err(), "{name}: expected an error, got {got:?}");
        }
    }
    assert_eq!(n, 6, "config vectors");
}

// ---------------------------------------------------------------- grammar

#[test]
fn quoting_and_comments() {
    let t = parse_tree(
        "a 'x y' \"q\\\"uote\" 'back\\slash' url#frag; # comment\nb\n  c\t d ;",
        "t",
    )
    .expect("parse");
    assert_eq!(t[0].args, ["x y", "q\"uote", "back\\slash", "url#frag"]);
    assert_eq!((t[1].name.as_str(), t[1].line, t[1].end_line), ("b", 2, 3));
    assert_eq!(t[1].args, ["c", "d"]);
    // Quoted empty string and quotes spanning lines.
    let t = parse_tree("a \"\" 'l1\nl2';\nb;", "t").expect("parse");
    assert_eq!(t[0].args, ["", "l1\nl2"]);
    assert_eq!(t[1].line, 3);
    // Block vs no block.
    let t = parse_tree("v x {} w x;", "t").expect("parse");
    assert!(t[0].block && !t[1].block);
}

#[test]
fn syntax_errors_have_lines() {
    let cases: &[(&str, u32, &str)] = &[
        ("a;\nb", 2, "missing \";\""),
        ("a;\nb {\n c;\n", 2, "never closed"),
        ("a;\n}", 2, "unexpected \"}\""),
        ("a;\n;", 2, "unexpected \";\""),
        ("\n{ a; }", 2, "without a name"),
        ("x {\n a b\n}", 3, "missing \";\" after \"a\" (line 2)"),
        ("a \"open;\n\n", 1, "unterminated"),
        ("a \"x\"y;", 1, "after a quoted argument"),
    ];
    for (text, line, msg) in cases {
        let e = err_of(text);
        assert!(matches!(e, ConfigError::Syntax { .. }), "{text:?}: {e:?}");
        assert_eq!(e.line(), Some(*line), "{text:?}: {e}");
        assert!(e.to_string().contains(msg), "{text:?}: {e}");
        assert!(
            e.to_string().starts_with(&format!("t.conf:{line}: ")),
            "{e}"
        );
    }
}

#[test]
fn nesting_is_bounded() {
    let deep = "a {".repeat(100) + &"}".repeat(100);
    let e = err_of(&deep);
    assert!(e.to_string().contains("nested deeper"), "{e}");
}

// ---------------------------------------------------------------- typed values

#[test]
fn defaults_without_file_content() {
    let c = ok("");
    assert_eq!(c.listen, vec![SocketAddr::from(([0, 0, 0, 0], 1935))]);
    assert_eq!(c.max_connections, 1000);
    assert_eq!(c.chunk_size, 60000);
    assert!(!c.daemon);
    assert_eq!(c.pid, PathBuf::from("./objs/sluice.pid"));
    assert_eq!(c.log.tank, LogTank::Console);
    assert_eq!(c.log.level, LogLevel::Trace);
    assert_eq!(c.log.file, PathBuf::from("./objs/srs.log"));
    assert_eq!(c.vhosts.len(), 1);
    let v = &c.vhosts[0];
    assert_eq!(v.name, DEFAULT_VHOST);
    assert!(v.enabled && v.gop_cache && v.effective_gop_cache());
    assert_eq!(v.effective_queue_length(), 30.0);
    assert_eq!(v.time_jitter, TimeJitter::Full);
    assert!(v.tcp_nodelay);
    assert_eq!(v.play.mw_latency, Duration::from_millis(100));
    assert_eq!(v.publish.firstpkt_timeout, Duration::from_millis(20000));
    assert_eq!(v.publish.normal_timeout, Duration::from_millis(5000));
    assert!(c.warnings.is_empty());
    assert_eq!(c.source, None);
}

#[test]
fn embedded_default_conf() {
    let c = ok(DEFAULT_CONF);
    assert_eq!(c.listen, vec![SocketAddr::from(([0, 0, 0, 0], 1935))]);
    assert!(!c.daemon);
    assert_eq!(c.log.tank, LogTank::Console);
    assert_eq!(c.max_connections, 1000);
    let v = c.resolve_vhost("anything").expect("default vhost");
    assert_eq!(v.name, DEFAULT_VHOST);
    assert!(v.effective_gop_cache());
    assert_eq!(v.effective_queue_length(), 10.0);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // HTTP API, HTTP server, HTTP-FLV and HLS are on out of the box.
    assert!(c.http_api.enabled && c.http_api.crossdomain);
    assert_eq!(c.http_api.listen, SocketAddr::from(([0, 0, 0, 0], 1985)));
    assert_eq!(c.http_api.auth, None);
    assert!(c.http_server.enabled);
    assert_eq!(c.http_server.listen, SocketAddr::from(([0, 0, 0, 0], 8080)));
    assert_eq!(c.http_server.dir, PathBuf::from("./objs/nginx/html"));
    assert!(v.http_remux.enabled);
    assert_eq!(v.http_remux.mount, "[vhost]/[app]/[stream].flv");
    assert!(v.hls.enabled);
    assert_eq!(v.hls.fragment, Duration::from_secs(10));
    assert_eq!(v.hls.window, Duration::from_secs(60));
    assert_eq!(v.hls.path, c.http_server.dir);
    assert_eq!(
        HlsConfig {
            enabled: false,
            ..v.hls.clone()
        },
        HlsConfig::default()
    );
}

#[test]
fn full_conf_is_all_defaults() {
    let c = Config::load(Path::new(FULL_CONF)).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.source.as_deref(), Some(Path::new(FULL_CONF)));
    let d = Config::default();
    assert_eq!(Config { source: None, ..c }, d);
}

#[test]
fn listen_forms() {
    let c = ok("listen 1935 127.0.0.1:1936;\nlisten [::]:1937;\nrtmp { listen [::1]:0; }");
    let want: Vec<SocketAddr> = vec![
        "0.0.0.0:1935".parse().expect("a"),
        "127.0.0.1:1936".parse().expect("a"),
        "[::]:1937".parse().expect("a"),
        "[::1]:0".parse().expect("a"),
    ];
    assert_eq!(c.listen, want);
    for bad in [
        "listen;",
        "listen 70000;",
        "listen localhost:1935;",
        "listen ::1:5;",
    ] {
        assert!(matches!(err_of(bad), ConfigError::Invalid { .. }), "{bad}");
    }
    let e = err_of("listen 1935;\nlisten 0.0.0.0:1935;");
    assert_eq!(e.line(), Some(2));
    assert!(e.to_string().contains("twice"), "{e}");
}

#[test]
fn global_values() {
    let c = ok(
        "max_connections 5; chunk_size 4096; daemon on; pid /run/s.pid;\n\
         srs_log_tank file; srs_log_level warn; srs_log_file /var/log/s.log;",
    );
    assert_eq!(c.max_connections, 5);
    assert_eq!(c.chunk_size, 4096);
    assert!(c.daemon);
    assert_eq!(c.pid, PathBuf::from("/run/s.pid"));
    assert_eq!(c.log.tank, LogTank::File);
    assert_eq!(c.log.level, LogLevel::Warn);
    assert_eq!(c.log.file, PathBuf::from("/var/log/s.log"));
    assert_eq!(ok("rtmp { chunk_size 128; }").chunk_size, 128);
    assert_eq!(ok("chunk_size 65536;").chunk_size, 65536);
}

/// Sluice's own per-IP cap: on by default, 0 turns it off, negative and huge values
/// are refused like `max_connections`'s.
#[test]
fn max_connections_per_ip() {
    assert_eq!(ok("").max_connections_per_ip, 256);
    assert_eq!(ok(DEFAULT_CONF).max_connections_per_ip, 256);
    assert_eq!(ok("max_connections_per_ip 0;").max_connections_per_ip, 0);
    assert_eq!(ok("max_connections_per_ip 8;").max_connections_per_ip, 8);
    for (text, want) in [
        ("max_connections_per_ip -1;", "invalid value \"-1\""),
        ("max_connections_per_ip 1000001;", "out of range"),
        ("max_connections_per_ip;", "exactly one value"),
    ] {
        let e = Config::parse(text, "t.conf").expect_err(text);
        assert!(e.to_string().contains(want), "{text}: {e}");
    }
}

/// `pithy_print_ms`: SRS's 10 s by default, 0 turns it off, no longer a warning;
/// nonsense is refused.
#[test]
fn pithy_print_ms() {
    let ten = Duration::from_secs(10);
    assert_eq!(ok("").pithy_print, ten);
    assert_eq!(ok(DEFAULT_CONF).pithy_print, ten);
    assert_eq!(ok("pithy_print_ms 0;").pithy_print, Duration::ZERO);
    let c = ok("pithy_print_ms 1500;");
    assert_eq!(c.pithy_print, Duration::from_millis(1500));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    for (text, want) in [
        ("pithy_print_ms -1;", "invalid value \"-1\""),
        ("pithy_print_ms 86400001;", "out of range"),
    ] {
        let e = Config::parse(text, "t.conf").expect_err(text);
        assert!(e.to_string().contains(want), "{text}: {e}");
    }
}

#[test]
fn bad_values_name_file_and_line() {
    let cases: &[(&str, u32, &str)] = &[
        (
            "\nvhost a {\n time_jitter foo;\n}",
            3,
            "t.conf:3: time_jitter: invalid value \"foo\" (expected full, zero or off)",
        ),
        ("chunk_size 127;", 1, "out of range"),
        ("chunk_size 65537;", 1, "out of range"),
        ("chunk_size -1;", 1, "invalid value \"-1\""),
        ("chunk_size 1 2;", 1, "exactly one value, got 2"),
        ("chunk_size 99999999999999999999999;", 1, "invalid value"),
        ("daemon yes;", 1, "expected on or off"),
        ("daemon on { }", 1, "does not take a { } block"),
        ("max_connections 0;", 1, "out of range"),
        ("srs_log_tank syslog;", 1, "console or file"),
        (
            "srs_log_level debug;",
            1,
            "verbose, info, trace, warn or error",
        ),
        ("pid '';", 1, "empty path"),
        ("vhost a;", 1, "expected a { } block"),
        ("vhost { }", 1, "expected 1 argument"),
        ("vhost a { queue_length 0; }", 1, "out of range"),
        ("vhost a { queue_length nan; }", 1, "invalid value"),
        ("vhost a { queue_length inf; }", 1, "invalid value"),
        ("vhost a { queue_length 3601; }", 1, "out of range"),
        (
            "vhost a {\n play {\n  mw_latency 10001;\n }\n}",
            3,
            "out of range",
        ),
        (
            "vhost a { publish { firstpkt_timeout 0; } }",
            1,
            "out of range",
        ),
        ("vhost a { play; }", 1, "expected a { } block"),
        // Forgotten ';': the next line's name becomes an argument.
        (
            "daemon on\nmax_connections 5;",
            1,
            "is a \";\" missing at the end of line 1?",
        ),
    ];
    for (text, line, msg) in cases {
        let e = err_of(text);
        assert_eq!(e.line(), Some(*line), "{text:?}: {e}");
        assert!(e.to_string().contains(msg), "{text:?}: {e}");
    }
}

#[test]
fn vhost_values_and_overrides() {
    let c = ok("vhost live {\n chunk_size 4096; gop_cache off; queue_length 2.5; \
         time_jitter zero; tcp_nodelay off;\n play { gop_cache on; queue_length 1; time_jitter off; mw_latency 0; }\n \
         publish { firstpkt_timeout 3000; normal_timeout 700; }\n}");
    let v = c.resolve_vhost("live").expect("live");
    assert_eq!(v.name, "live");
    assert_eq!(v.chunk_size, Some(4096));
    assert!(!v.gop_cache && v.effective_gop_cache());
    assert_eq!(v.queue_length, 2.5);
    assert_eq!(v.effective_queue_length(), 1.0);
    assert_eq!(v.effective_time_jitter(), TimeJitter::Off);
    assert_eq!(v.time_jitter, TimeJitter::Zero);
    assert!(!v.tcp_nodelay);
    assert_eq!(v.play.mw_latency, Duration::ZERO);
    assert_eq!(v.publish.firstpkt_timeout, Duration::from_millis(3000));
    assert_eq!(v.publish.normal_timeout, Duration::from_millis(700));
    // The default vhost is added.
    assert!(c.vhost(DEFAULT_VHOST).is_some());
    assert_eq!(c.vhosts.len(), 2);
}

#[test]
fn legacy_vhost_spellings() {
    let c = ok("vhost a { mw_latency 350; publish_1stpkt_timeout 1000; publish_normal_timeout 2000; }\n\
         vhost b { mw_latency 350; publish_normal_timeout 2000; play { mw_latency 7; } publish { normal_timeout 9; } }");
    let a = c.vhost("a").expect("a");
    assert_eq!(a.play.mw_latency, Duration::from_millis(350));
    assert_eq!(a.publish.firstpkt_timeout, Duration::from_millis(1000));
    assert_eq!(a.publish.normal_timeout, Duration::from_millis(2000));
    let b = c.vhost("b").expect("b");
    assert_eq!(b.play.mw_latency, Duration::from_millis(7));
    assert_eq!(b.publish.normal_timeout, Duration::from_millis(9));
}

#[test]
fn vhost_resolution() {
    let c = ok("vhost a { } vhost off.example { enabled off; }");
    assert_eq!(c.resolve_vhost("a").map(|v| v.name.as_str()), Some("a"));
    assert_eq!(
        c.resolve_vhost("A").map(|v| v.name.as_str()),
        Some(DEFAULT_VHOST)
    );
    assert_eq!(
        c.resolve_vhost("off.example").map(|v| v.name.as_str()),
        Some(DEFAULT_VHOST)
    );
    let c = ok("vhost __defaultVhost__ { enabled off; } vhost a { }");
    assert_eq!(c.vhosts.len(), 2);
    assert!(c.resolve_vhost("zzz").is_none());
    assert_eq!(c.resolve_vhost("a").map(|v| v.name.as_str()), Some("a"));
}

// ---------------------------------------------------------------- unknown directives

#[test]
fn srs_directives_warn_typos_fail() {
    let text = "tencentcloud_apm { enabled on; }\nstats { network 0; }\nutc_time off;\n\
                vhost x {\n hds { enabled on; }\n exec { }\n http_static { }\n\
                 play { mix_correct on; mw_msgs 8; }\n publish { mr on; parse_sps on; kickoff_for_idle 0; }\n}";
    let c = ok(text);
    assert_eq!(c.warnings.len(), 11, "{:#?}", c.warnings);
    assert_eq!(
        c.warnings[0],
        "t.conf:1: tencentcloud_apm: known SRS directive, not implemented by sluice yet; ignored"
    );
    assert!(
        c.warnings[3].starts_with("t.conf:5: vhost.hds:"),
        "{}",
        c.warnings[3]
    );
    assert!(
        c.warnings[6].starts_with("t.conf:8: vhost.play.mix_correct:"),
        "{}",
        c.warnings[6]
    );

    let cases: &[(&str, u32, &str)] = &[
        ("\nlisen 1935;", 2, "t.conf:2: unknown directive \"lisen\""),
        (
            "vhost v {\n gop_cahce on;\n}",
            2,
            "\"gop_cahce\" in vhost v",
        ),
        ("vhost v {\n play {\n\n  gop on; } }", 4, "\"gop\" in play"),
        (
            "vhost v { publish { firstpkt 1; } }",
            1,
            "\"firstpkt\" in publish",
        ),
        ("rtmp { max_connections 3; }", 1, "in rtmp"),
        ("enabled on;", 1, "unknown directive \"enabled\""),
    ];
    for (text, line, msg) in cases {
        let e = err_of(text);
        assert!(matches!(e, ConfigError::UnknownDirective { .. }), "{e:?}");
        assert_eq!(e.line(), Some(*line), "{text:?}: {e}");
        assert!(e.to_string().contains(msg), "{text:?}: {e}");
    }
}

// ---------------------------------------------------------------- files and includes

#[test]
fn load_with_includes() {
    let dir = scratch("inc");
    let main = write(
        &dir,
        "main.conf",
        "include sub/global.conf;\nvhost a {\n    include sub/vhost_a.conf;\n}\n",
    );
    // Relative to the including file's directory (sub/), not to main.conf's.
    write(
        &dir,
        "sub/global.conf",
        "max_connections 7;\ninclude more.conf;\n",
    );
    write(&dir, "sub/more.conf", "\n\nchunk_size 1000;\n");
    write(&dir, "sub/vhost_a.conf", "gop_cache off;\n");
    let c = Config::load(&main).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.max_connections, 7);
    assert_eq!(c.chunk_size, 1000);
    assert!(!c.vhost("a").expect("a").gop_cache);
    assert_eq!(c.source.as_deref(), Some(main.as_path()));

    // Errors inside an included file name that file and its line.
    write(&dir, "sub/more.conf", "\n\nchunk_size 10;\n");
    let e = Config::load(&main).expect_err("bad value");
    let more = dir.join("sub").join("more.conf");
    assert!(
        e.to_string()
            .starts_with(&format!("{}:3: chunk_size:", more.display())),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn include_errors() {
    let dir = scratch("incerr");
    let main = write(&dir, "main.conf", "daemon off;\n\ninclude missing.conf;\n");
    let e = Config::load(&main).expect_err("missing");
    assert!(matches!(e, ConfigError::Include { .. }), "{e:?}");
    assert_eq!(e.line(), Some(3));
    assert!(
        e.to_string()
            .starts_with(&format!("{}:3: include \"missing.conf\"", main.display())),
        "{e}"
    );

    // a -> b -> a
    let a = write(&dir, "a.conf", "include b.conf;\n");
    let b = write(&dir, "b.conf", "\ninclude a.conf;\n");
    let e = Config::load(&a).expect_err("cycle");
    assert!(e.to_string().contains("include cycle"), "{e}");
    assert!(
        e.to_string().starts_with(&format!("{}:2:", b.display())),
        "{e}"
    );

    // Self include.
    let s = write(&dir, "self.conf", "include self.conf;");
    let e = Config::load(&s).expect_err("self");
    assert!(e.to_string().contains("include cycle"), "{e}");

    // Depth: a chain of distinct files longer than the limit.
    for i in 0..20 {
        write(
            &dir,
            &format!("d{i}.conf"),
            &format!("include d{}.conf;", i + 1),
        );
    }
    write(&dir, "d20.conf", "");
    let e = Config::load(&dir.join("d0.conf")).expect_err("depth");
    assert!(e.to_string().contains("nested deeper"), "{e}");

    // Include bomb: each file includes the next one 10 times.
    for i in 0..6 {
        write(
            &dir,
            &format!("bomb{i}.conf"),
            &format!(
                "include {};\n",
                vec![format!("bomb{}.conf", i + 1); 10].join(" ")
            ),
        );
    }
    write(&dir, "bomb6.conf", "utc_time off;\n");
    let e = Config::load(&dir.join("bomb0.conf")).expect_err("bomb");
    assert!(e.to_string().contains("directives"), "{e}");

    // Include forms.
    assert!(err_of("include;")
        .to_string()
        .contains("expected a file name"));
    assert!(err_of("include x { }").to_string().contains("block"));

    // Missing top-level file: Io error naming it.
    let gone = dir.join("nope.conf");
    let e = Config::load(&gone).expect_err("io");
    assert!(matches!(e, ConfigError::Io { .. }));
    assert!(
        e.to_string().starts_with(&gone.display().to_string()),
        "{e}"
    );

    // Not UTF-8.
    let bin = dir.join("bin.conf");
    std::fs::write(&bin, b"daemon on;\n\xff\xfe;").expect("write");
    let e = Config::load(&bin).expect_err("utf8");
    assert!(e.to_string().contains("not valid UTF-8 (line 2"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------- hostile input

/// xorshift64*: deterministic, dependency-free randomness.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn random_input_never_panics() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    // Raw bytes, lossily decoded.
    for _ in 0..3000 {
        let len = (rng.next() % 200) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let text = String::from_utf8_lossy(&bytes);
        let _ = Config::parse(&text, "r.conf");
    }
    // Token soup, to get past the lexer into the typed stage.
    const PIECES: &[&str] = &[
        "{",
        "}",
        ";",
        " ",
        "\n",
        "#",
        "\"",
        "'",
        "\\",
        "vhost",
        "play",
        "publish",
        "listen",
        "1935",
        "[::]:1",
        "on",
        "off",
        "gop_cache",
        "queue_length",
        "0.5",
        "-1",
        "time_jitter",
        "full",
        "chunk_size",
        "60000",
        "mw_latency",
        "http_api",
        "http_server",
        "http_remux",
        "mount",
        "[vhost]/[app]/[stream].flv",
        "x.ts",
        "hls",
        "hls_fragment",
        "hls_window",
        "hls_ts_file",
        "[seq].ts",
        "[bad",
        "auth",
        "enabled",
        "é",
        "__defaultVhost__",
        "daemon",
        "include",
        "rtmp",
        "firstpkt_timeout",
        "1e9",
        "18446744073709551616",
    ];
    let mut oks = 0;
    for _ in 0..20000 {
        let n = (rng.next() % 30) as usize;
        let mut s = String::new();
        for _ in 0..n {
            s.push_str(PIECES[(rng.next() as usize) % PIECES.len()]);
            if rng.next() & 1 == 0 {
                s.push(' ');
            }
        }
        // Never let soup touch the filesystem via include.
        if s.contains("include") {
            continue;
        }
        if let Ok(c) = Config::parse(&s, "r.conf") {
            oks += 1;
            assert!(c.vhosts.iter().any(|v| v.name == DEFAULT_VHOST));
        }
    }
    assert!(oks > 0);
}

// ---------------------------------------------------------------- http_api, http_server

#[test]
fn http_defaults_follow_srs() {
    let c = ok("");
    let api = &c.http_api;
    assert!(!api.enabled && api.crossdomain);
    assert_eq!(api.listen, SocketAddr::from(([0, 0, 0, 0], 1985)));
    assert_eq!(api.auth, None);
    assert_eq!(api.raw_api, RawApiConfig::default());
    assert!(!api.raw_api.enabled && !api.raw_api.allow_reload);
    assert!(!api.raw_api.allow_query && !api.raw_api.allow_update);
    let s = &c.http_server;
    assert!(!s.enabled && s.crossdomain);
    assert_eq!(s.listen, SocketAddr::from(([0, 0, 0, 0], 8080)));
    assert_eq!(s.dir, PathBuf::from("./objs/nginx/html"));
    let v = &c.vhosts[0];
    assert_eq!(v.http_remux, HttpRemuxConfig::default());
    assert_eq!(
        (v.http_remux.enabled, v.http_remux.mount.as_str()),
        (false, "[vhost]/[app]/[stream].flv")
    );
    assert!(v.http_remux.has_audio && v.http_remux.has_video && v.http_remux.guess_has_av);
    // Empty blocks change nothing.
    let c =
        ok("http_api { auth { } raw_api { } } http_server { } vhost a { http_remux { } hls { } }");
    assert_eq!(c.http_api, HttpApiConfig::default());
    assert_eq!(c.http_server, HttpServerConfig::default());
    let a = c.vhost("a").expect("a");
    assert_eq!(a.http_remux, HttpRemuxConfig::default());
    assert_eq!(a.hls, HlsConfig::default());
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn http_api_values() {
    let c = ok(
        "http_api {\n enabled on; listen 127.0.0.1:1986; crossdomain off;\n \
         auth { enabled on; username admin; password 'p w;d'; }\n \
         raw_api { enabled on; allow_reload on; allow_query on; allow_update on; }\n \
         https { enabled on; listen 1990; }\n}",
    );
    let api = &c.http_api;
    assert!(api.enabled && !api.crossdomain);
    assert_eq!(
        api.listen,
        "127.0.0.1:1986".parse::<SocketAddr>().expect("a")
    );
    assert_eq!(
        api.auth,
        Some(HttpAuth {
            username: "admin".into(),
            password: "p w;d".into()
        })
    );
    assert_eq!(
        api.raw_api,
        RawApiConfig {
            enabled: true,
            allow_reload: true,
            allow_query: true,
            allow_update: true
        }
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert!(api.https.enabled);
    assert_eq!(api.https.listen, SocketAddr::from(([0, 0, 0, 0], 1990)));
    assert_eq!(api.https.cert, PathBuf::from("./conf/server.crt"));
    // Disabled auth keeps no credentials.
    let c = ok("http_api { auth { enabled off; username u; password p; } }");
    assert_eq!(c.http_api.auth, None);
    let c = ok("http_api { listen [::]:0; }");
    assert_eq!(
        c.http_api.listen,
        "[::]:0".parse::<SocketAddr>().expect("a")
    );
}

#[test]
fn http_server_values() {
    let c = ok(
        "http_server { enabled on; listen [::1]:80; dir /srv/www; crossdomain off;\n https { } }",
    );
    let s = &c.http_server;
    assert!(s.enabled && !s.crossdomain);
    assert_eq!(s.listen, "[::1]:80".parse::<SocketAddr>().expect("a"));
    assert_eq!(s.dir, PathBuf::from("/srv/www"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // SRS's defaults: off, port 8088, ./conf/server.{key,crt}.
    assert!(!s.https.enabled);
    assert_eq!(s.https.listen, SocketAddr::from(([0, 0, 0, 0], 8088)));
    assert_eq!(s.https.key, PathBuf::from("./conf/server.key"));
    let c = ok(
        "rtmps { enabled on; listen 127.0.0.1:1937; key k.pem; cert c.pem; }
vhost v { tls { cert v.crt; key v.key; } }",
    );
    assert!(c.rtmps.enabled);
    assert_eq!(
        c.rtmps.listen,
        "127.0.0.1:1937".parse::<SocketAddr>().expect("a")
    );
    assert_eq!(
        c.vhost("v").and_then(|v| v.tls.clone()).map(|t| t.cert),
        Some(PathBuf::from("v.crt"))
    );
    for (conf, line, msg) in [
        ("rtmps { listen 1; keyy x; }", 1, "keyy"),
        ("vhost v { tls { cert a; } }", 1, "needs both cert and key"),
    ] {
        let e = err_of(conf).to_string();
        assert!(
            e.contains(&format!("t.conf:{line}")) && e.contains(msg),
            "{conf}: {e}"
        );
    }
    // SRS 1 spelling.
    let c = ok("http_stream { enabled on; listen 81; }");
    assert!(c.http_server.enabled);
    assert_eq!(c.http_server.listen.port(), 81);
    assert!(c.warnings.is_empty());
}

#[test]
fn http_bad_values_name_file_and_line() {
    let cases: &[(&str, u32, &str)] = &[
        ("http_api;", 1, "expected a { } block"),
        ("http_api x { }", 1, "expected 0 argument(s)"),
        (
            "http_api {\n enabled yes;\n}",
            2,
            "t.conf:2: enabled: invalid value \"yes\"",
        ),
        (
            "http_api {\n listen 1985 1986;\n}",
            2,
            "exactly one value, got 2",
        ),
        ("http_api { listen 99999; }", 1, "invalid value \"99999\""),
        ("http_api { listen localhost:1985; }", 1, "IPV4:PORT"),
        ("http_api { crossdomain 1; }", 1, "on or off"),
        (
            "http_api {\n auth {\n  enabled on;\n  username admin;\n }\n}",
            2,
            "auth: enabled, but username or password is missing or empty",
        ),
        (
            "http_api { auth { enabled on; username ''; password p; } }",
            1,
            "missing or empty",
        ),
        (
            "http_api {\n auth {\n  username a:b;\n } }",
            3,
            "must not contain \":\"",
        ),
        (
            "http_api { auth { user x; } }",
            1,
            "unknown directive \"user\" in http_api.auth",
        ),
        ("http_api { auth; }", 1, "expected a { } block"),
        (
            "http_api { raw_api { allow_reload maybe; } }",
            1,
            "on or off",
        ),
        (
            "http_api { raw_api { allow_all on; } }",
            1,
            "\"allow_all\" in http_api.raw_api",
        ),
        (
            "http_api {\n\n stats on; }",
            3,
            "unknown directive \"stats\" in http_api",
        ),
        ("http_server {\n dir '';\n}", 2, "empty path"),
        ("http_server { listen; }", 1, "exactly one value, got 0"),
        ("http_server { mount /x; }", 1, "\"mount\" in http_server"),
    ];
    for (text, line, msg) in cases {
        let e = err_of(text);
        assert_eq!(e.line(), Some(*line), "{text:?}: {e}");
        assert!(e.to_string().contains(msg), "{text:?}: {e}");
        assert!(
            e.to_string().starts_with(&format!("t.conf:{line}: ")),
            "{e}"
        );
    }
}

// ---------------------------------------------------------------- http_remux

#[test]
fn http_remux_values() {
    let c = ok("vhost a {\n http_remux {\n  enabled on; mount /[app]/[stream].flv;\n  \
         has_audio off; has_video off; guess_has_av off;\n  fast_cache 30;\n  drop_if_not_match off;\n }\n}");
    let r = &c.vhost("a").expect("a").http_remux;
    assert!(r.enabled && !r.has_audio && !r.has_video && !r.guess_has_av);
    assert_eq!(r.mount, "/[app]/[stream].flv");
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(c.warnings[0].starts_with("t.conf:5: vhost.http_remux.fast_cache:"));
    assert!(c.warnings[1].starts_with("t.conf:6: vhost.http_remux.drop_if_not_match:"));
    // SRS 2's hstrs: always on.
    let c = ok("vhost a { http_remux { hstrs on; } }");
    assert!(
        c.warnings[0].contains("hstrs: always on"),
        "{:?}",
        c.warnings
    );
    for m in [
        "/live/livestream.flv",
        "example.com/[app]/[stream].flv",
        "[vhost]/x.flv",
        "[vhost]/[app]/[stream].ts",
        "/[app]/[stream].aac",
        "/[app]/[stream].mp3",
    ] {
        let c = ok(&format!("vhost a {{ http_remux {{ mount {m}; }} }}"));
        assert_eq!(c.vhost("a").expect("a").http_remux.mount, m);
    }
}

#[test]
fn http_remux_bad_values() {
    let cases: &[(&str, u32, &str)] = &[
        (
            "vhost a {\n http_remux {\n  mount [vhost]/[app]/[stream].mp4;\n }\n}",
            3,
            "must end with .flv, .ts, .aac or .mp3",
        ),
        (
            "vhost a { http_remux { mount /[app]/[stream].m4a; } }",
            1,
            "must end with .flv",
        ),
        (
            "vhost a { http_remux { mount [stream].flv; } }",
            1,
            "expected a URL path",
        ),
        ("vhost a { http_remux { mount ''; } }", 1, "invalid mount"),
        (
            "vhost a { http_remux { mount '/a b.flv'; } }",
            1,
            "has spaces",
        ),
        (
            "vhost a { http_remux { mount /[app]/[steam].flv; } }",
            1,
            "unknown variable \"[steam]\"",
        ),
        (
            "vhost a { http_remux { mount /[app/x.flv; } }",
            1,
            "unclosed \"[\"",
        ),
        ("vhost a { http_remux { has_audio 1; } }", 1, "on or off"),
        ("vhost a { http_remux { hstrs 1; } }", 1, "on or off"),
        ("vhost a { http_remux; }", 1, "expected a { } block"),
    ];
    for (text, line, msg) in cases {
        let e = err_of(text);
        assert_eq!(e.line(), Some(*line), "{text:?}: {e}");
        assert!(e.to_string().contains(msg), "{text:?}: {e}");
    }
}

// ---------------------------------------------------------------- hls

#[test]
fn hls_defaults_follow_srs() {
    let h = HlsConfig::default();
    assert!(!h.enabled);
    assert_eq!(h.fragment, Duration::from_secs(10));
    assert_eq!(h.td_ratio, 1.0);
    assert_eq!(h.aof_ratio, 2.1);
    assert_eq!(h.window, Duration::from_secs(60));
    assert_eq!(h.on_error, HlsOnError::Continue);
    assert_eq!(h.path, PathBuf::from("./objs/nginx/html"));
    assert_eq!(h.m3u8_file, "[app]/[stream].m3u8");
    assert_eq!(h.ts_file, "[app]/[stream]-[seq].ts");
    assert!(!h.ts_floor);
    assert_eq!(h.entry_prefix, "");
    assert!(h.cleanup);
    assert_eq!(h.dispose, Duration::from_secs(120));
    assert_eq!(h.nb_notify, 64);
    assert!(h.wait_keyframe && h.dts_directly);
    assert_eq!((h.acodec, h.vcodec), (HlsAcodec::Aac, HlsVcodec::H264));
    assert_eq!(ok("").vhosts[0].hls, h);
    assert_eq!(VhostConfig::new("x").hls, h);
}

#[test]
fn hls_values() {
    let c = ok("vhost a {\n hls {\n  enabled on;\n  hls_fragment 2.5; hls_td_ratio 1.5; hls_aof_ratio 3;\n  \
         hls_window 30; hls_on_error disconnect; hls_path /var/hls;\n  \
         hls_m3u8_file [vhost]/[app]/[stream].m3u8;\n  \
         hls_ts_file [app]/[stream]/[2006][01][02]-[15][04][05].[999]-[timestamp]-[duration].ts;\n  \
         hls_ts_floor on; hls_entry_prefix http://cdn.example/; hls_acodec mp3; hls_vcodec vn;\n  \
         hls_cleanup off; hls_dispose 0; hls_nb_notify 1024; hls_wait_keyframe off;\n  \
         hls_dts_directly off;\n  hls_keys off; hls_fragments_per_key 5; hls_ctx off; hls_mount x;\n }\n}");
    let h = &c.vhost("a").expect("a").hls;
    assert!(h.enabled);
    assert_eq!(h.fragment, Duration::from_millis(2500));
    assert_eq!((h.td_ratio, h.aof_ratio), (1.5, 3.0));
    assert_eq!(h.window, Duration::from_secs(30));
    assert_eq!(h.on_error, HlsOnError::Disconnect);
    assert_eq!(h.path, PathBuf::from("/var/hls"));
    assert_eq!(h.m3u8_file, "[vhost]/[app]/[stream].m3u8");
    assert_eq!(
        h.ts_file,
        "[app]/[stream]/[2006][01][02]-[15][04][05].[999]-[timestamp]-[duration].ts"
    );
    assert!(h.ts_floor);
    assert_eq!(h.entry_prefix, "http://cdn.example/");
    assert_eq!((h.acodec, h.vcodec), (HlsAcodec::Mp3, HlsVcodec::Vn));
    assert!(!h.cleanup && !h.wait_keyframe && !h.dts_directly);
    assert_eq!(h.dispose, Duration::ZERO);
    assert_eq!(h.nb_notify, 1024);
    // The key directives are understood; only hls_ctx and hls_mount are warned about.
    assert!(!h.keys);
    assert_eq!(h.fragments_per_key, 5);
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(
        c.warnings[0].starts_with("t.conf:11: vhost.hls.hls_ctx:"),
        "{:?}",
        c.warnings
    );
    assert!(c.warnings[1].starts_with("t.conf:11: vhost.hls.hls_mount:"));
    // Other accepted spellings.
    let c = ok(
        "vhost a { hls { hls_on_error ignore; hls_acodec an; hls_fragment 60; hls_window 60; } }",
    );
    let h = &c.vhost("a").expect("a").hls;
    assert_eq!((h.on_error, h.acodec), (HlsOnError::Ignore, HlsAcodec::An));
    assert_eq!(h.window, h.fragment);
}

/// SRS's encryption directives, with SRS's defaults: keys beside the segments, relative URIs.
#[test]
fn hls_keys() {
    let h = HlsConfig::default();
    assert!(!h.keys);
    assert_eq!(h.fragments_per_key, 5);
    assert_eq!(h.key_file, "[app]/[stream]-[seq].key");
    assert_eq!((h.key_file_path.as_ref(), h.key_url.as_str()), (None, ""));
    assert_eq!(h.key_root(), Path::new("./objs/nginx/html"));
    let c = ok(
        "vhost a { hls { enabled on; hls_path /var/hls; hls_keys on;\n \
         hls_fragments_per_key 3; hls_key_file [vhost]/[app]/[stream]-k[seq].key;\n \
         hls_key_file_path /var/keys; hls_key_url https://keys.example/; } }",
    );
    let h = &c.vhost("a").expect("a").hls;
    assert!(h.keys && c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(h.fragments_per_key, 3);
    assert_eq!(h.key_file, "[vhost]/[app]/[stream]-k[seq].key");
    assert_eq!(h.key_root(), Path::new("/var/keys"));
    assert_eq!(h.key_url, "https://keys.example/");
    let cases: &[(&str, u32, &str)] = &[
        ("hls_keys yes;", 3, "expected on or off"),
        ("hls_fragments_per_key 0;", 3, "out of range"),
        ("hls_fragments_per_key 2000000;", 3, "out of range"),
        ("hls_fragments_per_key x;", 3, "expected an integer"),
        ("hls_key_file [app]/[stream].key;", 3, "must contain [seq]"),
        (
            "hls_key_file [app]/[stream]-[seq].txt;",
            3,
            "ending in .key",
        ),
        ("hls_key_file [app]/[nope]-[seq].key;", 3, "[nope]"),
        ("hls_key_file_path \"\";", 3, "empty path"),
        ("hls_key_url \"http://a/\\\"x\";", 3, "no quotes"),
        ("hls_key_url \"http://a b/\";", 3, "no quotes"),
    ];
    for (body, line, msg) in cases {
        let text = format!("vhost a {{\n hls {{ enabled on;\n {body} }}\n}}");
        let e = err_of(&text);
        assert_eq!(e.line(), Some(*line), "{body}: {e}");
        assert!(e.to_string().contains(msg), "{body}: {e}");
    }
}

#[test]
fn hls_bad_values() {
    let cases: &[(&str, u32, &str)] = &[
        (
            "vhost a {\n hls {\n  hls_fragment 0;\n }\n}",
            3,
            "hls_fragment: value 0 out of range",
        ),
        (
            "vhost a { hls { hls_fragment -1; } }",
            1,
            "invalid value \"-1\"",
        ),
        ("vhost a { hls { hls_fragment 1e1; } }", 1, "invalid value"),
        (
            "vhost a { hls { hls_fragment 3601; hls_window 9000; } }",
            1,
            "out of range",
        ),
        (
            "vhost a {\n hls {\n  hls_fragment 10;\n  hls_window 5;\n }\n}",
            4,
            "hls_window: window 5s is shorter than hls_fragment 10s",
        ),
        (
            "vhost a {\n hls {\n  hls_fragment 61;\n }\n}",
            3,
            "hls_fragment: fragment 61s is longer than hls_window (60s, the default)",
        ),
        ("vhost a { hls { hls_window 86401; } }", 1, "out of range"),
        (
            "vhost a { hls { hls_td_ratio 0.9; } }",
            1,
            "out of range (expected a number >= 1",
        ),
        ("vhost a { hls { hls_aof_ratio 101; } }", 1, "out of range"),
        (
            "vhost a { hls { hls_aof_ratio x; } }",
            1,
            "invalid value \"x\"",
        ),
        (
            "vhost a { hls { hls_on_error retry; } }",
            1,
            "ignore, disconnect or continue",
        ),
        ("vhost a { hls { hls_path ''; } }", 1, "empty path"),
        (
            "vhost a { hls { hls_m3u8_file [app]/[stream].m3u; } }",
            1,
            "ending in .m3u8",
        ),
        (
            "vhost a { hls { hls_m3u8_file .m3u8; } }",
            1,
            "ending in .m3u8",
        ),
        (
            "vhost a { hls { hls_m3u8_file [app]/[seq].m3u8; } }",
            1,
            "unknown variable \"[seq]\"",
        ),
        (
            "vhost a { hls { hls_ts_file [app]/[stream]-[seq].m4s; } }",
            1,
            "ending in .ts",
        ),
        (
            "vhost a {\n hls {\n  hls_ts_file [app]/[stream].ts;\n }\n}",
            3,
            "must contain [seq] or [timestamp]",
        ),
        (
            "vhost a { hls { hls_ts_file [app]/[sequence].ts; } }",
            1,
            "unknown variable",
        ),
        (
            "vhost a { hls { hls_ts_file [app]/[seq.ts; } }",
            1,
            "unclosed",
        ),
        ("vhost a { hls { hls_acodec opus; } }", 1, "aac, mp3 or an"),
        ("vhost a { hls { hls_vcodec h265; } }", 1, "h264 or vn"),
        ("vhost a { hls { hls_dispose 1.5; } }", 1, "invalid value"),
        ("vhost a { hls { hls_dispose 86401; } }", 1, "out of range"),
        ("vhost a { hls { hls_nb_notify 0; } }", 1, "out of range"),
        ("vhost a { hls { hls_cleanup yes; } }", 1, "on or off"),
        (
            "vhost a { hls { hls_entry_prefix; } }",
            1,
            "exactly one value, got 0",
        ),
        (
            "vhost a {\n hls {\n  hls_fragmnet 5;\n }\n}",
            3,
            "unknown directive \"hls_fragmnet\" in hls",
        ),
        ("vhost a { hls; }", 1, "expected a { } block"),
    ];
    for (text, line, msg) in cases {
        let e = err_of(text);
        assert_eq!(e.line(), Some(*line), "{text:?}: {e}");
        assert!(e.to_string().contains(msg), "{text:?}: {e}");
    }
}

// ---------------------------------------------------------------- hooks, refer, security

#[test]
fn hooks_refer_security_heartbeat_defaults_follow_srs() {
    let c = ok("");
    let v = c.resolve_vhost("x").expect("default vhost");
    assert_eq!(v.http_hooks, HttpHooksConfig::default());
    assert!(!v.http_hooks.enabled);
    assert_eq!(v.http_hooks.timeout, Duration::from_millis(5000));
    assert_eq!(v.refer, ReferConfig::default());
    assert_eq!(v.security, SecurityConfig::default());
    let h = &c.heartbeat;
    assert!(!h.enabled && !h.summaries && !h.ports);
    assert_eq!(h.interval, Duration::from_millis(9300));
    assert_eq!(h.url.url, "http://127.0.0.1:8085/api/v1/servers");
    assert_eq!(h.device_id, "my-srs-device");
}

#[test]
fn hooks_refer_security_heartbeat_values() {
    let c = ok("heartbeat { enabled on; interval 0.5; url http://[::1]:9/hb?x=1; device_id d; summaries on; ports on; }
        vhost v {
            http_hooks { enabled on; timeout_ms 1500; on_publish http://a/1 http://b:81;
                on_play http://c/p; on_hls_notify http://cdn/[app]/[stream]/[ts_url]; }
            refer { enabled on; all a.com b.com; play p.com; }
            security { enabled on; allow publish 10.1.2.3/8; deny play ::1; allow play all; }
        }
        vhost old { refer x.com; refer_publish p.com; }");
    let h = &c.heartbeat;
    assert!(h.enabled && h.summaries && h.ports);
    assert_eq!(h.interval, Duration::from_millis(500));
    assert_eq!(
        (h.url.host.as_str(), h.url.port, h.url.path.as_str()),
        ("::1", 9, "/hb?x=1")
    );
    assert_eq!(h.url.authority(), "[::1]:9");
    let v = c.vhost("v").expect("v");
    let hk = &v.http_hooks;
    assert!(hk.enabled);
    assert_eq!(hk.timeout, Duration::from_millis(1500));
    let urls: Vec<(&str, u16, &str)> = hk
        .on_publish
        .iter()
        .map(|u| (u.host.as_str(), u.port, u.path.as_str()))
        .collect();
    assert_eq!(urls, [("a", 80, "/1"), ("b", 81, "/")]);
    assert_eq!(hk.on_play.len(), 1);
    assert!(hk.on_connect.is_empty());
    assert_eq!(hk.on_hls_notify, ["http://cdn/[app]/[stream]/[ts_url]"]);
    assert_eq!(
        v.refer.all.as_deref(),
        Some(&["a.com".to_string(), "b.com".to_string()][..])
    );
    assert_eq!(v.refer.publish, None);
    assert_eq!(v.refer.play.as_deref(), Some(&["p.com".to_string()][..]));
    let r = &v.security.rules;
    assert_eq!(r.len(), 3);
    assert_eq!(
        r[0],
        SecurityRule {
            allow: true,
            scope: AccessScope::Publish,
            target: AccessTarget::Cidr("10.0.0.0".parse().expect("ip"), 8),
        }
    );
    assert_eq!(r[1].target, AccessTarget::Ip("::1".parse().expect("ip")));
    assert!(!r[1].allow && r[1].scope == AccessScope::Play);
    assert_eq!(r[2].target, AccessTarget::All);
    let old = c.vhost("old").expect("old");
    assert!(old.refer.enabled);
    assert_eq!(old.refer.all.as_deref(), Some(&["x.com".to_string()][..]));
    assert_eq!(
        old.refer.publish.as_deref(),
        Some(&["p.com".to_string()][..])
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn hooks_refer_security_bad_values() {
    for (text, want) in [
        (
            "vhost v { http_hooks { on_publish ftp://h/x; } }",
            "expected an http:// or https:// URL",
        ),
        (
            "vhost v { http_hooks { on_publish http://:80/x; } }",
            "no host",
        ),
        (
            "vhost v { http_hooks { on_publish http://h:0/x; } }",
            "invalid port",
        ),
        (
            "vhost v { http_hooks { on_publish http://u:p@h/x; } }",
            "user:password",
        ),
        ("vhost v { http_hooks { on_publish; } }", "at least one URL"),
        (
            "vhost v { http_hooks { on_hls_notify http://h/[steam]; } }",
            "[steam]",
        ),
        (
            "vhost v { http_hooks { timeout_ms 30001; } }",
            "out of range",
        ),
        (
            "vhost v { http_hooks { on_record http://h/; } }",
            "on_record",
        ),
        ("vhost v { refer { enabled on; pubish a.com; } }", "pubish"),
        (
            "vhost v { security { allow publish; } }",
            "expected two values",
        ),
        (
            "vhost v { security { allow publish 1.2.3.4.5; } }",
            "invalid value",
        ),
        (
            "vhost v { security { deny play ::1/129; } }",
            "prefix length",
        ),
        (
            "vhost v { security { deny play 10.0.0.0/-1; } }",
            "prefix length",
        ),
        ("vhost v { security { permit play all; } }", "permit"),
        ("heartbeat { interval 0; }", "out of range"),
    ] {
        let e = err_of(text).to_string();
        assert!(e.contains(want), "{text}: {e}");
        assert!(e.contains("t.conf:"), "{text}: {e}");
    }
}

/// Issue 15: a `.mp4` DVR path records MP4 (it was refused before MP4 DVR existed).
#[test]
fn dvr_to_mp4_is_picked_by_the_extension() {
    let c = ok("vhost a { dvr { enabled on; dvr_path ./[app]/[stream].MP4; } }");
    assert!(crate::dvr::is_mp4_path(&c.vhost("a").expect("a").dvr.path));
    let c = ok("vhost a { dvr { enabled on; dvr_path ./[app]/[stream].mp4.flv; } }");
    assert!(!crate::dvr::is_mp4_path(&c.vhost("a").expect("a").dvr.path));
}

/// Issue 15: SRS 1/2's vhost-level edge form becomes `cluster { }`, as SRS does on load.
#[test]
fn legacy_vhost_level_edge_is_converted_to_cluster() {
    let c = ok("vhost e.test {\n mode remote;\n origin 127.0.0.1:19350 127.0.0.1:19351;\n token_traverse on;\n}");
    let v = c.vhost("e.test").expect("vhost");
    assert_eq!(v.cluster.mode, ClusterMode::Remote);
    assert_eq!(v.cluster.origins.len(), 2);
    assert!(v.cluster.token_traverse);
    assert_eq!(c.warnings.len(), 3, "{:?}", c.warnings);
    assert!(
        c.warnings[0]
            .starts_with("t.conf:2: vhost.mode: SRS 1/2 vhost-level form, moved into cluster"),
        "{:?}",
        c.warnings
    );
    // Merged with a cluster block of the same vhost; a repeat keeps the first, as anywhere.
    let c = ok("vhost e { cluster { token_traverse on; } mode remote; origin 10.0.0.1; }");
    let v = c.vhost("e").expect("vhost");
    assert_eq!(v.cluster.mode, ClusterMode::Remote);
    assert!(v.cluster.token_traverse);
    let c = ok("vhost e { cluster { mode local; } mode remote; origin 10.0.0.1; }");
    assert_eq!(
        c.vhost("e").expect("vhost").cluster.mode,
        ClusterMode::Local
    );
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("mode: duplicate directive, ignored")),
        "{:?}",
        c.warnings
    );
    // The edge still needs an origin, as in cluster { }.
    let e = err_of("vhost e { mode remote; }").to_string();
    assert!(e.contains("mode remote needs at least one origin"), "{e}");
}

/// Issue 15: a daemon without `srs_log_tank` logs to SRS's default file, not /dev/null.
#[test]
fn daemon_without_a_tank_logs_to_srs_default_file() {
    let c = ok("daemon on;");
    assert_eq!(c.log.tank, LogTank::File);
    assert_eq!(c.log.file, PathBuf::from("./objs/srs.log"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let c = ok("daemon on; srs_log_file ./x.log;");
    assert_eq!(
        (c.log.tank, c.log.file),
        (LogTank::File, PathBuf::from("./x.log"))
    );
    assert_eq!(ok("daemon off;").log.tank, LogTank::Console);
    let c = ok("daemon on; srs_log_tank console;");
    assert_eq!(c.log.tank, LogTank::Console);
    assert!(
        c.warnings.iter().any(|w| w.contains("no log is kept")),
        "{:?}",
        c.warnings
    );
}

// ---------------------------------------------------------------- atc

#[test]
fn atc_at_vhost_level_and_in_play() {
    let c = ok("vhost old { atc on; atc_auto on; }\n\
                vhost new { atc_auto on; play { atc on; atc_auto off; } }\n\
                vhost none { }");
    assert!(c.warnings.is_empty(), "{:#?}", c.warnings);
    let old = c.vhost("old").unwrap();
    assert!(old.effective_atc() && old.effective_atc_auto());
    let new = c.vhost("new").unwrap();
    assert!(new.effective_atc(), "play {{ atc }} (SRS 3+)");
    assert!(!new.effective_atc_auto(), "play wins over the vhost level");
    let none = c.vhost("none").unwrap();
    assert!(!none.effective_atc() && !none.effective_atc_auto());
}

// ---------------------------------------------------------------- duplicates (issue 15)

/// SRS keeps the first of a repeated single-valued directive (its lookups return the first
/// match); so does sluice, with a warning naming both lines, in every scope.
#[test]
fn duplicate_directives_keep_the_first_with_a_warning() {
    let c = ok("daemon off;\n\ndaemon on;\nhttp_api { enabled on; listen 1985; }\n\
                http_api { enabled off; }\n\
                vhost a {\n gop_cache off;\n gop_cache on;\n hls { enabled on; hls_fragment 4; hls_fragment 2; }\n}\n\
                vhost a { gop_cache on; }");
    assert!(!c.daemon);
    assert!(c.http_api.enabled);
    let a = c.vhost("a").unwrap();
    assert!(
        !a.gop_cache,
        "the first vhost block and the first gop_cache"
    );
    assert_eq!(a.hls.fragment, Duration::from_secs(4));
    let dup = |needle: &str| c.warnings.iter().any(|w| w.contains(needle));
    assert!(
        dup("t.conf:3: daemon: duplicate directive, ignored: the first one (at t.conf:1) is used"),
        "{:#?}",
        c.warnings
    );
    assert!(
        dup("t.conf:5: http_api: duplicate directive"),
        "{:#?}",
        c.warnings
    );
    assert!(
        dup("t.conf:8: gop_cache: duplicate directive"),
        "{:#?}",
        c.warnings
    );
    assert!(
        dup("hls_fragment: duplicate directive"),
        "{:#?}",
        c.warnings
    );
    assert!(
        dup("t.conf:11: vhost \"a\" defined twice, ignored"),
        "{:#?}",
        c.warnings
    );
    assert_eq!(c.warnings.len(), 5, "{:#?}", c.warnings);
}

#[test]
fn fmp4_ll_hls_and_dash_directives() {
    let c = ok("vhost x { hls { enabled on; hls_use_fmp4 on; hls_ll on; hls_part 0.25; hls_fragment 2; hls_ll_max_blocked 10; } \
                dash { enabled on; dash_fragment 2; dash_update_period 2; dash_timeshift 60; } }");
    let v = c.vhost("x").expect("vhost");
    assert!(v.hls.use_fmp4 && v.hls.ll);
    assert_eq!(v.hls.part, Duration::from_millis(250));
    assert_eq!(v.hls.ll_max_blocked, 10);
    assert!(v.dash.enabled);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let c = ok("vhost x { hls { enabled on; hls_use_fmp4 on; hls_ll on; hls_part 200ms; } }");
    assert_eq!(
        c.vhost("x").expect("vhost").hls.part,
        Duration::from_millis(200)
    );
    // DASH without fMP4 HLS, and with its own fragment: reported, as sluice -t shows.
    let c = ok("vhost x { dash { enabled on; } }");
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(c.warnings[0].contains("dash needs hls"), "{:?}", c.warnings);
    for bad in [
        "vhost x { hls { hls_ll on; } }",
        "vhost x { hls { hls_use_fmp4 on; hls_keys on; } }",
        "vhost x { hls { hls_use_fmp4 on; hls_ll on; hls_part 20; } }",
        "vhost x { hls { hls_use_fmp4 on; hls_ll on; hls_part 50ms; } }",
        "vhost x { hls { hls_use_fmp4 on; hls_ll on; hls_fragment 1; hls_part 2; } }",
        "vhost x { hls { hls_fmp4_file [app]/[stream].m4s; } }",
        "vhost x { hls { hls_init_file init.ts; } }",
        "vhost x { dash { dash_mpd_file x.m3u8; } }",
    ] {
        assert!(matches!(err_of(bad), ConfigError::Invalid { .. }), "{bad}");
    }
}

#[test]
fn srt_directives() {
    let c = ok(
        "srt_server { enabled on; listen 127.0.0.1:9000; latency 300; peerlatency 50; \
                passphrase 0123456789ab; pbkeylen 32; maxbw 1000000; tlpktdrop off; }\n\
                vhost v { srt { enabled on; } }",
    );
    let s = &c.srt_server;
    assert!(s.enabled);
    assert_eq!(
        s.listen,
        "127.0.0.1:9000".parse::<SocketAddr>().expect("addr")
    );
    assert_eq!(s.latency, Some(300));
    assert_eq!(s.peerlatency, 50);
    assert_eq!(s.passphrase, "0123456789ab");
    assert_eq!(s.pbkeylen, 32);
    assert_eq!(s.maxbw, 1_000_000);
    assert!(!s.tlpktdrop);
    assert!(c.vhost("v").expect("v").srt.enabled);
    assert!(!c.vhost(DEFAULT_VHOST).expect("default").srt.enabled);
    for bad in [
        "srt_server { passphrase short; }",
        "srt_server { pbkeylen 20; }",
        "srt_server { maxbw -2; }",
        "srt_server { latency 99999999; }",
        "srt_server { bogus 1; }",
        "vhost v { srt { enabled maybe; } }",
    ] {
        assert!(Config::parse(bad, "t.conf").is_err(), "{bad}");
    }
    let w = ok("vhost v { srt { enabled on; srt_to_rtmp off; } }\nsrt_server { sei_filter off; payloadsize 1456; }");
    assert_eq!(w.warnings.len(), 3, "{:?}", w.warnings);
}
