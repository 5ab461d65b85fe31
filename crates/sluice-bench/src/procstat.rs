//! CPU time and resident memory of a process, from /proc (Linux only; elsewhere the figures
//! are simply absent from the report).

use std::time::Instant;

/// Clock ticks per second of /proc/PID/stat's times; 100 on every Linux architecture we run
/// on (the kernel's USER_HZ), and asking sysconf would need libc.
pub const TICKS_PER_SEC: f64 = 100.0;

/// utime + stime in ticks, from the text of /proc/PID/stat. The command name is in
/// parentheses and may hold spaces or parentheses itself, so fields are counted after the
/// last `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace();
    // After the name: state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
    // cmajflt utime(14) stime(15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// VmRSS in bytes, from the text of /proc/PID/status.
pub fn parse_status_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `write_bytes` from the text of /proc/PID/io: bytes this process caused to be sent to
/// the storage layer (page cache write-back included, so it counts what reaches the disk).
pub fn parse_io_write_bytes(io: &str) -> Option<u64> {
    let line = io.lines().find(|l| l.starts_with("write_bytes:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `self` or a pid.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    SelfProcess,
    Pid(u32),
}

impl Target {
    fn path(&self, file: &str) -> String {
        match self {
            Target::SelfProcess => format!("/proc/self/{file}"),
            Target::Pid(p) => format!("/proc/{p}/{file}"),
        }
    }

    pub fn cpu_ticks(&self) -> Option<u64> {
        parse_stat_ticks(&std::fs::read_to_string(self.path("stat")).ok()?)
    }

    pub fn rss_bytes(&self) -> Option<u64> {
        parse_status_rss(&std::fs::read_to_string(self.path("status")).ok()?)
    }

    /// Needs the right to trace the process (same user, or root).
    pub fn write_bytes(&self) -> Option<u64> {
        parse_io_write_bytes(&std::fs::read_to_string(self.path("io")).ok()?)
    }
}

/// CPU use between two points in time.
#[derive(Debug, Clone, Copy)]
pub struct CpuMark {
    ticks: u64,
    at: Instant,
}

impl CpuMark {
    pub fn take(target: Target) -> Option<CpuMark> {
        Some(CpuMark {
            ticks: target.cpu_ticks()?,
            at: Instant::now(),
        })
    }

    /// Percent of one core used since `self` (100 = one core busy all the time).
    pub fn percent_until(&self, later: &CpuMark) -> f64 {
        cpu_percent(
            later.ticks.saturating_sub(self.ticks),
            later.at.saturating_duration_since(self.at).as_secs_f64(),
        )
    }
}

pub fn cpu_percent(ticks: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        return 0.0;
    }
    ticks as f64 / TICKS_PER_SEC / secs * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_the_name() {
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 1000 50";
        assert_eq!(parse_stat_ticks(stat), Some(300));
        assert_eq!(parse_stat_ticks("garbage"), None);
        assert_eq!(parse_stat_ticks("1 (x) S 1"), None);
    }

    #[test]
    fn rss_from_status() {
        let status = "Name:\tsluice\nVmPeak:\t  9000 kB\nVmRSS:\t    4096 kB\nThreads:\t2\n";
        assert_eq!(parse_status_rss(status), Some(4096 * 1024));
        assert_eq!(parse_status_rss("Name: x\n"), None);
    }

    #[test]
    fn write_bytes_from_io() {
        let io = "rchar: 10\nwchar: 20\nsyscr: 1\nsyscw: 2\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n";
        assert_eq!(parse_io_write_bytes(io), Some(8192));
        assert_eq!(parse_io_write_bytes("rchar: 1\n"), None);
    }

    #[test]
    fn percent_of_a_core() {
        // 50 ticks in one second = half a core.
        assert_eq!(cpu_percent(50, 1.0), 50.0);
        assert_eq!(cpu_percent(300, 2.0), 150.0);
        assert_eq!(cpu_percent(10, 0.0), 0.0);
    }

    #[test]
    fn reads_our_own_process() {
        assert!(Target::SelfProcess.cpu_ticks().is_some());
        assert!(Target::SelfProcess.rss_bytes().unwrap_or(0) > 0);
    }
}
