//! One run's config (`run.toml`): model shape, data and mixture, optimizer, schedule,
//! evaluation and checkpoints. The trainer owns it and never sees a sweep manifest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use synthscale_data::config::SourceKind;
use synthscale_data::{DataMeta, Mixture};
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
    /// parameters ([`crate::zero`]); default true, `false` keeps all of them on every rank.
    /// The same model trains either way, so it is not part of the run's identity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_optimizer: Option<bool>,
    /// `true`: TensorBoard event files of the run's metrics in `<run dir>/tensorboard`
    /// ([`crate::tensorboard`]). Not part of the run's identity.
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
    /// never reads this again ([`crate::init`]).
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
            _ => TrainError::io(path)(e),
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

    /// Checks every bound against the data directory's description and resolves the
    /// model shape, sequence length and mixture. `file` names the config in messages.
    pub fn resolve(
        &self,
        meta: &DataMeta,
        tokenizer_hash: &str,
        file: &Path,
    ) -> Result<ResolvedConfig> {
        let field = |f: &str, m: String| TrainError::Field {
            file: file.to_path_buf(),
            field: f.to_string(),
            message: m,
        };
        let seq_len = if self.data.seq_len == 0 {
            meta.seq_len
        } else {
            self.data.seq_len
        };
        let o = &self.optim;
        if !(o.lr.is_finite() && o.lr > 0.0 && o.lr < 10.0) {
            return Err(field("optim.lr", format!("{} is outside (0, 10)", o.lr)));
        }
        for (name, v, lo, hi) in [
            ("optim.min_lr_ratio", o.min_lr_ratio, 0.0, 1.0),
            ("optim.warmup_fraction", o.warmup_fraction, 0.0, 1.0),
            ("optim.decay_fraction", o.decay_fraction, 0.0, 1.0),
            ("optim.beta1", o.beta1, 0.0, 0.999_999),
            ("optim.beta2", o.beta2, 0.0, 0.999_999_9),
        ] {
            if !(v.is_finite() && (lo..=hi).contains(&v)) {
                return Err(field(name, format!("{v} is outside [{lo}, {hi}]")));
            }
        }
        if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0) {
            return Err(field(
                "optim.weight_decay",
                format!("{} must be ≥ 0", o.weight_decay),
            ));
        }
        if !(o.eps.is_finite() && o.eps > 0.0) {
            return Err(field("optim.eps", format!("{} must be > 0", o.eps)));
        }
        if !(o.grad_clip.is_finite() && o.grad_clip >= 0.0) {
            return Err(field(
                "optim.grad_clip",
                format!("{} must be ≥ 0", o.grad_clip),
            ));
        }
        if o.micro_batch_size == 0 {
            return Err(field("optim.micro_batch_size", "must be at least 1".into()));
        }
        let per_micro = seq_len as u64 * o.micro_batch_size as u64;
        if o.batch_tokens == 0 || o.batch_tokens % per_micro != 0 {
            return Err(field(
                "optim.batch_tokens",
                format!(
                    "{} is not a positive multiple of seq_len × micro_batch_size = {seq_len} × {} = {per_micro}",
                    o.batch_tokens, o.micro_batch_size
                ),
            ));
        }
        if self.data.token_budget < o.batch_tokens {
            return Err(field(
                "data.token_budget",
                format!(
                    "{} tokens is less than one optimizer step of optim.batch_tokens = {}",
                    self.data.token_budget, o.batch_tokens
                ),
            ));
        }
        if self.eval.batch_size == 0 {
            return Err(field("eval.batch_size", "must be at least 1".into()));
        }
        if self.eval.max_tokens < seq_len as u64 {
            return Err(field(
                "eval.max_tokens",
                format!(
                    "{} is less than one sequence of {seq_len} tokens",
                    self.eval.max_tokens
                ),
            ));
        }
        let mixture = self.mixture(meta, file)?;
        // A batch larger than the data would repeat sequences inside one step.
        let windows: u64 = mixture
            .weights
            .iter()
            .filter(|(_, w)| *w > 0.0)
            .filter_map(|(name, _)| meta.source_index(name))
            .map(|i| meta.sources[i].train.tokens.saturating_sub(1) / seq_len as u64)
            .sum();
        let batch = o.batch_tokens / seq_len as u64;
        if batch > windows {
            return Err(field(
                "optim.batch_tokens",
                format!(
                    "a batch of {batch} sequences is larger than the data: the mixture's sources \
                     hold {windows} training sequences of {seq_len} tokens"
                ),
            ));
        }
        let steps = self.data.token_budget / o.batch_tokens;
        if o.warmup_steps > steps {
            return Err(field(
                "optim.warmup_steps",
                format!(
                    "{} is longer than the run: data.token_budget / optim.batch_tokens = {} / {} \
                     = {steps} steps",
                    o.warmup_steps, self.data.token_budget, o.batch_tokens
                ),
            ));
        }
        let model = self.model_config(meta.tokenizer.vocab_size as usize, seq_len, file)?;
        let resolved = ResolvedConfig {
            seed: self.seed,
            device: self.device,
            data_dir: self.data.dir.clone(),
            tokenizer_hash: tokenizer_hash.to_string(),
            mixture: mixture.weights.into_iter().collect(),
            token_budget: self.data.token_budget,
            seq_len,
            model,
            optim: self.optim.clone(),
            eval: self.eval.clone(),
            checkpoint: self.checkpoint.clone(),
            branch: self.branch.clone(),
            init_from: self.init_from.clone(),
        };
        if self.branch.is_some() && self.init_from.is_some() {
            return Err(field(
                "init_from",
                "a ladder branch starts from its trunk's checkpoint; give init_from to the \
                 trunk, not to a branch"
                    .into(),
            ));
        }
        resolved.check_ladder(file)?;
        Ok(resolved)
    }

    fn mixture(&self, meta: &DataMeta, file: &Path) -> Result<Mixture> {
        let d = &self.data;
        match (d.weights.is_empty(), d.shares.is_empty()) {
            (false, true) => {
                // Named here, before the batch is measured against the sources it names.
                if let Some(name) = d.weights.keys().find(|n| meta.source_index(n).is_none()) {
                    let names: Vec<_> = meta.sources.iter().map(|s| s.name.as_str()).collect();
                    return Err(TrainError::Field {
                        file: file.to_path_buf(),
                        field: format!("data.weights.{name}"),
                        message: format!(
                            "the data has no source {name:?}; its sources are {}",
                            names.join(", ")
                        ),
                    });
                }
                Ok(Mixture {
                    weights: d.weights.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                })
            }
            (true, false) => {
                let shares: Vec<_> = d.shares.iter().map(|(k, v)| (*k, *v)).collect();
                Ok(Mixture::from_kind_shares(meta, &shares)?)
            }
            _ => Err(TrainError::Field {
                file: file.to_path_buf(),
                field: "data.weights".into(),
                message: "give exactly one of data.weights (per source) or data.shares (per kind)"
                    .into(),
            }),
        }
    }

    fn model_config(&self, vocab: usize, seq_len: usize, file: &Path) -> Result<ModelConfig> {
        let m = &self.model;
        let field = |f: &str, msg: String| TrainError::Field {
            file: file.to_path_buf(),
            field: f.to_string(),
            message: msg,
        };
        let mut c = match (&m.preset, m.params) {
            (Some(_), Some(_)) => {
                return Err(field(
                    "model.preset",
                    "give model.preset or model.params, not both".into(),
                ))
            }
            (Some(p), None) => {
                ModelConfig::preset(p, vocab).map_err(|e| field("model.preset", e.to_string()))?
            }
            (None, Some(n)) => ModelConfig::for_params(n, vocab)
                .map_err(|e| field("model.params", e.to_string()))?,
            (None, None) => match (m.d_model, m.n_layers, m.n_heads) {
                (Some(d), Some(l), Some(h)) => ModelConfig::from_shape(d, l, h, vocab),
                _ => {
                    return Err(field(
                        "model",
                        "give model.preset, model.params, or d_model, n_layers and n_heads".into(),
                    ))
                }
            },
        };
        if let Some(v) = m.d_model {
            c.d_model = v;
            if m.d_ff.is_none() {
                c.d_ff = synthscale_model::config::swiglu_width(v);
            }
        }
        if let Some(v) = m.n_layers {
            c.n_layers = v;
        }
        if let Some(v) = m.n_heads {
            c.n_heads = v;
            c.n_kv_heads = v;
        }
        if let Some(v) = m.n_kv_heads {
            c.n_kv_heads = v;
        }
        if let Some(v) = m.d_ff {
            c.d_ff = v;
        }
        if let Some(v) = m.tie_embeddings {
            c.tie_embeddings = v;
        }
        if let Some(v) = m.init_std {
            c.init_std = v;
        }
        if let Some(v) = m.rope_theta {
            c.rope_theta = v;
        }
        c.max_seq_len = seq_len;
        c.validate().map_err(|e| field("model", e.to_string()))?;
        Ok(c)
    }
}

