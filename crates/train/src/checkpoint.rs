//! Checkpoints: `checkpoint/{model,optimizer}.safetensors`, `state.json` and `SHA256SUMS`,
//! written to a temporary directory and renamed into place, so a crash at any moment leaves
//! either the previous checkpoint or the new one, never a mixture. The one before is kept
//! as `checkpoint.prev/`. A checkpoint is verified before anything is trained from it:
//! every file against its recorded sha256, and `state.json` against the run's config.

use std::io::Read;
use std::path::{Path, PathBuf};

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use sha2::{Digest, Sha256};
use synthscale_model::Decoder;

use crate::config::ResolvedConfig;
use crate::error::{Result, TrainError};
use crate::files::{sync, write_synced};
use crate::optim::AdamW;
pub use crate::state::{TrainState, FORMAT};

pub const DIR: &str = "checkpoint";
/// The checkpoint before the latest: what a damaged `checkpoint/` falls back to.
pub const PREV: &str = "checkpoint.prev";
/// Where synthscale before `checkpoint.prev` left the previous checkpoint for a moment.
const OLD: &str = "checkpoint.old";
/// The sha256 of every other file, in `sha256sum`'s format, so that `sha256sum -c
/// SHA256SUMS` inside the directory checks a checkpoint by hand too.
pub const SUMS: &str = "SHA256SUMS";
const STATE: &str = "state.json";
const MODEL: &str = "model.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";
/// The files [`SUMS`] covers.
const FILES: [&str; 3] = [MODEL, OPTIMIZER, STATE];

