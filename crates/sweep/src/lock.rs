//! One lock per run (`locks/<id>.lock`, created with O_EXCL) naming its owner: host, pid
//! and the pid's start time, and the Slurm job for array tasks. Two launches of one sweep
//! never train the same run; a lock whose owner is gone (a dead pid on this host, a pid
//! now used by another process, a Slurm job no longer queued) is stale and broken under a
//! second exclusive file, so two launches cannot both break it. This lock only keeps
//! launches from racing; the trainer's own run-directory lock
//! (`synthscale_train::run_lock`) is what keeps a run from being trained twice.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Result, SweepError};

/// Who holds a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub host: String,
    pub pid: u32,
    /// `<array job id>_<index>` for Slurm array tasks (and for launches that submitted it).
    pub slurm_job: Option<String>,
    /// Seconds since the epoch when the lock was taken.
    pub since: u64,
    /// The pid's start time (clock ticks after boot, `/proc/<pid>/stat` field 22), so that
    /// a pid reused by another process is not taken for the owner. Absent in locks written
    /// before it was recorded.
    #[serde(default)]
    pub start_time: Option<u64>,
}

/// A process's start time in clock ticks after boot (`/proc/<pid>/stat` field 22); `None`
/// when there is no such process (or no /proc).
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 2, the command name, is in parentheses and may hold spaces and parentheses: the
    // fields after it start after its last ')'. Field 22 is then the 20th.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl Owner {
    /// This process on this host.
    pub fn me(slurm_job: Option<String>) -> Owner {
        Owner {
            host: hostname(),
            pid: std::process::id(),
            slurm_job,
            since: now(),
            start_time: process_start_time(std::process::id()),
        }
    }

    /// Whether the owner still exists. A Slurm job is alive while `squeue` lists it (or
    /// when `squeue` cannot answer: never break a lock on doubt); a local owner while its
    /// pid exists on this host with the recorded start time (for a lock without one: while
    /// the pid runs a `synthscale…` program, since every owner is one); an owner on another
    /// host without a Slurm job is assumed alive.
    pub fn is_alive(&self) -> bool {
        if let Some(job) = &self.slurm_job {
            return job_state(job).is_none_or(|s| s.is_some());
        }
        if self.host != hostname() {
            return true;
        }
        if !Path::new("/proc/self/stat").exists() {
            // No /proc to ask: never break a lock on doubt.
            return true;
        }
        let Some(started) = process_start_time(self.pid) else {
            return false;
        };
        match self.start_time {
            Some(t) => t == started,
            None => std::fs::read_to_string(format!("/proc/{}/comm", self.pid))
                .is_ok_and(|c| c.trim_end().starts_with("synthscale")),
        }
    }

    pub fn describe(&self) -> String {
        match &self.slurm_job {
            Some(j) => format!("slurm job {j} ({}:{})", self.host, self.pid),
            None => format!("{}:{}", self.host, self.pid),
        }
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// This machine's name, as the trainer's run lock records it.
pub use synthscale_train::run_lock::hostname;

/// A held lock; released (removed if still ours) on drop.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    owner: Owner,
}

impl RunLock {
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// Rewrites the lock with a new owner (a launch handing its runs to Slurm tasks).
    pub fn hand_over(&mut self, owner: Owner) -> Result<()> {
        write_atomic(&self.path, &owner)?;
        self.owner = owner;
        Ok(())
    }

