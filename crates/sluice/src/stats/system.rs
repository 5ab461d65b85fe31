//! Process and host figures for `/api/v1/summaries` and `/metrics`, read from Linux's
//! `/proc` by hand: a few small text files, no crate, and nothing when a file is
//! missing (another OS, a locked-down container) — the API then reports zeros and
//! `ok: false` rather than failing.
//!
//! CPU percentages need two readings: [`CpuSampler`] keeps the last one, and the kbps
//! sampler refreshes it every few seconds, so a request never waits for a second
//! reading. Like SRS, percentages are fractions (1.0 = one whole core for the process,
//! all cores busy for the host).

use crate::util::lock;
use std::sync::Mutex;
use std::time::Instant;

/// `/proc` reports CPU times in USER_HZ ticks, which Linux fixes at 100 on every
/// architecture we run on (the kernel's HZ may differ; USER_HZ does not).
pub const TICKS_PER_SECOND: f64 = 100.0;

/// The parts of `/proc/self/stat` we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcStat {
    pub pid: u32,
    pub ppid: u32,
    /// User plus system CPU ticks of the process.
    pub cpu_ticks: u64,
    pub num_threads: u64,
}

/// `/proc/stat`'s first `cpu` line, in ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
    /// Time running guests; already counted in `user`, so not part of [`Self::total`].
    pub guest: u64,
}

impl CpuTimes {
    pub fn total(&self) -> u64 {
        [
            self.user,
            self.nice,
            self.system,
            self.idle,
            self.iowait,
            self.irq,
            self.softirq,
            self.steal,
        ]
        .iter()
        .fold(0u64, |a, b| a.saturating_add(*b))
    }

    pub fn idle_all(&self) -> u64 {
        self.idle.saturating_add(self.iowait)
    }
}

/// `/proc/meminfo`, in kB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemInfo {
    pub total_kb: u64,
    pub free_kb: u64,
    pub available_kb: u64,
    pub buffers_kb: u64,
    pub cached_kb: u64,
    pub swap_total_kb: u64,
    pub swap_free_kb: u64,
}

impl MemInfo {
    /// Fraction of RAM in use (not counting what the kernel can reclaim).
    pub fn ram_used_fraction(&self) -> f64 {
        if self.total_kb == 0 {
            return 0.0;
        }
        let avail = if self.available_kb > 0 {
            self.available_kb
        } else {
            self.free_kb + self.buffers_kb + self.cached_kb
        };
        self.total_kb.saturating_sub(avail) as f64 / self.total_kb as f64
    }

    pub fn swap_used_fraction(&self) -> f64 {
        if self.swap_total_kb == 0 {
            return 0.0;
        }
        self.swap_total_kb.saturating_sub(self.swap_free_kb) as f64 / self.swap_total_kb as f64
    }
}

/// Bytes through the host's network interfaces (`/proc/net/dev`). Loopback counts as
/// intranet; SRS also sorts interfaces by their addresses (private ranges count as
/// intranet), which needs `getifaddrs`: we do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetBytes {
    pub recv: u64,
    pub send: u64,
    pub recv_intranet: u64,
    pub send_intranet: u64,
}

/// Host TCP/UDP socket counts (`/proc/net/sockstat` and `/proc/net/snmp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SocketCounts {
    pub tcp_inuse: u64,
    pub tcp_established: u64,
    pub tcp_time_wait: u64,
    pub udp_inuse: u64,
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Parses `/proc/[pid]/stat`. The command name sits in parentheses and may itself
/// contain spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_proc_stat(text: &str) -> Option<ProcStat> {
    let pid = text.split_whitespace().next()?.parse().ok()?;
    let rest = text.get(text.rfind(')')? + 1..)?;
    // After the comm: state(3) ppid(4) ... utime(14) stime(15) ... num_threads(20).
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |field: usize| -> Option<u64> { f.get(field.checked_sub(3)?)?.parse().ok() };
    Some(ProcStat {
        pid,
        ppid: u32::try_from(num(4)?).ok()?,
        cpu_ticks: num(14)?.saturating_add(num(15)?),
        num_threads: num(20)?,
    })
}

/// Every field of a `/proc/[pid]/stat`, for the API's `self_proc_stats`: the pid, the
/// command name (without its parentheses), the state letter, then fields 4 (ppid)
/// onwards as the kernel wrote them (numbers, some signed, some beyond `i64`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcStatFields {
    pub pid: u32,
    pub comm: String,
    pub state: String,
    pub rest: Vec<String>,
}

