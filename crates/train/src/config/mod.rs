//! One run's config (`run.toml`): model shape, data and mixture, optimizer, schedule,
//! evaluation and checkpoints. The trainer owns it and never sees a sweep manifest.

//!
//! - [`resolve`]: the config checked against the data and resolved (`ResolvedConfig`);
//! - [`schedule`]: the resolved run's steps, batch arithmetic and learning-rate schedule.

mod resolve;
mod schedule;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use synthscale_data::config::SourceKind;
use synthscale_model::ModelConfig;

use crate::error::{Result, TrainError};

/// The model: a preset, a parameter target for the size rule, or an explicit shape; any
/// field given alongside a preset or target overrides it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSpec {
    /// A preset name (`synthscale_model::PRESETS`: 0.1M … 800M).
    pub preset: Option<String>,
    /// Non-embedding parameters for the size rule.
    pub params: Option<u64>,
    pub d_model: Option<usize>,
    pub n_layers: Option<usize>,
    pub n_heads: Option<usize>,
    pub n_kv_heads: Option<usize>,
    pub d_ff: Option<usize>,
    pub tie_embeddings: Option<bool>,
    pub init_std: Option<f64>,
    pub rope_theta: Option<f64>,
}

/// What to train on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSpec {
    /// A directory written by `synthscale data prepare`; relative to the run config.
    pub dir: PathBuf,
    /// Weights per source name; or give `shares`.
    pub weights: BTreeMap<String, f64>,
    /// Shares per kind (natural, rephrased, textbook), split over each kind's sources in
    /// proportion to their training tokens.
    pub shares: BTreeMap<SourceKind, f64>,
    /// Training tokens; rounded down to whole optimizer steps.
    pub token_budget: u64,
    /// Tokens per sequence; 0 takes the data directory's `seq_len`.
    pub seq_len: usize,
}

/// Learning-rate schedule shapes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Linear warm-up, then cosine to `min_lr_ratio · lr` at the last step (Loshchilov &
    /// Hutter 2017; the schedule of Chinchilla and nanoGPT).
    #[default]
    Cosine,
    /// Warm-up–stable–decay: linear warm-up, constant, then a cooldown to
    /// `min_lr_ratio · lr` over the last `decay_fraction` of steps, of shape `decay_shape`
    /// (Hu et al. 2024, MiniCPM; Hägele et al. 2024, arXiv 2405.18392, §3, the formula in
    /// [`ResolvedConfig::lr_at`]).
    Wsd,
    /// Linear warm-up, then constant.
    Constant,
}

/// The shape of WSD's cooldown (Hägele et al. 2024, §3 and Fig. 4): the fraction `g(p)` of
/// the way from the peak to the floor after a fraction `p` of the cooldown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DecayShape {
    /// `g(p) = p`.
    #[default]
    #[serde(rename = "linear")]
    Linear,
    /// `g(p) = √p`: the paper's "(1 − sqrt)" cooldown, `lr = peak · (1 − √p)` to a zero
    /// floor, which it finds better than linear.
    #[serde(rename = "1-sqrt", alias = "sqrt")]
    OneMinusSqrt,
}

impl DecayShape {
    fn is_linear(&self) -> bool {
        *self == DecayShape::Linear
    }
}

/// AdamW and the batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// Floor of the decay as a fraction of `lr` (nanoGPT: min_lr ≈ lr/10, per Chinchilla).
    pub min_lr_ratio: f64,
    pub schedule: Schedule,
    /// Warm-up steps; when 0, `warmup_fraction` of all steps.
    pub warmup_steps: u64,
    pub warmup_fraction: f64,
    /// WSD only: fraction of steps spent in the cooldown (Hägele et al. 2024: 10–20 %
    /// matches a tuned cosine).
    pub decay_fraction: f64,
    /// WSD only: the cooldown's shape. Left out of the written config when linear, so
    /// configs (and sweep run ids) from before the field stay the same.
    #[serde(skip_serializing_if = "DecayShape::is_linear")]
    pub decay_shape: DecayShape,
    /// Decoupled weight decay (Loshchilov & Hutter 2019).
    pub weight_decay: f64,
    /// Apply weight decay to RMSNorm gains (most recipes do not).
    pub decay_norms: bool,
    /// Apply weight decay to the embedding and output head (OLMo 2 does not).
    pub decay_embeddings: bool,
    pub beta1: f64,
    /// 0.95, as GPT-3, Chinchilla and OLMo use for stability at small batch sizes.
    pub beta2: f64,
    pub eps: f64,
    /// Global gradient-norm clip; 0 disables.
    pub grad_clip: f64,
    /// Tokens per optimizer step (a multiple of seq_len × micro_batch_size).
    pub batch_tokens: u64,
    /// Sequences per forward/backward pass; batch_tokens / seq_len / micro_batch_size passes
    /// are accumulated per step.
    pub micro_batch_size: usize,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            lr: 3e-3,
            min_lr_ratio: 0.1,
            schedule: Schedule::Cosine,
            warmup_steps: 0,
            warmup_fraction: 0.05,
            decay_fraction: 0.2,
            decay_shape: DecayShape::Linear,
            weight_decay: 0.1,
            decay_norms: false,
            decay_embeddings: false,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            grad_clip: 1.0,
            batch_tokens: 16 * 256,
            micro_batch_size: 16,
        }
    }
}

