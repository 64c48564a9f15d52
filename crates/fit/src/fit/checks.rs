//! What a group's data and a fit's end point must satisfy: enough points and distinct sizes,
//! a loss that falls, a θ inside the law's bounds.

use super::options::FitOptions;
use crate::error::{FitError, Result};
use crate::law::{Law, Point};

/// Which of θ's coordinates leave the law's bounds: `(name, value, lo, hi)` of the first.
pub fn out_of_bounds(
    law: Law,
    theta: &[f64],
    pinned_e: bool,
) -> Option<(&'static str, f64, f64, f64)> {
    for (i, (b, &v)) in law.bounds().iter().zip(theta).enumerate() {
        if pinned_e && i == law.e_index() {
            continue;
        }
        if !(v >= b.lo && v <= b.hi) {
            return Some((law.theta_names()[i], v, b.lo, b.hi));
        }
    }
    None
}

/// Relative spread of predictions below which a fitted curve counts as flat.
pub(super) const FLAT: f64 = 1e-4;

/// Whether the curve at θ is flat over the data: a law with no decline to fit has parameters
/// that run off along a flat valley (B → 0 or beta → ∞) wherever the optimizer stops.
pub(super) fn is_flat(law: Law, theta: &[f64], points: &[Point]) -> bool {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for p in points {
        let v = law.log_pred(theta, p);
        lo = lo.min(v);
        hi = hi.max(v);
    }
    hi - lo < FLAT
}

/// Spread of ln L over a group's data (max − min) below which the data count as flat: 0.1%
/// of the loss, about half the seed-to-seed noise of the quickstart's runs and far below the
/// decline of any curve a law describes.
pub const FLAT_DATA: f64 = 1e-3;

/// Errors when the losses of `points` do not change over the data ([`FLAT_DATA`]): a flat
/// curve has no decline to fit, and any law "fitted" to it runs off along a flat valley
/// (B → 0, beta → ∞, or E anywhere below the data), so it is refused before fitting.
pub fn check_not_flat(points: &[Point], group: &str) -> Result<()> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for p in points {
        let v = p.loss.ln();
        lo = lo.min(v);
        hi = hi.max(v);
    }
    let spread = hi - lo;
    if points.len() > 1 && spread < FLAT_DATA {
        return Err(FitError::FlatData {
            group: group.to_string(),
            spread,
            bound: FLAT_DATA,
        });
    }
    Ok(())
}

/// The smallest number of points a law can be fitted to: one more than its free parameters.
pub fn min_points(law: Law, opts: &FitOptions) -> usize {
    free_params(law, opts) + 1
}

/// The fewest distinct values of D (and N) that determine the law's parameters: one-variable
/// laws need as many distinct D as free parameters; the joint law needs three distinct N
/// and three distinct D (two each with E pinned), or its N-part and D-part trade off freely.
pub fn min_sizes(law: Law, opts: &FitOptions) -> (usize, usize) {
    let pinned = usize::from(opts.pin_e.is_some());
    match law {
        Law::Chinchilla => (3 - pinned, 3 - pinned),
        _ => (free_params(law, opts), 0),
    }
}

fn count_distinct(mut v: Vec<f64>) -> usize {
    v.sort_by(f64::total_cmp);
    v.dedup();
    v.len()
}

/// Errors unless `points` hold enough distinct sizes for the law ([`min_sizes`]).
pub fn check_sizes(law: Law, points: &[Point], opts: &FitOptions, group: &str) -> Result<()> {
    let (min_d, min_n) = min_sizes(law, opts);
    let nd = count_distinct(points.iter().map(|p| p.d).collect());
    let nn = count_distinct(points.iter().map(|p| p.n).collect());
    for (axis, n, min) in [("tokens", nd, min_d), ("params", nn, min_n)] {
        if n < min {
            return Err(FitError::TooFewSizes {
                group: group.to_string(),
                law: law.name(),
                axis,
                n,
                min,
            });
        }
    }
    Ok(())
}

/// Free parameters of the law under `opts`.
pub fn free_params(law: Law, opts: &FitOptions) -> usize {
    law.theta_names().len() - usize::from(opts.pin_e.is_some())
}
