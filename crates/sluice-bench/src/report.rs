//! The final report: computed from the players' results, printed for people or as JSON.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::player::PlayerResult;
use crate::stats::{kbps, percent, percentile_sorted, MsHistogram};

/// Resource use over the measurement window.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    pub server_cpu_pct: Option<f64>,
    pub server_rss_bytes: Option<u64>,
    /// Server RSS before the first player connected (publisher and GOP cache only).
    pub server_rss_base_bytes: Option<u64>,
    pub bench_cpu_pct: Option<f64>,
    pub bench_rss_bytes: Option<u64>,
    /// Aggregate received rate over the window, kbps.
    pub aggregate_kbps: f64,
    pub window_secs: f64,
    /// Bytes the server had the kernel write to storage over the window
    /// (`write_bytes` of /proc/PID/io: HLS segments, DVR files, logs).
    pub server_write_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub protocol: String,
    pub clients: usize,
    pub connected: usize,
    pub failed: usize,
    /// Distinct error messages with how many players hit each.
    pub errors: BTreeMap<String, usize>,
    pub kbps_min: Option<f64>,
    pub kbps_p50: Option<f64>,
    /// Frames the publisher sent (sequence headers excluded); 0 without our publisher.
    pub frames_sent: u64,
    /// Frames players should have received: from each one's first frame to the end.
    pub frames_expected: u64,
    pub frames_matched: u64,
    pub frames_received: u64,
    pub frames_skipped: u64,
    pub frames_unmatched: u64,
    pub ts_regressions: u64,
    /// Players that received every frame expected of them.
    pub players_complete: usize,
    pub latency: MsHistogram,
    pub first_frame_p50_ms: Option<f64>,
    pub first_frame_p99_ms: Option<f64>,
    pub resources: Resources,
}

impl Report {
    pub fn new(
        protocol: &str,
        results: &[PlayerResult],
        frames_sent: u64,
        latency: MsHistogram,
        resources: Resources,
    ) -> Report {
        Report::from_streams(protocol, &[(results, frames_sent)], latency, resources)
    }

    /// One report over several streams: each stream's players with the frames its own
    /// publisher sent (what a player is expected to receive depends on its stream's log).
    /// Percentiles are over every player of every stream.
    pub fn from_streams(
        protocol: &str,
        streams: &[(&[PlayerResult], u64)],
        latency: MsHistogram,
        resources: Resources,
    ) -> Report {
        let mut r = Report {
            protocol: protocol.to_string(),
            clients: streams.iter().map(|(p, _)| p.len()).sum(),
            frames_sent: streams.iter().map(|(_, sent)| sent).sum(),
            latency,
            resources,
            ..Report::default()
        };
        let mut rates = Vec::new();
        let mut first = Vec::new();
        for (p, log_len) in streams
            .iter()
            .flat_map(|(ps, sent)| ps.iter().map(move |p| (p, *sent as usize)))
        {
            if p.connected {
                r.connected += 1;
            } else {
                r.failed += 1;
            }
            if let Some(e) = &p.error {
                *r.errors.entry(e.clone()).or_default() += 1;
            }
            if p.connected && !p.active.is_zero() {
                rates.push(kbps(p.bytes, p.active));
            }
            if let Some(f) = p.first_frame {
                first.push(f.as_secs_f64() * 1000.0);
            }
            r.frames_received += p.frames;
            r.frames_matched += p.cursor.matched;
            r.frames_skipped += p.cursor.skipped;
            r.frames_unmatched += p.cursor.unmatched;
            r.ts_regressions += p.ts_regressions;
            let expected = p.cursor.expected(log_len);
            r.frames_expected += expected;
            if p.connected && expected > 0 && p.cursor.matched == expected {
                r.players_complete += 1;
            }
        }
        rates.sort_by(f64::total_cmp);
        r.kbps_min = rates.first().copied();
        r.kbps_p50 = percentile_sorted(&rates, 50.0);
        first.sort_by(f64::total_cmp);
        r.first_frame_p50_ms = percentile_sorted(&first, 50.0);
        r.first_frame_p99_ms = percentile_sorted(&first, 99.0);
        r
    }

