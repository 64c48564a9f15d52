//! The local executor: a pool of workers, each run in its own `synthscale train` process
//! (a crash fails one run, not the sweep), CPU threads split between workers, GPUs handed
//! out through `CUDA_VISIBLE_DEVICES`, failed runs retried with resume, one log per run.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use synthscale_train::config::DeviceSpec;
use synthscale_train::run_lock;
use synthscale_train::{DONE, EXIT_LOCKED, EXIT_REQUEUE};

use crate::child::{run_child, wait_for_run_dir, Child, RunDirWait, DEFAULT_LOCK_WAIT};
use crate::error::{Result, SweepError};
use crate::gpu_pool::{GpuPool, Lease};
use crate::lock::{self, Acquire, Owner};
use crate::plan::Sweep;

/// What happened to one run.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    /// Trained to the end in this launch.
    Done { attempts: u32, seconds: f64 },
    /// Marked DONE before this launch: nothing started.
    AlreadyDone,
    /// Another live launch or Slurm task holds it, or a trainer outside this launch (an
    /// orphan of a killed launch, a `synthscale train` by hand) holds its run directory.
    Held(String),
    /// Stopped by a signal after a checkpoint; a relaunch resumes it.
    Stopped,
    /// Failed `attempts` times; the last exit code (None: killed by a signal).
    Failed { attempts: u32, code: Option<i32> },
    /// A ladder branch whose trunk ended in this launch without its checkpoint (failed or
    /// stopped); a relaunch trains the trunk, then the branch.
    Blocked(String),
}

/// Progress of a launch, for a bar or log lines.
#[derive(Debug, Clone)]
pub enum SweepEvent {
    Started {
        id: String,
        attempt: u32,
        worker: usize,
    },
    /// A trainer outside this launch holds the run directory; waiting up to `seconds` for
    /// it to finish or checkpoint and exit before leaving the run alone.
    Waiting {
        id: String,
        holder: String,
        seconds: f64,
    },
    Finished {
        id: String,
        outcome: RunOutcome,
    },
}

/// How to run the pool.
pub struct LocalOptions<'a> {
    /// Runs at once; 0: 1, or on CUDA as many as the GPUs hold packed
    /// (GPUs × `sweep.max_runs_per_gpu`).
    pub jobs: usize,
    /// The `synthscale` binary to start runs with.
    pub binary: PathBuf,
    /// Restarts of a failed run (each resumes from its checkpoint); bad input is not retried.
    pub retries: u32,
    /// CPU threads to split between workers; default: the machine's.
    pub threads: Option<usize>,
    /// The GPUs' ids; default: `CUDA_VISIBLE_DEVICES`. A CUDA sweep's runs take them from a
    /// pool ([`GpuPool`]): small runs packed several to a GPU, a data-parallel run a GPU per
    /// rank; otherwise each worker gets one round-robin.
    pub gpus: Option<Vec<String>>,
    /// Set by a signal handler: no new runs start, running ones are sent SIGTERM (they
    /// checkpoint and exit 75).
    pub stop: Option<&'a AtomicBool>,
    pub on_event: Option<&'a (dyn Fn(&SweepEvent) + Sync)>,
    /// How long to wait for a run directory that a trainer outside this launch holds (an
    /// orphan of a killed launch checkpoints and exits on its SIGTERM) before leaving the run
    /// alone as held elsewhere. A second trainer is never started beside it.
    pub lock_wait: Duration,
}

impl LocalOptions<'_> {
    pub fn new(binary: PathBuf) -> Self {
        LocalOptions {
            jobs: 1,
            binary,
            retries: 2,
            threads: None,
            gpus: None,
            stop: None,
            on_event: None,
            lock_wait: DEFAULT_LOCK_WAIT,
        }
    }
}

