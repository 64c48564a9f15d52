//! The Slurm executor: one sbatch script per launch with `--array=0-N%K`, the `[slurm]`
//! resources, `--requeue` and `--signal=B:USR1@120`; each array task maps its index to a
//! run through a runs file (JSON) and runs `synthscale sweep task`. Nothing from the
//! manifest reaches the script but values checked against a safe alphabet; paths are
//! single-quoted.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use synthscale_train::DONE;

use crate::error::{Result, SweepError};
use crate::lock::{self, Acquire, Owner};
use crate::plan::Sweep;

/// One array task's run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRun {
    pub id: String,
    pub config: PathBuf,
    pub run_dir: PathBuf,
    pub log: PathBuf,
    /// Data-parallel ranks: the array's tasks each have this many Slurm tasks, and the
    /// trainer starts as a job step of them (`srun --mpi=pmix`).
    #[serde(default = "one")]
    pub ranks: u32,
    /// Runs of its kind that share one array task's GPU ([`Sweep::runs_per_gpu`]).
    #[serde(default = "one")]
    pub pack: u32,
}

fn one() -> u32 {
    1
}

/// The runs file: array index i runs `runs[i·pack .. (i+1)·pack]` at once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunsFile {
    pub out_dir: PathBuf,
    pub runs: Vec<TaskRun>,
    /// Runs per array task (all of them sharing the task's GPU); 1 in files written before
    /// packing.
    #[serde(default = "one")]
    pub pack: u32,
}

impl RunsFile {
    /// The runs of array task `index`.
    pub fn task(&self, index: usize) -> &[TaskRun] {
        let k = self.pack.max(1) as usize;
        let start = (index * k).min(self.runs.len());
        &self.runs[start..(start + k).min(self.runs.len())]
    }

    /// Array tasks for all the runs.
    pub fn tasks(&self) -> usize {
        self.runs.len().div_ceil(self.pack.max(1) as usize)
    }
}

/// One submitted (or written) job array.
#[derive(Debug, Clone)]
pub struct SlurmArray {
    pub script: PathBuf,
    pub runs_file: PathBuf,
    /// The array job id; None for a dry run.
    pub job_id: Option<String>,
    /// Its runs, array index i = `runs[i]`.
    pub runs: Vec<String>,
}

/// What a Slurm launch did.
#[derive(Debug, Clone)]
pub struct SlurmLaunch {
    /// One array per `MaxArraySize` runs; empty when nothing was left to run.
    pub arrays: Vec<SlurmArray>,
    pub already_done: Vec<String>,
    /// Runs held by a live owner (a queued or running task of an earlier launch).
    pub held: Vec<(String, String)>,
}

impl SlurmLaunch {
    /// Every run submitted (or written, for a dry run).
    pub fn submitted(&self) -> Vec<String> {
        self.arrays
            .iter()
            .flat_map(|a| a.runs.iter().cloned())
            .collect()
    }
}

/// The cluster's `MaxArraySize` (`scontrol show config`), Slurm's default 1001 when it
/// cannot be read: an array's indices must stay below it.
pub fn max_array_size() -> usize {
    Command::new("scontrol")
        .args(["show", "config"])
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout).lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == "MaxArraySize").then(|| v.trim().parse().ok())?
            })
        })
        .filter(|&n: &usize| n > 0)
        .unwrap_or(1001)
}

