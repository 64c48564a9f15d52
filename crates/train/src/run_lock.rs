//! One lock per run directory: `run.lock`, an OS advisory lock (`flock`) that `synthscale
//! train` takes before it writes anything and holds for the life of the process. The kernel
//! drops it when the process ends, however it ends, so nothing — a second `train`, an
//! orphaned trainer, a relaunched sweep — can train one run directory twice, and no crash
//! leaves a stale lock behind. The file records the holder (host, pid) for messages only;
//! the lock itself is the kernel's, never the file's presence, and the file is never removed
//! (removing it while held would let a second process lock a new file of the same name).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// The lock file in a run directory.
pub const LOCK_FILE: &str = "run.lock";

/// How long `acquire` retries before reporting the directory held: long enough to ride out
/// a [`probe`], which holds the lock shared for microseconds.
const ACQUIRE_PATIENCE: Duration = Duration::from_millis(500);

/// Who holds a run directory, as its lock file records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    /// Seconds since the epoch when the lock was taken.
    pub since: u64,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} on {}", self.pid, self.host)
    }
}

/// `flock(2)` without blocking: `Ok(true)` when taken, `Ok(false)` when another open file
/// holds a conflicting lock. (libc rather than `File::try_lock`, which needs Rust 1.89
/// where the workspace declares 1.85.)
#[cfg(unix)]
fn try_flock(file: &File, shared: bool) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    let op = if shared { libc::LOCK_SH } else { libc::LOCK_EX };
    loop {
        // SAFETY: flock on a descriptor this File owns for the duration of the call.
        if unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) } == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// No advisory locks off Unix: every directory reads as free.
#[cfg(not(unix))]
fn try_flock(_file: &File, _shared: bool) -> std::io::Result<bool> {
    Ok(true)
}

#[cfg(unix)]
fn unflock(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: as in try_flock.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
}

#[cfg(not(unix))]
fn unflock(_file: &File) {}

/// A held run-directory lock; released when dropped or when the process ends.
#[derive(Debug)]
pub struct RunDirLock {
    // Holding the open file holds the lock.
    _file: File,
    path: PathBuf,
}

impl RunDirLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// This machine's host name as the kernel reports it (`$HOSTNAME`, else `localhost`, where
/// it cannot be read): what a lock's record names its holder by.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

fn open(path: &Path) -> std::io::Result<File> {
    // Never truncated on open: a holder's record stays readable to the process that fails
    // to take the lock.
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// Reads the holder a lock file records; `None` when it is empty or unreadable (a holder
/// between taking the lock and writing its record).
fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(text.trim()).ok()
}

/// Takes the lock of `run_dir` (creating the directory), or fails with
/// [`TrainError::Locked`] naming the directory and the holder when another process holds it.
pub fn acquire(run_dir: &Path) -> Result<RunDirLock> {
    std::fs::create_dir_all(run_dir).map_err(|e| TrainError::RunDir {
        path: run_dir.to_path_buf(),
        message: format!("cannot create the run directory: {e}"),
    })?;
    let path = run_dir.join(LOCK_FILE);
    let mut file = open(&path).map_err(|e| TrainError::write(&path, e))?;
    let started = Instant::now();
    loop {
        match try_flock(&file, false) {
            Ok(true) => break,
            Ok(false) if started.elapsed() < ACQUIRE_PATIENCE => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(false) => {
                // The holder writes its record right after locking; give it a moment.
                let mut holder = read_holder(&mut file);
                if holder.is_none() {
                    std::thread::sleep(Duration::from_millis(50));
                    holder = read_holder(&mut file);
                }
                return Err(TrainError::Locked {
                    path: run_dir.to_path_buf(),
                    holder: LockState::Held(holder).describe(),
                });
            }
            Err(e) => return Err(TrainError::write(path, e)),
        }
    }
    let me = Holder {
        host: hostname(),
        pid: std::process::id(),
        since: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    let text = serde_json::to_string(&me).expect("serializes") + "\n";
    (|| {
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(text.as_bytes())?;
        file.flush()
    })()
    .map_err(|e| TrainError::write(&path, e))?;
    Ok(RunDirLock { _file: file, path })
}

/// What [`probe`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    /// No live process holds the directory.
    Free,
    /// A live process holds it; who, when its record is readable.
    Held(Option<Holder>),
}

impl LockState {
    /// The holder in words, for messages.
    pub fn describe(&self) -> String {
        match self {
            LockState::Free => "nobody".into(),
            LockState::Held(Some(h)) => h.to_string(),
            LockState::Held(None) => "another process".into(),
        }
    }
}

/// Whether a live process holds `run_dir`'s lock. Probes with a shared lock held for an
/// instant, which an [`acquire`] racing with it waits out.
pub fn probe(run_dir: &Path) -> Result<LockState> {
    let path = run_dir.join(LOCK_FILE);
    let mut file = match OpenOptions::new().read(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LockState::Free),
        Err(e) => return Err(TrainError::read(path, e)),
    };
    match try_flock(&file, true) {
        Ok(true) => {
            unflock(&file);
            Ok(LockState::Free)
        }
        Ok(false) => Ok(LockState::Held(read_holder(&mut file))),
        Err(e) => Err(TrainError::read(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_run_dir_refuses_a_second_lock_and_names_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        assert_eq!(probe(&run).unwrap(), LockState::Free, "no lock file: free");
        let lock = acquire(&run).unwrap();
        assert!(lock.path().exists());
        // flock locks belong to the open file, so a second open in this process conflicts
        // exactly as another process would.
        match acquire(&run) {
            Err(TrainError::Locked { path, holder }) => {
                assert_eq!(path, run);
                assert!(
                    holder.contains(&format!("pid {}", std::process::id())),
                    "{holder}"
                );
            }
            other => panic!("a held directory was locked again: {other:?}"),
        }
        let LockState::Held(Some(h)) = probe(&run).unwrap() else {
            panic!("a held lock probed free or without its record")
        };
        assert_eq!(h.pid, std::process::id());
        drop(lock);
        // Released with its holder; the file stays.
        assert_eq!(probe(&run).unwrap(), LockState::Free);
        assert!(run.join(LOCK_FILE).exists());
        let again = acquire(&run).unwrap();
        drop(again);
    }
}