/// Evaluation on every validation domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Evaluate every this many steps (and always at the end); 0: only at the end.
    pub interval: u64,
    /// At most this many tokens per domain (whole sequences from the start of the domain's
    /// held-out tokens, the same every time).
    pub max_tokens: u64,
    /// Sequences per evaluation batch.
    pub batch_size: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            interval: 100,
            max_tokens: 32_768,
            batch_size: 16,
        }
    }
}

/// Checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointConfig {
    /// Checkpoint every this many steps (and always at the end); 0: only at the end.
    pub interval: u64,
    /// Steps whose checkpoint is also kept as `checkpoint-step-<N>/`, which the interval's
    /// checkpoints never replace: a ladder trunk's branch points, each kept until its
    /// branch is DONE.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keep_steps: Vec<u64>,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            interval: 200,
            keep_steps: Vec::new(),
        }
    }
}

/// A budget ladder's branch: the run starts from a trunk's kept checkpoint at its own
/// cooldown start instead of from scratch, and otherwise is the WSD run of its budget.
/// The trunk trained the same model on the same mixture stream at the same batch, peak
/// learning rate and warm-up, so the branch logs what that run would log, bit for bit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BranchSpec {
    /// The trunk's run directory; relative to the run config.
    pub trunk: PathBuf,
    /// The trunk step the branch starts from: its cooldown start, `optim.decay_start`.
    pub step: u64,
}

/// Where the run computes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceSpec {
    #[default]
    Cpu,
    Cuda,
}

/// A run config as written by the user or by a sweep.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Seeds the initialisation and the data order.
    pub seed: u64,
    pub device: DeviceSpec,
    /// Memory of the device in GiB that the run's estimate must fit before anything is
    /// allocated (`bounds::check_memory`); default: the machine's memory on CPU, 80 (an
    /// H100) on CUDA. Not part of the run's identity: it is left out of `config.toml`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_memory_gib: Option<f64>,
    /// ZeRO-1 in a data-parallel run: each rank keeps the AdamW moments of its share of the
    /// parameters (the `zero` module); default true, `false` keeps all of them on every rank.
    /// The same model trains either way, so it is not part of the run's identity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_optimizer: Option<bool>,
    /// `true`: TensorBoard event files of the run's metrics in `<run dir>/tensorboard`
    /// (the `tensorboard` module). Not part of the run's identity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tensorboard: Option<bool>,
    pub model: ModelSpec,
    pub data: DataSpec,
    pub optim: OptimConfig,
    pub eval: EvalConfig,
    pub checkpoint: CheckpointConfig,
    /// A ladder branch's trunk; absent for an ordinary run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<BranchSpec>,
    /// Continued pre-training: start from these weights instead of a random init — a
    /// synthscale run directory (its latest valid checkpoint) or a `synthscale export`
    /// directory; relative to the run config. Only the weights are taken: optimizer, step
    /// and data position start fresh. A run with a checkpoint of its own resumes from it and
    /// never reads this again (the `init` module).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_from: Option<PathBuf>,
}

/// Everything the trainer needs, resolved against the data: written first into the run
/// directory as `config.toml`, and compared on every restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolvedConfig {
    pub seed: u64,
    pub device: DeviceSpec,
    pub data_dir: PathBuf,
    /// sha256 of the tokenizer the data was built with.
    pub tokenizer_hash: String,
    pub mixture: BTreeMap<String, f64>,
    pub token_budget: u64,
    pub seq_len: usize,
    pub model: ModelConfig,
    pub optim: OptimConfig,
    pub eval: EvalConfig,
    pub checkpoint: CheckpointConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<BranchSpec>,
    /// The weights the run started from (`RunConfig::init_from`); the checkpoint it took
    /// and that file's sha256 are recorded in `state.json` (`TrainState::init_from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<PathBuf>,
}

impl RunConfig {
    /// Reads a run config; relative paths resolve against its folder.
    pub fn load(path: &Path) -> Result<RunConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
            // The user's input: exit 2 naming it.
            std::io::ErrorKind::NotFound => TrainError::Config {
                file: path.to_path_buf(),
                message: "no such file".into(),
            },
            _ => TrainError::read(path, e),
        })?;
        let mut c: RunConfig = toml::from_str(&text).map_err(|e| TrainError::Config {
            file: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        if c.data.dir.is_relative() {
            c.data.dir = path.parent().unwrap_or(Path::new(".")).join(&c.data.dir);
        }
        if let Some(b) = &mut c.branch {
            if b.trunk.is_relative() {
                b.trunk = path.parent().unwrap_or(Path::new(".")).join(&b.trunk);
            }
        }
        if let Some(p) = &mut c.init_from {
            if p.is_relative() {
                *p = path.parent().unwrap_or(Path::new(".")).join(&*p);
            }
        }
        Ok(c)
    }
}
