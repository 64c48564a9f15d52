//! `[sweep]`'s grid: sizes × budgets × mixtures × seeds, where the runs go, and the labels
//! each size and budget gives its run ids.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use synthscale_data::config::SourceKind;
use synthscale_train::config::DeviceSpec;

use super::run_rule::RunRule;
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
                return Err(SweepError::field(
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
