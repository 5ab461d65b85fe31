//! `srt_server { }` and `vhost { srt { } }` → typed config.

use super::{bad_value, endpoint, flag, integer, invalid, need_block, one_arg, unknown, Seen};
use crate::config::parser::Directive;
use crate::config::types::*;
use crate::config::ConfigError;
use std::time::Duration;

/// libsrt's own bounds on latencies and time-outs (ms): a typo's extra zeros are refused.
const MAX_LATENCY_MS: u64 = 60_000;
const MAX_TIMEOUT_MS: u64 = 3_600_000;

fn ms(d: &Directive, lo: u64, hi: u64) -> Result<u64, ConfigError> {
    integer(d, lo, hi, " milliseconds")
}

pub(super) fn srt_server(
    d: &Directive,
    s: &mut SrtServerConfig,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    need_block(d, 0)?;
    let mut seen = Seen::default();
    for c in &d.children {
        seen.check(c)?;
        match c.name.as_str() {
            "enabled" => s.enabled = flag(c)?,
            "listen" => s.listen = endpoint(c, one_arg(c)?)?,
            "maxbw" => {
                let v = one_arg(c)?;
                s.maxbw = v
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= -1)
                    .ok_or_else(|| bad_value(c, v, "-1, 0 or bytes per second"))?;
            }
            "mss" => s.mss = integer(c, 76, 1500, " bytes")? as u32,
            "connect_timeout" => {
                s.connect_timeout = Duration::from_millis(ms(c, 1, MAX_TIMEOUT_MS)?)
            }
            "peer_idle_timeout" => {
                s.peer_idle_timeout = Duration::from_millis(ms(c, 1, MAX_TIMEOUT_MS)?)
            }
            "default_app" => {
                let v = one_arg(c)?;
                if v.is_empty() || v.contains(['/', '?']) || v.chars().any(char::is_control) {
                    return Err(invalid(c, format!("\"{v}\" is not an app name")));
                }
                s.default_app = v.to_string();
            }
            "latency" => s.latency = Some(ms(c, 0, MAX_LATENCY_MS)? as u32),
            "recvlatency" => s.recvlatency = ms(c, 0, MAX_LATENCY_MS)? as u32,
            "peerlatency" => s.peerlatency = ms(c, 0, MAX_LATENCY_MS)? as u32,
            "tsbpdmode" => s.tsbpdmode = flag(c)?,
            "tlpktdrop" => s.tlpktdrop = flag(c)?,
            "sendbuf" => s.sendbuf = integer(c, 32 * 1024, 1 << 30, " bytes")? as u32,
            "recvbuf" => s.recvbuf = integer(c, 32 * 1024, 1 << 30, " bytes")? as u32,
            "passphrase" => {
                let v = one_arg(c)?;
                if !v.is_empty() && !(10..=79).contains(&v.len()) {
                    return Err(invalid(
                        c,
                        format!("is {} characters long (SRT wants 10 to 79)", v.len()),
                    ));
                }
                s.passphrase = v.to_string();
            }
            "pbkeylen" => {
                let n = integer(c, 0, 32, "")?;
                if ![0, 16, 24, 32].contains(&n) {
                    return Err(bad_value(c, &n.to_string(), "0, 16, 24 or 32"));
                }
                s.pbkeylen = n as u32;
            }
            // SRS's, about its TS parsing and stream id defaults: what they ask for is what
            // sluice does anyway, or cannot be changed.
            "payloadsize" => {
                if integer(c, 188, 1456, " bytes")? != 1316 {
                    warnings.push(format!(
                        "{}:{}: srt_server.payloadsize: sluice sends 1316-byte messages (7 TS packets) whatever this says",
                        c.file, c.line
                    ));
                }
            }
            "sei_filter" | "default_streamid" => warnings.push(format!(
                "{}:{}: srt_server.{}: known SRS directive, not implemented by sluice; ignored",
                c.file, c.line, c.name
            )),
            _ => return Err(unknown(c, " in srt_server")),
        }
    }
    Ok(())
}

pub(super) fn vhost_srt(
    d: &Directive,
    s: &mut VhostSrtConfig,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    need_block(d, 0)?;
    let mut seen = Seen::default();
    for c in &d.children {
        seen.check(c)?;
        match c.name.as_str() {
            "enabled" => s.enabled = flag(c)?,
            "srt_to_rtmp" => {
                s.srt_to_rtmp = flag(c)?;
                if !s.srt_to_rtmp {
                    warnings.push(format!(
                        "{}:{}: vhost.srt.srt_to_rtmp off: cannot be honoured, SRT streams \
                         always reach RTMP, HTTP-FLV and HLS players in sluice (one Source per stream)",
                        c.file, c.line
                    ));
                }
            }
            _ => return Err(unknown(c, " in vhost.srt")),
        }
    }
    Ok(())
}
