//! A whole fit job: every group fitted from the grid, bootstrap intervals, the held-out
//! check, and the derived answers, gathered into one serializable report.
//!
//! - `options`: the job's options and their bounds;
//! - `holdout`: the held-out check;
//! - `plateau`, `compute_optimal`: each group's derived answers;
//! - `speedup`, `ratio`, `multiplier`: answers that compare groups (speed-ups at target
//!   losses, optimal ratios, effective-data multipliers);
//! - `fitted`, `curves`: a group's fit with its resamples, families and the sizes curves are
//!   read at.

mod compute_optimal;
mod curves;
mod fitted;
mod holdout;
mod multiplier;
mod options;
mod plateau;
mod ratio;
mod speedup;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::bootstrap::resample_fits;
use crate::effective::{BudgetSpeedup, Multiplier};
use crate::error::{FitError, Result};
use crate::fit::{check_not_flat, check_sizes, fit, free_params, min_points};
use crate::input::Group;
use crate::law::{Law, Point};

use compute_optimal::compute_optimal_splits;
pub use compute_optimal::ComputeOptimal;
use fitted::{interval, named, Fitted, GroupFit};
use holdout::holdout_largest;
pub use holdout::{HeldOutPoint, HoldoutReport};
use multiplier::effective_answers;
use options::validate;
pub use options::{Holdout, StudyOptions};
use plateau::plateaus;
pub use plateau::Plateau;
use ratio::optimal_ratios;
pub use ratio::OptimalRatio;
use speedup::speedups;
pub use speedup::Speedup;

/// The start grid as recorded with each fit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GridInfo {
    /// Values of each θ coordinate; starts are their product.
    pub axes: BTreeMap<String, Vec<f64>>,
    /// Number of starts.
    pub starts: usize,
    /// How bootstrap resamples restart.
    pub bootstrap_restarts: &'static str,
}

/// Derived answers of one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Derived {
    /// Plateaus: one curve, or for the joint law one per model size in the data (three
    /// sizes, smallest, geometric middle and largest, when there are more than six).
    pub plateau: Vec<Plateau>,
    /// Compute-optimal splits (joint law only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub compute_optimal: Vec<ComputeOptimal>,
}

/// What the starts of one group's grid did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StartCounts {
    /// Starts tried.
    pub tried: usize,
    /// Starts whose L-BFGS stopped on its tolerances.
    pub converged: usize,
    /// Starts that ended finite, inside the law's bounds, on a curve not flat over the data.
    pub in_bounds: usize,
}

/// Bootstrap resamples of one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ResampleCounts {
    /// Resamples drawn.
    pub drawn: usize,
    /// Resamples that fitted (a resample with too few distinct sizes does not).
    pub fitted: usize,
}

/// One fitted group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupReport {
    /// The group's `column: value` pairs.
    pub group: BTreeMap<String, String>,
    /// `col=value,…` or `all`.
    pub name: String,
    /// The law.
    pub law: Law,
    /// The law's parameters, named as in its form.
    pub params: BTreeMap<String, f64>,
    /// θ, the fitted log-parametrized vector.
    pub theta: BTreeMap<String, f64>,
    /// Sum of Huber losses of log residuals.
    pub objective: f64,
    /// The Huber threshold of this fit (scaled to the group's noise by default).
    pub huber_delta: f64,
    /// RMSD of log loss.
    pub rmsd_log: f64,
    /// Points fitted.
    pub n_points: usize,
    /// What the starts of the grid did.
    pub starts: StartCounts,
    /// Parameters whose θ coordinate sits at a bound (within 0.05), or `E` when it has
    /// collapsed below 0.1% of the smallest loss: such a parameter is not determined by the
    /// data (E → 0, an exponent at 4), and the fit is labelled rather than read as a result.
    pub at_bound: Vec<String>,
    /// 95% (or `level`) bootstrap intervals of every parameter (empty without bootstrap).
    pub ci95: BTreeMap<String, [f64; 2]>,
    /// Bootstrap resamples drawn, and how many of them fitted.
    pub bootstrap: ResampleCounts,
    /// Held-out check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holdout: Option<HoldoutReport>,
    /// Derived answers.
    pub derived: Derived,
}

/// A whole fit job's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StudyReport {
    /// The law.
    pub law: Law,
    /// Its form.
    pub formula: &'static str,
    /// The options.
    pub options: StudyOptions,
    /// The start grid.
    pub start_grid: GridInfo,
    /// The optimizer.
    pub optimizer: &'static str,
    /// One entry per group.
    pub groups: Vec<GroupReport>,
    /// Speed-ups over the baseline.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub speedups: Vec<Speedup>,
    /// Optimal ratios.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub optimal_ratios: Vec<OptimalRatio>,
    /// Effective-data multipliers over the baseline, `L_mix(D) = L_base(k·D)`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub multipliers: Vec<Multiplier>,
    /// Speed-ups at each observed mixture budget, read off the baseline's curve.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub budget_speedups: Vec<BudgetSpeedup>,
}

/// The optimizer, as recorded.
pub const OPTIMIZER: &str =
    "argmin 0.11 L-BFGS with More-Thuente line search, analytic gradients, f64";

