//! What the runs did: the `status` table (state, step of total, last losses, elapsed) and
//! the results table `collect` writes for `synthscale fit` (DESIGN.md's CSV contract).

use std::path::{Path, PathBuf};

use synthscale_data::config::SourceKind;
use synthscale_train::metrics::{self, Metric};
use synthscale_train::run_lock::{self, LockState};
use synthscale_train::DONE;

use crate::error::{Result, SweepError};
use crate::lock;
use crate::plan::Sweep;

/// A run's state as seen from its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Nothing written yet.
    Pending,
    /// Its Slurm array task waits in the queue.
    Queued,
    /// A live owner holds its lock.
    Running,
    /// Started, not running, not done: a relaunch resumes it.
    Partial,
    Done,
    /// The executor gave up on it (`logs/<id>.failed`).
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Queued => "queued",
            State::Running => "running",
            State::Partial => "partial",
            State::Done => "done",
            State::Failed => "failed",
        }
    }
}

/// One row of `sweep status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunStatus {
    pub id: String,
    pub state: State,
    pub step: u64,
    pub steps: u64,
    pub train_loss: Option<f64>,
    /// Mean over domains of the last evaluation.
    pub val_loss: Option<f64>,
    /// Training seconds (the sum of each step's tokens over its throughput).
    pub elapsed_s: f64,
    /// Who holds the lock, when running.
    pub owner: Option<String>,
}

fn read_metrics(run_dir: &Path) -> Result<Vec<Metric>> {
    if !run_dir.join(metrics::FILE).exists() {
        return Ok(Vec::new());
    }
    Ok(metrics::read(run_dir)?)
}

/// The state of every run of the sweep.
pub fn status(sweep: &Sweep) -> Result<Vec<RunStatus>> {
    let mut rows = Vec::new();
    for r in &sweep.runs {
        let dir = sweep.run_dir(&r.id);
        let m = read_metrics(&dir)?;
        let train: Vec<&Metric> = m.iter().filter(|x| x.train_loss.is_some()).collect();
        let step = train.last().map_or(0, |x| x.step);
        let last_eval = m
            .iter()
            .filter(|x| x.val_loss.is_some())
            .map(|x| x.step)
            .max();
        let val_loss = last_eval.map(|s| {
            let v: Vec<f64> = m
                .iter()
                .filter(|x| x.step == s)
                .filter_map(|x| x.val_loss)
                .collect();
            v.iter().sum::<f64>() / v.len() as f64
        });
        let batch = r.resolved.optim.batch_tokens as f64;
        // A branch's log opens with its trunk's steps; its own time starts after them.
        let from = r.resolved.branch.as_ref().map_or(0, |b| b.step);
        let elapsed_s = train
            .iter()
            .filter(|x| x.step > from)
            .filter_map(|x| x.tokens_per_s)
            .filter(|t| *t > 0.0)
            .map(|t| batch / t)
            .sum();
        let held = lock::read(&lock::lock_path(&sweep.out_dir, &r.id))?.filter(|o| o.is_alive());
        // A trainer outside any live launch (an orphan, a `train` by hand) holds only the
        // run directory's own lock.
        let trainer = match held {
            Some(_) => None,
            None => match run_lock::probe(&dir)? {
                LockState::Free => None,
                h => Some(format!("trainer {} (run directory)", h.describe())),
            },
        };
        let state = if dir.join(DONE).exists() {
            State::Done
        } else if let Some(o) = &held {
            let pending = o
                .slurm_job
                .as_deref()
                .and_then(crate::lock::job_state)
                .flatten()
                .is_some_and(|s| s == "PENDING" || s == "REQUEUED");
            if pending {
                State::Queued
            } else {
                State::Running
            }
        } else if trainer.is_some() {
            State::Running
        } else if crate::local::failed_marker(sweep, &r.id).exists() {
            State::Failed
        } else if dir.exists() {
            State::Partial
        } else {
            State::Pending
        };
        rows.push(RunStatus {
            id: r.id.clone(),
            state,
            step,
            steps: r.steps(),
            train_loss: train.last().and_then(|x| x.train_loss),
            val_loss,
            elapsed_s,
            owner: held.map(|o| o.describe()).or(trainer),
        });
    }
    Ok(rows)
}

/// The columns DESIGN.md's results contract names, in the order `collect` writes them first.
/// The report reads its columns from this list (`synthscale_report::results`), so the
/// writer and the reader of `results.csv` cannot drift apart.
pub const CONTRACT_COLUMNS: [&str; 13] = [
    "run_id",
    "params",
    "non_embedding_params",
    "tokens",
    "flops",
    "mixture",
    "natural_ratio",
    "rephrased_ratio",
    "textbook_ratio",
    "eval_domain",
    "step",
    "loss",
    "final",
];

/// The columns `collect` writes after the contract's.
const EXTRA_COLUMNS: [&str; 7] = [
    "size",
    "budget",
    "seed",
    "steps",
    "lr",
    "batch_tokens",
    "unigram_loss",
];

/// The columns of the results table: the contract's, then the extras.
pub const COLUMNS: [&str; CONTRACT_COLUMNS.len() + EXTRA_COLUMNS.len()] = {
    let mut all = [""; CONTRACT_COLUMNS.len() + EXTRA_COLUMNS.len()];
    let mut i = 0;
    while i < all.len() {
        all[i] = if i < CONTRACT_COLUMNS.len() {
            CONTRACT_COLUMNS[i]
        } else {
            EXTRA_COLUMNS[i - CONTRACT_COLUMNS.len()]
        };
        i += 1;
    }
    all
};

