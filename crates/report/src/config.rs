//! The `[report]` section of a manifest: what the report reads off the fits.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{ReportError, Result};

/// `[report]`: which domain heads the report, the speed-up target, intervals and the
/// held-out check. Every field is optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportConfig {
    /// The mixture speed-ups are measured against.
    pub baseline: String,
    /// The evaluation domain of the figures and headline tables; `mean` is the mean
    /// validation loss over the domains of `mean_domains`.
    pub headline_domain: String,
    /// The domains averaged into `mean`; empty: every domain. A study that holds out
    /// synthetic text as well as natural text names the natural domains here, so that the
    /// headline does not reward a mixture for fitting its own kind of text.
    pub mean_domains: Vec<String>,
    /// Target loss L* of the speed-ups; unset: the baseline's fitted loss at its largest
    /// budget, per model size and domain (the loss natural data actually reached).
    pub target_loss: Option<f64>,
    /// Fit each curve without its largest budget (joint law: largest size) and report the
    /// error of predicting it, as SynthLLM checked its fits.
    pub holdout: bool,
    /// Bootstrap resamples for 95% intervals; 200 puts the 2.5% and 97.5% percentiles
    /// within about a tenth of the interval's width, and keeps a quickstart report fast.
    pub bootstrap: usize,
    /// Seed of the bootstrap.
    pub seed: u64,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            baseline: "natural".into(),
            headline_domain: "mean".into(),
            mean_domains: Vec::new(),
            target_loss: None,
            holdout: true,
            bootstrap: 200,
            seed: 0,
        }
    }
}

impl ReportConfig {
    /// Checks the names `[report]` uses against the manifest's `[sweep.mixtures]` and the
    /// eval domains of its `[data]` sources: a baseline or domain that names nothing is bad
    /// input, refused before any work rather than noted in a finished report.
    pub fn check_names(&self, file: &Path, mixtures: &[&str], domains: &[&str]) -> Result<()> {
        let bad = |message: String| ReportError::Config {
            file: file.to_path_buf(),
            message,
        };
        if !mixtures.is_empty() && !mixtures.contains(&self.baseline.as_str()) {
            return Err(bad(format!(
                "[report] baseline: {:?} is not a mixture of [sweep.mixtures] (mixtures: {})",
                self.baseline,
                mixtures.join(", ")
            )));
        }
        let known = |d: &str| domains.contains(&d);
        if self.headline_domain != "mean" && !known(&self.headline_domain) {
            return Err(bad(format!(
                "[report] headline_domain: {:?} is neither `mean` nor an eval domain of [data] \
                 (domains: {})",
                self.headline_domain,
                domains.join(", ")
            )));
        }
        if let Some(d) = self.mean_domains.iter().find(|d| !known(d)) {
            return Err(bad(format!(
                "[report] mean_domains: {d:?} is not an eval domain of [data] (domains: {})",
                domains.join(", ")
            )));
        }
        Ok(())
    }

    /// Checks every bound; `file` names the manifest in the error.
    pub fn validate(&self, file: &Path) -> Result<()> {
        let bad = |message: String| ReportError::Config {
            file: file.to_path_buf(),
            message,
        };
        if self.baseline.trim().is_empty() {
            return Err(bad("[report] baseline: must name a mixture".into()));
        }
        if self.headline_domain.trim().is_empty() {
            return Err(bad(
                "[report] headline_domain: must name an eval domain or `mean`".into(),
            ));
        }
        if let Some(l) = self.target_loss {
            if !(l.is_finite() && l > 0.0) {
                return Err(bad(format!(
                    "[report] target_loss: {l} must be a positive loss"
                )));
            }
        }
        if self.bootstrap > 100_000 {
            return Err(bad(format!(
                "[report] bootstrap: {} resamples, at most 100000",
                self.bootstrap
            )));
        }
        Ok(())
    }

    /// The `[report]` section of a manifest's text (the other sections belong to other
    /// stages and are not read here); the defaults when there is none.
    pub fn from_manifest_text(text: &str, file: &Path) -> Result<Self> {
        let value: toml::Table = toml::from_str(text).map_err(|e| ReportError::Config {
            file: file.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let cfg = match value.get("report") {
            None => ReportConfig::default(),
            Some(v) => v
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| ReportError::Config {
                    file: file.to_path_buf(),
                    message: format!("[report]: {}", e.to_string().trim_end()),
                })?,
        };
        cfg.validate(file)?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_section_is_read_and_checked() {
        let f = Path::new("m.toml");
        let c = ReportConfig::from_manifest_text("[data]\nx = 1\n", f).unwrap();
        assert_eq!(c, ReportConfig::default());
        let c = ReportConfig::from_manifest_text("[report]\ntarget_loss = 3.5\n", f).unwrap();
        assert_eq!(c.target_loss, Some(3.5));
        let e = ReportConfig::from_manifest_text("[report]\ntarget = 3.5\n", f).unwrap_err();
        assert!(e.to_string().contains("unknown field `target`"), "{e}");
        let e = ReportConfig::from_manifest_text("[report]\ntarget_loss = -1.0\n", f).unwrap_err();
        assert!(e.to_string().contains("target_loss: -1 must be"), "{e}");
    }
}