/// GPUs named by `CUDA_VISIBLE_DEVICES`, if set and not empty.
pub fn visible_gpus() -> Vec<String> {
    std::env::var("CUDA_VISIBLE_DEVICES")
        .ok()
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// The GPUs a CUDA sweep may use: `CUDA_VISIBLE_DEVICES` when set, else every GPU that
/// `nvidia-smi` lists; none when neither answers.
pub fn cuda_gpus() -> Vec<String> {
    if std::env::var_os("CUDA_VISIBLE_DEVICES").is_some() {
        return visible_gpus();
    }
    Command::new("nvidia-smi")
        .args(["--query-gpu=index", "--format=csv,noheader"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Marker of a failed run: `logs/<id>.failed`, removed when the run succeeds.
pub fn failed_marker(sweep: &Sweep, id: &str) -> PathBuf {
    sweep.out_dir.join("logs").join(format!("{id}.failed"))
}

/// Runs every run of the sweep that is not DONE and not held elsewhere, `jobs` at a time.
/// Returns each run's outcome, in plan order.
pub fn launch_local(sweep: &Sweep, opts: &LocalOptions) -> Result<Vec<(String, RunOutcome)>> {
    sweep.write_configs()?;
    let cuda = sweep.config.device == DeviceSpec::Cuda;
    let gpus = opts
        .gpus
        .clone()
        .unwrap_or_else(|| if cuda { cuda_gpus() } else { visible_gpus() });
    let jobs = match opts.jobs {
        // As many runs as the GPUs hold when packed (the pool holds back the rest).
        0 if cuda && !gpus.is_empty() => gpus.len() * sweep.config.max_runs_per_gpu as usize,
        j => j.max(1),
    };
    let threads = opts
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let per_run = (threads / jobs).max(1);
    // CUDA runs take their GPUs from a pool: packed k to a GPU when small, a whole GPU per
    // rank when data-parallel.
    let pool = (sweep.config.device == DeviceSpec::Cuda && !gpus.is_empty())
        .then(|| GpuPool::new(gpus.clone()));
    if let Some(pool) = &pool {
        if let Some(r) = sweep.runs.iter().find(|r| r.ranks as usize > pool.len()) {
            return Err(SweepError::Field {
                file: sweep.manifest.clone(),
                field: format!("size {}: ranks", r.size),
                message: format!(
                    "{} ranks need a GPU each, but this machine shows {} \
                     (CUDA_VISIBLE_DEVICES={})",
                    r.ranks,
                    pool.len(),
                    gpus.join(",")
                ),
            });
        }
    }
    let queue: Mutex<VecDeque<usize>> = Mutex::new((0..sweep.runs.len()).collect());
    let results: Mutex<Vec<Option<RunOutcome>>> = Mutex::new(vec![None; sweep.runs.len()]);
    let first_error: Mutex<Option<SweepError>> = Mutex::new(None);
    let emit = |e: SweepEvent| {
        if let Some(f) = opts.on_event {
            f(&e)
        }
    };
    // A ladder branch waits in the queue until its trunk has kept its checkpoint.
    let trunk_of: Vec<Option<usize>> = sweep
        .runs
        .iter()
        .map(|r| {
            r.trunk()
                .and_then(|t| sweep.runs.iter().position(|x| x.id == t))
        })
        .collect();
    let next = |queue: &Mutex<VecDeque<usize>>,
                results: &Mutex<Vec<Option<RunOutcome>>>|
     -> Option<usize> {
        loop {
            if opts.stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
                return None;
            }
            let mut q = queue.lock().expect("queue");
            if let Some(p) = q.iter().position(|&i| ready(sweep, i)) {
                return q.remove(p);
            }
            if q.is_empty() {
                return None;
            }
            // Branches whose trunk ended in this launch without reaching them.
            let mut res = results.lock().expect("results");
            q.retain(|&i| {
                let ended = trunk_of[i].and_then(|t| res[t].clone());
                match ended {
                    Some(o) if !matches!(o, RunOutcome::Held(_)) => {
                        let why = format!(
                            "its trunk {} ended ({o:?}) before the branch's checkpoint",
                            sweep.runs[trunk_of[i].expect("trunk")].id
                        );
                        emit(SweepEvent::Finished {
                            id: sweep.runs[i].id.clone(),
                            outcome: RunOutcome::Blocked(why.clone()),
                        });
                        res[i] = Some(RunOutcome::Blocked(why));
                        false
                    }
                    _ => true,
                }
            });
            drop((q, res));
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    std::thread::scope(|s| {
        for w in 0..jobs.min(sweep.runs.len()) {
            let (queue, results, first_error, gpus, pool, emit, next, trunk_of) = (
                &queue,
                &results,
                &first_error,
                &gpus,
                &pool,
                &emit,
                &next,
                &trunk_of,
            );
            s.spawn(move || loop {
                let Some(i) = next(queue, results) else {
                    return;
                };
                let lease = match pool {
                    Some(pool) => match take_gpus(pool, sweep, i, opts.stop) {
                        Some(l) => Some(l),
                        // Stopped while waiting: the run was not started.
                        None => return,
                    },
                    None => None,
                };
                let gpu = match (pool, &lease) {
                    (Some(p), Some(l)) => Some(p.visible(l)),
                    _ => (!gpus.is_empty()).then(|| gpus[w % gpus.len()].clone()),
                };
                let outcome = one_run(sweep, i, w, per_run, gpu.as_deref(), opts, emit);
                if let (Some(p), Some(l)) = (pool, lease) {
                    p.give_back(l);
                }
                match outcome {
                    Ok(RunOutcome::Held(owner)) if sweep.runs[i].is_trunk() => {
                        // Another launch trains the trunk: try again later (it may die),
                        // while any of its branches still waits here.
                        results.lock().expect("results")[i] = Some(RunOutcome::Held(owner));
                        let mut q = queue.lock().expect("queue");
                        if q.iter().any(|&b| trunk_of[b] == Some(i)) {
                            q.push_back(i);
                            drop(q);
                            std::thread::sleep(Duration::from_millis(500));
                        }
                    }
                    Ok(o) => {
                        emit(SweepEvent::Finished {
                            id: sweep.runs[i].id.clone(),
                            outcome: o.clone(),
                        });
                        results.lock().expect("results")[i] = Some(o);
                    }
                    Err(e) => {
                        first_error.lock().expect("error").get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().expect("error") {
        return Err(e);
    }
    Ok(sweep
        .runs
        .iter()
        .zip(results.into_inner().expect("results"))
        .filter_map(|(r, o)| o.map(|o| (r.id.clone(), o)))
        .collect())
}

/// Waits until the pool has GPUs for run `i` (its ranks, packed as the memory model
/// allows); None if a stop comes first.
fn take_gpus(pool: &GpuPool, sweep: &Sweep, i: usize, stop: Option<&AtomicBool>) -> Option<Lease> {
    let run = &sweep.runs[i];
    let per_gpu = sweep.runs_per_gpu(run);
    loop {
        if let Some(l) = pool.try_take(run.ranks, per_gpu) {
            return Some(l);
        }
        if stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether run `i` can start: any run but a ladder branch, and a branch once its trunk
/// kept the checkpoint it starts from (or once it has its own, or is DONE).
fn ready(sweep: &Sweep, i: usize) -> bool {
    let r = &sweep.runs[i];
    let Some(b) = &r.resolved.branch else {
        return true;
    };
    let dir = sweep.run_dir(&r.id);
    synthscale_train::ladder::branch_ready(b)
        || dir.join(DONE).exists()
        || synthscale_train::checkpoint::find(&dir).is_some()
}

fn one_run(
    sweep: &Sweep,
    i: usize,
    worker: usize,
    threads: usize,
    gpu: Option<&str>,
    opts: &LocalOptions,
    emit: &(dyn Fn(SweepEvent) + Sync),
) -> Result<RunOutcome> {
    let run = &sweep.runs[i];
    let run_dir = sweep.run_dir(&run.id);
    if run_dir.join(DONE).exists() {
        return Ok(RunOutcome::AlreadyDone);
    }
    let _lock = match lock::acquire(&sweep.out_dir, &run.id, Owner::me(None), None)? {
        Acquire::Acquired(l) => l,
        Acquire::Held(o) => return Ok(RunOutcome::Held(o.describe())),
    };
    // Another launch may have finished it between the check and the lock.
    if run_dir.join(DONE).exists() {
        return Ok(RunOutcome::AlreadyDone);
    }
    let started = Instant::now();
    let (config, log) = (sweep.config_path(&run.id), sweep.log_path(&run.id));
    let marker = failed_marker(sweep, &run.id);
    // When this launch began waiting for a trainer outside it; the wait is bounded from there.
    let mut waiting_since: Option<Instant> = None;
    let mut attempts = 0;
    loop {
        // Never a second trainer beside one that holds the run directory (an orphan of a
        // killed launch): wait for it, bounded, then leave the run alone.
        let deadline = waiting_since.unwrap_or_else(Instant::now) + opts.lock_wait;
        let mut on_wait = |holder: &str| {
            emit(SweepEvent::Waiting {
                id: run.id.clone(),
                holder: holder.to_string(),
                seconds: deadline
                    .saturating_duration_since(Instant::now())
                    .as_secs_f64(),
            })
        };
        match wait_for_run_dir(&run_dir, deadline, opts.stop, &mut on_wait)? {
            RunDirWait::Free => {}
            RunDirWait::Held(h) => return Ok(RunOutcome::Held(h)),
            RunDirWait::Stopped => return Ok(RunOutcome::Stopped),
        }
        // The holder may have finished it.
        if run_dir.join(DONE).exists() {
            let _ = std::fs::remove_file(&marker);
            return Ok(RunOutcome::AlreadyDone);
        }
        attempts += 1;
        emit(SweepEvent::Started {
            id: run.id.clone(),
            attempt: attempts,
            worker,
        });
        let code = run_child(&Child {
            binary: &opts.binary,
            config: &config,
            run_dir: &run_dir,
            log: &log,
            threads: Some(threads),
            gpu,
            stop: opts.stop,
            ranks: run.ranks,
            srun: false,
        })?;
        if code != Some(EXIT_LOCKED as i32) {
            waiting_since = None;
        }
        let stopping = opts.stop.is_some_and(|s| s.load(Ordering::SeqCst));
        match code {
            Some(0) => {
                let _ = std::fs::remove_file(&marker);
                return Ok(RunOutcome::Done {
                    attempts,
                    seconds: started.elapsed().as_secs_f64(),
                });
            }
            Some(c) if c == EXIT_REQUEUE as i32 && stopping => return Ok(RunOutcome::Stopped),
            _ if stopping => return Ok(RunOutcome::Stopped),
            // Another trainer took the run directory between the probe and the start: not
            // a failure and not an attempt; wait for it like any holder.
            Some(c) if c == EXIT_LOCKED as i32 => {
                attempts -= 1;
                let since = *waiting_since.get_or_insert(deadline - opts.lock_wait);
                if since.elapsed() >= opts.lock_wait {
                    let held = run_lock::probe(&run_dir)?;
                    return Ok(RunOutcome::Held(format!(
                        "{} (run directory)",
                        held.describe()
                    )));
                }
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            // Bad input fails the same way every time.
            Some(2) => {}
            _ if attempts <= opts.retries => continue,
            _ => {}
        }
        let text = serde_json::json!({ "attempts": attempts, "exit_code": code }).to_string();
        let dir = marker.parent().expect("logs dir");
        std::fs::create_dir_all(dir).map_err(|e| SweepError::write(dir, e))?;
        std::fs::write(&marker, text).map_err(|e| SweepError::write(&marker, e))?;
        return Ok(RunOutcome::Failed { attempts, code });
    }
}