/// Runs the whole job on `groups`.
pub fn run_study(groups: &[Group], opts: &StudyOptions) -> Result<StudyReport> {
    validate(opts)?;
    let law = opts.law;
    let level = opts.bootstrap.level;
    // Every group's size is checked before any fitting starts: a bad group fails fast.
    let min = min_points(law, &opts.fit);
    if let Some(g) = groups.iter().find(|g| g.points.len() < min) {
        return Err(FitError::TooFewPoints {
            group: g.name(),
            law: law.name(),
            n: g.points.len(),
            min,
            free: free_params(law, &opts.fit),
        });
    }
    for g in groups {
        check_sizes(law, &g.points, &opts.fit, &g.name())?;
        check_not_flat(&g.points, &g.name())?;
    }
    let mut fitted = Vec::with_capacity(groups.len());
    let mut reports = Vec::with_capacity(groups.len());
    for g in groups {
        let name = g.name();
        let f = fit(law, &g.points, &opts.fit, &name)?;
        // The group's threshold, resolved by its fit, serves its resamples and checks.
        let gopts = opts.fit.fixed(f.huber_delta);
        let resamples = if opts.bootstrap.resamples > 0 {
            resample_fits(law, &g.points, &f.optima, &gopts, &opts.bootstrap, &name)
        } else {
            Vec::new()
        };
        let ok: Vec<&Vec<f64>> = resamples.iter().flatten().collect();
        let mut ci95 = BTreeMap::new();
        if !ok.is_empty() {
            for (j, pname) in law.param_names().iter().enumerate() {
                let vals: Vec<f64> = ok.iter().map(|t| law.params(t)[j]).collect();
                if let Some(iv) = interval(vals, level) {
                    ci95.insert(pname.to_string(), iv);
                }
            }
        }
        let holdout = match opts.holdout {
            Holdout::None => None,
            Holdout::Largest => Some(holdout_largest(law, &g.points, &gopts, &name)?),
        };
        let group_fit = GroupFit {
            law,
            theta: &f.theta,
            resamples: &ok,
            points: &g.points,
        };
        let derived = derive(&group_fit, opts);
        reports.push(GroupReport {
            group: g.keys.iter().cloned().collect(),
            name,
            law,
            params: named(law.param_names(), &law.params(&f.theta)),
            theta: named(law.theta_names(), &f.theta),
            objective: f.objective,
            huber_delta: f.huber_delta,
            rmsd_log: f.rmsd_log,
            n_points: f.n_points,
            starts: StartCounts {
                tried: f.starts,
                converged: f.starts_converged,
                in_bounds: f.starts_in_bounds,
            },
            at_bound: at_bound(law, &f.theta, opts.fit.pin_e.is_some(), &g.points),
            ci95,
            bootstrap: ResampleCounts {
                drawn: resamples.len(),
                fitted: ok.len(),
            },
            holdout,
            derived,
        });
        fitted.push(Fitted { fit: f, resamples });
    }
    let speedups = match &opts.baseline {
        Some(b) => speedups(groups, &fitted, b, opts)?,
        None => Vec::new(),
    };
    let optimal_ratios = match &opts.ratio_col {
        Some(c) => optimal_ratios(groups, &fitted, c, opts)?,
        None => Vec::new(),
    };
    let (multipliers, budget_speedups) = match &opts.baseline {
        Some(b) => effective_answers(groups, &fitted, b, opts)?,
        None => (Vec::new(), Vec::new()),
    };
    let axes = law
        .theta_names()
        .iter()
        .map(|n| n.to_string())
        .zip(law.grid_axes())
        .collect();
    Ok(StudyReport {
        law,
        formula: law.formula(),
        options: opts.clone(),
        start_grid: GridInfo {
            axes,
            starts: law.start_grid().len(),
            bootstrap_restarts: "each resample restarts from the full-data fit's distinct local optima (the best and up to 7 more)",
        },
        optimizer: OPTIMIZER,
        groups: reports,
        speedups,
        optimal_ratios,
        multipliers,
        budget_speedups,
    })
}

/// Names (as in the law's form) of the parameters whose θ coordinate is within 0.05 of a
/// bound, E skipped when pinned; and `E`
/// when the asymptote has collapsed below 0.1% of the smallest observed loss, where it is
/// as undetermined as at its bound (an irreducible loss of ~0 is no physical answer).
fn at_bound(law: Law, theta: &[f64], pinned_e: bool, points: &[Point]) -> Vec<String> {
    let min_loss = points.iter().map(|p| p.loss).fold(f64::INFINITY, f64::min);
    law.bounds()
        .iter()
        .zip(theta)
        .enumerate()
        .filter(|&(i, (b, &v))| {
            let e = i == law.e_index();
            !(pinned_e && e)
                && ((v - b.lo).abs() < 0.05
                    || (b.hi - v).abs() < 0.05
                    || (e && v.exp() < 1e-3 * min_loss))
        })
        .map(|(i, _)| law.param_names()[i].to_string())
        .collect()
}

/// Plateaus and compute-optimal splits of one group, from its fit and resamples.
fn derive(group: &GroupFit, opts: &StudyOptions) -> Derived {
    Derived {
        plateau: plateaus(group, opts),
        compute_optimal: compute_optimal_splits(group, opts),
    }
}
