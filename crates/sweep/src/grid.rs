//! One size of the grid: its model, the run rule's batch, learning rate and evaluation
//! budget, and each (budget, mixture, seed) as a complete run config with a stable id
//! ([`PlannedRun`]); budget ladders (`ladder.rs`) build on it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use synthscale_data::config::SourceKind;
use synthscale_data::DataMeta;
use synthscale_model::ModelConfig;
use synthscale_train::config::{CheckpointConfig, DataSpec, EvalConfig, ModelSpec, OptimConfig};
use synthscale_train::memory::{memory_model, Graph};
use synthscale_train::{ResolvedConfig, RunConfig};

use crate::config::{MicroBatch, SizeSpec, SweepConfig};
use crate::error::{Result, SweepError};

/// One run of the sweep, resolved.
#[derive(Debug, Clone)]
pub struct PlannedRun {
    /// `<size>_<budget>_<mixture>_s<seed>-<hash8>`: readable, and changed by any change of
    /// the run's config.
    pub id: String,
    pub size: String,
    pub budget: String,
    pub mixture: String,
    pub shares: BTreeMap<SourceKind, f64>,
    pub seed: u64,
    /// The run config the sweep writes (data dir absolute).
    pub run: RunConfig,
    /// The same, resolved against the data as the trainer will resolve it.
    pub resolved: ResolvedConfig,
    pub params: u64,
    pub non_embedding_params: u64,
    /// Training tokens, whole steps.
    pub tokens: u64,
    /// Training FLOPs (FLOPs per token × tokens, attention included).
    pub flops: f64,
    /// Estimated peak memory of the run in bytes.
    pub memory_bytes: f64,
    /// Its part in a budget ladder, if the run rule asks for ladders.
    pub ladder: Option<LadderRole>,
    /// Data-parallel processes it trains on (its size's `ranks`).
    pub ranks: u32,
}

/// A run's part in a budget ladder (`run_rule.ladder = true`).
#[derive(Debug, Clone, PartialEq)]
pub enum LadderRole {
    /// The constant-LR run to the largest budget's cooldown start; `branches` start from
    /// its checkpoints. Not a result: `collect` leaves it out.
    Trunk { branches: Vec<String> },
    /// One budget's cooldown, from the trunk's checkpoint at `step`.
    Branch { trunk: String, step: u64 },
}

impl PlannedRun {
    pub fn steps(&self) -> u64 {
        self.resolved.steps()
    }

    /// FLOPs this run trains itself: a branch only its cooldown (the trunk trained the
    /// steps before it).
    pub fn cost_flops(&self) -> f64 {
        match &self.ladder {
            Some(LadderRole::Branch { step, .. }) => {
                self.flops * (self.steps() - step) as f64 / self.steps() as f64
            }
            _ => self.flops,
        }
    }

    pub fn is_trunk(&self) -> bool {
        matches!(self.ladder, Some(LadderRole::Trunk { .. }))
    }

    /// The trunk a branch waits for.
    pub fn trunk(&self) -> Option<&str> {
        match &self.ladder {
            Some(LadderRole::Branch { trunk, .. }) => Some(trunk),
            _ => None,
        }
    }
}

/// The run rule's batch: B = c·C^e tokens as a power of two sequences, at least one
/// micro-batch and at most D / min_steps. An automatic micro-batch is the largest divisor
/// of the batch's sequences for which `fits(micro, accumulation)` holds (1 when none does,
/// which the memory check then refuses with its message).
fn rule_batch(
    sweep: &SweepConfig,
    c: f64,
    seq_len: u64,
    tokens: u64,
    fits: impl Fn(usize, usize) -> bool,
) -> (u64, usize) {
    let r = &sweep.run_rule;
    let seqs = match r.batch_tokens {
        Some(b) => (b / seq_len).max(1),
        None => {
            let raw = r.batch_coefficient * c.powf(r.batch_exponent) / seq_len as f64;
            let p = raw.max(1.0).log2().round() as u32;
            1u64 << p.min(40)
        }
    };
    let mut seqs = seqs;
    if r.batch_tokens.is_none() {
        while seqs > 1 && seqs * seq_len * r.min_steps > tokens {
            seqs /= 2;
        }
    }
    let fixed = match r.micro_batch_size {
        MicroBatch::Fixed(n) => n,
        MicroBatch::Auto => {
            let micro = (1..=seqs as usize)
                .rev()
                .filter(|m| seqs % *m as u64 == 0)
                .find(|&m| fits(m, seqs as usize / m))
                .unwrap_or(1);
            return (seqs * seq_len, micro);
        }
    };
    let micro = if r.batch_tokens.is_none() {
        (fixed as u64).min(seqs) as usize
    } else {
        fixed
    };
    // A power-of-two count of sequences is a multiple of a power-of-two micro-batch; any
    // other micro-batch is brought down to a divisor.
    let mut micro = micro.max(1);
    while seqs % micro as u64 != 0 {
        micro -= 1;
    }
    (seqs * seq_len, micro)
}

