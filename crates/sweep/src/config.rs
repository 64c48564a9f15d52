//! The manifest's `[sweep]` and `[slurm]` sections: the grid (sizes × budgets × mixtures ×
//! seeds), the run rule that turns a size and a budget into optimizer settings, and the
//! Slurm resources. Static checks only; `plan` checks the rest against the data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use synthscale_data::config::{is_safe_name, SourceKind};
use synthscale_train::config::{DecayShape, DeviceSpec, Schedule};

use crate::error::{Result, SweepError};

/// One model size of the grid: a preset, a non-embedding parameter target for the size
/// rule (`ModelConfig::for_params`), or an explicit shape.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SizeSpec {
    /// The size's name in run ids; defaults to the preset, the target (`500k`) or `d64l2`.
    pub name: Option<String>,
    /// A preset name (`synthscale_model::config::PRESETS`).
    pub preset: Option<String>,
    /// Non-embedding parameters for the size rule.
    pub params: Option<u64>,
    /// An explicit shape: the residual width,
    pub d_model: Option<usize>,
    /// the number of blocks,
    pub n_layers: Option<usize>,
    /// and of attention heads;
    pub n_heads: Option<usize>,
    /// key/value heads (grouped-query attention; default: `n_heads`), for any form;
    pub n_kv_heads: Option<usize>,
    /// the MLP's hidden width (default: the model crate's SwiGLU rule), for any form.
    pub d_ff: Option<usize>,
    /// Seeds of this size's runs, in place of `sweep.seeds` (e.g. two seeds at one size to
    /// measure the seed-to-seed noise without doubling the whole grid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seeds: Option<Vec<u64>>,
    /// Continued pre-training: every run of this size starts from these weights (a ladder:
    /// its trunk; the branches start from the trunk as always) — a synthscale run directory
    /// (its latest valid checkpoint) or a `synthscale export` directory, with this size's
    /// model shape and the data's tokenizer; relative to the manifest. One base per size,
    /// as SynthLLM-style continued pre-training starts each size from its own base model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_from: Option<PathBuf>,
    /// Data-parallel processes per run of this size (one GPU each on CUDA): 1 by default.
    /// A run of several ranks needs a binary built with `--features mpi`; the local
    /// executor starts it with `train --nproc`, the Slurm executor as a job step of that
    /// many tasks (`srun --mpi=pmix`). A step's micro-batches must split evenly over them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ranks: Option<u32>,
}

/// One token budget of the grid: absolute, or a multiple of the size's non-embedding
/// parameters (Kaplan's N, the count the size rule targets).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetSpec {
    /// Training tokens.
    pub tokens: Option<u64>,
    /// Training tokens per non-embedding parameter (Chinchilla's optimum is about 20 per
    /// total parameter).
    pub tokens_per_param: Option<f64>,
}

