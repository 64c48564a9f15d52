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
use synthscale_train::{ResolvedConfig, RunConfig};

use crate::config::{SizeSpec, SlurmConfig, SweepConfig};
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
}

impl PlannedRun {
    pub fn steps(&self) -> u64 {
        self.resolved.steps()
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
}

/// 8192 → `8192`, 8000 → `8k`, 1_500_000 → `1.5M`: exact short forms for names.
pub fn short_count(n: u64) -> String {
    for (unit, s) in [
        (1_000_000_000_000u64, "T"),
        (1_000_000_000, "B"),
        (1_000_000, "M"),
        (1_000, "k"),
    ] {
        if n >= unit && (n * 100) % unit == 0 {
            let v = n as f64 / unit as f64;
            return format!("{}{s}", fmt_trim(v));
        }
    }
    n.to_string()
}

fn fmt_trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The trainer's estimate (one source: `train` refuses what `plan` refuses).
pub use synthscale_train::bounds::memory_estimate;

/// The run rule's batch: B = c·C^e tokens as a power of two sequences, at least one
/// micro-batch and at most D / min_steps.
fn rule_batch(sweep: &SweepConfig, c: f64, seq_len: u64, tokens: u64) -> (u64, usize) {
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
    let micro = if r.batch_tokens.is_none() {
        (r.micro_batch_size as u64).min(seqs) as usize
    } else {
        r.micro_batch_size
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
        let memory =
            synthscale_train::bounds::device_memory(config.device, config.device_memory_gib);
        let mut runs = Vec::new();
        for (si, size) in config.sizes.iter().enumerate() {
            let model = size_model(size, &meta, manifest, si)?;
            for budget in &config.budgets {
                for (mix, shares) in &config.mixtures {
                    for &seed in &config.seeds {
                        let run = expand_one(
                            manifest, &data_dir, &meta, config, size, &model, budget, mix, shares,
                            seed,
                        )?;
                        if run.memory_bytes > memory {
                            return Err(SweepError::Field {
                                file: manifest.to_path_buf(),
                                field: format!("sweep.sizes[{si}]"),
                                message: format!(
                                    "size {} needs about {:.1} GiB (weights, AdamW state, \
                                     activations of a micro-batch of {}) but the device has \
                                     {:.1} GiB (sweep.device_memory_gib); lower \
                                     run_rule.micro_batch_size or the size",
                                    run.size,
                                    run.memory_bytes / (1u64 << 30) as f64,
                                    run.resolved.optim.micro_batch_size,
                                    memory / (1u64 << 30) as f64
                                ),
                            });
                        }
                        runs.push(run);
                    }
                }
            }
        }
        Ok(Sweep {
            name,
            manifest: manifest.to_path_buf(),
            out_dir,
            data_dir,
            config: config.clone(),
            slurm,
            runs,
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

#[allow(clippy::too_many_arguments)]
fn expand_one(
    manifest: &Path,
    data_dir: &Path,
    meta: &DataMeta,
    config: &SweepConfig,
    size: &SizeSpec,
    model: &ModelConfig,
    budget: &crate::config::BudgetSpec,
    mix: &str,
    shares: &BTreeMap<SourceKind, f64>,
    seed: u64,
) -> Result<PlannedRun> {
    let rule = &config.run_rule;
    let seq_len = meta.seq_len as u64;
    let n = model.non_embedding_params();
    let raw_tokens = match (budget.tokens, budget.tokens_per_param) {
        (Some(t), _) => t,
        (None, Some(r)) => (r * n as f64).round() as u64,
        _ => unreachable!("validated"),
    };
    // M: non-embedding training FLOPs per token (DeepSeek LLM's M), our count less the head.
    let fpt = model.flops_per_token(meta.seq_len);
    let m_nonemb = fpt - 6 * (model.vocab_size as u64) * (model.d_model as u64);
    let c = m_nonemb as f64 * raw_tokens as f64;
    let (batch_tokens, micro) = rule_batch(config, c, seq_len, raw_tokens);
    let lr = rule
        .lr
        .unwrap_or_else(|| rule.lr_coefficient * c.powf(rule.lr_exponent));
    let steps = raw_tokens / batch_tokens;
    let tokens = steps * batch_tokens;
    let warmup = ((rule.warmup_fraction * steps as f64).round() as u64).max(1);
    let every = |k: u64| (steps / k).max(1);
    // Whole sequences per domain, at least one.
    let eval_tokens = (rule.eval_max_tokens / seq_len).max(1) * seq_len;
    let run = RunConfig {
        seed,
        device: config.device,
        device_memory_gib: config.device_memory_gib,
        model: model_spec(size),
        data: DataSpec {
            dir: data_dir.to_path_buf(),
            weights: BTreeMap::new(),
            shares: shares.clone(),
            token_budget: tokens,
            seq_len: 0,
        },
        optim: OptimConfig {
            lr,
            min_lr_ratio: rule.min_lr_ratio,
            schedule: rule.schedule,
            warmup_steps: warmup,
            weight_decay: rule.weight_decay,
            grad_clip: rule.grad_clip,
            batch_tokens,
            micro_batch_size: micro,
            ..OptimConfig::default()
        },
        eval: EvalConfig {
            interval: every(rule.evals_per_run),
            max_tokens: eval_tokens,
            ..EvalConfig::default()
        },
        checkpoint: CheckpointConfig {
            interval: every(rule.checkpoints_per_run),
        },
    };
    let resolved = run.resolve(meta, &meta.tokenizer.hash, manifest)?;
    // The id hashes the run config without the data directory's absolute path, so that the
    // same manifest gives the same ids on every machine and checkout, and without the
    // device's memory.
    let mut hashed = run.clone();
    hashed.data.dir = PathBuf::new();
    hashed.device_memory_gib = None;
    let text = toml::to_string(&hashed).expect("a run config serializes");
    let digest = Sha256::digest(text.as_bytes());
    let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let (sz, bg) = (size.label(), budget.label());
    let id = format!("{sz}_{bg}_{mix}_s{seed}-{hash}");
    let memory_bytes = memory_estimate(&resolved.model, meta.seq_len, micro, config.device);
    Ok(PlannedRun {
        id,
        size: sz,
        budget: bg,
        mixture: mix.to_string(),
        shares: shares.clone(),
        seed,
        params: resolved.model.params(),
        non_embedding_params: n,
        tokens,
        flops: fpt as f64 * tokens as f64,
        memory_bytes,
        run,
        resolved,
    })
}