pub fn parse_proc_stat_fields(text: &str) -> Option<ProcStatFields> {
    let pid = text.split_whitespace().next()?.parse().ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let mut f = text.get(close + 1..)?.split_whitespace();
    let state = f.next()?.to_string();
    Some(ProcStatFields {
        pid,
        comm,
        state,
        rest: f.map(str::to_string).collect(),
    })
}

pub fn self_stat_fields() -> Option<ProcStatFields> {
    parse_proc_stat_fields(&read("/proc/self/stat")?)
}

/// The host's CPU counters (the `cpu` line of `/proc/stat`), in ticks.
pub fn cpu_times() -> Option<CpuTimes> {
    parse_cpu_times(&read("/proc/stat")?)
}

/// `VmRSS` of a `/proc/[pid]/status`, in kB.
pub fn parse_status_rss_kb(text: &str) -> Option<u64> {
    kb_field(text, "VmRSS:")
}

fn kb_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

pub fn parse_cpu_times(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    if v.len() < 4 {
        return None;
    }
    Some(CpuTimes {
        user: at(0),
        nice: at(1),
        system: at(2),
        idle: at(3),
        iowait: at(4),
        irq: at(5),
        softirq: at(6),
        steal: at(7),
        guest: at(8),
    })
}

/// Number of `cpuN` lines of `/proc/stat`: the CPUs online.
pub fn parse_cpu_count(text: &str) -> usize {
    text.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count()
}

pub fn parse_meminfo(text: &str) -> Option<MemInfo> {
    Some(MemInfo {
        total_kb: kb_field(text, "MemTotal:")?,
        free_kb: kb_field(text, "MemFree:").unwrap_or(0),
        available_kb: kb_field(text, "MemAvailable:").unwrap_or(0),
        buffers_kb: kb_field(text, "Buffers:").unwrap_or(0),
        cached_kb: kb_field(text, "Cached:").unwrap_or(0),
        swap_total_kb: kb_field(text, "SwapTotal:").unwrap_or(0),
        swap_free_kb: kb_field(text, "SwapFree:").unwrap_or(0),
    })
}

/// The 1, 5 and 15 minute load averages.
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_whitespace().map(|x| x.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// Seconds since boot, and idle seconds summed over all CPUs.
pub fn parse_uptime(text: &str) -> Option<(f64, f64)> {
    let mut it = text.split_whitespace().map(|x| x.parse::<f64>().ok());
    Some((it.next()??, it.next()??))
}

pub fn parse_net_dev(text: &str) -> NetBytes {
    let mut n = NetBytes::default();
    // Two header lines, then `iface: rbytes rpackets ... (8 fields) sbytes ...`.
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        let (Some(&r), Some(&s)) = (f.first(), f.get(8)) else {
            continue;
        };
        if name.trim() == "lo" {
            n.recv_intranet = n.recv_intranet.saturating_add(r);
            n.send_intranet = n.send_intranet.saturating_add(s);
        } else {
            n.recv = n.recv.saturating_add(r);
            n.send = n.send.saturating_add(s);
        }
    }
    n
}

/// `value` of `key` on the line that starts with `prefix` (`TCP: inuse 3 tw 0 ...`).
fn keyed(text: &str, prefix: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|rest| {
            let f: Vec<&str> = rest.split_whitespace().collect();
            f.windows(2)
                .find(|w| w[0] == key)
                .and_then(|w| w[1].parse().ok())
        })
        .unwrap_or(0)
}

pub fn parse_sockets(sockstat: &str, snmp: &str) -> SocketCounts {
    // /proc/net/snmp has a header line of names then a line of values per protocol.
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let established = match (tcp.next(), tcp.next()) {
        (Some(names), Some(values)) => names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(n, _)| *n == "CurrEstab")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0),
        _ => 0,
    };
    SocketCounts {
        tcp_inuse: keyed(sockstat, "TCP:", "inuse"),
        tcp_established: established,
        tcp_time_wait: keyed(sockstat, "TCP:", "tw"),
        udp_inuse: keyed(sockstat, "UDP:", "inuse"),
    }
}

pub fn self_stat() -> Option<ProcStat> {
    parse_proc_stat(&read("/proc/self/stat")?)
}

