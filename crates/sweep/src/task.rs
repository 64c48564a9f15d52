//! One Slurm array task (`synthscale sweep task`): the runs its index maps to in the runs
//! file, each under its lock, trained in a child process (several at once when packed),
//! and the exit code the batch script acts on (75: requeue me).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use synthscale_train::DONE;

use crate::child::{run_child, wait_for_run_dir, Child, RunDirWait, DEFAULT_LOCK_WAIT};
use crate::error::{Result, SweepError};
use crate::lock::{self, Acquire, Owner};
use crate::slurm::{RunsFile, TaskRun};

/// One array task: trains its runs (several at once on the task's GPU when they were
/// packed) and returns the exit code for the batch script: the first failure's, else 75
/// (requeue me) when any run stopped to be resumed, else 0. What happens to each run is
/// reported through `on_event` (called from the runs' threads).
pub fn run_task(
    runs_file: &Path,
    index: usize,
    binary: &Path,
    stop: &AtomicBool,
    on_event: &(dyn Fn(TaskEvent) + Sync),
) -> Result<i32> {
    let text = std::fs::read_to_string(runs_file).map_err(|e| SweepError::read(runs_file, e))?;
    let runs: RunsFile = serde_json::from_str(&text).map_err(|e| SweepError::State {
        path: runs_file.to_path_buf(),
        message: e.to_string(),
    })?;
    let mine = runs.task(index);
    if mine.is_empty() {
        return Err(SweepError::State {
            path: runs_file.to_path_buf(),
            message: format!(
                "no array task {index} (the file lists {} runs, {} per task)",
                runs.runs.len(),
                runs.pack
            ),
        });
    }
    if mine.len() == 1 {
        // RAYON_NUM_THREADS from the batch script: the task's CPUs (per rank under srun).
        return run_one(&runs, &mine[0], binary, stop, None, on_event);
    }
    // Packed runs share the task's CPUs.
    let threads = std::env::var("SLURM_CPUS_PER_TASK")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .map(|c| (c / mine.len()).max(1));
    let codes: Vec<Result<i32>> = std::thread::scope(|s| {
        let handles: Vec<_> = mine
            .iter()
            .map(|run| s.spawn(|| run_one(&runs, run, binary, stop, threads, on_event)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a run's thread panicked"))
            .collect()
    });
    let mut requeue = false;
    for c in codes {
        match c? {
            0 => {}
            c if c == synthscale_train::EXIT_REQUEUE as i32 => requeue = true,
            c => return Ok(c),
        }
    }
    Ok(if requeue {
        synthscale_train::EXIT_REQUEUE as i32
    } else {
        0
    })
}

/// What an array task does with one of its runs, as the task's log line says it.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskEvent {
    /// DONE before this task (or by the time the run directory was free).
    AlreadyDone { id: String },
    /// Another launch or task, or a trainer outside them, holds the run.
    Held { id: String, holder: String },
    /// A trainer outside this task holds the run directory; waiting up to `seconds`.
    Waiting {
        id: String,
        holder: String,
        seconds: u64,
    },
    /// A ladder branch whose trunk has not kept the checkpoint at `step`: requeued.
    TrunkNotReady { id: String, step: u64 },
    /// The trainer started, its output going to `log`.
    Training { id: String, log: PathBuf },
    /// The trainer exited with `code`.
    Exited { id: String, code: i32 },
    /// Another trainer took the run directory first.
    TakenByAnotherTrainer { id: String },
}

impl std::fmt::Display for TaskEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskEvent::AlreadyDone { id } => write!(f, "{id}: already done"),
            TaskEvent::Held { id, holder } => {
                write!(f, "{id}: held by {holder}; not starting it again")
            }
            TaskEvent::Waiting {
                id,
                holder,
                seconds,
            } => write!(
                f,
                "{id}: run directory held by {holder}; waiting up to {seconds} s for it to let go"
            ),
            TaskEvent::TrunkNotReady { id, step } => write!(
                f,
                "{id}: its trunk has not reached step {step} yet; requeueing in 30 s"
            ),
            TaskEvent::Training { id, log } => {
                write!(f, "{id}: training (log {})", log.display())
            }
            TaskEvent::Exited { id, code } => write!(f, "{id}: train exited with {code}"),
            TaskEvent::TakenByAnotherTrainer { id } => write!(
                f,
                "{id}: run directory held by another trainer; not starting it again"
            ),
        }
    }
}

