//! Grid expansion: sizes × budgets × mixtures × seeds → runs with stable ids, each a
//! complete run config resolved and checked against the data before anything launches.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use synthscale_data::config::SourceKind;
use synthscale_data::datadir::read_meta;
use synthscale_data::DataMeta;
use synthscale_model::ModelConfig;
use synthscale_train::config::{CheckpointConfig, DataSpec, EvalConfig, ModelSpec, OptimConfig};
use synthscale_train::init::InitSource;
use synthscale_train::{ResolvedConfig, RunConfig};

use crate::config::{MicroBatch, SizeSpec, SlurmConfig, SweepConfig};
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

/// A sweep: where it lives and its runs.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// The manifest's stem.
    pub name: String,
    pub manifest: PathBuf,
    pub out_dir: PathBuf,
    pub data_dir: PathBuf,
    pub config: SweepConfig,
    pub slurm: SlurmConfig,
    pub runs: Vec<PlannedRun>,
    /// Per size with `init_from` (its label), the checked source its runs start from.
    pub init_sources: Vec<(String, InitSource)>,
}

/// The trainer's memory model (one source: `train` refuses what `plan` refuses).
pub use synthscale_train::memory::{memory_estimate, memory_model, Graph};

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

impl Sweep {
    /// Expands the manifest's grid into runs, resolving each run config against the data
    /// directory (which `synthscale data prepare` must have written).
    ///
    /// `manifest` names the file in messages and gives the sweep its name; `out_dir`
    /// overrides `sweep.out_dir` and the default `results/<stem>`.
    pub fn plan(
        manifest: &Path,
        data_dir: &Path,
        config: &SweepConfig,
        slurm: Option<&SlurmConfig>,
        out_dir: Option<&Path>,
    ) -> Result<Sweep> {
        let data_dir = absolute(data_dir)?;
        if !data_dir.join(synthscale_data::datadir::META_FILE).exists() {
            return Err(SweepError::Data {
                path: data_dir.clone(),
                message: format!(
                    "no prepared data here; run `synthscale data prepare {}` first",
                    manifest.display()
                ),
            });
        }
        let meta = read_meta(&data_dir)?;
        Self::plan_with_meta(manifest, &data_dir, &meta, config, slurm, out_dir)
    }

