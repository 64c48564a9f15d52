//! How one group is fitted: the Huber threshold's rule, the optimizer's settings and their
//! bounds.

use serde::Serialize;

use crate::error::{FitError, Result};

/// How the Huber threshold of a fit is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeltaRule {
    /// `huber_delta` as given (Epoch AI's procedure: 1e-3; least squares: 1).
    Fixed,
    /// Scaled to the data's noise: a least-squares fit first, then `delta = 1.345·σ̂` with
    /// σ̂ = 1.4826 × the median absolute deviation of its log residuals (Huber's constant
    /// for 95% efficiency under normal noise; the MAD is robust to the outliers Huber
    /// guards against), floored at 1e-4. A fixed 1e-3 is near-L1 for curves whose noise
    /// is 0.5–1% (Lin et al.'s fine-tuning losses, small models' seed noise), and then
    /// trades goodness of fit for robustness the data do not need.
    Noise,
}

/// How one group is fitted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FitOptions {
    /// Huber threshold on log residuals: residuals below it count squared, larger ones
    /// linearly (robust to outliers). Used as given under [`DeltaRule::Fixed`]; under
    /// [`DeltaRule::Noise`] each group's is derived from its data (recorded in the fit).
    pub huber_delta: f64,
    /// How `huber_delta` is chosen; default [`DeltaRule::Noise`].
    pub delta_rule: DeltaRule,
    /// Pin the asymptote E to this value instead of fitting it.
    pub pin_e: Option<f64>,
    /// L-BFGS history length (pairs kept); 10 is SciPy L-BFGS-B's default.
    pub memory: usize,
    /// Iteration cap per start.
    pub max_iters: u64,
    /// Stop when the gradient's L2 norm falls below this.
    pub tol_grad: f64,
    /// Stop when one iteration changes the objective by less than this (absolute).
    pub tol_cost: f64,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            huber_delta: 1e-3,
            delta_rule: DeltaRule::Noise,
            pin_e: None,
            memory: 10,
            max_iters: 1000,
            // Objectives are ~1e-3 for good fits of a few hundred points: gradients must be
            // driven far below that for the last digits the Epoch oracle checks.
            tol_grad: 1e-10,
            // An iteration that gains less than 1e-12 ends the start: 1e-9 of a typical
            // objective, 2000× stricter than SciPy L-BFGS-B's default (ftol 2.2e-9 times
            // max(|f|, 1)). It stops starts crawling along a flat valley (E → 0, D_l → 0) that
            // would otherwise run hundreds of iterations for gains in the 13th digit.
            tol_cost: 1e-12,
        }
    }
}

/// Huber delta of the least-squares pre-fit: above every log residual of any curve a law
/// describes, where the Huber loss is exactly half the squared error.
pub const LEAST_SQUARES_DELTA: f64 = 1.0;

impl FitOptions {
    /// These options with the threshold fixed at `delta` (a group's resolved threshold,
    /// reused by its bootstrap resamples and held-out check).
    pub fn fixed(&self, delta: f64) -> FitOptions {
        FitOptions {
            huber_delta: delta,
            delta_rule: DeltaRule::Fixed,
            ..self.clone()
        }
    }

    /// Checks every bound; `Err` names the option.
    pub fn validate(&self) -> Result<()> {
        if !(self.huber_delta.is_finite() && self.huber_delta > 0.0) {
            return Err(FitError::option(
                "huber-delta",
                format!("{} must be a positive number", self.huber_delta),
            ));
        }
        if let Some(e) = self.pin_e {
            if !(e.is_finite() && e > 0.0) {
                return Err(FitError::option(
                    "pin-e",
                    format!("{e} must be a positive loss"),
                ));
            }
        }
        if self.memory == 0 || self.max_iters == 0 {
            return Err(FitError::option("memory/max-iters", "must be at least 1"));
        }
        Ok(())
    }
}
