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

/// Detaches from the terminal: fork (the parent exits 0), setsid, fork again so
/// that the daemon can never reacquire a terminal, stdio to /dev/null.
///
/// Must run before any thread is started (before the tokio runtime).
pub fn daemonize() -> anyhow::Result<()> {
    use nix::unistd::{fork, setsid, ForkResult};
    // SAFETY: called from main before the runtime or any other thread exists, so
    // the child is a copy of a single-threaded process and may run arbitrary code.
    match unsafe { fork() }.context("fork")? {
        ForkResult::Parent { .. } => std::process::exit(0),
        ForkResult::Child => {}
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
    Ok(())
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