    /// [`Sweep::plan`] against a given description of the data: the prepared data's, or
    /// [`DataMeta::provisional`]'s before `data prepare` (run ids, shapes, budgets, batches
    /// and memory come out the same; checks that count the data's tokens pass).
    pub fn plan_with_meta(
        manifest: &Path,
        data_dir: &Path,
        meta: &DataMeta,
        config: &SweepConfig,
        slurm: Option<&SlurmConfig>,
        out_dir: Option<&Path>,
    ) -> Result<Sweep> {
        config.validate(manifest)?;
        let slurm = slurm.cloned().unwrap_or_default();
        slurm.validate(manifest)?;
        let name = manifest
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "sweep".into());
        let out_dir = out_dir
            .map(Path::to_path_buf)
            .or_else(|| config.out_dir.clone())
            .unwrap_or_else(|| PathBuf::from("results").join(&name));
        let out_dir = absolute(&out_dir)?;
        let data_dir = absolute(data_dir)?;
        let memory =
            synthscale_train::bounds::device_memory(config.device, config.device_memory_gib);
        let runs_dir = out_dir.join("runs");
        // Where relative init_from paths were resolved from: what a run id hashes, so that
        // ids do not depend on the checkout's location.
        let manifest_dir = match manifest.parent() {
            Some(p) if !p.as_os_str().is_empty() => absolute(p)?,
            _ => absolute(Path::new("."))?,
        };
        let mut planned = Vec::new();
        let mut init_sources = Vec::new();
        for (si, size) in config.sizes.iter().enumerate() {
            let model = size_model(size, meta, manifest, si)?;
            let init_from = match &size.init_from {
                Some(p) => {
                    let p = absolute(p)?;
                    // Shape and tokenizer now, not when the first run starts.
                    if meta.tokenizer.hash.is_empty() {
                        return Err(SweepError::Field {
                            file: manifest.to_path_buf(),
                            field: format!("sweep.sizes[{si}].init_from"),
                            message: "the manifest's BPE tokenizer is trained by `data prepare`; \
                                      run it before planning a size that starts from a base \
                                      model (its tokenizer must match)"
                                .into(),
                        });
                    }
                    let src =
                        synthscale_train::init::check(&p, &model, &meta.tokenizer.hash, manifest)
                            .map_err(|e| SweepError::Field {
                            file: manifest.to_path_buf(),
                            field: format!("sweep.sizes[{si}].init_from"),
                            message: e.to_string(),
                        })?;
                    init_sources.push((size.label(), src));
                    Some(p)
                }
                None => None,
            };
            let g = Grid {
                manifest,
                manifest_dir: &manifest_dir,
                data_dir: &data_dir,
                runs_dir: &runs_dir,
                meta,
                config,
                size,
                model: &model,
                init_from: init_from.as_deref(),
                memory,
            };
            if config.run_rule.ladder {
                for (mix, shares) in &config.mixtures {
                    for &seed in size.seeds(&config.seeds) {
                        let ladder = crate::ladder::expand(&g, mix, shares, seed)?;
                        planned.extend(ladder.into_iter().map(|r| (si, r)));
                    }
                }
                continue;
            }
            for budget in &config.budgets {
                for (mix, shares) in &config.mixtures {
                    for &seed in size.seeds(&config.seeds) {
                        planned.push((si, expand_one(&g, budget, mix, shares, seed)?));
                    }
                }
            }
        }
        let mut runs = Vec::new();
        for (si, run) in planned {
            let per_node = slurm.ranks_per_node;
            if per_node > 0 && run.ranks > per_node && run.ranks % per_node != 0 {
                return Err(SweepError::Field {
                    file: manifest.to_path_buf(),
                    field: format!("sweep.sizes[{si}].ranks"),
                    message: format!(
                        "{} ranks do not fill whole nodes of slurm.ranks_per_node = \
                         {per_node}; use a multiple of {per_node}, or at most {per_node}",
                        run.ranks
                    ),
                });
            }
            if run.memory_bytes > memory {
                return Err(SweepError::Field {
                    file: manifest.to_path_buf(),
                    field: format!("sweep.sizes[{si}]"),
                    message: format!(
                        "size {} needs about {:.1} GiB (weights, AdamW state, \
                         activations of a micro-batch of {}) but the device has \
                         {:.1} GiB (sweep.device_memory_gib); lower \
                         run_rule.micro_batch_size (or set it to \"auto\") or the size",
                        run.size,
                        run.memory_bytes / (1u64 << 30) as f64,
                        run.resolved.optim.micro_batch_size,
                        memory / (1u64 << 30) as f64
                    ),
                });
            }
            runs.push(run);
        }
        Ok(Sweep {
            name,
            manifest: manifest.to_path_buf(),
            out_dir,
            data_dir,
            config: config.clone(),
            slurm,
            runs,
            init_sources,
        })
    }

    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.out_dir.join("runs").join(id)
    }

    pub fn config_path(&self, id: &str) -> PathBuf {
        self.out_dir.join("configs").join(format!("{id}.toml"))
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.out_dir.join("logs").join(format!("{id}.log"))
    }

    pub fn results_path(&self) -> PathBuf {
        self.out_dir.join("results.csv")
    }

    pub fn run(&self, id: &str) -> Option<&PlannedRun> {
        self.runs.iter().find(|r| r.id == id)
    }

    /// Writes every run's config to `configs/<id>.toml` (unchanged files are left alone).
    pub fn write_configs(&self) -> Result<()> {
        let dir = self.out_dir.join("configs");
        std::fs::create_dir_all(&dir).map_err(SweepError::io(&dir))?;
        for r in &self.runs {
            let path = self.config_path(&r.id);
            let text = toml::to_string(&r.run).map_err(|e| SweepError::State {
                path: path.clone(),
                message: e.to_string(),
            })?;
            if std::fs::read_to_string(&path).is_ok_and(|t| t == text) {
                continue;
            }
            let tmp = path.with_extension(format!("toml.tmp{}", std::process::id()));
            std::fs::write(&tmp, &text).map_err(SweepError::io(&tmp))?;
            std::fs::rename(&tmp, &path).map_err(SweepError::io(&path))?;
        }
        Ok(())
    }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(SweepError::io(p))
}

fn size_model(size: &SizeSpec, meta: &DataMeta, file: &Path, i: usize) -> Result<ModelConfig> {
    // The trainer's shape resolution (`RunConfig::resolve` checks that both agree).
    let vocab = meta.tokenizer.vocab_size as usize;
    let f = |m: String| SweepError::Field {
        file: file.to_path_buf(),
        field: format!("sweep.sizes[{i}]"),
        message: m,
    };
    let mut c = if let Some(p) = &size.preset {
        ModelConfig::preset(p, vocab).map_err(|e| f(e.to_string()))?
    } else if let Some(n) = size.params {
        ModelConfig::for_params(n, vocab).map_err(|e| f(e.to_string()))?
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
    c.validate().map_err(|e| f(e.to_string()))?;
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

fn expand_one(
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