pub(crate) fn size_model(
    size: &SizeSpec,
    meta: &DataMeta,
    file: &Path,
    i: usize,
) -> Result<ModelConfig> {
    // The trainer's shape resolution (`RunConfig::resolve` checks that both agree).
    let vocab = meta.tokenizer.vocab_size as usize;
    let size_error = |e: synthscale_model::ModelError| {
        SweepError::field(file, format!("sweep.sizes[{i}]"), e.to_string())
    };
    let mut c = if let Some(p) = &size.preset {
        ModelConfig::preset(p, vocab).map_err(size_error)?
    } else if let Some(n) = size.params {
        ModelConfig::for_params(n, vocab).map_err(size_error)?
    } else {
        ModelConfig::from_shape(
            size.d_model.unwrap_or(0),
            size.n_layers.unwrap_or(0),
            size.n_heads.unwrap_or(0),
            vocab,
        )
    };
    if let Some(v) = size.n_kv_heads {
        c.n_kv_heads = v;
    }
    if let Some(v) = size.d_ff {
        c.d_ff = v;
    }
    c.max_seq_len = meta.seq_len;
    c.validate().map_err(size_error)?;
    Ok(c)
}

/// The size as the trainer's model spec.
fn model_spec(size: &SizeSpec) -> ModelSpec {
    ModelSpec {
        preset: size.preset.clone(),
        params: size.params,
        d_model: size.d_model,
        n_layers: size.n_layers,
        n_heads: size.n_heads,
        n_kv_heads: size.n_kv_heads,
        d_ff: size.d_ff,
        ..ModelSpec::default()
    }
}

/// What every run of one size shares.
pub(crate) struct Grid<'a> {
    pub manifest: &'a Path,
    /// The manifest's folder, absolute.
    pub manifest_dir: &'a Path,
    pub data_dir: &'a Path,
    /// `<out_dir>/runs`: where a branch finds its trunk.
    pub runs_dir: &'a Path,
    pub meta: &'a DataMeta,
    pub config: &'a SweepConfig,
    pub size: &'a SizeSpec,
    pub model: &'a ModelConfig,
    /// The size's `init_from`, absolute.
    pub init_from: Option<&'a Path>,
    /// Bytes the device offers a run (`bounds::device_memory`).
    pub memory: f64,
}