/// How a size and a budget become optimizer settings.
///
/// Defaults follow the hyper-parameter scaling law of DeepSeek LLM (DeepSeek-AI 2024,
/// §3.1, fitted on models up to 3e20 FLOPs): `lr = 0.3118 · C^−0.1250` and
/// `B = 0.2920 · C^0.3271` tokens, with C = M·D and M the non-embedding training FLOPs per
/// token (here: our FLOP count without the output head).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunRule {
    /// A fixed peak learning rate for every run; when absent, the power law below.
    pub lr: Option<f64>,
    /// The law's coefficient (0.3118).
    pub lr_coefficient: f64,
    /// The law's exponent on C (−0.1250).
    pub lr_exponent: f64,
    /// A fixed batch in tokens per step; when absent, the power law below, rounded to a
    /// power of two sequences.
    pub batch_tokens: Option<u64>,
    /// The batch law's coefficient, in tokens (0.2920).
    pub batch_coefficient: f64,
    /// The batch law's exponent on C (0.3271).
    pub batch_exponent: f64,
    /// The batch shrinks (by powers of two) until a run has at least this many steps, so
    /// that the schedule has a shape even at the smallest budgets.
    pub min_steps: u64,
    /// Sequences per forward/backward pass (bounded by memory, not by the rule): a
    /// number, or `"auto"`, the largest the memory model fits in 90% of the device's memory.
    pub micro_batch_size: MicroBatch,
    /// The learning-rate schedule of every run (`"cosine"`, or `"wsd"`: warm-up, stable,
    /// decay).
    pub schedule: Schedule,
    /// Budget ladders (Hägele et al. 2024): per size, mixture and seed, one constant-LR
    /// trunk to the largest budget's cooldown start and one WSD cooldown branch per budget
    /// from the trunk's checkpoint there. Implies `schedule = "wsd"`; every budget of a
    /// ladder takes the batch, peak lr and warm-up the rule gives its largest budget.
    pub ladder: bool,
    /// WSD and ladders: the fraction of each run's steps spent cooling down, in (0, 1).
    pub decay_fraction: f64,
    /// WSD and ladders: the cooldown's shape, `"linear"` or `"1-sqrt"`.
    pub decay_shape: DecayShape,
    /// Floor of the decay as a fraction of lr (nanoGPT: lr/10, per Chinchilla).
    pub min_lr_ratio: f64,
    /// Warm-up as a fraction of the steps (at least one step).
    pub warmup_fraction: f64,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// The global gradient norm is clipped to this (0: no clipping).
    pub grad_clip: f64,
    /// Validation points per run, evenly spaced (the last at the end): the intermediate
    /// points let `collect` report a loss curve, the final one is the run's result.
    pub evals_per_run: u64,
    /// Tokens per validation domain at each evaluation.
    pub eval_max_tokens: u64,
    /// Checkpoints per run, evenly spaced: what a preempted run loses at most.
    pub checkpoints_per_run: u64,
}

/// A run rule's micro-batch: fixed, or chosen per run from the memory model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MicroBatch {
    Fixed(usize),
    /// The largest micro-batch (a divisor of the batch's sequences) whose step the memory
    /// model (`synthscale_train::memory`) fits in [`MicroBatch::AUTO_SHARE`] of the
    /// device's memory.
    Auto,
}

impl MicroBatch {
    /// The share of the device's memory an automatic micro-batch may fill: 10% headroom
    /// for the allocator's fragmentation and the runtime's own buffers.
    pub const AUTO_SHARE: f64 = 0.9;
}