/// Quotes a string for a POSIX shell: inside single quotes, `'` becomes `'\''`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The sbatch script for `n` array tasks of `ranks` data-parallel processes each; `after`
/// lists job ids the array waits for (a ladder's branches wait for their trunks' arrays).
pub fn script(
    sweep: &Sweep,
    binary: &Path,
    runs_file: &Path,
    n: usize,
    ranks: u32,
    after: &[String],
) -> String {
    let s = &sweep.slurm;
    let mut d = vec![format!("--job-name=ss-{}", job_name(&sweep.name))];
    let throttle = if s.max_parallel > 0 {
        format!("%{}", s.max_parallel)
    } else {
        String::new()
    };
    d.push(format!("--array=0-{}{throttle}", n.saturating_sub(1)));
    if let Some(p) = &s.partition {
        d.push(format!("--partition={p}"));
    }
    if let Some(a) = &s.account {
        d.push(format!("--account={a}"));
    }
    // One Slurm task per rank; `--gpus-per-task` then gives each rank its own GPU.
    let ranks = ranks.max(1);
    let per_node = s.ranks_per_node;
    if per_node > 0 && ranks > 1 {
        d.push(format!("--nodes={}", ranks.div_ceil(per_node)));
        d.push(format!("--ntasks-per-node={}", ranks.min(per_node)));
    } else {
        d.push(format!("--ntasks={ranks}"));
    }
    d.push(format!("--cpus-per-task={}", s.cpus_per_task));
    if s.gpus_per_task > 0 {
        d.push(format!("--gpus-per-task={}", s.gpus_per_task));
    }
    if let Some(m) = &s.mem {
        d.push(format!("--mem={m}"));
    }
    if let Some(t) = &s.time {
        d.push(format!("--time={t}"));
    }
    d.push("--requeue".into());
    // USR1 to the batch shell 120 s before the limit: the trainer checkpoints and exits 75.
    d.push("--signal=B:USR1@120".into());
    d.push("--open-mode=append".into());
    if !after.is_empty() {
        // afterok: a requeued trunk is not complete, so its branches keep waiting; a failed
        // one cancels them (a relaunch resubmits both).
        d.push(format!("--dependency=afterok:{}", after.join(":")));
        d.push("--kill-on-invalid-dep=yes".into());
    }
    d.extend(s.extra.iter().cloned());
    let mut out = String::from("#!/bin/bash\n");
    out.push_str(&format!(
        "# synthscale sweep {}: {n} runs, written by `synthscale sweep launch --executor slurm`.\n",
        job_name(&sweep.name)
    ));
    for line in &d {
        out.push_str(&format!("#SBATCH {line}\n"));
    }
    out.push_str(&format!(
        "\nBIN={}\nRUNS={}\n",
        shell_quote(&binary.to_string_lossy()),
        shell_quote(&runs_file.to_string_lossy())
    ));
    out.push_str(
        r#"export RAYON_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"
# The task runs in the background so that this shell can pass USR1/TERM on to it; the
# trainer checkpoints on either and exits 75, and the task is requeued.
"$BIN" sweep task --runs-file "$RUNS" --index "$SLURM_ARRAY_TASK_ID" &
pid=$!
trap 'kill -USR1 "$pid" 2>/dev/null' USR1
trap 'kill -TERM "$pid" 2>/dev/null' TERM
wait "$pid"
rc=$?
while kill -0 "$pid" 2>/dev/null; do
  wait "$pid"
  rc=$?
done
if [ "$rc" -eq 75 ]; then
  scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
fi
exit "$rc"
"#,
    );
    out
}

fn job_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Submits every run that is not DONE and not held, as job arrays of at most the
/// cluster's `MaxArraySize` tasks (one, for most sweeps). With `submit = false` writes the
/// scripts and runs files only.
pub fn launch_slurm(sweep: &Sweep, binary: &Path, submit: bool) -> Result<SlurmLaunch> {
    sweep.write_configs()?;
    let dir = sweep.out_dir.join("slurm");
    std::fs::create_dir_all(&dir).map_err(|e| SweepError::write(&dir, e))?;
    let mut launch = SlurmLaunch {
        arrays: Vec::new(),
        already_done: Vec::new(),
        held: Vec::new(),
    };
    // Wave 0: every run that can start now; wave 1: ladder branches whose trunk is in
    // wave 0, in arrays that depend on wave 0's.
    let mut waves: [Vec<(TaskRun, lock::RunLock)>; 2] = [Vec::new(), Vec::new()];
    let mut dry: [Vec<TaskRun>; 2] = [Vec::new(), Vec::new()];
    let mut submitted_trunks = Vec::new();
    for r in &sweep.runs {
        let run_dir = sweep.run_dir(&r.id);
        if run_dir.join(DONE).exists() {
            launch.already_done.push(r.id.clone());
            continue;
        }
        let wave = usize::from(r.trunk().is_some_and(|t| submitted_trunks.contains(&t)));
        let task = TaskRun {
            id: r.id.clone(),
            config: sweep.config_path(&r.id),
            run_dir,
            log: sweep.log_path(&r.id),
            ranks: r.ranks,
            pack: sweep.runs_per_gpu(r),
        };
        if submit {
            match lock::acquire(&sweep.out_dir, &r.id, Owner::me(None), None)? {
                Acquire::Acquired(l) => waves[wave].push((task, l)),
                Acquire::Held(o) => {
                    launch.held.push((r.id.clone(), o.describe()));
                    continue;
                }
            }
        } else {
            dry[wave].push(task);
        }
        if r.is_trunk() {
            submitted_trunks.push(r.id.as_str());
        }
    }
    let logs = sweep.out_dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| SweepError::write(&logs, e))?;
    let chunk = if submit { max_array_size() } else { 1001 };
    let mut first_wave_jobs: Vec<String> = Vec::new();
    for (w, (mut wave, mut dry)) in waves.into_iter().zip(dry).enumerate() {
        // Runs of one number of ranks (its tasks' `--ntasks`) and one packing per array;
        // stable, so that the locks stay in their runs' order.
        wave.sort_by_key(|(t, _)| (t.ranks, t.pack));
        dry.sort_by_key(|t| (t.ranks, t.pack));
        let (tasks, mut locks): (Vec<TaskRun>, Vec<lock::RunLock>) = if submit {
            wave.into_iter().unzip()
        } else {
            (dry, Vec::new())
        };
        let after = if w == 1 {
            first_wave_jobs.clone()
        } else {
            Vec::new()
        };
        let mut locks_iter = locks.drain(..);
        for part in tasks
            .chunk_by(|a, b| (a.ranks, a.pack) == (b.ranks, b.pack))
            .flat_map(|same| same.chunks(chunk * same[0].pack as usize))
        {
            let array = submit_array(
                sweep,
                binary,
                &dir,
                &logs,
                part,
                &after,
                submit,
                &mut locks_iter,
            )?;
            if w == 0 {
                first_wave_jobs.extend(array.job_id.clone());
            }
            launch.arrays.push(array);
        }
    }
    Ok(launch)
}

