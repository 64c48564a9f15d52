//! What a checkpoint's `state.json` records besides the tensors: the step, tokens, seed and
//! update count a run resumes from, and where a continued pre-training run's weights came
//! from.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `TrainState::format` of checkpoints with `SHA256SUMS` (the checkpoint module's `SUMS`).
pub const FORMAT: u32 = 1;

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
    /// [`FORMAT`]: the directory holds `SHA256SUMS`. 0 (absent from the file): written by a
    /// synthscale before checkpoints carried checksums; such a checkpoint still loads, with
    /// its `state.json` checked against the config but its tensors unverified.
    #[serde(default)]
    pub format: u32,
    /// The weights a continued pre-training run started from (`init_from`), carried by
    /// every checkpoint of the run; absent for a run from a random init.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<InitRecord>,
    /// The processes of a data-parallel run (the `dist` module); 1 (and absent from the file,
    /// as in checkpoints from before data parallelism) for a single process. A run resumes
    /// only with the same number.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub world_size: u64,
}

fn one() -> u64 {
    1
}

fn is_one(n: &u64) -> bool {
    *n == 1
}

impl TrainState {
    /// The state of a run that has not taken a step.
    pub fn start(seed: u64) -> Self {
        TrainState {
            step: 0,
            tokens: 0,
            seed,
            optimizer_t: 0,
            format: FORMAT,
            init_from: None,
            world_size: 1,
        }
    }
}

/// What kind of directory an `init_from` source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitKind {
    /// A synthscale run directory (`config.toml`, `checkpoint/`).
    Run,
    /// A `synthscale export` directory (`model.safetensors`, `config.json` in Hugging
    /// Face's Llama layout, `tokenizer.json`).
    Export,
}

/// Where a run's initial weights came from, as `state.json` records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitRecord {
    /// The `init_from` directory.
    pub path: PathBuf,
    pub kind: InitKind,
    /// The weights file read.
    pub weights: PathBuf,
    /// sha256 of that file, lower-case hex.
    pub sha256: String,
    /// A run source: the step of the checkpoint taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u64>,
}