    /// Leaves the lock in place for its new owner.
    pub fn forget(self) {
        std::mem::forget(self)
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        if read(&self.path).ok().flatten().as_ref() == Some(&self.owner) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// What `acquire` found.
#[derive(Debug)]
pub enum Acquire {
    Acquired(RunLock),
    /// Another live owner holds the run.
    Held(Owner),
}

pub fn lock_path(out_dir: &Path, id: &str) -> PathBuf {
    out_dir.join("locks").join(format!("{id}.lock"))
}

/// Reads a lock; `None` when there is none.
pub fn read(path: &Path) -> Result<Option<Owner>> {
    match std::fs::read_to_string(path) {
        Ok(t) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|e| SweepError::State {
                path: path.to_path_buf(),
                message: format!("unreadable lock ({e}); remove it if no run is using it"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SweepError::read(path, e)),
    }
}

fn write_atomic(path: &Path, owner: &Owner) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_string(owner).expect("serializes"))
        .map_err(|e| SweepError::write(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| SweepError::write(path, e))
}

/// Publishes `owner` at `path` only if nothing is there. The lock is written whole to a
/// private file first and hard-linked into place: linking is atomic and fails when the
/// path exists (also on NFS), so another launch never reads a half-written lock, as it
/// could between an exclusive create and the write that follows it.
fn create_exclusive(path: &Path, owner: &Owner) -> std::io::Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let tmp = path.with_extension(format!(
        "new{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(serde_json::to_string(owner).expect("serializes").as_bytes())?;
        f.sync_all()
    })();
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    linked
}

/// Takes the run's lock for `owner`. `adopt` names a Slurm job whose lock the caller may
/// take over (an array task finding the lock its launch wrote for it).
pub fn acquire(out_dir: &Path, id: &str, owner: Owner, adopt: Option<&str>) -> Result<Acquire> {
    let path = lock_path(out_dir, id);
    let dir = path.parent().expect("locks dir");
    std::fs::create_dir_all(dir).map_err(|e| SweepError::write(dir, e))?;
    for _ in 0..20 {
        match create_exclusive(&path, &owner) {
            Ok(()) => return Ok(Acquire::Acquired(RunLock { path, owner })),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(SweepError::write(path, e)),
        }
        let Some(held) = read(&path)? else { continue };
        let adoptable = adopt.is_some() && held.slurm_job.as_deref() == adopt;
        if !adoptable && held.is_alive() {
            return Ok(Acquire::Held(held));
        }
        // Break the stale (or adoptable) lock under an exclusive guard file.
        let guard = path.with_extension("break");
        if let Ok(meta) = std::fs::metadata(&guard) {
            // A breaker that died mid-break leaves its guard; a minute is far beyond a break.
            let old = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|a| a > Duration::from_secs(60));
            if old {
                let _ = std::fs::remove_file(&guard);
            }
        }
        if create_exclusive(&guard, &owner).is_err() {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let still = read(&path)?;
        let result = if still.as_ref() == Some(&held) {
            write_atomic(&path, &owner).map(|_| true)
        } else {
            Ok(false)
        };
        let _ = std::fs::remove_file(&guard);
        if result? {
            return Ok(Acquire::Acquired(RunLock { path, owner }));
        }
    }
    match read(&path)? {
        Some(held) => Ok(Acquire::Held(held)),
        None => Err(SweepError::State {
            path,
            message: "could not take the lock after 20 tries".into(),
        }),
    }
}

/// `squeue`'s state of a job or array task: `None` when squeue cannot answer (not
/// installed, no controller), `Some(None)` when the job is not queued (finished or
/// unknown), else its state (`PENDING`, `RUNNING`, …).
pub fn job_state(job: &str) -> Option<Option<String>> {
    let out = Command::new("squeue")
        .args(["-h", "-r", "-o", "%T", "-j", job])
        .output()
        .ok()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.success() {
        return Some(
            stdout
                .lines()
                .next()
                .map(|l| l.trim().to_string())
                .filter(|s| !s.is_empty()),
        );
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("Invalid job id") {
        return Some(None);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_lock_holds_and_a_dead_pid_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let me = Owner::me(None);
        let Acquire::Acquired(lock) = acquire(dir.path(), "r", me.clone(), None).unwrap() else {
            panic!("first acquire must succeed")
        };
        // A second owner (another launch) finds it held by a live pid: ours.
        let other = Owner {
            pid: me.pid + 1,
            ..me.clone()
        };
        match acquire(dir.path(), "r", other.clone(), None).unwrap() {
            Acquire::Held(h) => assert_eq!(h, me),
            Acquire::Acquired(_) => panic!("a live lock was broken"),
        }
        drop(lock);
        assert!(!lock_path(dir.path(), "r").exists());
        // A lock left by a pid that does not exist (pid_max is at most 2^22) is stale.
        let dead = Owner {
            pid: 4_194_304 + 7,
            ..me.clone()
        };
        std::fs::create_dir_all(dir.path().join("locks")).unwrap();
        write_atomic(&lock_path(dir.path(), "r"), &dead).unwrap();
        let Acquire::Acquired(l2) = acquire(dir.path(), "r", other.clone(), None).unwrap() else {
            panic!("a stale lock must be broken")
        };
        assert_eq!(read(&lock_path(dir.path(), "r")).unwrap(), Some(other));
        drop(l2);
    }

    #[test]
    fn a_reused_pid_does_not_hold_a_run_forever() {
        let dir = tempfile::tempdir().unwrap();
        let me = Owner::me(None);
        assert!(
            me.start_time.is_some(),
            "this process's start time is readable"
        );
        std::fs::create_dir_all(dir.path().join("locks")).unwrap();
        let path = lock_path(dir.path(), "r");
        // A live pid (ours) recorded with another start time: the launcher that wrote it
        // died and its pid went to an unrelated process.
        let reused = Owner {
            start_time: me.start_time.map(|t| t + 1),
            ..me.clone()
        };
        assert!(!reused.is_alive());
        write_atomic(&path, &reused).unwrap();
        let Acquire::Acquired(l) = acquire(dir.path(), "r", me.clone(), None).unwrap() else {
            panic!("a lock naming a reused pid held the run")
        };
        drop(l);
        // A lock written before start times were recorded, naming a live pid that is not a
        // synthscale program (a `sleep`), is stale too; one naming a synthscale process
        // (this test binary, synthscale_sweep-…) still holds.
        let mut sleep = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let old = format!(
            r#"{{"host":"{}","pid":{},"slurm_job":null,"since":0}}"#,
            hostname(),
            sleep.id()
        );
        std::fs::write(&path, old).unwrap();
        assert_eq!(read(&path).unwrap().unwrap().start_time, None);
        let Acquire::Acquired(l) = acquire(dir.path(), "r", me.clone(), None).unwrap() else {
            panic!("an old lock naming an unrelated live process held the run")
        };
        drop(l);
        let _ = sleep.kill();
        let _ = sleep.wait();
        let mine = format!(
            r#"{{"host":"{}","pid":{},"slurm_job":null,"since":0}}"#,
            hostname(),
            std::process::id()
        );
        std::fs::write(&path, mine).unwrap();
        assert!(matches!(
            acquire(dir.path(), "r", me.clone(), None).unwrap(),
            Acquire::Held(_)
        ));
    }

    #[test]
    fn start_times_survive_odd_command_names() {
        // Oracle: proc(5) — field 22 counted after the parenthesised command name.
        let pid = std::process::id();
        let t = process_start_time(pid).unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        assert_eq!(fields[19].parse::<u64>().unwrap(), t);
        assert_eq!(process_start_time(4_194_304 + 7), None);
    }
}