pub fn self_rss_kb() -> Option<u64> {
    parse_status_rss_kb(&read("/proc/self/status")?)
}

pub fn meminfo() -> Option<MemInfo> {
    parse_meminfo(&read("/proc/meminfo")?)
}

pub fn loadavg() -> Option<[f64; 3]> {
    parse_loadavg(&read("/proc/loadavg")?)
}

pub fn uptime() -> Option<(f64, f64)> {
    parse_uptime(&read("/proc/uptime")?)
}

pub fn net_bytes() -> Option<NetBytes> {
    Some(parse_net_dev(&read("/proc/net/dev")?))
}

pub fn sockets() -> Option<SocketCounts> {
    Some(parse_sockets(
        &read("/proc/net/sockstat")?,
        &read("/proc/net/snmp").unwrap_or_default(),
    ))
}

/// CPUs online (from `/proc/stat`), at least 1.
pub fn cpu_count() -> usize {
    read("/proc/stat")
        .map(|t| parse_cpu_count(&t))
        .unwrap_or(0)
        .max(1)
}

/// One reading of the CPU counters.
#[derive(Debug, Clone, Copy)]
pub struct CpuReading {
    pub at: Instant,
    pub self_ticks: u64,
    pub host: CpuTimes,
}

impl CpuReading {
    pub fn now() -> Option<CpuReading> {
        Some(CpuReading {
            at: Instant::now(),
            self_ticks: self_stat()?.cpu_ticks,
            host: parse_cpu_times(&read("/proc/stat")?)?,
        })
    }
}

/// CPU use between two readings, as fractions: `process` of one core, `host` of all.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CpuUsage {
    pub process: f64,
    pub host: f64,
}

pub fn cpu_usage(prev: &CpuReading, cur: &CpuReading) -> CpuUsage {
    let secs = cur.at.saturating_duration_since(prev.at).as_secs_f64();
    let process = if secs > 0.0 {
        cur.self_ticks.saturating_sub(prev.self_ticks) as f64 / TICKS_PER_SECOND / secs
    } else {
        0.0
    };
    let total = cur.host.total().saturating_sub(prev.host.total());
    let idle = cur.host.idle_all().saturating_sub(prev.host.idle_all());
    let host = if total > 0 {
        1.0 - idle as f64 / total as f64
    } else {
        0.0
    };
    CpuUsage {
        process,
        host: host.clamp(0.0, 1.0),
    }
}

/// Keeps the last reading and the usage over the last interval.
#[derive(Debug, Default)]
pub struct CpuSampler {
    state: Mutex<(Option<CpuReading>, Option<CpuUsage>)>,
}

impl CpuSampler {
    /// Takes a reading and updates the usage since the previous one.
    pub fn sample(&self) {
        let Some(cur) = CpuReading::now() else {
            return;
        };
        let mut st = lock(&self.state);
        if let Some(prev) = &st.0 {
            st.1 = Some(cpu_usage(prev, &cur));
        }
        st.0 = Some(cur);
    }

    /// Usage over the last sampling interval; before two readings exist, the average
    /// since the process (and the host) started.
    pub fn usage(&self) -> CpuUsage {
        if let Some(u) = lock(&self.state).1 {
            return u;
        }
        since_start().unwrap_or_default()
    }
}

