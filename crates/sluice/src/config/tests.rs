use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::parser::{parse_tree, Directive};
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
    assert_eq!(c.log.file, PathBuf::from("./objs/sluice.log"));
    assert_eq!(c.vhosts.len(), 1);
    let v = &c.vhosts[0];
    assert_eq!(v.name, DEFAULT_VHOST);
    assert!(v.enabled && v.gop_cache && v.effective_gop_cache());
    assert_eq!(v.effective_queue_length(), 30.0);
    assert_eq!(v.time_jitter, TimeJitter::Full);
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
        (
            "daemon on;\n\ndaemon off;",
            3,
            "duplicate directive (first given at t.conf:1)",
        ),
        ("vhost a;", 1, "expected a { } block"),
        ("vhost { }", 1, "expected 1 argument"),
        ("vhost a {}\nvhost a {}", 2, "defined twice"),
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
        ("vhost a { gop_cache on; gop_cache off; }", 1, "duplicate"),
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
         time_jitter zero;\n play { gop_cache on; queue_length 1; time_jitter off; mw_latency 0; }\n \
         publish { firstpkt_timeout 3000; normal_timeout 700; }\n}");
    let v = c.resolve_vhost("live").expect("live");
    assert_eq!(v.name, "live");
    assert_eq!(v.chunk_size, Some(4096));
    assert!(!v.gop_cache && v.effective_gop_cache());
    assert_eq!(v.queue_length, 2.5);
    assert_eq!(v.effective_queue_length(), 1.0);
    assert_eq!(v.effective_time_jitter(), TimeJitter::Off);
    assert_eq!(v.time_jitter, TimeJitter::Zero);
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
    let text = "http_api { enabled on; listen 1985; }\nstats { network 0; }\nutc_time off;\n\
                vhost x {\n hls { enabled on; }\n dvr { }\n tcp_nodelay on;\n\
                 play { atc on; mw_msgs 8; }\n publish { mr on; parse_sps on; kickoff_for_idle 0; }\n}";
    let c = ok(text);
    assert_eq!(c.warnings.len(), 11, "{:#?}", c.warnings);
    assert_eq!(
        c.warnings[0],
        "t.conf:1: http_api: known SRS directive, not implemented by sluice yet; ignored"
    );
    assert!(
        c.warnings[3].starts_with("t.conf:5: vhost.hls:"),
        "{}",
        c.warnings[3]
    );
    assert!(
        c.warnings[6].starts_with("t.conf:8: vhost.play.atc:"),
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
