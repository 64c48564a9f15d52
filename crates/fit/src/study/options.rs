//! What a fit job is asked: the law, the fit and interval settings, the held-out check, the
//! plateau bounds and the comparisons; and the bounds every option must keep.

use serde::Serialize;

use crate::bootstrap::BootstrapOptions;
use crate::error::{FitError, Result};
use crate::fit::FitOptions;
use crate::law::Law;

/// Which points the held-out check leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Holdout {
    /// No check.
    None,
    /// Each group's points at its largest D (one-variable laws) or largest N (joint law):
    /// fit the rest, predict those, as SynthLLM checked its fits.
    Largest,
}

/// Everything a fit job is asked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StudyOptions {
    /// The law fitted to every group.
    pub law: Law,
    /// Objective and optimizer settings.
    pub fit: FitOptions,
    /// Interval settings.
    pub bootstrap: BootstrapOptions,
    /// Held-out check.
    pub holdout: Holdout,
    /// Doubling plateau: the gain of one more doubling, as a fraction of the loss, below
    /// which the curve has plateaued. Default 2%, read off SynthLLM's Table 1 (REFERENCE.md
    /// §9), where the paper says its 8B model "approaches its ceiling" at about 1T tokens: its
    /// error rate 100 − accuracy falls from 18.6 (250B) to 17.4 (1T) to 16.8 (4T), per
    /// doubling (17.4/18.6)^(1/2) = 0.967 and (16.8/17.4)^(1/2) = 0.983, gains of 3.3% and
    /// 1.7%; at 1T itself, their geometric mean, √(3.3 × 1.7) = 2.4%, rounded down to 2%.
    /// (Its 3B model, which the paper puts at about 4T, gains 3.9% per doubling just before.)
    pub plateau_eps: f64,
    /// Margin plateau: the fraction above the asymptote within which the curve counts as
    /// arrived; 1%.
    pub plateau_margin: f64,
    /// Plateaus are searched up to this multiple of a curve's largest observed budget; one
    /// further out is reported as "beyond" that, never as a number read off the fitted law
    /// decades past its data.
    pub plateau_search: f64,
    /// Speed-ups: `(column, value)` naming the baseline groups (e.g. `mixture=natural`).
    pub baseline: Option<(String, String)>,
    /// Speed-ups: target losses L*; empty: the baseline's fitted loss at its largest D.
    pub target_losses: Vec<f64>,
    /// Optimal ratio: the group-by column holding each mixture's synthetic share.
    pub ratio_col: Option<String>,
    /// Compute-optimal size (joint law): FLOP budgets; empty: 1, 10 and 100 × the largest
    /// 6ND in the group.
    pub flops_budgets: Vec<f64>,
}

impl Default for StudyOptions {
    fn default() -> Self {
        StudyOptions {
            law: Law::Rectified,
            fit: FitOptions::default(),
            bootstrap: BootstrapOptions::default(),
            holdout: Holdout::None,
            plateau_eps: 0.02,
            plateau_margin: 0.01,
            plateau_search: 100.0,
            baseline: None,
            target_losses: Vec::new(),
            ratio_col: None,
            flops_budgets: Vec::new(),
        }
    }
}
/// Checks every option's bound; `Err` names the option.
pub(super) fn validate(opts: &StudyOptions) -> Result<()> {
    opts.fit.validate()?;
    let frac = |name: &str, v: f64| {
        if v > 0.0 && v < 1.0 {
            Ok(())
        } else {
            Err(FitError::option(name, format!("{v} must be in (0, 1)")))
        }
    };
    frac("plateau-eps", opts.plateau_eps)?;
    frac("plateau-margin", opts.plateau_margin)?;
    frac("level", opts.bootstrap.level)?;
    let positive = |name: &str, values: &[f64], what: &str| match values
        .iter()
        .find(|v| !(v.is_finite() && **v > 0.0))
    {
        Some(v) => Err(FitError::option(
            name,
            format!("{v} must be a positive {what}"),
        )),
        None => Ok(()),
    };
    positive("target-loss", &opts.target_losses, "loss")?;
    positive("flops-budget", &opts.flops_budgets, "FLOP count")?;
    if !opts.flops_budgets.is_empty() && !opts.law.uses_params() {
        return Err(FitError::option(
            "flops-budget",
            "compute-optimal sizes need the joint law (--law chinchilla)",
        ));
    }
    Ok(())
}
