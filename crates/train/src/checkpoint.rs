//! Checkpoints: `checkpoint/{model,optimizer}.safetensors` and `state.json`, written to a
//! temporary directory and renamed into place, so a crash at any moment leaves either the
//! previous checkpoint or the new one, never a mixture.

use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::{Deserialize, Serialize};
use synthscale_model::{Decoder, ModelConfig};

use crate::config::OptimConfig;
use crate::error::{Result, TrainError};
use crate::optim::AdamW;

pub const DIR: &str = "checkpoint";

/// What `state.json` records besides the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer steps completed; also the data position, since the mixture stream resumes
    /// exactly from a step index.
    pub step: u64,
    pub tokens: u64,
    /// The run's seed. The trainer draws no random numbers after initialisation (no
    /// dropout), and the data order is a pure function of seed and step, so seed and step
    /// are the whole random state.
    pub seed: u64,
    /// AdamW's update count.
    pub optimizer_t: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    TrainError::io(path)
}

/// Saves model, optimizer and state atomically under `run_dir/checkpoint`.
pub fn save(run_dir: &Path, model: &Decoder, opt: &AdamW, state: &TrainState) -> Result<()> {
    let final_dir = run_dir.join(DIR);
    let tmp = run_dir.join(format!("{DIR}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    candle_core::safetensors::save(&model.tensors(), tmp.join("model.safetensors"))?;
    candle_core::safetensors::save(
        &opt.state(model.params()),
        tmp.join("optimizer.safetensors"),
    )?;
    let json = serde_json::to_string_pretty(state).expect("serializable");
    write_synced(&tmp.join("state.json"), json.as_bytes())?;
    for f in ["model.safetensors", "optimizer.safetensors"] {
        sync(&tmp.join(f))?;
    }
    sync(&tmp)?;
    let old = run_dir.join(format!("{DIR}.old"));
    if final_dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(io(&old))?;
        }
        std::fs::rename(&final_dir, &old).map_err(io(&final_dir))?;
    }
    std::fs::rename(&tmp, &final_dir).map_err(io(&final_dir))?;
    sync(run_dir)?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    Ok(())
}

/// The checkpoint directory to resume from: `checkpoint/`, or `checkpoint.old/` when a crash
/// fell between the two renames of [`save`].
pub fn find(run_dir: &Path) -> Option<PathBuf> {
    [DIR.to_string(), format!("{DIR}.old")]
        .into_iter()
        .map(|d| run_dir.join(d))
        .find(|d| d.join("state.json").is_file())
}

/// Loads a checkpoint written by [`save`].
pub fn load(
    dir: &Path,
    model_cfg: &ModelConfig,
    optim: &OptimConfig,
    device: &Device,
) -> Result<(Decoder, AdamW, TrainState)> {
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(io(&state_path))?;
    let state: TrainState = serde_json::from_str(&text).map_err(|e| TrainError::Checkpoint {
        path: state_path.clone(),
        message: e.to_string(),
    })?;
    let mp = dir.join("model.safetensors");
    let tensors =
        candle_core::safetensors::load(&mp, device).map_err(|e| TrainError::Checkpoint {
            path: mp.clone(),
            message: e.to_string(),
        })?;
    let model = Decoder::from_tensors(model_cfg, tensors, &mp)?;
    let op = dir.join("optimizer.safetensors");
    let ot = candle_core::safetensors::load(&op, device).map_err(|e| TrainError::Checkpoint {
        path: op.clone(),
        message: e.to_string(),
    })?;
    let opt = AdamW::load(model.params(), optim, ot, state.optimizer_t, &op)?;
    Ok((model, opt, state))
}

/// Writes a file and flushes it to disk.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

fn sync(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(path))
}