    pub fn frames_ok_pct(&self) -> f64 {
        percent(self.frames_matched, self.frames_expected)
    }

    /// Server memory per connected player, KB: growth over the base, divided.
    pub fn server_kb_per_player(&self) -> Option<f64> {
        let rss = self.resources.server_rss_bytes?;
        let base = self.resources.server_rss_base_bytes.unwrap_or(0);
        (self.connected > 0)
            .then(|| rss.saturating_sub(base) as f64 / 1024.0 / self.connected as f64)
    }

    pub fn to_json(&self) -> Value {
        let res = &self.resources;
        let mb = |b: Option<u64>| b.map(|b| b as f64 / (1024.0 * 1024.0));
        json!({
            "protocol": self.protocol,
            "clients": self.clients,
            "connected": self.connected,
            "failed": self.failed,
            "errors": self.errors,
            "kbps_per_player": { "min": self.kbps_min, "p50": self.kbps_p50 },
            "aggregate_kbps": res.aggregate_kbps,
            "frames": {
                "sent": self.frames_sent,
                "expected": self.frames_expected,
                "received": self.frames_received,
                "matched": self.frames_matched,
                "skipped": self.frames_skipped,
                "unmatched": self.frames_unmatched,
                "ok_pct": self.frames_ok_pct(),
                "players_complete": self.players_complete,
                "ts_regressions": self.ts_regressions,
            },
            "latency_ms": {
                "samples": self.latency.count(),
                "p50": self.latency.percentile(50.0),
                "p99": self.latency.percentile(99.0),
                "max": self.latency.max(),
            },
            "first_frame_ms": { "p50": self.first_frame_p50_ms, "p99": self.first_frame_p99_ms },
            "server": {
                "cpu_pct": res.server_cpu_pct,
                "rss_mb": mb(res.server_rss_bytes),
                "rss_base_mb": mb(res.server_rss_base_bytes),
                "kb_per_player": self.server_kb_per_player(),
            },
            "bench": { "cpu_pct": res.bench_cpu_pct, "rss_mb": mb(res.bench_rss_bytes) },
            "window_secs": res.window_secs,
            "server_write_bytes": res.server_write_bytes,
        })
    }

