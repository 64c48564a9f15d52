//! Budget ladders in one run directory: a trunk keeps its checkpoint at each branch point
//! as `checkpoint-step-<N>/`, and a branch starts from it with the trunk's metrics up to N.
//!
//! The ordinary checkpoint (`checkpoint/`) moves on with the trunk; a kept copy is never
//! replaced, and the branch that starts from it removes it once the branch is DONE.

use std::path::{Path, PathBuf};

use synthscale_model::Decoder;

use crate::checkpoint::{self, TrainState};
use crate::config::{BranchSpec, DecayShape, ResolvedConfig, Schedule};
use crate::error::{Result, TrainError};
use crate::files::{sync, write_synced, CONFIG};
use crate::metrics::{Metric, FILE as METRICS};
use crate::optim::AdamW;

/// The kept checkpoint of `run_dir` at `step`.
pub fn kept_dir(run_dir: &Path, step: u64) -> PathBuf {
    run_dir.join(format!("{}-step-{step}", checkpoint::DIR))
}

/// Whether a branch can start: its trunk's kept checkpoint is complete.
pub fn branch_ready(b: &BranchSpec) -> bool {
    kept_dir(&b.trunk, b.step).join("state.json").is_file()
}

/// Copies `run_dir/checkpoint/` (just written at `step`) to `checkpoint-step-<step>/`
/// through a temporary directory and a rename, as [`checkpoint::save`] writes. A copy
/// rather than a link: the ordinary checkpoint's files are replaced, never edited, but a
/// copy owes nothing to that.
pub(crate) fn keep(run_dir: &Path, step: u64) -> Result<()> {
    let dest = kept_dir(run_dir, step);
    if dest.join("state.json").is_file() {
        return Ok(());
    }
    let src = run_dir.join(checkpoint::DIR);
    let tmp = run_dir.join(format!(
        "{}-step-{step}.tmp-{}",
        checkpoint::DIR,
        std::process::id()
    ));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::write(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::write(&tmp, e))?;
    for entry in std::fs::read_dir(&src).map_err(|e| TrainError::read(&src, e))? {
        let entry = entry.map_err(|e| TrainError::read(&src, e))?;
        let file_type = entry.file_type().map_err(|e| TrainError::read(&src, e))?;
        if file_type.is_file() {
            let to = tmp.join(entry.file_name());
            std::fs::copy(entry.path(), &to).map_err(|e| TrainError::write(&to, e))?;
            sync(&to)?;
        }
    }
    if dest.exists() {
        std::fs::remove_dir_all(&dest).map_err(|e| TrainError::write(&dest, e))?;
    }
    std::fs::rename(&tmp, &dest).map_err(|e| TrainError::write(&dest, e))?;
    sync(run_dir)
}

/// Writes the branch's `metrics.jsonl` from its trunk's: every training line up to the
/// branch step, and the evaluations the branch itself makes there (multiples of
/// `eval_interval`; the trunk also evaluates at its own end, which a branch does not).
pub(crate) fn copy_trunk_metrics(b: &BranchSpec, run_dir: &Path, eval_interval: u64) -> Result<()> {
    let src = b.trunk.join(METRICS);
    let text = std::fs::read_to_string(&src).map_err(|e| TrainError::read(&src, e))?;
    let mut out = String::new();
    let mut last = 0;
    for line in text.lines() {
        let Ok(m) = serde_json::from_str::<Metric>(line) else {
            break; // a torn last line of a trunk that is still running
        };
        if m.step > b.step {
            break;
        }
        let eval = m.eval_domain.is_some();
        if eval && !(eval_interval > 0 && m.step % eval_interval == 0) {
            continue;
        }
        if !eval {
            last = m.step;
        }
        out.push_str(line);
        out.push('\n');
    }
    if last != b.step {
        return Err(TrainError::Checkpoint {
            path: src,
            message: format!(
                "the trunk's log ends at step {last}, before the branch step {}",
                b.step
            ),
        });
    }
    let path = run_dir.join(METRICS);
    let tmp = run_dir.join(format!("{METRICS}.tmp"));
    write_synced(&tmp, out.as_bytes())?;
    std::fs::rename(&tmp, &path).map_err(|e| TrainError::write(&path, e))
}