/// Writes one row per (run, validation domain, evaluation step) to `path` (default
/// `results.csv` in the sweep's folder), through a temporary file renamed into place.
/// `final` is true on the last evaluation of a finished run. Returns the path and the
/// number of rows.
pub fn collect(sweep: &Sweep, path: Option<&Path>) -> Result<(PathBuf, usize)> {
    let path = path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| sweep.results_path());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| SweepError::write(dir, e))?;
    }
    let tmp = path.with_extension(format!("csv.tmp{}", std::process::id()));
    let csv_err = |e: csv::Error| SweepError::State {
        path: tmp.clone(),
        message: e.to_string(),
    };
    let mut w = csv::Writer::from_path(&tmp).map_err(csv_err)?;
    w.write_record(COLUMNS).map_err(csv_err)?;
    let mut rows = 0;
    let mut unigram = Unigram::new(sweep)?;
    // A ladder's trunk is no budget's result: its branches are.
    for r in sweep.runs.iter().filter(|r| !r.is_trunk()) {
        let dir = sweep.run_dir(&r.id);
        let done = dir.join(DONE).exists();
        let share = |k: SourceKind| r.shares.get(&k).copied().unwrap_or(0.0);
        for m in read_metrics(&dir)? {
            let (Some(domain), Some(loss)) = (&m.eval_domain, m.val_loss) else {
                continue;
            };
            let baseline = unigram.loss(sweep, r, domain)?;
            let is_final = done && m.step == r.steps();
            w.write_record([
                r.id.clone(),
                r.params.to_string(),
                r.non_embedding_params.to_string(),
                m.tokens.to_string(),
                format!("{:e}", m.flops),
                r.mixture.clone(),
                share(SourceKind::Natural).to_string(),
                share(SourceKind::Rephrased).to_string(),
                share(SourceKind::Textbook).to_string(),
                domain.clone(),
                m.step.to_string(),
                loss.to_string(),
                is_final.to_string(),
                r.size.clone(),
                r.budget.clone(),
                r.seed.to_string(),
                r.steps().to_string(),
                r.resolved.optim.lr.to_string(),
                r.resolved.optim.batch_tokens.to_string(),
                baseline.map(|l| l.to_string()).unwrap_or_default(),
            ])
            .map_err(csv_err)?;
            rows += 1;
        }
    }
    w.flush().map_err(|e| SweepError::write(&tmp, e))?;
    drop(w);
    std::fs::rename(&tmp, &path).map_err(|e| SweepError::write(&path, e))?;
    Ok((path, rows))
}

/// The unigram loss of each (mixture, validation domain), computed once per collect from
/// the data directory's token counts (`synthscale_data::unigram`).
struct Unigram {
    counts: synthscale_data::TokenCounts,
    meta: synthscale_data::DataMeta,
    cache: std::collections::BTreeMap<(String, String), Option<f64>>,
}

impl Unigram {
    fn new(sweep: &Sweep) -> Result<Unigram> {
        let data = |e: synthscale_data::DataError| SweepError::Data {
            path: sweep.data_dir.clone(),
            message: e.to_string(),
        };
        Ok(Unigram {
            counts: synthscale_data::TokenCounts::load_or_count(&sweep.data_dir).map_err(data)?,
            meta: synthscale_data::datadir::read_meta(&sweep.data_dir).map_err(data)?,
            cache: Default::default(),
        })
    }

    fn loss(
        &mut self,
        sweep: &Sweep,
        r: &crate::plan::PlannedRun,
        domain: &str,
    ) -> Result<Option<f64>> {
        let key = (r.mixture.clone(), domain.to_string());
        if let Some(v) = self.cache.get(&key) {
            return Ok(*v);
        }
        let shares: Vec<_> = r.shares.iter().map(|(k, v)| (*k, *v)).collect();
        let mixture =
            synthscale_data::Mixture::from_kind_shares(&self.meta, &shares).map_err(|e| {
                SweepError::Data {
                    path: sweep.data_dir.clone(),
                    message: e.to_string(),
                }
            })?;
        let domains = self.meta.domains();
        let v = domains.get(domain).and_then(|idx| {
            let names: Vec<&str> = idx
                .iter()
                .map(|&i| self.meta.sources[i].name.as_str())
                .collect();
            self.counts.unigram_loss(&mixture, &names)
        });
        self.cache.insert(key, v);
        Ok(v)
    }
}

/// Measured training throughput (FLOP/s, median over runs) of the sweep's runs so far.
pub fn measured_flops_per_second(sweep: &Sweep) -> Option<f64> {
    let mut v: Vec<f64> = Vec::new();
    for r in &sweep.runs {
        let m = read_metrics(&sweep.run_dir(&r.id)).ok()?;
        let fpt = r.flops / r.tokens.max(1) as f64;
        let tps: Vec<f64> = m.iter().filter_map(|x| x.tokens_per_s).collect();
        // The first step includes start-up; the median of the rest is the run's rate.
        if tps.len() >= 3 {
            let mut t = tps[1..].to_vec();
            t.sort_by(f64::total_cmp);
            v.push(t[t.len() / 2] * fpt);
        }
    }
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}
