//! Process-level chores done before the async runtime starts: the pid file
//! (with a lock, so two servers never share one) and detaching as a daemon.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _};
use nix::fcntl::{Flock, FlockArg};

/// The locked pid file. The lock lives as long as this value (and is inherited
/// by a daemon child, since the open file is shared across fork).
pub struct PidFile {
    path: PathBuf,
    file: Flock<File>,
}

impl PidFile {
    /// Creates and locks `path`. Fails when another live process holds it.
    pub fn acquire(path: &Path) -> anyhow::Result<PidFile> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create pid dir {}", dir.display()))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("cannot open pid file {}", path.display()))?;
        let mut old = String::new();
        let _ = file.read_to_string(&mut old);
        let file = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
            anyhow!(
                "pid file {} is locked by another running sluice (pid {}): {e}; stop it first or set another `pid`",
                path.display(),
                old.trim()
            )
        })?;
        let mut pid = PidFile {
            path: path.to_path_buf(),
            file,
        };
        pid.write_current()?;
        Ok(pid)
    }

    /// Writes our pid (again after a daemon fork changed it).
    pub fn write_current(&mut self) -> anyhow::Result<()> {
        let f: &mut File = &mut self.file;
        f.set_len(0)?;
        f.seek(SeekFrom::Start(0))?;
        writeln!(f, "{}", std::process::id())?;
        f.flush()?;
        Ok(())
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// How the server's start-up ends, told to the command that started a daemon.
///
/// Like nginx, `sluice` with `daemon on` returns only once the server has bound its
/// ports: 0 when it is up, 1 with the reason on the terminal when it is not (a port
/// in use, a log file it cannot open). Without this the command said "ok" for a
/// server that died a moment later, with the reason only in its log.
/// A foreground server has nobody to tell: every call is a no-op.
#[derive(Default)]
pub struct Startup {
    pipe: std::sync::Mutex<Option<File>>,
}

impl Startup {
    /// Listeners are bound: the starting command exits 0.
    pub fn ready(&self) {
        self.tell(b"ok\n");
    }

    /// Start-up failed: the starting command prints `reason` and exits 1. Nothing
    /// happens once [`Startup::ready`] or this was called.
    pub fn failed(&self, reason: &str) {
        self.tell(reason.as_bytes());
    }

    fn tell(&self, what: &[u8]) {
        let taken = self.pipe.lock().map(|mut p| p.take());
        if let Ok(Some(mut pipe)) = taken {
            // The parent may be gone (killed): nothing else to do then.
            let _ = pipe.write_all(what);
        }
    }
}

/// The starting command's side: waits for the daemon's word (or its end).
fn wait_for_daemon(mut pipe: File) -> i32 {
    let mut said = String::new();
    let _ = pipe.read_to_string(&mut said);
    match said.as_str() {
        "ok\n" => 0,
        "" => {
            eprintln!("sluice: the daemon exited while starting; see its log");
            1
        }
        reason => {
            eprintln!("sluice: {}", reason.trim_end());
            1
        }
    }
}

/// Detaches from the terminal: fork, setsid, fork again so that the daemon can
/// never reacquire a terminal, stdio to /dev/null. The first parent waits for the
/// returned [`Startup`] to be told how start-up ended and exits with that.
///
/// Must run before any thread is started (before the tokio runtime).
pub fn daemonize() -> anyhow::Result<Startup> {
    use nix::unistd::{fork, setsid, ForkResult};
    // Close-on-exec: ffmpeg children must not hold the parent's wait open.
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;
    // SAFETY: called from main before the runtime or any other thread exists, so
    // the child is a copy of a single-threaded process and may run arbitrary code.
    match unsafe { fork() }.context("fork")? {
        ForkResult::Parent { .. } => {
            // Our copy of the write end must go, or the read never sees the end.
            drop(write);
            std::process::exit(wait_for_daemon(File::from(read)));
        }
        ForkResult::Child => drop(read),
    }
    setsid().context("setsid")?;
    // SAFETY: still single-threaded (the first child runs only this function).
    match unsafe { fork() }.context("second fork")? {
        ForkResult::Parent { .. } => std::process::exit(0),
        ForkResult::Child => {}
    }
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .context("open /dev/null")?;
    nix::unistd::dup2_stdin(&null).context("redirect stdin")?;
    nix::unistd::dup2_stdout(&null).context("redirect stdout")?;
    nix::unistd::dup2_stderr(&null).context("redirect stderr")?;
    Ok(Startup {
        pipe: std::sync::Mutex::new(Some(File::from(write))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_and_file_removed_on_drop() {
        let dir = std::env::temp_dir().join(format!("sluice-pid-{}", std::process::id()));
        let path = dir.join("x.pid");
        let first = PidFile::acquire(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        let err = PidFile::acquire(&path).err().unwrap().to_string();
        assert!(err.contains("locked by another running sluice"), "{err}");
        drop(first);
        assert!(!path.exists());
        let again = PidFile::acquire(&path).unwrap();
        drop(again);
        let _ = std::fs::remove_dir_all(dir);
    }
}