/// Writes one array's runs file and script and, with `submit`, submits it and hands the
/// runs' locks to its tasks.
#[allow(clippy::too_many_arguments)]
fn submit_array(
    sweep: &Sweep,
    binary: &Path,
    dir: &Path,
    logs: &Path,
    part: &[TaskRun],
    after: &[String],
    submit: bool,
    locks: &mut impl Iterator<Item = lock::RunLock>,
) -> Result<SlurmArray> {
    let runs = RunsFile {
        out_dir: sweep.out_dir.clone(),
        runs: part.to_vec(),
        pack: part.first().map_or(1, |t| t.pack),
    };
    // One runs file and script per array, named by their content and the time.
    let json = serde_json::to_string_pretty(&runs).expect("serializes");
    let tag = {
        use sha2::Digest;
        let d = sha2::Sha256::digest(format!("{json}{}", lock::now()).as_bytes());
        d[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let runs_file = dir.join(format!("runs-{tag}.json"));
    let script_path = dir.join(format!("array-{tag}.sbatch"));
    std::fs::write(&runs_file, &json).map_err(|e| SweepError::write(&runs_file, e))?;
    let ranks = part.first().map_or(1, |t| t.ranks);
    let text = script(sweep, binary, &runs_file, runs.tasks(), ranks, after);
    std::fs::write(&script_path, text).map_err(|e| SweepError::write(&script_path, e))?;
    let mut array = SlurmArray {
        script: script_path,
        runs_file,
        job_id: None,
        runs: part.iter().map(|t| t.id.clone()).collect(),
    };
    if submit {
        let job = sbatch(&array.script, logs)?;
        // The runs now belong to their array tasks.
        let pack = runs.pack.max(1) as usize;
        for (i, mut l) in locks.take(part.len()).enumerate() {
            let mut owner = l.owner().clone();
            owner.slurm_job = Some(format!("{job}_{}", i / pack));
            l.hand_over(owner)?;
            l.forget();
        }
        array.job_id = Some(job);
    }
    Ok(array)
}

/// Submits a script; returns the job id. The remaining locks of a failed launch drop (are
/// released) with the error.
fn sbatch(script: &Path, logs: &Path) -> Result<String> {
    let out = Command::new("sbatch")
        .arg("--parsable")
        .arg(format!(
            "--output={}",
            logs.join("slurm-%A_%a.out").to_string_lossy()
        ))
        .arg(script)
        .output()
        .map_err(|e| SweepError::Slurm(format!("cannot run sbatch: {e}")))?;
    if !out.status.success() {
        return Err(SweepError::Slurm(format!(
            "sbatch {} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let job = stdout.trim().split(';').next().unwrap_or("").to_string();
    if job.is_empty() || !job.chars().all(|c| c.is_ascii_digit()) {
        return Err(SweepError::Slurm(format!(
            "sbatch printed {stdout:?}, not a job id"
        )));
    }
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_runs_file_gives_each_array_task_its_runs() {
        let run = |i: usize| TaskRun {
            id: format!("r{i}"),
            config: PathBuf::new(),
            run_dir: PathBuf::new(),
            log: PathBuf::new(),
            ranks: 1,
            pack: 3,
        };
        let f = RunsFile {
            out_dir: PathBuf::new(),
            runs: (0..7).map(run).collect(),
            pack: 3,
        };
        let ids = |i| f.task(i).iter().map(|t| t.id.clone()).collect::<Vec<_>>();
        assert_eq!(f.tasks(), 3);
        assert_eq!(ids(0), ["r0", "r1", "r2"]);
        assert_eq!(ids(2), ["r6"]);
        assert!(f.task(3).is_empty());
        // A file written before packing: one run per task.
        let old: RunsFile = serde_json::from_str(
            r#"{"out_dir":"/o","runs":[{"id":"a","config":"c","run_dir":"d","log":"l"}]}"#,
        )
        .unwrap();
        assert_eq!((old.pack, old.tasks(), old.task(0)[0].ranks), (1, 1, 1));
    }

    #[test]
    fn quoted_strings_reach_the_shell_unchanged() {
        // Oracle: bash itself, printing the quoted word back.
        for s in [
            "plain",
            "with space",
            "it's",
            "$(touch x); `id` \"q\" \\ *",
            "a'\n'b",
        ] {
            let out = Command::new("bash")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(s)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), s);
        }
    }
}
