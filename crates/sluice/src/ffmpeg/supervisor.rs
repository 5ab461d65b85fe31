//! Runs one ffmpeg (or any program) and keeps it running.
//!
//! Why these choices:
//! - An argument vector, never a shell: stream names come from the network, and no
//!   character in them may mean anything but itself.
//! - Its own process group, so a terminal's Ctrl-C does not hit it before sluice decides, and
//!   so stopping it signals everything it may have started; `kill_on_drop` covers the case
//!   where sluice's runtime goes away without a clean stop.
//! - Back-off from 1 s doubling to 30 s, back to 1 s once a run lasted a minute: a broken
//!   input does not spin the CPU, a transient failure recovers fast.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A run this long counts as healthy: the next failure restarts quickly again.
pub const HEALTHY_RUN: Duration = Duration::from_secs(60);
/// How long a stopped process gets to exit after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// Why the program to run cannot be used; the engine is listed with this error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgramError {
    #[error("ffmpeg {} is not an executable file", .0.display())]
    NotExecutable(PathBuf),
    #[error("{} not found in PATH; install ffmpeg or give its path with `ffmpeg /path/to/ffmpeg;`", .0.display())]
    NotInPath(PathBuf),
}

/// Why a start failed (the supervisor retries with back-off).
#[derive(Debug, thiserror::Error)]
#[error("cannot start {}: {source}", program.display())]
pub struct SpawnError {
    program: PathBuf,
    source: std::io::Error,
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// For logs and the API, e.g. `transcode v/live/s/sd`.
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Where stdout and stderr go (appended); None discards them.
    pub log: Option<PathBuf>,
}

/// What the API shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessStatus {
    pub pid: Option<u32>,
    pub restarts: u64,
    pub last_error: Option<String>,
}

/// The delay before the next start, after a run of `ran` that followed a delay of `previous`.
pub fn next_backoff(previous: Option<Duration>, ran: Duration) -> Duration {
    match previous {
        _ if ran >= HEALTHY_RUN => INITIAL_BACKOFF,
        None => INITIAL_BACKOFF,
        Some(p) => (p * 2).min(MAX_BACKOFF),
    }
}

/// A supervised process. Dropping it stops the process.
#[derive(Debug)]
pub struct Supervised {
    pub spec: Arc<ProcessSpec>,
    status: Arc<Mutex<ProcessStatus>>,
    cancel: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

fn lock(s: &Mutex<ProcessStatus>) -> MutexGuard<'_, ProcessStatus> {
    crate::util::lock(s)
}

impl Supervised {
    /// Starts the process now (must be called inside a tokio runtime).
    pub fn start(spec: ProcessSpec) -> Supervised {
        let spec = Arc::new(spec);
        let status = Arc::new(Mutex::new(ProcessStatus::default()));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(supervise(spec.clone(), status.clone(), cancel.clone()));
        Supervised {
            spec,
            status,
            cancel,
            task: Some(task),
        }
    }

    pub fn status(&self) -> ProcessStatus {
        lock(&self.status).clone()
    }

    /// Stops the process (SIGTERM to its group, SIGKILL after [`STOP_GRACE`]) and waits
    /// for that to finish.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        // The task terminates the process on its own; nobody waits for it.
        self.cancel.cancel();
    }
}

fn open_log(path: &Path, spec: &ProcessSpec) -> std::io::Result<(Stdio, Stdio)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    // One line per start, so the log tells runs apart.
    let _ = writeln!(
        f,
        "sluice: starting {} {:?}",
        spec.program.display(),
        spec.args
    );
    let f2 = f.try_clone()?;
    Ok((Stdio::from(f), Stdio::from(f2)))
}

fn spawn_child(spec: &ProcessSpec) -> Result<Child, SpawnError> {
    let (out, err) = match &spec.log {
        None => (Stdio::null(), Stdio::null()),
        Some(p) => match open_log(p, spec) {
            Ok(pair) => pair,
            Err(e) => {
                warn!(
                    "{}: cannot open log {}: {e}; output discarded",
                    spec.name,
                    p.display()
                );
                (Stdio::null(), Stdio::null())
            }
        },
    };
    Command::new(&spec.program)
        .args(&spec.args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| SpawnError {
            program: spec.program.clone(),
            source,
        })
}

fn signal_group(pid: u32, sig: Signal) {
    if let Ok(raw) = i32::try_from(pid) {
        // The child leads its own group (process_group(0)), so its pid is the group id.
        let _ = killpg(Pid::from_raw(raw), sig);
    }
}

async fn terminate(child: &mut Child, name: &str) {
    let Some(pid) = child.id() else {
        return;
    };
    signal_group(pid, Signal::SIGTERM);
    if tokio::time::timeout(STOP_GRACE, child.wait())
        .await
        .is_err()
    {
        warn!("{name}: pid {pid} ignored SIGTERM for {STOP_GRACE:?}; killing it");
        signal_group(pid, Signal::SIGKILL);
        let _ = child.kill().await;
    }
}

