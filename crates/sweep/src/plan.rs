//! Grid expansion: sizes × budgets × mixtures × seeds → runs with stable ids, each a
//! complete run config resolved and checked against the data before anything launches
//! (each size's runs come from [`crate::grid`]).

use std::path::{Path, PathBuf};

use synthscale_data::datadir::read_meta;
use synthscale_data::DataMeta;
use synthscale_train::init::InitSource;

use crate::config::{SlurmConfig, SweepConfig};
use crate::error::{Result, SweepError};
use crate::grid::{expand_one, size_model, Grid};
pub use crate::grid::{LadderRole, PlannedRun};

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
        std::fs::create_dir_all(&dir).map_err(|e| SweepError::write(&dir, e))?;
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
            std::fs::write(&tmp, &text).map_err(|e| SweepError::write(&tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| SweepError::write(&path, e))?;
        }
        Ok(())
    }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| SweepError::read(p, e))
}
