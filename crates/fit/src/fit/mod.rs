//! Robust multi-start fitting: the Huber objective on log residuals with its analytic
//! gradient, L-BFGS from `argmin` started from every point of a grid in parallel, the best
//! in-bounds fit kept.

use std::cell::RefCell;

use argmin::core::{CostFunction, Executor, Gradient, State, TerminationReason};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{FitError, Result};
use crate::law::{Law, Point};

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

/// Points in the form the objective reads: logs precomputed, with multiplicities (a
/// bootstrap resample repeats points; weights avoid evaluating a repeat twice).
#[derive(Debug, Clone)]
pub struct Prepared {
    ln_n: Vec<f64>,
    ln_d: Vec<f64>,
    ln_loss: Vec<f64>,
    weight: Vec<f64>,
}

impl Prepared {
    /// All points, each once.
    pub fn new(points: &[Point]) -> Self {
        Self::weighted(points, &vec![1; points.len()])
    }

    /// Point `i` counted `counts[i]` times (0 drops it).
    pub fn weighted(points: &[Point], counts: &[u32]) -> Self {
        let mut p = Prepared {
            ln_n: Vec::with_capacity(points.len()),
            ln_d: Vec::with_capacity(points.len()),
            ln_loss: Vec::with_capacity(points.len()),
            weight: Vec::with_capacity(points.len()),
        };
        for (pt, &c) in points.iter().zip(counts) {
            if c > 0 {
                p.ln_n.push(pt.n.ln());
                p.ln_d.push(pt.d.ln());
                p.ln_loss.push(pt.loss.ln());
                p.weight.push(c as f64);
            }
        }
        p
    }
}

/// A point with its objective and gradient.
type Evaluated = (Vec<f64>, f64, Vec<f64>);

/// The objective of one fit: sum of Huber losses of `ln L̂ − ln L`, over the free
/// coordinates of θ (all but `e` when E is pinned).
struct Objective<'a> {
    law: Law,
    data: &'a Prepared,
    delta: f64,
    /// θ with the pinned coordinate filled in; free coordinates are overwritten.
    template: Vec<f64>,
    free: Vec<usize>,
    /// Last (free θ, cost, gradient): L-BFGS asks for the cost and then the gradient at
    /// the same point, and both come from one pass over the data.
    cache: RefCell<Option<Evaluated>>,
}

impl Objective<'_> {
    fn eval(&self, x: &[f64]) -> (f64, Vec<f64>) {
        if let Some((cx, c, g)) = self.cache.borrow().as_ref() {
            if cx.as_slice() == x {
                return (*c, g.clone());
            }
        }
        let mut theta = self.template.clone();
        for (&i, &v) in self.free.iter().zip(x) {
            theta[i] = v;
        }
        let (cost, full) = huber_cost_grad(self.law, &theta, self.data, self.delta);
        let grad: Vec<f64> = self.free.iter().map(|&i| full[i]).collect();
        // A non-finite cost (overflow far from the data) must read as "worse", never NaN,
        // or the line search would accept it.
        let cost = if cost.is_finite() { cost } else { f64::MAX };
        *self.cache.borrow_mut() = Some((x.to_vec(), cost, grad.clone()));
        (cost, grad)
    }
}

impl CostFunction for Objective<'_> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, x: &Vec<f64>) -> std::result::Result<f64, argmin::core::Error> {
        Ok(self.eval(x).0)
    }
}

impl Gradient for Objective<'_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, x: &Vec<f64>) -> std::result::Result<Vec<f64>, argmin::core::Error> {
        let g = self.eval(x).1;
        Ok(g.into_iter()
            .map(|v| if v.is_finite() { v } else { 0.0 })
            .collect())
    }
}

/// Huber loss of one residual: `r²/2` within `delta`, `delta·(|r| − delta/2)` beyond (the
/// form of SciPy's `special.huber`, which Epoch AI's objective sums).
pub fn huber(r: f64, delta: f64) -> f64 {
    let a = r.abs();
    if a <= delta {
        0.5 * r * r
    } else {
        delta * (a - 0.5 * delta)
    }
}