impl ResolvedConfig {
    /// A branch starts at its own cooldown start, after the warm-up; kept steps lie inside
    /// the run.
    fn check_ladder(&self, file: &Path) -> Result<()> {
        let field = |f: &str, m: String| TrainError::Field {
            file: file.to_path_buf(),
            field: f.to_string(),
            message: m,
        };
        let steps = self.steps();
        for &k in &self.checkpoint.keep_steps {
            if k == 0 || k > steps {
                return Err(field(
                    "checkpoint.keep_steps",
                    format!("step {k} is outside the run's steps 1..={steps}"),
                ));
            }
        }
        let Some(b) = &self.branch else {
            return Ok(());
        };
        if self.optim.schedule != Schedule::Wsd {
            return Err(field(
                "optim.schedule",
                "a branch (a [branch] section) cools down from a constant-LR trunk: it needs \
                 schedule = \"wsd\""
                    .into(),
            ));
        }
        let cool = (self.optim.decay_fraction * steps as f64).round() as u64;
        let start = steps.saturating_sub(cool);
        if cool == 0 || start < self.warmup_steps() {
            return Err(field(
                "optim.decay_fraction",
                format!(
                    "the cooldown of {cool} steps would start at step {start} of {steps}, \
                     not after the {} warm-up steps",
                    self.warmup_steps()
                ),
            ));
        }
        if b.step != start {
            return Err(field(
                "branch.step",
                format!(
                    "{} is not this run's cooldown start, step {start} of {steps} \
                     (steps − round(optim.decay_fraction · steps))",
                    b.step
                ),
            ));
        }
        Ok(())
    }