/// Averages since start: the process's ticks over its lifetime (its start time is
/// field 22 of its stat, in ticks since boot), the host's busy share since boot.
fn since_start() -> Option<CpuUsage> {
    let stat = read("/proc/self/stat")?;
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let start_ticks: u64 = rest.split_whitespace().nth(22 - 3)?.parse().ok()?;
    let (up, _) = uptime()?;
    let alive = up - start_ticks as f64 / TICKS_PER_SECOND;
    let ticks = parse_proc_stat(&stat)?.cpu_ticks as f64;
    let host = parse_cpu_times(&read("/proc/stat")?)?;
    let total = host.total();
    Some(CpuUsage {
        process: if alive > 0.0 {
            ticks / TICKS_PER_SECOND / alive
        } else {
            0.0
        },
        host: if total > 0 {
            1.0 - host.idle_all() as f64 / total as f64
        } else {
            0.0
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_with_odd_comm() {
        let t = "1953 (we ird) pr) R 1951 1951 29987 0 -1 4194304 99 0 0 0 7 5 0 0 20 0 3 0 112619 3133440 408 1844";
        let s = parse_proc_stat(t).expect("parse");
        assert_eq!(
            (s.pid, s.ppid, s.cpu_ticks, s.num_threads),
            (1953, 1951, 12, 3)
        );
        assert_eq!(parse_proc_stat("12 (x"), None);
        assert_eq!(parse_proc_stat(""), None);
        assert_eq!(parse_proc_stat("1 (x) R"), None);
        let all = parse_proc_stat_fields(t).expect("fields");
        assert_eq!(
            (all.pid, all.comm.as_str(), all.state.as_str()),
            (1953, "we ird) pr", "R")
        );
        assert_eq!(all.rest.first().map(String::as_str), Some("1951"));
        assert_eq!(all.rest.len(), 22);
        assert_eq!(parse_proc_stat_fields("12 x) R"), None);
    }

    #[test]
    fn meminfo_and_status() {
        let m =
            "MemTotal:       1000 kB\nMemFree:  100 kB\nMemAvailable:   400 kB\nSwapTotal: 0 kB\n";
        let mi = parse_meminfo(m).expect("meminfo");
        assert_eq!(mi.total_kb, 1000);
        assert!((mi.ram_used_fraction() - 0.6).abs() < 1e-9);
        assert_eq!(mi.swap_used_fraction(), 0.0);
        assert_eq!(parse_meminfo("garbage"), None);
        assert_eq!(
            parse_status_rss_kb("Name: x\nVmRSS:\t    2200 kB\n"),
            Some(2200)
        );
    }

    #[test]
    fn cpu_and_load() {
        let s = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\ncpu1 1 2 3 4\nintr 5\n";
        let c = parse_cpu_times(s).expect("cpu");
        assert_eq!((c.total(), c.idle_all()), (1000, 850));
        assert_eq!(parse_cpu_count(s), 2);
        assert_eq!(parse_cpu_times("cpu 1 2"), None);
        assert_eq!(
            parse_loadavg("0.27 0.35 0.18 3/94 1957"),
            Some([0.27, 0.35, 0.18])
        );
        assert_eq!(parse_loadavg("0.27"), None);
        assert_eq!(parse_uptime("1126.19 1984.63\n"), Some((1126.19, 1984.63)));
        let at = Instant::now();
        let a = CpuReading {
            at,
            self_ticks: 0,
            host: c,
        };
        let mut host = c;
        host.user += 50;
        host.idle += 50;
        let b = CpuReading {
            at: at + std::time::Duration::from_secs(1),
            self_ticks: 50,
            host,
        };
        let u = cpu_usage(&a, &b);
        assert!((u.process - 0.5).abs() < 1e-9 && (u.host - 0.5).abs() < 1e-9);
    }

    #[test]
    fn net_and_sockets() {
        let dev = "Inter-|   Receive\n face |bytes\n    lo: 10 1 0 0 0 0 0 0 20 1 0 0 0 0 0 0\n  eth0: 5 1 0 0 0 0 0 0 7 1 0 0 0 0 0 0\n bad: 1\n";
        let n = parse_net_dev(dev);
        assert_eq!(
            (n.recv, n.send, n.recv_intranet, n.send_intranet),
            (5, 7, 10, 20)
        );
        let ss = "sockets: used 14\nTCP: inuse 4 orphan 0 tw 2 alloc 1 mem 8\nUDP: inuse 1 mem 0\n";
        let snmp = "Tcp: RtoAlgorithm CurrEstab InSegs\nTcp: 1 3 43657\n";
        let s = parse_sockets(ss, snmp);
        assert_eq!(
            (s.tcp_inuse, s.tcp_established, s.tcp_time_wait, s.udp_inuse),
            (4, 3, 2, 1)
        );
        assert_eq!(parse_sockets("", ""), SocketCounts::default());
    }

    #[test]
    fn live_proc_reads() {
        // On Linux every reader returns something sensible for this very process.
        if std::path::Path::new("/proc/self/stat").exists() {
            assert_eq!(self_stat().map(|s| s.pid), Some(std::process::id()));
            assert!(self_rss_kb().unwrap_or(0) > 0);
            assert!(cpu_count() >= 1);
            let s = CpuSampler::default();
            s.sample();
            s.sample();
            assert!(s.usage().host >= 0.0);
        }
    }
}
