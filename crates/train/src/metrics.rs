//! `metrics.jsonl`: one JSON object per line, a training line per optimizer step and an
//! evaluation line per validation domain (DESIGN.md's contract).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::error::{Result, TrainError};

pub const FILE: &str = "metrics.jsonl";

/// One line. Training lines fill `lr, train_loss, grad_norm, tokens_per_s, mfu` (and
/// `comm_s` in a data-parallel run);
/// evaluation lines fill `eval_domain, val_loss`. A field that is `None` is left out of
/// the line ([`Metric::serialize`]), and one left out reads back as `None`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Metric {
    /// Optimizer steps completed.
    pub step: u64,
    /// Training tokens consumed.
    pub tokens: u64,
    /// Training FLOPs spent (tokens × FLOPs per token).
    pub flops: f64,
    pub lr: Option<f64>,
    pub train_loss: Option<f64>,
    pub grad_norm: Option<f64>,
    pub tokens_per_s: Option<f64>,
    pub mfu: Option<f64>,
    /// Seconds of the step rank 0 spent in the data-parallel all-reduces (waiting for the
    /// slowest rank included); absent for a single process.
    pub comm_s: Option<f64>,
    pub eval_domain: Option<String>,
    pub val_loss: Option<f64>,
}

impl Serialize for Metric {
    /// The fields in their order, those that are `None` left out.
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut line = serializer.serialize_map(None)?;
        line.serialize_entry("step", &self.step)?;
        line.serialize_entry("tokens", &self.tokens)?;
        line.serialize_entry("flops", &self.flops)?;
        let scalars = [
            ("lr", self.lr),
            ("train_loss", self.train_loss),
            ("grad_norm", self.grad_norm),
            ("tokens_per_s", self.tokens_per_s),
            ("mfu", self.mfu),
            ("comm_s", self.comm_s),
        ];
        for (key, value) in scalars {
            if let Some(value) = value {
                line.serialize_entry(key, &value)?;
            }
        }
        if let Some(domain) = &self.eval_domain {
            line.serialize_entry("eval_domain", domain)?;
        }
        if let Some(loss) = self.val_loss {
            line.serialize_entry("val_loss", &loss)?;
        }
        line.end()
    }
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
            let text = std::fs::read_to_string(&path).map_err(|e| TrainError::read(&path, e))?;
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
                crate::files::write_synced(&tmp, kept.as_bytes())?;
                std::fs::rename(&tmp, &path).map_err(|e| TrainError::write(&path, e))?;
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| TrainError::write(&path, e))?;
        Ok(MetricsLog { file, path })
    }

    pub fn write(&mut self, m: &Metric) -> Result<()> {
        let mut line = serde_json::to_string(m).expect("serializable");
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| TrainError::write(&self.path, e))
    }
}

/// Reads a run's metrics.
pub fn read(run_dir: &Path) -> Result<Vec<Metric>> {
    let path = run_dir.join(FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::read(&path, e))?;
    text.lines()
        .map(|l| {
            serde_json::from_str(l).map_err(|e| TrainError::Checkpoint {
                path: path.clone(),
                message: format!("bad metrics line: {e}"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read back, a logged loss is the very f64 written (oracle: the bits themselves), in
    /// every build: `sweep collect` copies these into results.csv. 3.9240556359291077 is a
    /// quickstart validation loss that serde_json's default float parser read one ulp off.
    #[test]
    fn a_logged_float_reads_back_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MetricsLog::open(dir.path(), 0).unwrap();
        let losses = [
            3.9240556359291077,
            0.1 + 0.2,
            5.321639010620092,
            1e-300 / 3.0,
        ];
        for (i, loss) in losses.iter().enumerate() {
            log.write(&Metric {
                step: i as u64,
                tokens: 0,
                flops: 0.0,
                lr: None,
                train_loss: None,
                grad_norm: None,
                tokens_per_s: None,
                mfu: None,
                comm_s: None,
                eval_domain: Some("web".into()),
                val_loss: Some(*loss),
            })
            .unwrap();
        }
        let back: Vec<u64> = read(dir.path())
            .unwrap()
            .iter()
            .map(|m| m.val_loss.unwrap().to_bits())
            .collect();
        let want: Vec<u64> = losses.iter().map(|l| l.to_bits()).collect();
        assert_eq!(back, want);
    }
}