impl Grid<'_> {
    /// The budget's training tokens before rounding to whole steps.
    pub fn raw_tokens(&self, budget: &crate::config::BudgetSpec) -> u64 {
        match (budget.tokens, budget.tokens_per_param) {
            (Some(t), _) => t,
            (None, Some(r)) => (r * self.model.non_embedding_params() as f64).round() as u64,
            _ => unreachable!("validated"),
        }
    }

    /// C = M·D with M the non-embedding training FLOPs per token (DeepSeek LLM's M): our
    /// count less the output head.
    pub fn compute(&self, tokens: u64) -> f64 {
        let fpt = self.model.flops_per_token(self.meta.seq_len);
        let m_nonemb = fpt - 6 * (self.model.vocab_size as u64) * (self.model.d_model as u64);
        m_nonemb as f64 * tokens as f64
    }

    /// The run rule's batch (tokens) and micro-batch for compute `c` and `tokens`.
    pub fn batch(&self, c: f64, tokens: u64) -> (u64, usize) {
        let seq_len = self.meta.seq_len;
        let device = self.config.device;
        let graph = Graph::for_run(self.model, device);
        let budget = MicroBatch::AUTO_SHARE * self.memory;
        let fits = |micro, accum| {
            memory_model(self.model, seq_len, micro, accum, graph, device).total <= budget
        };
        rule_batch(self.config, c, seq_len as u64, tokens, fits)
    }

    /// The run rule's peak learning rate at compute `c`.
    pub fn lr(&self, c: f64) -> f64 {
        let rule = &self.config.run_rule;
        rule.lr
            .unwrap_or_else(|| rule.lr_coefficient * c.powf(rule.lr_exponent))
    }

    /// Whole sequences per domain, at least one.
    pub fn eval_tokens(&self) -> u64 {
        let seq_len = self.meta.seq_len as u64;
        (self.config.run_rule.eval_max_tokens / seq_len).max(1) * seq_len
    }

    /// A run config with the rule's fixed settings; the caller sets the rest.
    pub fn run_config(&self, seed: u64, shares: &BTreeMap<SourceKind, f64>) -> RunConfig {
        let rule = &self.config.run_rule;
        RunConfig {
            seed,
            device: self.config.device,
            device_memory_gib: self.config.device_memory_gib,
            shard_optimizer: None,
            tensorboard: self.config.tensorboard.then_some(true),
            model: model_spec(self.size),
            data: DataSpec {
                dir: self.data_dir.to_path_buf(),
                weights: BTreeMap::new(),
                shares: shares.clone(),
                token_budget: 0,
                seq_len: 0,
            },
            optim: OptimConfig {
                min_lr_ratio: rule.min_lr_ratio,
                schedule: rule.schedule,
                decay_fraction: rule.decay_fraction,
                decay_shape: rule.decay_shape,
                weight_decay: rule.weight_decay,
                grad_clip: rule.grad_clip,
                ..OptimConfig::default()
            },
            eval: EvalConfig {
                max_tokens: self.eval_tokens(),
                ..EvalConfig::default()
            },
            checkpoint: CheckpointConfig::default(),
            branch: None,
            init_from: self.init_from.map(Path::to_path_buf),
        }
    }

    /// Resolves `run` against the data and names it `<size>_<budget>_<mix>_s<seed>-<hash>`.
    /// `trunk_id` stands for a branch's trunk path in the hash.
    pub fn finish(
        &self,
        run: RunConfig,
        budget: String,
        mix: &str,
        shares: &BTreeMap<SourceKind, f64>,
        ladder: Option<LadderRole>,
    ) -> Result<PlannedRun> {
        let resolved = run.resolve(self.meta, &self.meta.tokenizer.hash, self.manifest)?;
        // The id hashes the run config without the data directory's absolute path, so that
        // the same manifest gives the same ids on every machine and checkout, and without the
        // device's memory; a branch's trunk stands in by its id, and init_from by its path
        // relative to the manifest's folder where it lies below it.
        let mut hashed = run.clone();
        hashed.data.dir = PathBuf::new();
        hashed.device_memory_gib = None;
        hashed.tensorboard = None;
        if let Some(p) = &mut hashed.init_from {
            if let Ok(rel) = p.strip_prefix(self.manifest_dir) {
                *p = rel.to_path_buf();
            }
        }
        if let (Some(b), Some(LadderRole::Branch { trunk, .. })) = (&mut hashed.branch, &ladder) {
            b.trunk = PathBuf::from(trunk);
        }
        let text = toml::to_string(&hashed).expect("a run config serializes");
        let digest = Sha256::digest(text.as_bytes());
        let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        let sz = self.size.label();
        let seed = run.seed;
        let id = format!("{sz}_{budget}_{mix}_s{seed}-{hash}");
        let ranks = self.size.ranks.unwrap_or(1);
        // Per rank: ZeRO-1 divides the optimizer state among a data-parallel run's ranks.
        let memory_bytes = memory_model(
            &resolved.model,
            self.meta.seq_len,
            resolved.optim.micro_batch_size,
            resolved.accumulation(),
            Graph::for_run(&resolved.model, self.config.device),
            self.config.device,
        )
        .sharded(ranks as usize)
        .total;
        let tokens = resolved.steps() * resolved.optim.batch_tokens;
        let fpt = self.model.flops_per_token(self.meta.seq_len);
        let accum = resolved.accumulation();
        if accum % ranks as usize != 0 {
            return Err(SweepError::Field {
                file: self.manifest.to_path_buf(),
                field: format!("size {}: ranks", self.size.label()),
                message: format!(
                    "run {id}: a step's {accum} micro-batches (batch {} tokens, micro-batch \
                     {} × {} tokens) do not split evenly over {ranks} ranks; choose ranks \
                     that divide {accum}, or set run_rule.micro_batch_size",
                    resolved.optim.batch_tokens, resolved.optim.micro_batch_size, self.meta.seq_len
                ),
            });
        }
        Ok(PlannedRun {
            id,
            size: sz,
            budget,
            mixture: mix.to_string(),
            shares: shares.clone(),
            seed,
            params: resolved.model.params(),
            non_embedding_params: self.model.non_embedding_params(),
            tokens,
            flops: fpt as f64 * tokens as f64,
            memory_bytes,
            ladder,
            ranks,
            run,
            resolved,
        })
    }
}

pub(crate) fn expand_one(
    g: &Grid,
    budget: &crate::config::BudgetSpec,
    mix: &str,
    shares: &BTreeMap<SourceKind, f64>,
    seed: u64,
) -> Result<PlannedRun> {
    let rule = &g.config.run_rule;
    let raw_tokens = g.raw_tokens(budget);
    let c = g.compute(raw_tokens);
    let (batch_tokens, micro) = g.batch(c, raw_tokens);
    let steps = raw_tokens / batch_tokens;
    let every = |k: u64| (steps / k).max(1);
    let mut run = g.run_config(seed, shares);
    run.data.token_budget = steps * batch_tokens;
    run.optim.lr = g.lr(c);
    run.optim.warmup_steps = ((rule.warmup_fraction * steps as f64).round() as u64).max(1);
    run.optim.batch_tokens = batch_tokens;
    run.optim.micro_batch_size = micro;
    run.eval.interval = every(rule.evals_per_run);
    run.checkpoint.interval = every(rule.checkpoints_per_run);
    g.finish(run, budget.label(), mix, shares, None)
}
