//! Starting one run's `synthscale train` process: its log, threads and GPUs, SIGTERM when
//! a stop is requested or the launcher dies, and waiting for another trainer to leave the
//! run directory. The local executor and the Slurm array task both run children this way.

use std::fs::OpenOptions;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use synthscale_train::run_lock::{self, LockState};

use crate::error::{Result, SweepError};

/// [`LocalOptions::lock_wait`]'s default, also the Slurm task's wait: a step and a
/// checkpoint of any run this harness trains on CPU, with room to spare.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(60);

/// How to start one process of one run.
pub struct Child<'a> {
    pub binary: &'a Path,
    pub config: &'a Path,
    pub run_dir: &'a Path,
    pub log: &'a Path,
    pub threads: Option<usize>,
    pub gpu: Option<&'a str>,
    pub stop: Option<&'a AtomicBool>,
    /// Data-parallel ranks of the run; above 1 the binary must be built with `mpi`.
    pub ranks: u32,
    /// How several ranks start: `srun` (a job step of the Slurm allocation this runs in),
    /// else `train --nproc` (mpirun on this machine).
    pub srun: bool,
}

/// Starts `synthscale train` for one run, its output appended to the run's log, and waits;
/// a stop request is forwarded as SIGTERM. Returns the exit code (None: killed).
pub fn run_child(c: &Child) -> Result<Option<i32>> {
    if let Some(dir) = c.log.parent() {
        std::fs::create_dir_all(dir).map_err(|e| SweepError::write(dir, e))?;
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(c.log)
        .map_err(|e| SweepError::write(c.log, e))?;
    let err = log.try_clone().map_err(|e| SweepError::write(c.log, e))?;
    let ranks = c.ranks.max(1);
    let mut cmd = if ranks > 1 && c.srun {
        // One task per rank of the allocation's tasks; a rank that dies ends the step.
        let mut s = Command::new("srun");
        s.arg(format!("--ntasks={ranks}"))
            .args(["--mpi=pmix", "--kill-on-bad-exit=1"])
            .arg(c.binary);
        s
    } else {
        Command::new(c.binary)
    };
    cmd.arg("train")
        .arg("--config")
        .arg(c.config)
        .arg("--run-dir")
        .arg(c.run_dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err);
    if ranks > 1 && !c.srun {
        cmd.arg("--nproc").arg(ranks.to_string());
    }
    if let Some(t) = c.threads {
        // The run's threads, shared by its ranks.
        let t = (t / ranks as usize).max(1);
        cmd.env("RAYON_NUM_THREADS", t.to_string());
    }
    if let Some(g) = c.gpu {
        cmd.env("CUDA_VISIBLE_DEVICES", g);
    }
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| SweepError::read(c.binary, e))?;
    let status = wait_forwarding_stop(&mut child, c.stop, libc::SIGTERM)
        .map_err(|e| SweepError::read(c.binary, e))?;
    Ok(status.code())
}

/// Waits for `child`, sending it `signal` once when `stop` is set (a launcher's stop flag,
/// set by SIGTERM, SIGUSR1 or SIGINT), so that it checkpoints and exits; returns its exit
/// status. The one place a launcher passes a stop on to the process it started.
pub fn wait_forwarding_stop(
    child: &mut std::process::Child,
    stop: Option<&AtomicBool>,
    signal: libc::c_int,
) -> std::io::Result<std::process::ExitStatus> {
    let mut signalled = false;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if !signalled && stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as libc::pid_t, signal) };
            signalled = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Makes the child get SIGTERM when the thread that spawned it ends — with the launcher,
/// however the launcher dies (SIGKILL included) — so that no trainer outlives its launcher
/// as an orphan; SIGTERM makes it checkpoint and exit 75. Linux follows the spawning
/// *thread*: [`run_child`] spawns and waits in one thread, which outlives the child.
#[cfg(target_os = "linux")]
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: getpid is async-signal-safe and runs before the fork.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs in the child between fork and exec and calls only
    // async-signal-safe functions (prctl, getppid); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGTERM as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The launcher died between fork and prctl: its death signal is already lost.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
pub fn die_with_parent(_cmd: &mut Command) {}

/// What [`wait_for_run_dir`] ended on.
#[derive(Debug, Clone, PartialEq)]
pub enum RunDirWait {
    /// No trainer holds the run directory: one may start.
    Free,
    /// Still held at the deadline, by this holder.
    Held(String),
    /// A stop was requested while waiting.
    Stopped,
}

/// Waits until no live trainer holds `run_dir` (its `run.lock`), until `deadline` at most;
/// `on_wait` is called once with the holder if there is any wait at all.
pub fn wait_for_run_dir(
    run_dir: &Path,
    deadline: Instant,
    stop: Option<&AtomicBool>,
    on_wait: &mut dyn FnMut(&str),
) -> Result<RunDirWait> {
    let mut told = false;
    loop {
        let state = run_lock::probe(run_dir)?;
        if state == LockState::Free {
            return Ok(RunDirWait::Free);
        }
        if stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
            return Ok(RunDirWait::Stopped);
        }
        if Instant::now() >= deadline {
            return Ok(RunDirWait::Held(format!(
                "{} (run directory)",
                state.describe()
            )));
        }
        if !told {
            on_wait(&state.describe());
            told = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