async fn supervise(
    spec: Arc<ProcessSpec>,
    status: Arc<Mutex<ProcessStatus>>,
    cancel: CancellationToken,
) {
    let mut backoff: Option<Duration> = None;
    loop {
        let started = Instant::now();
        match spawn_child(&spec) {
            Err(e) => {
                warn!("{}: {e}", spec.name);
                lock(&status).last_error = Some(e.to_string());
            }
            Ok(mut child) => {
                let pid = child.id();
                info!("{}: started pid {}", spec.name, pid.unwrap_or(0));
                lock(&status).pid = pid;
                tokio::select! {
                    r = child.wait() => {
                        let why = match r {
                            Ok(s) => format!("exited ({s}) after {:.1}s", started.elapsed().as_secs_f64()),
                            Err(e) => format!("wait failed: {e}"),
                        };
                        warn!("{}: pid {} {why}", spec.name, pid.unwrap_or(0));
                        let mut s = lock(&status);
                        s.pid = None;
                        s.last_error = Some(why);
                    }
                    _ = cancel.cancelled() => {
                        terminate(&mut child, &spec.name).await;
                        lock(&status).pid = None;
                        info!("{}: stopped", spec.name);
                        return;
                    }
                }
            }
        }
        let delay = next_backoff(backoff, started.elapsed());
        backoff = Some(delay);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = cancel.cancelled() => return,
        }
        lock(&status).restarts += 1;
    }
}

/// The program to run: `configured` (a path, or a name looked up in PATH), else `ffmpeg`
/// from PATH. Checked before starting so a missing ffmpeg is one clear error.
pub fn find_program(configured: Option<&Path>) -> Result<PathBuf, ProgramError> {
    let wanted = configured.unwrap_or(Path::new("ffmpeg"));
    let is_exec = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if wanted.components().count() > 1 || wanted.is_absolute() {
        return if is_exec(wanted) {
            Ok(wanted.to_path_buf())
        } else {
            Err(ProgramError::NotExecutable(wanted.to_path_buf()))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(wanted))
        .find(|p| is_exec(p))
        .ok_or_else(|| ProgramError::NotInPath(wanted.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets_after_a_healthy_run() {
        let short = Duration::from_millis(10);
        let mut d = None;
        let mut seen = Vec::new();
        for _ in 0..7 {
            let n = next_backoff(d, short);
            seen.push(n.as_secs());
            d = Some(n);
        }
        assert_eq!(seen, vec![1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(next_backoff(d, HEALTHY_RUN), INITIAL_BACKOFF);
    }

    #[test]
    fn finds_programs() {
        assert!(find_program(Some(Path::new("sh"))).is_ok());
        assert!(find_program(Some(Path::new("/bin/sh"))).is_ok());
        let e = find_program(Some(Path::new("no-such-ffmpeg-xyz"))).unwrap_err();
        assert!(e.to_string().contains("not found in PATH"), "{e}");
        assert!(find_program(Some(Path::new("/nonexistent/ffmpeg"))).is_err());
    }

    fn spec(dir: &Path, script: &str) -> ProcessSpec {
        ProcessSpec {
            name: "test".into(),
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), script.into()],
            log: Some(dir.join("log.txt")),
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "sluice-sup-{tag}-{}-{:?}",
            std::process::id(),
            Instant::now()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Whether a non-zombie process of group `pgid` exists (from /proc).
    fn group_alive(pgid: u32) -> bool {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return false;
        };
        dir.flatten().any(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // pid (comm) state ppid pgrp ...
            let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
            let f: Vec<&str> = after.split_whitespace().collect();
            f.len() > 2 && f[0] != "Z" && f[2] == pgid.to_string()
        })
    }

    async fn wait_until(mut f: impl FnMut() -> bool) -> bool {
        for _ in 0..100 {
            if f() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    #[tokio::test]
    async fn restarts_a_dying_process_and_logs_its_output() {
        let dir = temp_dir("restart");
        let s = Supervised::start(spec(&dir, "echo run; exit 3"));
        assert!(wait_until(|| s.status().restarts >= 1).await);
        let st = s.status();
        assert!(st.last_error.unwrap().contains("exit status: 3"));
        s.stop().await;
        let log = std::fs::read_to_string(dir.join("log.txt")).unwrap();
        assert!(log.matches("run").count() >= 2, "{log}");
        assert!(log.contains("sluice: starting /bin/sh"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn stop_kills_the_whole_group() {
        let dir = temp_dir("stop");
        // A child that ignores nothing, plus a grandchild in the same group.
        let s = Supervised::start(spec(&dir, "sleep 30 & sleep 30"));
        assert!(wait_until(|| s.status().pid.is_some()).await);
        let pid = s.status().pid.unwrap();
        let t = Instant::now();
        s.stop().await;
        assert!(t.elapsed() < STOP_GRACE, "SIGTERM was enough");
        // Nothing of the group is left running (a reparented zombie may linger until init
        // reaps it).
        assert!(
            wait_until(|| !group_alive(pid)).await,
            "group {pid} still running"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
