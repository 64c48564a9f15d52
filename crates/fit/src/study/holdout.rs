//! The held-out check: each group refitted without its points at the largest D (or N), and
//! those points predicted.

use std::collections::BTreeMap;

use serde::Serialize;

use super::fitted::named;
use crate::error::Result;
use crate::fit::{fit, FitOptions};
use crate::law::{Law, Point};

/// The held-out check of one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HoldoutReport {
    /// `tokens` or `params`: the axis whose largest value was held out.
    pub axis: &'static str,
    /// That value.
    pub held_out: f64,
    /// Points fitted without it.
    pub n_fit: usize,
    /// Parameters of that fit.
    pub params: BTreeMap<String, f64>,
    /// Each held-out point, predicted.
    pub points: Vec<HeldOutPoint>,
    /// Mean of `|L̂ − L| / L` over the held-out points.
    pub mean_rel_error: f64,
    /// Largest `|L̂ − L| / L`.
    pub max_rel_error: f64,
}

/// One held-out point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeldOutPoint {
    /// D.
    pub tokens: f64,
    /// N (joint law).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<f64>,
    /// Observed loss.
    pub loss: f64,
    /// Predicted by the fit without it.
    pub predicted: f64,
    /// `|predicted − loss| / loss`.
    pub rel_error: f64,
}

/// Refits `points` without those at the largest D (one-variable laws) or N (joint law) and
/// predicts them.
pub(super) fn holdout_largest(
    law: Law,
    points: &[Point],
    opts: &FitOptions,
    group: &str,
) -> Result<HoldoutReport> {
    let (axis, key): (&'static str, fn(&Point) -> f64) = if law.uses_params() {
        ("params", |p| p.n)
    } else {
        ("tokens", |p| p.d)
    };
    let largest = points.iter().map(key).fold(f64::MIN, f64::max);
    let (held, kept): (Vec<Point>, Vec<Point>) = points.iter().partition(|p| key(p) == largest);
    let hgroup = format!("{group} (held-out check, largest {axis} {largest:e} left out)");
    let f = fit(law, &kept, opts, &hgroup)?;
    let pts: Vec<HeldOutPoint> = held
        .iter()
        .map(|p| {
            let predicted = law.predict(&f.theta, p.n, p.d);
            HeldOutPoint {
                tokens: p.d,
                params: law.uses_params().then_some(p.n),
                loss: p.loss,
                predicted,
                rel_error: (predicted - p.loss).abs() / p.loss,
            }
        })
        .collect();
    let mean = pts.iter().map(|p| p.rel_error).sum::<f64>() / pts.len() as f64;
    let max = pts.iter().map(|p| p.rel_error).fold(0.0, f64::max);
    Ok(HoldoutReport {
        axis,
        held_out: largest,
        n_fit: kept.len(),
        params: named(law.param_names(), &law.params(&f.theta)),
        points: pts,
        mean_rel_error: mean,
        max_rel_error: max,
    })
}