    pub fn to_text(&self) -> String {
        let res = &self.resources;
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        let optf = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        let mut s = String::new();
        s += &format!(
            "players     {} {}: {} connected, {} failed, {} received every frame\n",
            self.clients, self.protocol, self.connected, self.failed, self.players_complete
        );
        for (e, n) in self.errors.iter().take(5) {
            s += &format!("  error ({n}x): {e}\n");
        }
        s += &format!(
            "bitrate     per player min {} p50 {} kbps; aggregate {:.1} Mbps\n",
            optf(self.kbps_min),
            optf(self.kbps_p50),
            res.aggregate_kbps / 1000.0
        );
        s += &format!(
            "frames      sent {}, expected {}, received {} ({} matched, {:.3} %), skipped {}, unmatched {}, ts regressions {}\n",
            self.frames_sent,
            self.frames_expected,
            self.frames_received,
            self.frames_matched,
            self.frames_ok_pct(),
            self.frames_skipped,
            self.frames_unmatched,
            self.ts_regressions
        );
        s += &format!(
            "latency     p50 {} p99 {} max {} ms ({} samples)\n",
            opt(self.latency.percentile(50.0)),
            opt(self.latency.percentile(99.0)),
            opt(self.latency.max()),
            self.latency.count()
        );
        s += &format!(
            "first frame p50 {} p99 {} ms (from TCP connect)\n",
            self.first_frame_p50_ms
                .map_or("-".into(), |v| format!("{v:.1}")),
            self.first_frame_p99_ms
                .map_or("-".into(), |v| format!("{v:.1}"))
        );
        let mb = |b: Option<u64>| b.map(|b| format!("{:.1}", b as f64 / 1048576.0));
        s += &format!(
            "server      CPU {} %, RSS {} MB (base {} MB, {} KB/player) over {:.0} s\n",
            optf(res.server_cpu_pct),
            mb(res.server_rss_bytes).unwrap_or("-".into()),
            mb(res.server_rss_base_bytes).unwrap_or("-".into()),
            optf(self.server_kb_per_player()),
            res.window_secs
        );
        s += &format!(
            "bench       CPU {} %, RSS {} MB\n",
            optf(res.bench_cpu_pct),
            mb(res.bench_rss_bytes).unwrap_or("-".into())
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::{Cursor, FrameKey, Sent};
    use rtmp::client::MediaKind;
    use std::time::{Duration, Instant};

    fn player(log: &[Sent], from: usize, skip: &[usize], bytes: u64, secs: u64) -> PlayerResult {
        let mut cursor = Cursor::default();
        for (i, s) in log.iter().enumerate().skip(from) {
            if !skip.contains(&i) {
                cursor.on_frame(log, s.key);
            }
        }
        PlayerResult {
            connected: true,
            bytes,
            frames: cursor.matched,
            first_frame: Some(Duration::from_millis(10 * (from as u64 + 1))),
            active: Duration::from_secs(secs),
            cursor,
            ..PlayerResult::default()
        }
    }

    #[test]
    fn arithmetic() {
        let t0 = Instant::now();
        let log: Vec<Sent> = (0..10u8)
            .map(|n| Sent {
                key: FrameKey::new(MediaKind::Video, &[0x27, 1, n]),
                at: t0,
            })
            .collect();
        let results = vec![
            player(&log, 0, &[], 62_500 * 10, 10),     // 500 kbps, all 10
            player(&log, 4, &[], 125_000 * 10, 10),    // 1000 kbps, joined late: 6 expected
            player(&log, 2, &[5, 6], 25_000 * 10, 10), // 200 kbps, 2 of 8 dropped
            PlayerResult {
                error: Some("refused".into()),
                ..PlayerResult::default()
            },
        ];
        let mut lat = MsHistogram::default();
        for ms in [10, 20, 30, 400] {
            lat.record(ms);
        }
        let r = Report::new(
            "rtmp",
            &results,
            log.len() as u64,
            lat,
            Resources::default(),
        );
        assert_eq!((r.clients, r.connected, r.failed), (4, 3, 1));
        assert_eq!(r.errors.get("refused"), Some(&1));
        assert_eq!(r.frames_expected, 10 + 6 + 8);
        assert_eq!(r.frames_matched, 10 + 6 + 6);
        assert_eq!(r.frames_skipped, 2);
        assert_eq!(r.players_complete, 2);
        assert!((r.frames_ok_pct() - 22.0 * 100.0 / 24.0).abs() < 1e-9);
        assert_eq!(r.kbps_min, Some(200.0));
        assert_eq!(r.kbps_p50, Some(500.0));
        assert_eq!(r.first_frame_p50_ms, Some(30.0));
        assert_eq!(r.first_frame_p99_ms, Some(50.0));
        assert_eq!(r.latency.percentile(50.0), Some(20));
        assert_eq!(r.latency.percentile(99.0), Some(400));
        let j = r.to_json();
        assert_eq!(j["frames"]["expected"], 24);
        assert_eq!(j["latency_ms"]["max"], 400);
        assert!(r.to_text().contains("3 connected, 1 failed"));
    }

    #[test]
    fn kb_per_player_uses_growth_over_base() {
        let r = Report {
            connected: 1000,
            resources: Resources {
                server_rss_bytes: Some(40 << 20),
                server_rss_base_bytes: Some(8 << 20),
                ..Resources::default()
            },
            ..Report::default()
        };
        let kb = r.server_kb_per_player().unwrap();
        assert!((kb - 32.768).abs() < 1e-9, "{kb}");
        assert_eq!(Report::default().server_kb_per_player(), None);
    }
}