/// One run of an array task: takes its lock (adopting the one its launch wrote), trains it
/// in a child process and returns its exit code (75: requeue me).
fn run_one(
    runs: &RunsFile,
    run: &TaskRun,
    binary: &Path,
    stop: &AtomicBool,
    threads: Option<usize>,
    on_event: &(dyn Fn(TaskEvent) + Sync),
) -> Result<i32> {
    let id = || run.id.clone();
    if run.run_dir.join(DONE).exists() {
        on_event(TaskEvent::AlreadyDone { id: id() });
        return Ok(0);
    }
    let job = match (
        std::env::var("SLURM_ARRAY_JOB_ID"),
        std::env::var("SLURM_ARRAY_TASK_ID"),
    ) {
        (Ok(j), Ok(t)) => Some(format!("{j}_{t}")),
        _ => None,
    };
    let guard = match lock::acquire(
        &runs.out_dir,
        &run.id,
        Owner::me(job.clone()),
        job.as_deref(),
    )? {
        Acquire::Acquired(l) => l,
        Acquire::Held(o) => {
            on_event(TaskEvent::Held {
                id: id(),
                holder: o.describe(),
            });
            return Ok(0);
        }
    };
    // Never a second trainer beside one that holds the run directory (an orphan of a task
    // killed without its trainer): wait for it, bounded, then leave the run alone.
    let deadline = std::time::Instant::now() + DEFAULT_LOCK_WAIT;
    let mut on_wait = |holder: &str| {
        on_event(TaskEvent::Waiting {
            id: id(),
            holder: holder.to_string(),
            seconds: DEFAULT_LOCK_WAIT.as_secs(),
        })
    };
    match wait_for_run_dir(&run.run_dir, deadline, Some(stop), &mut on_wait)? {
        RunDirWait::Free => {}
        RunDirWait::Held(h) => {
            on_event(TaskEvent::Held {
                id: id(),
                holder: h,
            });
            return Ok(0);
        }
        RunDirWait::Stopped => {
            guard.forget();
            return Ok(synthscale_train::EXIT_REQUEUE as i32);
        }
    }
    if run.run_dir.join(DONE).exists() {
        on_event(TaskEvent::AlreadyDone { id: id() });
        return Ok(0);
    }
    // A ladder branch submitted without a dependency (its trunk was held by another
    // launch) whose trunk has not kept its checkpoint yet: wait a little, then requeue.
    if let Some(b) = synthscale_train::RunConfig::load(&run.config)
        .ok()
        .and_then(|c| c.branch)
    {
        let started = synthscale_train::checkpoint::find(&run.run_dir).is_some();
        if !started && !synthscale_train::ladder::branch_ready(&b) {
            on_event(TaskEvent::TrunkNotReady {
                id: id(),
                step: b.step,
            });
            std::thread::sleep(std::time::Duration::from_secs(30));
            guard.forget();
            return Ok(synthscale_train::EXIT_REQUEUE as i32);
        }
    }
    on_event(TaskEvent::Training {
        id: id(),
        log: run.log.clone(),
    });
    let code = run_child(&Child {
        binary,
        config: &run.config,
        run_dir: &run.run_dir,
        log: &run.log,
        threads,
        gpu: None,
        stop: Some(stop),
        ranks: run.ranks,
        srun: true,
    })?;
    let code = code.unwrap_or(1);
    on_event(TaskEvent::Exited { id: id(), code });
    if code == synthscale_train::EXIT_LOCKED as i32 {
        // Another trainer took the run directory first; it is not this task's failure.
        on_event(TaskEvent::TakenByAnotherTrainer { id: id() });
        return Ok(0);
    }
    if code == synthscale_train::EXIT_REQUEUE as i32 {
        // Keep the lock: the requeued task adopts it.
        guard.forget();
    }
    Ok(code)
}
