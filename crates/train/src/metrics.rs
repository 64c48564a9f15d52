//! `metrics.jsonl`: one JSON object per line, a training line per optimizer step and an
//! evaluation line per validation domain (DESIGN.md's contract).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

pub const FILE: &str = "metrics.jsonl";

/// One line. Training lines fill `lr, train_loss, grad_norm, tokens_per_s, mfu` (and
/// `comm_s` in a data-parallel run);
/// evaluation lines fill `eval_domain, val_loss`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Optimizer steps completed.
    pub step: u64,
    /// Training tokens consumed.
    pub tokens: u64,
    /// Training FLOPs spent (tokens × FLOPs per token).
    pub flops: f64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lr: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub train_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub grad_norm: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tokens_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mfu: Option<f64>,
    /// Seconds of the step rank 0 spent in the data-parallel all-reduces (waiting for the
    /// slowest rank included); absent for a single process.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub comm_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub eval_domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub val_loss: Option<f64>,
}

/// Appends lines, flushed as they are written.
pub struct MetricsLog {
    file: std::fs::File,
    path: PathBuf,
}

impl MetricsLog {
    /// Opens the log of a run resuming after `step` completed steps: lines logged after
    /// that step (by a run that died before its next checkpoint) are dropped, so the log
    /// reads as if the run had never stopped.
    pub fn open(run_dir: &Path, step: u64) -> Result<Self> {
        let path = run_dir.join(FILE);
        if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(TrainError::io(&path))?;
            let mut kept = String::new();
            for line in text.lines() {
                let Ok(m) = serde_json::from_str::<Metric>(line) else {
                    break; // a torn last line
                };
                if m.step > step {
                    break;
                }
                kept.push_str(line);
                kept.push('\n');
            }
            if kept.len() != text.len() {
                let tmp = path.with_extension("jsonl.tmp");
                crate::checkpoint::write_synced(&tmp, kept.as_bytes())?;
                std::fs::rename(&tmp, &path).map_err(TrainError::io(&path))?;
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(TrainError::io(&path))?;
        Ok(MetricsLog { file, path })
    }

    pub fn write(&mut self, m: &Metric) -> Result<()> {
        let mut line = serde_json::to_string(m).expect("serializable");
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(TrainError::io(&self.path))
    }
}

/// Reads a run's metrics.
pub fn read(run_dir: &Path) -> Result<Vec<Metric>> {
    let path = run_dir.join(FILE);
    let text = std::fs::read_to_string(&path).map_err(TrainError::io(&path))?;
    text.lines()
        .map(|l| {
            serde_json::from_str(l).map_err(|e| TrainError::Checkpoint {
                path: path.clone(),
                message: format!("bad metrics line: {e}"),
            })
        })
        .collect()
}