/// sha256 of a file as lower-case hex, read in blocks (optimizer state runs to gigabytes).
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| TrainError::read(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| TrainError::read(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Saves model, optimizer, state and their checksums atomically under `run_dir/checkpoint`;
/// the checkpoint it replaces becomes `checkpoint.prev`.
pub fn save(run_dir: &Path, model: &Decoder, opt: &AdamW, state: &TrainState) -> Result<()> {
    save_with_state(run_dir, model, &opt.state(model.params()), state)
}

/// [`save`] with the optimizer's state given as [`AdamW::state`] names it (ZeRO-1's rank 0
/// writes the state it gathered from every rank).
pub fn save_with_state(
    run_dir: &Path,
    model: &Decoder,
    opt_state: &HashMap<String, Tensor>,
    state: &TrainState,
) -> Result<()> {
    let final_dir = run_dir.join(DIR);
    let tmp = run_dir.join(synthscale_data::tempname::owned_name(DIR, "tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::write(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::write(&tmp, e))?;
    candle_core::safetensors::save(&model.tensors(), tmp.join(MODEL))?;
    candle_core::safetensors::save(opt_state, tmp.join(OPTIMIZER))?;
    let state = TrainState {
        format: FORMAT,
        ..state.clone()
    };
    let json = serde_json::to_string_pretty(&state).expect("serializable");
    write_synced(&tmp.join(STATE), json.as_bytes())?;
    for f in [MODEL, OPTIMIZER] {
        sync(&tmp.join(f))?;
    }
    // Hashed as they lie on disk, before the rename makes them the checkpoint.
    let mut sums = String::new();
    for f in FILES {
        sums.push_str(&format!("{}  {f}\n", sha256_file(&tmp.join(f))?));
    }
    write_synced(&tmp.join(SUMS), sums.as_bytes())?;
    sync(&tmp)?;
    let prev = run_dir.join(PREV);
    if final_dir.exists() {
        if prev.exists() {
            std::fs::remove_dir_all(&prev).map_err(|e| TrainError::write(&prev, e))?;
        }
        std::fs::rename(&final_dir, &prev).map_err(|e| TrainError::write(&final_dir, e))?;
    }
    std::fs::rename(&tmp, &final_dir).map_err(|e| TrainError::write(&final_dir, e))?;
    sync(run_dir)?;
    let old = run_dir.join(OLD);
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| TrainError::write(&old, e))?;
    }
    Ok(())
}

/// The checkpoint directories of `run_dir` that hold a state, newest first: `checkpoint/`,
/// then `checkpoint.prev/` and the `checkpoint.old/` of an older synthscale.
pub fn candidates(run_dir: &Path) -> Vec<PathBuf> {
    [DIR, PREV, OLD]
        .into_iter()
        .map(|d| run_dir.join(d))
        .filter(|d| d.join(STATE).is_file())
        .collect()
}

/// The checkpoint directory to resume from: `checkpoint/` when it exists (complete or
/// not: a damaged one is reported, not skipped), else `checkpoint.prev/` when a crash fell
/// between the two renames of [`save`] (or the user moved a damaged `checkpoint/` aside),
/// else the `checkpoint.old/` an older synthscale left in the same window.
pub fn find(run_dir: &Path) -> Option<PathBuf> {
    let latest = run_dir.join(DIR);
    if latest.is_dir() {
        return Some(latest);
    }
    [PREV, OLD]
        .into_iter()
        .map(|d| run_dir.join(d))
        .find(|d| d.join(STATE).is_file())
}

/// Removes the temporary checkpoint directories of processes that died on this host
/// (`checkpoint.tmp-<pid>[-<host>]`); returns what it removed.
pub fn remove_stale(run_dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(synthscale_data::tempname::remove_stale(
        run_dir,
        DIR,
        &["tmp"],
    )?)
}

/// What to do about a checkpoint that failed verification.
fn recovery(dir: &Path) -> String {
    let run_dir = dir.parent().unwrap_or(Path::new("."));
    let prev = run_dir.join(PREV);
    let is_latest = dir.file_name().is_some_and(|n| n == DIR);
    if is_latest && prev.join(STATE).is_file() {
        let step = std::fs::read_to_string(prev.join(STATE))
            .ok()
            .and_then(|t| serde_json::from_str::<TrainState>(&t).ok())
            .map_or("?".to_string(), |s| s.step.to_string());
        format!(
            "nothing was trained from it; the previous checkpoint (step {step}) is kept in \
             {}: move the damaged one aside (mv {} {}.damaged) and run the command again to \
             resume from it",
            prev.display(),
            dir.display(),
            dir.display()
        )
    } else {
        format!(
            "nothing was trained from it and no earlier checkpoint is kept; restore it from \
             a backup, or move it aside (mv {} {}.damaged) to train the run from the start",
            dir.display(),
            dir.display()
        )
    }
}

/// `state.json` against the run's config: the step within the schedule, the tokens and
/// AdamW's update count that step implies, and the seed.
fn check_state(s: &TrainState, cfg: &ResolvedConfig) -> std::result::Result<(), (String, String)> {
    let steps = cfg.steps();
    let b = cfg.optim.batch_tokens;
    if s.step > steps {
        return Err((
            "step".into(),
            format!(
                "{} is beyond the run's {steps} steps (data.token_budget / optim.batch_tokens \
                 = {} / {b})",
                s.step, cfg.token_budget
            ),
        ));
    }
    if s.tokens != s.step * b {
        return Err((
            "tokens".into(),
            format!(
                "{}, but step {} × optim.batch_tokens {b} = {}",
                s.tokens,
                s.step,
                s.step * b
            ),
        ));
    }
    if s.optimizer_t != s.step {
        return Err((
            "optimizer_t".into(),
            format!(
                "{}, but AdamW updates once per step and the state is at step {}",
                s.optimizer_t, s.step
            ),
        ));
    }
    if s.seed != cfg.seed {
        return Err((
            "seed".into(),
            format!("{}, but the run's config has seed = {}", s.seed, cfg.seed),
        ));
    }
    Ok(())
}

/// A verification failure: the file, the field (empty for the whole file) and why.
type Invalid = (PathBuf, String, String);

/// Every file of `files` against the sha256 that [`SUMS`] records; the hashes, in order.
fn check_sums(dir: &Path, text: &str, files: &[&str]) -> std::result::Result<Vec<String>, Invalid> {
    let sums = dir.join(SUMS);
    let mut out = Vec::new();
    for &f in files {
        let recorded = text
            .lines()
            .filter_map(|l| l.split_once("  "))
            .find(|(_, name)| name.trim_end() == f)
            .map(|(h, _)| h.trim());
        let Some(recorded) = recorded else {
            return Err((sums, String::new(), format!("has no line for {f}")));
        };
        let path = dir.join(f);
        let found = sha256_file(&path).map_err(|e| (path.clone(), String::new(), e.to_string()))?;
        if found != recorded {
            return Err((
                path,
                "sha256".into(),
                format!(
                    "{found}, but {SUMS} records {recorded}: the file changed after the \
                     checkpoint was written"
                ),
            ));
        }
        out.push(found);
    }
    Ok(out)
}

/// Verifies a checkpoint's `state.json` (against `cfg`, the config of the run that wrote
/// it) and `model.safetensors` (against [`SUMS`]) without reading the optimizer state:
/// what a run starting from its weights needs. Returns the state, the model file and its
/// sha256 (computed here for a checkpoint from before checksums).
pub fn verify_model(
    dir: &Path,
    cfg: &ResolvedConfig,
) -> std::result::Result<(TrainState, PathBuf, String), Invalid> {
    let state_path = dir.join(STATE);
    let text = std::fs::read_to_string(&state_path).map_err(|e| {
        (
            state_path.clone(),
            String::new(),
            format!("cannot be read: {e}"),
        )
    })?;
    let state: TrainState = serde_json::from_str(&text).map_err(|e| {
        (
            state_path.clone(),
            String::new(),
            format!("not a checkpoint state: {e}"),
        )
    })?;
    check_state(&state, cfg).map_err(|(f, m)| (state_path.clone(), f, m))?;
    let model = dir.join(MODEL);
    let sha = match std::fs::read_to_string(dir.join(SUMS)) {
        Ok(text) => check_sums(dir, &text, &[MODEL, STATE])?.remove(0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && state.format == 0 => {
            sha256_file(&model).map_err(|e| (model.clone(), String::new(), e.to_string()))?
        }
        Err(e) => {
            return Err((
                dir.join(SUMS),
                String::new(),
                format!("cannot be read ({e})"),
            ))
        }
    };
    Ok((state, model, sha))
}

/// Loads a checkpoint written by [`save`] for the run `cfg`, after verifying it: the
/// fields of `state.json` against the config, then every file against [`SUMS`]. A
/// checkpoint that fails is [`TrainError::CheckpointInvalid`], naming the file and field
/// and how to resume from the previous checkpoint.
pub fn load(
    dir: &Path,
    cfg: &ResolvedConfig,
    device: &Device,
) -> Result<(Decoder, AdamW, TrainState)> {
    let invalid = |path: &Path, field: &str, message: String| TrainError::CheckpointInvalid {
        path: path.to_path_buf(),
        field: field.to_string(),
        message,
        recovery: recovery(dir),
    };
    let state_path = dir.join(STATE);
    let text = std::fs::read_to_string(&state_path)
        .map_err(|e| invalid(&state_path, "", format!("cannot be read: {e}")))?;
    let state: TrainState = serde_json::from_str(&text)
        .map_err(|e| invalid(&state_path, "", format!("not a checkpoint state: {e}")))?;
    check_state(&state, cfg).map_err(|(field, m)| invalid(&state_path, &field, m))?;
    let sums = dir.join(SUMS);
    match std::fs::read_to_string(&sums) {
        Ok(text) => {
            check_sums(dir, &text, &FILES).map_err(|(p, f, m)| invalid(&p, &f, m))?;
        }
        // Written before checkpoints carried checksums (format 0): loaded unverified.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && state.format == 0 => {}
        Err(e) => {
            return Err(invalid(
                &sums,
                "",
                format!(
                    "cannot be read ({e}), but state.json (field `format` = {}) says the \
                     checkpoint was written with it",
                    state.format
                ),
            ))
        }
    }
    let mp = dir.join(MODEL);
    let tensors = candle_core::safetensors::load(&mp, device)
        .map_err(|e| invalid(&mp, "", format!("cannot be read: {e}")))?;
    let model = Decoder::from_tensors(&cfg.model, tensors, &mp).map_err(|e| {
        let m = match e {
            synthscale_model::ModelError::Weights { message, .. } => message,
            e => e.to_string(),
        };
        invalid(&mp, "", m)
    })?;
    let op = dir.join(OPTIMIZER);
    let ot = candle_core::safetensors::load(&op, device)
        .map_err(|e| invalid(&op, "", format!("cannot be read: {e}")))?;
    let opt = AdamW::load(model.params(), &cfg.optim, ot, state.optimizer_t, &op).map_err(|e| {
        let m = match e {
            TrainError::Checkpoint { message, .. } => message,
            e => e.to_string(),
        };
        invalid(&op, "", m)
    })?;
    Ok((model, opt, state))
}
