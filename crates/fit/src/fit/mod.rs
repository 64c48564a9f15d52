//! Robust multi-start fitting: the Huber objective on log residuals with its analytic
//! gradient, L-BFGS from `argmin` started from every point of a grid in parallel, the best
//! in-bounds fit kept.
//!
//! - `options`: the threshold rule and optimizer settings;
//! - `objective`: the Huber objective, its gradient and the noise-scaled threshold;
//! - `lbfgs`: one L-BFGS run from one start;
//! - `checks`: the checks on data and end points.

mod checks;
mod lbfgs;
mod objective;
mod options;

use rayon::prelude::*;

use crate::error::{FitError, Result};
use crate::law::{Law, Point};

pub use checks::{
    check_not_flat, check_sizes, free_params, min_points, min_sizes, out_of_bounds, FLAT_DATA,
};
use checks::{is_flat, FLAT};
pub use lbfgs::{run_start, StartOutcome};
pub use objective::{huber, huber_cost_grad, noise_delta, objective, rmsd_log, Prepared};
pub use options::{DeltaRule, FitOptions, LEAST_SQUARES_DELTA};

/// One fitted group.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// The law.
    pub law: Law,
    /// Best θ (log-scales and exponents; see [`crate::law`]).
    pub theta: Vec<f64>,
    /// Sum of Huber losses of the log residuals at `theta`.
    pub objective: f64,
    /// RMSD of log loss at `theta`.
    pub rmsd_log: f64,
    /// Points fitted.
    pub n_points: usize,
    /// Starts tried.
    pub starts: usize,
    /// Starts whose L-BFGS stopped on its tolerances.
    pub starts_converged: usize,
    /// Starts that ended finite and inside the law's bounds.
    pub starts_in_bounds: usize,
    /// Distinct local optima, best first (the best is `theta`): where bootstrap resamples
    /// restart.
    pub optima: Vec<Vec<f64>>,
    /// The Huber threshold the fit used (derived from the data under [`DeltaRule::Noise`]).
    pub huber_delta: f64,
}
/// Fits `points` from every start in `starts` (in parallel) and keeps the best in-bounds
/// end point. `group` names the group in errors.
pub fn fit_starts(
    law: Law,
    points: &[Point],
    starts: &[Vec<f64>],
    opts: &FitOptions,
    group: &str,
) -> Result<Fit> {
    fit_starts_with(law, points, starts, opts, group, true)
}

/// Refits a bootstrap resample, on the calling thread (resamples run in parallel above
/// it): point `i` counted `counts[i]` times, from `starts`. Returns the best θ.
pub fn fit_resample(
    law: Law,
    points: &[Point],
    counts: &[u32],
    starts: &[Vec<f64>],
    opts: &FitOptions,
    group: &str,
) -> Result<Vec<f64>> {
    let drawn: Vec<Point> = points
        .iter()
        .zip(counts)
        .filter(|(_, &c)| c > 0)
        .map(|(p, _)| *p)
        .collect();
    // A repeat weighs in the objective as often as it was drawn, evaluated once.
    let data = Prepared::weighted(points, counts);
    let total = counts.iter().map(|&c| c as usize).sum();
    fit_data(law, &drawn, &data, total, starts, opts, group, false).map(|f| f.theta)
}

fn fit_starts_with(
    law: Law,
    points: &[Point],
    starts: &[Vec<f64>],
    opts: &FitOptions,
    group: &str,
    parallel: bool,
) -> Result<Fit> {
    check_not_flat(points, group)?;
    fit_data(
        law,
        points,
        &Prepared::new(points),
        points.len(),
        starts,
        opts,
        group,
        parallel,
    )
}