    /// Sequences per optimizer step.
    pub fn batch_sequences(&self) -> usize {
        (self.optim.batch_tokens / self.seq_len as u64) as usize
    }

    /// Forward/backward passes per optimizer step.
    pub fn accumulation(&self) -> usize {
        self.batch_sequences() / self.optim.micro_batch_size
    }

    pub fn steps(&self) -> u64 {
        self.token_budget / self.optim.batch_tokens
    }

    pub fn warmup_steps(&self) -> u64 {
        if self.optim.warmup_steps > 0 {
            self.optim.warmup_steps
        } else {
            (self.optim.warmup_fraction * self.steps() as f64).round() as u64
        }
    }

    /// The learning rate at optimizer step `step` (0-based).
    pub fn lr_at(&self, step: u64) -> f64 {
        let o = &self.optim;
        let total = self.steps().max(1);
        let warm = self.warmup_steps().min(total);
        let min_lr = o.lr * o.min_lr_ratio;
        if step < warm {
            return o.lr * (step + 1) as f64 / warm as f64;
        }
        match o.schedule {
            Schedule::Constant => o.lr,
            Schedule::Cosine => {
                // The last step (total − 1) lands exactly on the floor.
                let span = (total - warm).saturating_sub(1).max(1) as f64;
                let progress = ((step - warm) as f64 / span).min(1.0);
                min_lr + 0.5 * (o.lr - min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
            }
            Schedule::Wsd => {
                let start = self.decay_start();
                if step < start {
                    return o.lr;
                }
                // Hägele et al. 2024, §3: lr(n) = peak + (min − peak)·g(p),
                // p = (n − N₀)/N_cool, with n = step + 1 the 1-based update count, N₀ the
                // cooldown's start and N_cool its length, so the last update lands exactly
                // on the floor (as the cosine above does); g(p) = p or √p (DecayShape).
                let decay = total - start;
                let p = (step - start + 1) as f64 / decay as f64;
                let g = match o.decay_shape {
                    DecayShape::Linear => p,
                    DecayShape::OneMinusSqrt => p.sqrt(),
                };
                o.lr + (min_lr - o.lr) * g
            }
        }
    }

    /// WSD: the first step of the cooldown, `steps − round(decay_fraction · steps)`, never
    /// inside the warm-up; `steps` when there is no cooldown. A ladder's trunk branches
    /// here.
    pub fn decay_start(&self) -> u64 {
        let total = self.steps().max(1);
        let warm = self.warmup_steps().min(total);
        let decay = ((self.optim.decay_fraction * total as f64).round() as u64).min(total - warm);
        total - decay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(schedule: Schedule, steps: u64, warmup: u64) -> ResolvedConfig {
        ResolvedConfig {
            seed: 0,
            device: DeviceSpec::Cpu,
            data_dir: PathBuf::new(),
            tokenizer_hash: String::new(),
            mixture: BTreeMap::new(),
            token_budget: steps * 1024,
            seq_len: 64,
            model: ModelConfig::default(),
            optim: OptimConfig {
                lr: 1.0,
                min_lr_ratio: 0.1,
                schedule,
                warmup_steps: warmup,
                decay_fraction: 0.25,
                batch_tokens: 1024,
                micro_batch_size: 16,
                ..OptimConfig::default()
            },
            eval: EvalConfig::default(),
            checkpoint: CheckpointConfig::default(),
            branch: None,
            init_from: None,
        }
    }

    #[test]
    fn cosine_warms_up_linearly_then_reaches_the_floor() {
        // Oracle: the closed forms lr·(s+1)/W in warm-up, and
        // min + (lr − min)·(1 + cos(π·p))/2 after, p = (s − W)/(S − W − 1).
        let r = resolved(Schedule::Cosine, 110, 10);
        assert!((r.lr_at(0) - 0.1).abs() < 1e-12);
        assert!((r.lr_at(9) - 1.0).abs() < 1e-12);
        assert!((r.lr_at(10) - 1.0).abs() < 1e-12);
        let p = 50.0 / 99.0;
        assert!(
            (r.lr_at(60) - (0.1 + 0.45 * (1.0 + (std::f64::consts::PI * p).cos()))).abs() < 1e-12
        );
        assert!((r.lr_at(109) - 0.1).abs() < 1e-12);
        assert!(r.lr_at(108) > 0.1 && r.lr_at(108) < 0.1003);
    }

    #[test]
    fn wsd_is_flat_then_decays_linearly_to_the_floor() {
        let r = resolved(Schedule::Wsd, 100, 10);
        assert!((r.lr_at(50) - 1.0).abs() < 1e-12);
        assert!((r.lr_at(74) - 1.0).abs() < 1e-12);
        // 25 decay steps from step 75: step 75 is 1/25 of the way, step 99 reaches the floor.
        assert!((r.lr_at(75) - (1.0 - 0.9 / 25.0)).abs() < 1e-12);
        assert!((r.lr_at(99) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn one_minus_sqrt_cooldown_is_the_papers_formula() {
        // Oracle: Hägele et al. 2024 (arXiv 2405.18392) §3, the (1 − sqrt) cooldown to a
        // zero floor, lr(n) = peak · (1 − √((n − N₀)/N_cool)), n the 1-based update count:
        // 100 steps, 25 of cooldown from N₀ = 75, peak 1.
        let mut r = resolved(Schedule::Wsd, 100, 10);
        r.optim.decay_shape = DecayShape::OneMinusSqrt;
        r.optim.min_lr_ratio = 0.0;
        assert_eq!(r.decay_start(), 75);
        assert_eq!(r.lr_at(74), 1.0);
        for step in 75..100u64 {
            let n = (step + 1) as f64;
            let want = 1.0 * (1.0 - ((n - 75.0) / 25.0).sqrt());
            assert!((r.lr_at(step) - want).abs() < 1e-12, "step {step}");
        }
        assert_eq!(r.lr_at(99), 0.0);
        // With a floor the shape is kept between peak and floor: 1 − 0.9·√(12/25).
        r.optim.min_lr_ratio = 0.1;
        assert!((r.lr_at(86) - (1.0 - 0.9 * 0.48f64.sqrt())).abs() < 1e-12);
        // The linear shape, same oracle with g(p) = p: peak · (1 − (n − N₀)/N_cool).
        r.optim.decay_shape = DecayShape::Linear;
        r.optim.min_lr_ratio = 0.0;
        assert!((r.lr_at(86) - (1.0 - 12.0 / 25.0)).abs() < 1e-12);
    }

    #[test]
    fn wsd_before_its_cooldown_is_the_constant_schedule_to_the_bit() {
        // Oracle: the constant schedule — a ladder's trunk — with the same warm-up. A branch
        // replays the trunk's steps, so their learning rates must agree exactly.
        let mut wsd = resolved(Schedule::Wsd, 160, 7);
        wsd.optim.decay_fraction = 0.2;
        let trunk = resolved(Schedule::Constant, 128, 7);
        assert_eq!(wsd.decay_start(), 128);
        for step in 0..128 {
            assert_eq!(wsd.lr_at(step).to_bits(), trunk.lr_at(step).to_bits());
        }
        assert!(wsd.lr_at(128) < 1.0);
    }

    #[test]
    fn shapes_parse_by_their_names_and_linear_is_not_written() {
        let o: OptimConfig = toml::from_str("decay_shape = \"1-sqrt\"").unwrap();
        assert_eq!(o.decay_shape, DecayShape::OneMinusSqrt);
        let o: OptimConfig = toml::from_str("decay_shape = \"linear\"").unwrap();
        assert!(!toml::to_string(&o).unwrap().contains("decay_shape"));
        assert!(toml::from_str::<OptimConfig>("decay_shape = \"cubic\"").is_err());
    }
}