/// The marker a finished branch leaves beside the kept checkpoint it removed, so that a
/// trunk resuming at that very step does not keep it again.
fn released_marker(run_dir: &Path, step: u64) -> PathBuf {
    run_dir.join(format!("{}-step-{step}.released", checkpoint::DIR))
}

/// Whether the branch starting at `step` has finished and released its checkpoint.
pub(crate) fn released(run_dir: &Path, step: u64) -> bool {
    released_marker(run_dir, step).exists()
}

/// Removes the trunk's kept checkpoint a finished branch started from.
pub(crate) fn release(b: &BranchSpec) -> Result<()> {
    let dir = kept_dir(&b.trunk, b.step);
    if !dir.exists() {
        return Ok(());
    }
    let marker = released_marker(&b.trunk, b.step);
    write_synced(&marker, b"")?;
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(TrainError::write(dir, e)),
    }
}

/// Starts a branch that has no checkpoint of its own: loads the trunk's kept checkpoint at
/// the branch step and, when `write` (rank 0 of a data-parallel run, or the one process),
/// writes the trunk's metrics up to it into the branch's log.
pub(crate) fn start_branch(
    b: &BranchSpec,
    run_dir: &Path,
    cfg: &ResolvedConfig,
    dev: &candle_core::Device,
    write: bool,
) -> Result<(Decoder, AdamW, TrainState)> {
    let dir = kept_dir(&b.trunk, b.step);
    if !branch_ready(b) {
        return Err(TrainError::TrunkNotReady {
            path: dir,
            step: b.step,
        });
    }
    check_trunk(b, cfg)?;
    let (model, opt, state) = checkpoint::load(&dir, cfg, dev)?;
    if state.step != b.step || state.seed != cfg.seed {
        return Err(TrainError::Checkpoint {
            path: dir,
            message: format!(
                "holds step {} of seed {}, not the branch's step {} of seed {}",
                state.step, state.seed, b.step, cfg.seed
            ),
        });
    }
    if write {
        copy_trunk_metrics(b, run_dir, cfg.eval.interval)?;
    }
    Ok((model, opt, state))
}

/// The trunk must be this run before its cooldown: same model, data, mixture, seed, batch,
/// optimizer, warm-up and evaluation points; only the schedule's tail and budget differ.
fn check_trunk(b: &BranchSpec, cfg: &ResolvedConfig) -> Result<()> {
    let path = b.trunk.join(CONFIG);
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::read(&path, e))?;
    let trunk: ResolvedConfig = toml::from_str(&text).map_err(|e| TrainError::Checkpoint {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let same_optim = {
        let (mut a, mut t) = (cfg.optim.clone(), trunk.optim.clone());
        for o in [&mut a, &mut t] {
            o.schedule = Schedule::Constant;
            o.decay_fraction = 0.0;
            o.decay_shape = DecayShape::Linear;
            o.min_lr_ratio = 0.0;
            o.warmup_steps = 0;
            o.warmup_fraction = 0.0;
        }
        a == t
    };
    let checks = [
        ("seed", cfg.seed == trunk.seed),
        ("data.dir", cfg.data_dir == trunk.data_dir),
        ("tokenizer", cfg.tokenizer_hash == trunk.tokenizer_hash),
        ("data mixture", cfg.mixture == trunk.mixture),
        ("data.seq_len", cfg.seq_len == trunk.seq_len),
        ("model", cfg.model == trunk.model),
        ("optim", same_optim),
        (
            "optim.warmup_steps",
            cfg.warmup_steps() == trunk.warmup_steps(),
        ),
        ("eval", cfg.eval == trunk.eval),
        ("branch.step", trunk.steps() >= b.step),
    ];
    match checks.iter().find(|(_, ok)| !ok) {
        None => Ok(()),
        Some((what, _)) => Err(TrainError::RunDir {
            path: b.trunk.clone(),
            message: format!(
                "is not this branch's trunk: its {what} differs from the branch's (the trunk \
                 must be the same run at constant learning rate)"
            ),
        }),
    }
}