/// The fit proper: `points` are the distinct points (for checks), `data` what the objective
/// sums over (with multiplicities), `total` the number of points counted with them.
#[allow(clippy::too_many_arguments)]
fn fit_data(
    law: Law,
    points: &[Point],
    data: &Prepared,
    total: usize,
    starts: &[Vec<f64>],
    opts: &FitOptions,
    group: &str,
    parallel: bool,
) -> Result<Fit> {
    opts.validate()?;
    if opts.delta_rule == DeltaRule::Noise {
        // Least squares first, from the given starts; then Huber at the threshold its
        // residuals give, from the least-squares optima.
        let ls = fit_data(
            law,
            points,
            data,
            total,
            starts,
            &opts.fixed(LEAST_SQUARES_DELTA),
            group,
            parallel,
        )?;
        let r: Vec<f64> = points
            .iter()
            .map(|p| law.log_pred(&ls.theta, p) - p.loss.ln())
            .collect();
        let fixed = opts.fixed(noise_delta(&r));
        // From the least-squares optima; should none of them end in bounds at the new
        // threshold, from every start again.
        let mut f = match fit_data(
            law, points, data, total, &ls.optima, &fixed, group, parallel,
        ) {
            Ok(f) => f,
            Err(FitError::NotConverged { .. }) => {
                fit_data(law, points, data, total, starts, &fixed, group, parallel)?
            }
            Err(e) => return Err(e),
        };
        f.starts = ls.starts;
        f.starts_converged = ls.starts_converged;
        f.starts_in_bounds = ls.starts_in_bounds;
        return Ok(f);
    }
    let min = min_points(law, opts);
    if total < min {
        return Err(FitError::TooFewPoints {
            group: group.to_string(),
            law: law.name(),
            n: total,
            min,
            free: free_params(law, opts),
        });
    }
    check_sizes(law, points, opts, group)?;
    let outcomes: Vec<StartOutcome> = if parallel {
        starts
            .par_iter()
            .map(|s| run_start(law, data, s, opts))
            .collect()
    } else {
        starts
            .iter()
            .map(|s| run_start(law, data, s, opts))
            .collect()
    };
    select(law, points, outcomes, opts, group)
}

/// Fits `points` from the law's whole start grid.
pub fn fit(law: Law, points: &[Point], opts: &FitOptions, group: &str) -> Result<Fit> {
    fit_starts(law, points, &law.start_grid(), opts, group)
}

/// How many distinct optima a fit keeps for restarts.
const KEEP_OPTIMA: usize = 8;

fn select(
    law: Law,
    points: &[Point],
    outcomes: Vec<StartOutcome>,
    opts: &FitOptions,
    group: &str,
) -> Result<Fit> {
    let starts = outcomes.len();
    let starts_converged = outcomes.iter().filter(|o| o.converged).count();
    let pinned = opts.pin_e.is_some();
    let mut ok: Vec<&StartOutcome> = outcomes
        .iter()
        .filter(|o| {
            o.cost < f64::MAX
                && out_of_bounds(law, &o.theta, pinned).is_none()
                && !is_flat(law, &o.theta, points)
        })
        .collect();
    if ok.is_empty() {
        let best = outcomes
            .iter()
            .filter(|o| o.cost < f64::MAX)
            .min_by(|a, b| a.cost.total_cmp(&b.cost));
        let detail = match best {
            None => format!("none of {starts} starts reached a finite objective"),
            Some(o) => match out_of_bounds(law, &o.theta, pinned) {
                Some((name, v, lo, hi)) => format!(
                    "none of {starts} starts ended inside the law's bounds; the best ran `{name}` to {v:.4} \
                     (bounds [{lo}, {hi}]); the data may not follow this law (try another law or --pin-e)"
                ),
                None => format!(
                    "every one of {starts} starts ended on a curve that is flat over the data (its \
                     predictions vary by less than {FLAT:e} relative): the loss does not fall with D \
                     (or N) here, so the law's parameters are not determined"
                ),
            },
        };
        return Err(FitError::NotConverged {
            group: group.to_string(),
            law: law.name(),
            detail,
        });
    }
    // Stable sort: ties keep grid order, so the result does not depend on thread timing.
    ok.sort_by(|a, b| a.cost.total_cmp(&b.cost));
    let starts_in_bounds = ok.len();
    let mut optima: Vec<Vec<f64>> = Vec::new();
    for o in &ok {
        let distinct = optima.iter().all(|t| {
            t.iter()
                .zip(&o.theta)
                .any(|(a, b)| (a - b).abs() > 1e-3 * (1.0 + a.abs()))
        });
        if distinct {
            optima.push(o.theta.clone());
            if optima.len() == KEEP_OPTIMA {
                break;
            }
        }
    }
    let theta = ok[0].theta.clone();
    Ok(Fit {
        law,
        objective: ok[0].cost,
        rmsd_log: rmsd_log(law, &theta, points),
        theta,
        n_points: points.len(),
        starts,
        starts_converged,
        starts_in_bounds,
        optima,
        huber_delta: opts.huber_delta,
    })
}