/// The objective and its gradient with respect to the whole θ.
pub fn huber_cost_grad(law: Law, theta: &[f64], data: &Prepared, delta: f64) -> (f64, Vec<f64>) {
    let k = theta.len();
    let mut grad = vec![0.0; k];
    let mut g = [0.0; 5];
    let mut cost = 0.0;
    for i in 0..data.ln_loss.len() {
        let pred = law.log_pred_grad(theta, data.ln_n[i], data.ln_d[i], &mut g[..k]);
        let r = pred - data.ln_loss[i];
        let w = data.weight[i];
        let psi = if r.abs() <= delta {
            cost += w * 0.5 * r * r;
            r
        } else {
            cost += w * delta * (r.abs() - 0.5 * delta);
            delta * r.signum()
        };
        for j in 0..k {
            grad[j] += w * psi * g[j];
        }
    }
    (cost, grad)
}

/// The objective alone at θ (all points once).
pub fn objective(law: Law, theta: &[f64], points: &[Point], delta: f64) -> f64 {
    huber_cost_grad(law, theta, &Prepared::new(points), delta).0
}

/// Root mean square of the log residuals, `sqrt(mean((ln L̂ − ln L)²))`: the goodness of
/// fit Lin et al. 2024 report.
pub fn rmsd_log(law: Law, theta: &[f64], points: &[Point]) -> f64 {
    let s: f64 = points
        .iter()
        .map(|p| {
            let r = law.log_pred(theta, p) - p.loss.ln();
            r * r
        })
        .sum();
    (s / points.len() as f64).sqrt()
}

/// Where one start ended.
#[derive(Debug, Clone, PartialEq)]
pub struct StartOutcome {
    /// The start, θ.
    pub start: Vec<f64>,
    /// The end point, θ (the pinned coordinate included).
    pub theta: Vec<f64>,
    /// Objective at `theta` (`f64::MAX` when the start went nowhere finite).
    pub cost: f64,
    /// L-BFGS iterations.
    pub iters: u64,
    /// Whether L-BFGS stopped on its tolerances (rather than the iteration cap or a line
    /// search that could not go on).
    pub converged: bool,
}

/// Runs L-BFGS from one start.
pub fn run_start(law: Law, data: &Prepared, start: &[f64], opts: &FitOptions) -> StartOutcome {
    let mut template = start.to_vec();
    let mut free: Vec<usize> = (0..start.len()).collect();
    if let Some(e) = opts.pin_e {
        template[law.e_index()] = e.ln();
        free.retain(|&i| i != law.e_index());
    }
    let x0: Vec<f64> = free.iter().map(|&i| template[i]).collect();
    let problem = Objective {
        law,
        data,
        delta: opts.huber_delta,
        template: template.clone(),
        free: free.clone(),
        cache: RefCell::new(None),
    };
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), opts.memory)
        .with_tolerance_grad(opts.tol_grad)
        .and_then(|s| s.with_tolerance_cost(opts.tol_cost));
    let outcome = solver.and_then(|solver| {
        Executor::new(problem, solver)
            .configure(|state| state.param(x0.clone()).max_iters(opts.max_iters))
            .timer(false)
            .run()
    });
    let (x, cost, iters, converged) = match outcome {
        Ok(mut res) => {
            let state = &mut res.state;
            let iters = state.get_iter();
            let converged = matches!(
                state.get_termination_reason(),
                Some(TerminationReason::SolverConverged)
            );
            let cost = state.get_best_cost();
            let x = state.take_best_param().unwrap_or_else(|| x0.clone());
            (x, cost, iters, converged)
        }
        Err(_) => (x0.clone(), f64::MAX, 0, false),
    };
    let mut theta = template;
    for (&i, &v) in free.iter().zip(&x) {
        theta[i] = v;
    }
    let cost = if cost.is_finite() { cost } else { f64::MAX };
    StartOutcome {
        start: start.to_vec(),
        theta,
        cost,
        iters,
        converged,
    }
}

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

/// The Huber threshold scaled to the noise of the residuals `r` ([`DeltaRule::Noise`]).
pub fn noise_delta(r: &[f64]) -> f64 {
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        }
    };
    let mut v = r.to_vec();
    if v.is_empty() {
        return 1e-4;
    }
    let m = median(&mut v);
    let mut dev: Vec<f64> = r.iter().map(|x| (x - m).abs()).collect();
    let sigma = 1.4826 * median(&mut dev);
    (1.345 * sigma).max(1e-4)
}

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
const FLAT: f64 = 1e-4;

/// Whether the curve at θ is flat over the data: a law with no decline to fit has parameters
/// that run off along a flat valley (B → 0 or beta → ∞) wherever the optimizer stops.
fn is_flat(law: Law, theta: &[f64], points: &[Point]) -> bool {
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