impl Serialize for MicroBatch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            MicroBatch::Fixed(n) => s.serialize_u64(*n as u64),
            MicroBatch::Auto => s.serialize_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for MicroBatch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = MicroBatch;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number of sequences or \"auto\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<MicroBatch, E> {
                usize::try_from(v)
                    .map(MicroBatch::Fixed)
                    .map_err(|_| E::custom(format!("{v} is not a number of sequences")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<MicroBatch, E> {
                usize::try_from(v)
                    .map(MicroBatch::Fixed)
                    .map_err(|_| E::custom(format!("{v} is too large")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<MicroBatch, E> {
                match v {
                    "auto" => Ok(MicroBatch::Auto),
                    _ => Err(E::custom(format!(
                        "{v:?}: expected a number of sequences or \"auto\""
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Default for RunRule {
    fn default() -> Self {
        RunRule {
            lr: None,
            lr_coefficient: 0.3118,
            lr_exponent: -0.1250,
            batch_tokens: None,
            batch_coefficient: 0.2920,
            batch_exponent: 0.3271,
            min_steps: 20,
            micro_batch_size: MicroBatch::Fixed(16),
            schedule: Schedule::Cosine,
            ladder: false,
            decay_fraction: 0.2,
            decay_shape: DecayShape::Linear,
            min_lr_ratio: 0.1,
            warmup_fraction: 0.05,
            weight_decay: 0.1,
            grad_clip: 1.0,
            evals_per_run: 4,
            eval_max_tokens: 32_768,
            checkpoints_per_run: 10,
        }
    }
}

/// `[sweep]`: the grid and where its runs go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SweepConfig {
    /// Where runs, logs and the results table go; default `results/<manifest stem>`.
    pub out_dir: Option<PathBuf>,
    /// The model sizes of the grid.
    pub sizes: Vec<SizeSpec>,
    /// The token budgets of the grid (with ladders: each size's cooldown points).
    pub budgets: Vec<BudgetSpec>,
    /// Named mixtures: shares per kind (natural, rephrased, textbook) summing to 1.
    pub mixtures: BTreeMap<String, BTreeMap<SourceKind, f64>>,
    /// Seeds of every run (a size's own `seeds` replace them for that size).
    pub seeds: Vec<u64>,
    /// How a size and a budget become optimizer settings.
    pub run_rule: RunRule,
    /// Where every run computes.
    pub device: DeviceSpec,
    /// Memory of one device in GiB, against which each size's estimate is checked; default:
    /// the machine's memory on CPU, 80 (an H100) on CUDA.
    pub device_memory_gib: Option<f64>,
    /// Measured training throughput in FLOP/s (`synthscale bench train` prints it) for
    /// `plan`'s time estimates; without it, runs already finished in this sweep are used.
    pub flops_per_second: Option<f64>,
    /// On CUDA, at most this many one-rank runs share one GPU at once when the memory model
    /// says they fit it together (`gpu_pool::runs_per_gpu`); 1: a GPU per run.
    pub max_runs_per_gpu: u32,
    /// TensorBoard event files in every run's `tensorboard/` folder, so that `tensorboard
    /// --logdir <sweep folder>` shows every run (not part of the runs' identity).
    pub tensorboard: bool,
}

/// [`SweepConfig::max_runs_per_gpu`]'s default.
pub const DEFAULT_MAX_RUNS_PER_GPU: u32 = 4;

impl Default for SweepConfig {
    fn default() -> Self {
        SweepConfig {
            out_dir: None,
            sizes: Vec::new(),
            budgets: Vec::new(),
            mixtures: BTreeMap::new(),
            seeds: vec![0],
            run_rule: RunRule::default(),
            device: DeviceSpec::Cpu,
            device_memory_gib: None,
            flops_per_second: None,
            max_runs_per_gpu: DEFAULT_MAX_RUNS_PER_GPU,
            tensorboard: false,
        }
    }
}

/// `[slurm]`: the resources of each array task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmConfig {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// GPUs of each task (of each rank, for a data-parallel run): `--gpus-per-task`.
    pub gpus_per_task: u32,
    /// Ranks of a data-parallel run per node (its GPUs per node): a run of N ranks then asks
    /// for `--nodes=N/ranks_per_node` and `--ntasks-per-node=ranks_per_node`; 0: `--ntasks=N`
    /// and Slurm places them.
    pub ranks_per_node: u32,
    /// `--cpus-per-task`; the trainer's threads follow it.
    pub cpus_per_task: u32,
    /// Memory per task, in sbatch's syntax (`16G`, `4000M`).
    pub mem: Option<String>,
    /// Time limit per task, in sbatch's syntax (`HH:MM:SS`, `D-HH:MM:SS`); a run that
    /// reaches it checkpoints on USR1 120 s before and requeues itself.
    pub time: Option<String>,
    /// Array tasks running at once (`--array=0-N%K`); 0: no throttle.
    pub max_parallel: u32,
    /// Further `#SBATCH` directives, each one `--option` or `--option=value`.
    pub extra: Vec<String>,
}

impl Default for SlurmConfig {
    fn default() -> Self {
        SlurmConfig {
            partition: None,
            account: None,
            gpus_per_task: 0,
            ranks_per_node: 0,
            cpus_per_task: 2,
            mem: None,
            time: None,
            max_parallel: 0,
            extra: Vec::new(),
        }
    }
}

fn field(file: &Path, f: impl Into<String>, message: impl Into<String>) -> SweepError {
    SweepError::Field {
        file: file.to_path_buf(),
        field: f.into(),
        message: message.into(),
    }
}

/// Characters of a Slurm value that may stand in a `#SBATCH` line as they are.
fn slurm_value_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | ',' | '='))
}

/// Longest time limit accepted: a year, far beyond any cluster's partition limit.
const MAX_SLURM_DAYS: u64 = 365;

/// Seconds of a time limit in one of sbatch's forms — `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`,
/// `D-H:M:S` — with every field but the first bounded by the next unit (seconds and
/// minutes < 60, hours < 24 after a day count) and the whole at most a year. `Err` says
/// which part is wrong.
pub fn slurm_time_seconds(t: &str) -> std::result::Result<u64, String> {
    let num = |s: &str, what: &str| -> std::result::Result<u64, String> {
        if s.is_empty() || s.len() > 9 || !s.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!("has {what} {s:?}, not a number"));
        }
        Ok(s.parse().expect("digits"))
    };
    let below = |v: u64, bound: u64, what: &str| -> std::result::Result<u64, String> {
        if v >= bound {
            return Err(format!("has {what} {v}, above {}", bound - 1));
        }
        Ok(v)
    };
    let (days, clock) = match t.split_once('-') {
        Some((d, rest)) => (Some(num(d, "days")?), rest),
        None => (None, t),
    };
    let parts: Vec<&str> = clock.split(':').collect();
    let secs = match (days, parts.as_slice()) {
        (None, [m]) => num(m, "minutes")? * 60,
        (None, [m, s]) => num(m, "minutes")? * 60 + below(num(s, "seconds")?, 60, "seconds")?,
        (None, [h, m, s]) => {
            num(h, "hours")? * 3600
                + below(num(m, "minutes")?, 60, "minutes")? * 60
                + below(num(s, "seconds")?, 60, "seconds")?
        }
        (Some(d), [h]) => d * 86_400 + below(num(h, "hours")?, 24, "hours")? * 3600,
        (Some(d), [h, m]) => {
            d * 86_400
                + below(num(h, "hours")?, 24, "hours")? * 3600
                + below(num(m, "minutes")?, 60, "minutes")? * 60
        }
        (Some(d), [h, m, s]) => {
            d * 86_400
                + below(num(h, "hours")?, 24, "hours")? * 3600
                + below(num(m, "minutes")?, 60, "minutes")? * 60
                + below(num(s, "seconds")?, 60, "seconds")?
        }
        _ => return Err("is not in one of sbatch's time forms".into()),
    };
    if secs > MAX_SLURM_DAYS * 86_400 {
        return Err(format!("is longer than {MAX_SLURM_DAYS} days"));
    }
    Ok(secs)
}

impl SizeSpec {
    /// The seeds this size runs: its own `seeds`, or the grid's.
    pub fn seeds<'a>(&'a self, grid: &'a [u64]) -> &'a [u64] {
        self.seeds.as_deref().unwrap_or(grid)
    }

    /// The size's name in run ids.
    pub fn label(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        if let Some(p) = &self.preset {
            return p.clone();
        }
        if let Some(n) = self.params {
            return short_count(n);
        }
        format!(
            "d{}l{}",
            self.d_model.unwrap_or(0),
            self.n_layers.unwrap_or(0)
        )
    }
}

impl BudgetSpec {
    /// The budget's name in run ids: `8k`, `1.5M`, `20tpp`.
    pub fn label(&self) -> String {
        match (self.tokens, self.tokens_per_param) {
            (Some(t), _) => short_count(t),
            (None, Some(r)) => format!("{r}tpp"),
            _ => "?".into(),
        }
    }
}

impl SweepConfig {
    /// Resolves relative `sizes[i].init_from` paths against `base`, the manifest's folder.
    pub fn resolve_paths(&mut self, base: &Path) {
        for s in &mut self.sizes {
            if let Some(p) = &mut s.init_from {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        }
    }

    /// Every `sizes[i].init_from` is a directory (what it holds is checked against the
    /// size's model when the sweep is planned against the data).
    pub fn check_init_from(&self, file: &Path) -> Result<()> {
        for (i, s) in self.sizes.iter().enumerate() {
            let Some(p) = &s.init_from else { continue };
            if !p.is_dir() {
                return Err(field(
                    file,
                    format!("sweep.sizes[{i}].init_from"),
                    format!(
                        "{} {}; give a synthscale run directory or a `synthscale export` \
                         directory (relative to the manifest)",
                        p.display(),
                        if p.exists() {
                            "is not a directory"
                        } else {
                            "does not exist"
                        }
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks what can be checked without the data: non-empty grids, names, shares, bounds.
    pub fn validate(&self, file: &Path) -> Result<()> {
        if self.sizes.is_empty() {
            return Err(field(
                file,
                "sweep.sizes",
                "the grid has no sizes; give at least one",
            ));
        }
        for (i, s) in self.sizes.iter().enumerate() {
            if let Some(r) = s.ranks.filter(|r| !(1..=4096).contains(r)) {
                return Err(field(
                    file,
                    format!("sweep.sizes[{i}].ranks"),
                    format!("{r} processes per run; give 1 to 4096"),
                ));
            }
        }
        if self.budgets.is_empty() {
            return Err(field(
                file,
                "sweep.budgets",
                "the grid has no budgets; give at least one",
            ));
        }
        if self.mixtures.is_empty() {
            return Err(field(
                file,
                "sweep.mixtures",
                "the grid has no mixtures; give at least one",
            ));
        }
        if self.seeds.is_empty() {
            return Err(field(
                file,
                "sweep.seeds",
                "the grid has no seeds; give at least one",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, s) in self.sizes.iter().enumerate() {
            let f = format!("sweep.sizes[{i}]");
            let explicit = s.d_model.is_some() && s.n_layers.is_some() && s.n_heads.is_some();
            let ways = s.preset.is_some() as u8 + s.params.is_some() as u8;
            if ways > 1 || (ways == 0 && !explicit) {
                return Err(field(
                    file,
                    f,
                    "give exactly one of preset, params, or d_model + n_layers + n_heads",
                ));
            }
            let label = s.label();
            if !is_safe_name(&label) {
                return Err(field(
                    file,
                    format!("{f}.name"),
                    format!("{label:?} is not a safe name (letters, digits, '.', '_', '-')"),
                ));
            }
            if !seen.insert(label.clone()) {
                return Err(field(file, f, format!("size name {label:?} is used twice")));
            }
        }
        self.check_init_from(file)?;
        let mut seen = std::collections::BTreeSet::new();
        for (i, b) in self.budgets.iter().enumerate() {
            let f = format!("sweep.budgets[{i}]");
            match (b.tokens, b.tokens_per_param) {
                (Some(t), None) if t > 0 => {}
                (None, Some(r)) if r.is_finite() && r > 0.0 => {}
                (Some(_), Some(_)) | (None, None) => {
                    return Err(field(
                        file,
                        f,
                        "give exactly one of tokens or tokens_per_param",
                    ))
                }
                _ => return Err(field(file, f, "the budget must be positive")),
            }
            if !seen.insert(b.label()) {
                return Err(field(
                    file,
                    f,
                    format!("budget {} is listed twice", b.label()),
                ));
            }
        }
        for (name, shares) in &self.mixtures {
            let f = format!("sweep.mixtures.{name}");
            if !is_safe_name(name) {
                return Err(field(
                    file,
                    f,
                    "a mixture name must be a safe name (letters, digits, '.', '_', '-')",
                ));
            }
            if shares.values().any(|v| !(v.is_finite() && *v >= 0.0)) {
                return Err(field(file, f, "shares must be finite and ≥ 0"));
            }
            let sum: f64 = shares.values().sum();
            if (sum - 1.0).abs() > 1e-6 {
                return Err(field(
                    file,
                    f,
                    format!("shares sum to {sum}, not 1 (within 1e-6)"),
                ));
            }
        }
        let mut seeds = self.seeds.clone();
        seeds.sort_unstable();
        seeds.dedup();
        if seeds.len() != self.seeds.len() {
            return Err(field(file, "sweep.seeds", "a seed is listed twice"));
        }
        for (i, s) in self.sizes.iter().enumerate() {
            if let Some(own) = &s.seeds {
                let f = format!("sweep.sizes[{i}].seeds");
                if own.is_empty() {
                    return Err(field(file, f, "an empty list; give at least one seed"));
                }
                let mut o = own.clone();
                o.sort_unstable();
                o.dedup();
                if o.len() != own.len() {
                    return Err(field(file, f, "a seed is listed twice"));
                }
            }
        }
        let r = &self.run_rule;
        let f = |n: &str| format!("sweep.run_rule.{n}");
        if let Some(lr) = r.lr {
            if !(lr.is_finite() && lr > 0.0 && lr < 10.0) {
                return Err(field(file, f("lr"), format!("{lr} is outside (0, 10)")));
            }
        }
        for (n, v) in [
            ("lr_coefficient", r.lr_coefficient),
            ("batch_coefficient", r.batch_coefficient),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(field(file, f(n), format!("{v} must be > 0")));
            }
        }
        for (n, v) in [
            ("lr_exponent", r.lr_exponent),
            ("batch_exponent", r.batch_exponent),
        ] {
            if !(v.is_finite() && v.abs() <= 2.0) {
                return Err(field(file, f(n), format!("{v} is outside [-2, 2]")));
            }
        }
        if r.batch_tokens == Some(0) {
            return Err(field(file, f("batch_tokens"), "must be at least 1"));
        }
        for (n, v) in [
            ("min_steps", r.min_steps),
            (
                "micro_batch_size",
                match r.micro_batch_size {
                    MicroBatch::Fixed(n) => n as u64,
                    MicroBatch::Auto => 1,
                },
            ),
            ("evals_per_run", r.evals_per_run),
            ("eval_max_tokens", r.eval_max_tokens),
            ("checkpoints_per_run", r.checkpoints_per_run),
        ] {
            if v == 0 {
                return Err(field(file, f(n), "must be at least 1"));
            }
        }
        if !(0.0..1.0).contains(&r.warmup_fraction) {
            return Err(field(
                file,
                f("warmup_fraction"),
                format!("{} is outside [0, 1)", r.warmup_fraction),
            ));
        }
        if !(r.decay_fraction > 0.0 && r.decay_fraction < 1.0) {
            return Err(field(
                file,
                f("decay_fraction"),
                format!("{} is outside (0, 1)", r.decay_fraction),
            ));
        }
        if r.ladder && self.budgets.len() < 2 {
            return Err(field(
                file,
                "sweep.budgets",
                "a ladder (run_rule.ladder = true) needs at least two budgets; with one, \
                 drop the ladder line",
            ));
        }
        if !(1..=64).contains(&self.max_runs_per_gpu) {
            return Err(field(
                file,
                "sweep.max_runs_per_gpu",
                format!("{} must be in 1..=64", self.max_runs_per_gpu),
            ));
        }
        if let Some(m) = self.device_memory_gib {
            if !(m.is_finite() && m > 0.0) {
                return Err(field(
                    file,
                    "sweep.device_memory_gib",
                    format!("{m} must be > 0"),
                ));
            }
        }
        if let Some(t) = self.flops_per_second {
            if !(t.is_finite() && t > 0.0) {
                return Err(field(
                    file,
                    "sweep.flops_per_second",
                    format!("{t} must be > 0"),
                ));
            }
        }
        Ok(())
    }
}

impl SlurmConfig {
    /// Every value that reaches the sbatch script is checked against a safe alphabet.
    pub fn validate(&self, file: &Path) -> Result<()> {
        for (n, v) in [
            ("partition", &self.partition),
            ("account", &self.account),
            ("mem", &self.mem),
            ("time", &self.time),
        ] {
            if let Some(v) = v {
                if !slurm_value_ok(v) {
                    return Err(field(
                        file,
                        format!("slurm.{n}"),
                        format!("{v:?} has characters outside [A-Za-z0-9._:,=-]"),
                    ));
                }
            }
        }
        if let Some(m) = &self.mem {
            let digits = m.trim_end_matches(['K', 'M', 'G', 'T']);
            if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
                return Err(field(
                    file,
                    "slurm.mem",
                    format!("{m:?} is not a size such as 16G or 4000M"),
                ));
            }
        }
        if let Some(t) = &self.time {
            let secs = slurm_time_seconds(t).map_err(|why| {
                field(
                    file,
                    "slurm.time",
                    format!(
                        "{t:?} {why}; sbatch takes MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or \
                         D-HH:MM:SS (e.g. 04:00:00, 1-12:00:00)"
                    ),
                )
            })?;
            if secs <= 120 {
                return Err(field(
                    file,
                    "slurm.time",
                    format!(
                        "{t:?} is {secs} s; it must exceed the 120 s warning a task gets \
                         (--signal=B:USR1@120) to checkpoint before its limit"
                    ),
                ));
            }
        }
        if self.cpus_per_task == 0 {
            return Err(field(file, "slurm.cpus_per_task", "must be at least 1"));
        }
        for (i, d) in self.extra.iter().enumerate() {
            let body = d.strip_prefix("--").unwrap_or("");
            if body.is_empty()
                || !body.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                || !slurm_value_ok(body)
            {
                return Err(field(
                    file,
                    format!("slurm.extra[{i}]"),
                    format!("{d:?} is not a directive --option or --option=value over [A-Za-z0-9._:,=-]"),
                ));
            }
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_times_take_sbatch_forms_only() {
        // Oracle: sbatch(1), --time: "minutes", "minutes:seconds", "hours:minutes:seconds",
        // "days-hours", "days-hours:minutes" and "days-hours:minutes:seconds".
        for (t, secs) in [
            ("30", 1800),
            ("90", 5400),
            ("10:30", 630),
            ("04:00:00", 14_400),
            ("48:00:00", 172_800),
            ("1-12", 129_600),
            ("1-12:30", 131_400),
            ("1-12:30:15", 131_415),
            ("365-00:00:00", 31_536_000),
        ] {
            assert_eq!(slurm_time_seconds(t), Ok(secs), "{t}");
        }
        for t in [
            "1:00:00:00:00",
            "",
            "1-",
            "-1",
            "1-2-3",
            "10:60",
            "1:60:00",
            "1:00:60",
            "1-24",
            "1-23:60",
            "1-00:00:60",
            "366-00",
            "1::00",
            "1-2:3:4:5",
            "9999999999",
        ] {
            assert!(slurm_time_seconds(t).is_err(), "{t:?} was accepted");
        }
        let bad = SlurmConfig {
            time: Some("1:00:00:00:00".into()),
            ..SlurmConfig::default()
        };
        let e = bad.validate(Path::new("m.toml")).unwrap_err().to_string();
        assert!(e.contains("m.toml") && e.contains("`slurm.time`"), "{e}");
        let short = SlurmConfig {
            time: Some("2".into()),
            ..SlurmConfig::default()
        };
        let e = short.validate(Path::new("m.toml")).unwrap_err().to_string();
        assert!(e.contains("120 s"), "{e}");
    }
}
