//! Experiment manifests: the one place that knows every stage's section.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use synthscale_data::{DataConfig, DataError};
use synthscale_report::ReportConfig;
use synthscale_sweep::{SlurmConfig, SweepConfig};

/// An experiment manifest. Each stage owns its section; unknown sections are errors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// `[data]`: sources, tokenizer, validation split, sequence length.
    pub data: DataConfig,
    /// `[sweep]`: the grid of runs and the run rule (crates/sweep).
    pub sweep: Option<SweepConfig>,
    /// `[slurm]`: resources of each array task (crates/sweep).
    pub slurm: Option<SlurmConfig>,
    /// `[report]`: the report's baseline, headline domain, speed-up target (crates/report).
    pub report: Option<ReportConfig>,
}

/// A manifest with its paths resolved and every section validated.
#[derive(Debug, Clone)]
pub struct LoadedManifest {
    pub path: PathBuf,
    pub manifest: Manifest,
}

impl LoadedManifest {
    /// Reads, parses and validates a manifest; relative paths in it resolve against the
    /// manifest's folder.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        Self::load_with(path, true)
    }

    /// [`LoadedManifest::load`]; with `corpora` false the data sources' files may be
    /// missing (`sweep plan` before the corpora are on this machine).
    pub fn load_with(path: &Path, corpora: bool) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::Read {
            path: path.to_path_buf(),
            source: e,
        })?;
        let mut manifest: Manifest = toml::from_str(&text).map_err(|e| DataError::Manifest {
            file: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        manifest.data.resolve_paths(base);
        manifest.data.validate_with(path, corpora)?;
        if let Some(s) = &mut manifest.sweep {
            s.resolve_paths(base);
            s.check_init_from(path)?;
        }
        if let Some(r) = &manifest.report {
            r.validate(path)?;
            let mixtures: Vec<&str> = manifest
                .sweep
                .iter()
                .flat_map(|s| s.mixtures.keys().map(String::as_str))
                .collect();
            let mut domains: Vec<&str> = manifest
                .data
                .sources
                .iter()
                .map(|s| s.domain.as_str())
                .collect();
            domains.sort_unstable();
            domains.dedup();
            r.check_names(path, &mixtures, &domains)?;
        }
        Ok(LoadedManifest {
            path: path.to_path_buf(),
            manifest,
        })
    }

    /// The manifest's name: its file stem.
    pub fn name(&self) -> String {
        self.path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "manifest".into())
    }

    /// The sweep's folder: `sweep.out_dir`, else `results/<name>` (as `crates/sweep` sets it).
    pub fn results_dir(&self) -> PathBuf {
        self.manifest
            .sweep
            .as_ref()
            .and_then(|s| s.out_dir.clone())
            .unwrap_or_else(|| PathBuf::from("results").join(self.name()))
    }

    /// Where `data prepare` writes: `data.out_dir`, else `results/<name>/data`.
    pub fn data_dir(&self) -> PathBuf {
        self.manifest
            .data
            .out_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("results").join(self.name()).join("data"))
    }
}
