//! A whole fit job: every group fitted from the grid, bootstrap intervals, the held-out
//! check, and the derived answers, gathered into one serializable report.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::bootstrap::{percentile_interval, resample_fits, BootstrapOptions};
use crate::derived;
use crate::effective::{self, BudgetSpeedup, Multiplier};
use crate::error::{FitError, Result};
use crate::fit::{check_not_flat, check_sizes, fit, free_params, min_points, Fit, FitOptions};
use crate::input::{group_name, Group};
use crate::law::{Law, Point};

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

/// Plateau of one curve (one model size for the joint law).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plateau {
    /// Model size of the curve (joint law).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<f64>,
    /// Asymptote of the curve in D.
    pub asymptote: f64,
    /// Tokens after which a doubling gains less than `eps` of the loss (`null`: beyond
    /// `search_limit`).
    pub doubling_tokens: Option<f64>,
    /// Its 95% interval.
    pub doubling_tokens_ci95: Option<[f64; 2]>,
    /// Tokens from which the loss is within `margin` of the asymptote.
    pub margin_tokens: Option<f64>,
    /// Its 95% interval.
    pub margin_tokens_ci95: Option<[f64; 2]>,
    /// The largest observed budget of the curve.
    pub largest_tokens: f64,
    /// Plateaus are searched up to this many tokens (`plateau_search` × `largest_tokens`).
    pub search_limit: f64,
    /// Whether the doubling plateau lies past the largest observed budget (or beyond the
    /// search limit): a reading of the fitted law beyond the data.
    pub doubling_extrapolated: bool,
    /// Whether the margin plateau lies past the largest observed budget (or beyond the
    /// search limit).
    pub margin_extrapolated: bool,
}

/// Compute-optimal split of one budget.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComputeOptimal {
    /// FLOP budget C = 6ND.
    pub flops: f64,
    /// N*.
    pub params: f64,
    /// Its 95% interval.
    pub params_ci95: Option<[f64; 2]>,
    /// D*.
    pub tokens: f64,
    /// Its 95% interval.
    pub tokens_ci95: Option<[f64; 2]>,
    /// Tokens per parameter, D*/N*.
    pub tokens_per_param: f64,
    /// L(N*, D*).
    pub loss: f64,
    /// Its 95% interval.
    pub loss_ci95: Option<[f64; 2]>,
    /// Whether N* or D* lies outside the observed sizes or budgets.
    pub extrapolated: bool,
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

/// Speed-up of one mixture over the baseline at one target loss.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Speedup {
    /// The family (group keys other than the baseline column).
    pub family: String,
    /// Baseline group.
    pub baseline: String,
    /// Mixture group.
    pub mixture: String,
    /// Index of the baseline group in `groups`.
    pub baseline_group: usize,
    /// Index of the mixture group in `groups`.
    pub mixture_group: usize,
    /// Model size the curves are read at (joint law).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<f64>,
    /// L*.
    pub target_loss: f64,
    /// D_baseline(L*).
    pub tokens_baseline: Option<f64>,
    /// D_mixture(L*).
    pub tokens_mixture: Option<f64>,
    /// D_baseline(L*) / D_mixture(L*).
    pub speedup: Option<f64>,
    /// Its 95% interval (paired resamples of the two fits).
    pub speedup_ci95: Option<[f64; 2]>,
    /// Whether either curve is read outside its observed budgets to reach L* (or never
    /// reaches it).
    pub extrapolated: bool,
    /// How far past the data, the larger of the two curves' ratios (1 inside).
    pub beyond_data: Option<f64>,
}

/// The optimal synthetic ratio at one (N, D).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OptimalRatio {
    /// The family (group keys other than the ratio column).
    pub family: String,
    /// N (joint law).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<f64>,
    /// D.
    pub tokens: f64,
    /// The ratios the model was fitted over.
    pub ratios: Vec<f64>,
    /// Indices in `groups` of the family's members, one per ratio run.
    pub members: Vec<usize>,
    /// argmin of the quadratic-in-ratio model of ln L̂ (see [`derived::optimal_ratio`]).
    pub optimal_ratio: Option<f64>,
    /// Its 95% interval.
    pub optimal_ratio_ci95: Option<[f64; 2]>,
    /// Always false: the optimum is searched within the observed ratios, at an observed
    /// (N, D).
    pub extrapolated: bool,
    /// Whether fewer than four ratios were run: a quadratic through three points always
    /// has a vertex, so the grid, not the data, then sets the answer.
    pub grid_determined: bool,
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

fn named(names: &[&str], values: &[f64]) -> BTreeMap<String, f64> {
    names
        .iter()
        .map(|n| n.to_string())
        .zip(values.iter().copied())
        .collect()
}

/// One group's fit and its resamples, before reporting.
struct Fitted {
    fit: Fit,
    resamples: Vec<Option<Vec<f64>>>,
}

fn interval(values: Vec<f64>, level: f64) -> Option<[f64; 2]> {
    percentile_interval(&values, level)
}

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
        let derived = derive(law, &f.theta, &ok, &g.points, opts);
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

/// Multipliers and per-budget speed-ups of every mixture over its family's baseline.
fn effective_answers(
    groups: &[Group],
    fitted: &[Fitted],
    (col, base_value): &(String, String),
    opts: &StudyOptions,
) -> Result<(Vec<Multiplier>, Vec<BudgetSpeedup>)> {
    let law = opts.law;
    let mut mults = Vec::new();
    let mut budgets = Vec::new();
    for (family, members) in families(groups, col)? {
        let Some(&(bi, _)) = members.iter().find(|(_, v)| v == base_value) else {
            continue;
        };
        let base = &groups[bi];
        let base_resamples: Vec<&Vec<f64>> = fitted[bi].resamples.iter().flatten().collect();
        for &(mi, _) in members.iter().filter(|(i, _)| *i != bi) {
            let mix = &groups[mi];
            let (bname, mname) = (base.name(), mix.name());
            let names = effective::Pair {
                family: &family,
                baseline: &bname,
                mixture: &mname,
                baseline_group: bi,
                mixture_group: mi,
            };
            let mut starts = fitted[bi].fit.optima.clone();
            starts.extend(fitted[mi].fit.optima.iter().cloned());
            // The joint fit uses the baseline's threshold: the baseline's law is the one read.
            mults.push(effective::multiplier(
                law,
                names,
                &base.points,
                &mix.points,
                &starts,
                &opts.fit.fixed(fitted[bi].fit.huber_delta),
                &opts.bootstrap,
            )?);
            budgets.extend(effective::budget_speedups(
                law,
                names,
                &base.points,
                &fitted[bi].fit.theta,
                &base_resamples,
                &mix.points,
                opts.bootstrap.level,
            ));
        }
    }
    Ok((mults, budgets))
}

fn validate(opts: &StudyOptions) -> Result<()> {
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
    if let Some(l) = opts
        .target_losses
        .iter()
        .find(|l| !(l.is_finite() && **l > 0.0))
    {
        return Err(FitError::option(
            "target-loss",
            format!("{l} must be a positive loss"),
        ));
    }
    if let Some(c) = opts
        .flops_budgets
        .iter()
        .find(|c| !(c.is_finite() && **c > 0.0))
    {
        return Err(FitError::option(
            "flops-budget",
            format!("{c} must be a positive FLOP count"),
        ));
    }
    if !opts.flops_budgets.is_empty() && !opts.law.uses_params() {
        return Err(FitError::option(
            "flops-budget",
            "compute-optimal sizes need the joint law (--law chinchilla)",
        ));
    }
    Ok(())
}

fn distinct(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v.dedup();
    v
}

/// Model sizes within this relative distance are one size (sizes read off plots, like
/// Epoch AI's, differ in their last digits).
const SAME_SIZE: f64 = 1e-3;
/// More distinct sizes than this, and curves are read at three sizes only.
const MAX_SIZES: usize = 6;

/// The model sizes at which curves in D are read for the joint law (plateaus, speed-ups):
/// each distinct size in the data, or, past [`MAX_SIZES`] of them, the smallest, the
/// geometric middle and the largest. `[None]` for one-variable laws.
fn curve_sizes(law: Law, points: &[Point]) -> Vec<Option<f64>> {
    if !law.uses_params() {
        return vec![None];
    }
    let mut sizes: Vec<f64> = Vec::new();
    for n in distinct(points.iter().map(|p| p.n).collect()) {
        if sizes.last().is_none_or(|&m| n / m - 1.0 >= SAME_SIZE) {
            sizes.push(n);
        }
    }
    if sizes.len() > MAX_SIZES {
        let (lo, hi) = (sizes[0], sizes[sizes.len() - 1]);
        sizes = vec![lo, (lo * hi).sqrt(), hi];
    }
    sizes.into_iter().map(Some).collect()
}

fn derive(
    law: Law,
    theta: &[f64],
    resamples: &[&Vec<f64>],
    points: &[Point],
    opts: &StudyOptions,
) -> Derived {
    let level = opts.bootstrap.level;
    let plateau = curve_sizes(law, points)
        .into_iter()
        .map(|n| {
            let nn = n.unwrap_or(1.0);
            // The largest budget at this size; a size read between the data's sizes (the
            // geometric middle of many) takes the largest budget of any size.
            let at_size = points
                .iter()
                .filter(|p| n.is_none_or(|n| (p.n / n - 1.0).abs() < SAME_SIZE))
                .map(|p| p.d)
                .fold(0.0, f64::max);
            let largest = if at_size > 0.0 {
                at_size
            } else {
                points.iter().map(|p| p.d).fold(0.0, f64::max)
            };
            let limit = opts.plateau_search * largest;
            let dbl = |t: &[f64]| derived::plateau_doubling(law, t, nn, opts.plateau_eps, limit);
            let mrg = |t: &[f64]| {
                derived::plateau_margin(law, t, nn, opts.plateau_margin).filter(|&d| d <= limit)
            };
            let past = |d: Option<f64>| d.is_none_or(|d| d > largest);
            Plateau {
                params: n,
                asymptote: derived::asymptote_in_d(law, theta, nn),
                doubling_tokens: dbl(theta),
                doubling_tokens_ci95: interval(
                    resamples.iter().filter_map(|t| dbl(t)).collect(),
                    level,
                ),
                margin_tokens: mrg(theta),
                margin_tokens_ci95: interval(
                    resamples.iter().filter_map(|t| mrg(t)).collect(),
                    level,
                ),
                largest_tokens: largest,
                search_limit: limit,
                doubling_extrapolated: past(dbl(theta)),
                margin_extrapolated: past(mrg(theta)),
            }
        })
        .collect();
    let mut compute_optimal = Vec::new();
    if law.uses_params() {
        let ns = effective::d_range(
            &points
                .iter()
                .map(|p| Point { d: p.n, ..*p })
                .collect::<Vec<_>>(),
        );
        let ds = effective::d_range(points);
        let budgets = if opts.flops_budgets.is_empty() {
            let cmax = points.iter().map(|p| 6.0 * p.n * p.d).fold(0.0, f64::max);
            vec![cmax, 10.0 * cmax, 100.0 * cmax]
        } else {
            opts.flops_budgets.clone()
        };
        for c in budgets {
            if let Some((n, d, l)) = derived::compute_optimal(theta, c) {
                let rs: Vec<(f64, f64, f64)> = resamples
                    .iter()
                    .filter_map(|t| derived::compute_optimal(t, c))
                    .collect();
                compute_optimal.push(ComputeOptimal {
                    flops: c,
                    params: n,
                    params_ci95: interval(rs.iter().map(|r| r.0).collect(), level),
                    tokens: d,
                    tokens_ci95: interval(rs.iter().map(|r| r.1).collect(), level),
                    tokens_per_param: d / n,
                    loss: l,
                    loss_ci95: interval(rs.iter().map(|r| r.2).collect(), level),
                    extrapolated: effective::beyond(n, ns) > 1.0 + 1e-9
                        || effective::beyond(d, ds) > 1.0 + 1e-9,
                });
            }
        }
    }
    Derived {
        plateau,
        compute_optimal,
    }
}

fn holdout_largest(
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

/// A family's name and its members: (group index, value of the varying column).
type Family = (String, Vec<(usize, String)>);

/// Families: groups that agree on every key but `col`, in order of first appearance, each
/// with its members' indices and their `col` values.
fn families(groups: &[Group], col: &str) -> Result<Vec<Family>> {
    let mut out: Vec<Family> = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        let Some(v) = g
            .keys
            .iter()
            .find(|(k, _)| k == col)
            .map(|(_, v)| v.clone())
        else {
            return Err(FitError::option(
                col,
                format!("column `{col}` must be one of the --group-by columns"),
            ));
        };
        let rest: Vec<(String, String)> =
            g.keys.iter().filter(|(k, _)| k != col).cloned().collect();
        let fam = group_name(&rest);
        match out.iter_mut().find(|(f, _)| *f == fam) {
            Some((_, m)) => m.push((i, v)),
            None => out.push((fam, vec![(i, v)])),
        }
    }
    Ok(out)
}

fn speedups(
    groups: &[Group],
    fitted: &[Fitted],
    (col, base_value): &(String, String),
    opts: &StudyOptions,
) -> Result<Vec<Speedup>> {
    let law = opts.law;
    let level = opts.bootstrap.level;
    let mut out = Vec::new();
    for (family, members) in families(groups, col)? {
        let Some(&(bi, _)) = members.iter().find(|(_, v)| v == base_value) else {
            continue;
        };
        let base = &fitted[bi];
        for n in curve_sizes(law, &groups[bi].points) {
            let nn = n.unwrap_or(1.0);
            let targets = if opts.target_losses.is_empty() {
                let dmax = groups[bi]
                    .points
                    .iter()
                    .filter(|p| n.is_none_or(|n| (p.n / n - 1.0).abs() < SAME_SIZE))
                    .map(|p| p.d)
                    .fold(0.0, f64::max);
                vec![law.predict(&base.fit.theta, nn, dmax)]
            } else {
                opts.target_losses.clone()
            };
            for &target in &targets {
                for &(mi, _) in members.iter().filter(|(i, _)| *i != bi) {
                    let mix = &fitted[mi];
                    let paired: Vec<f64> = base
                        .resamples
                        .iter()
                        .zip(&mix.resamples)
                        .filter_map(|(b, m)| {
                            derived::speedup(law, b.as_ref()?, m.as_ref()?, nn, target)
                        })
                        .collect();
                    let at = |g: &Group| {
                        let pts: Vec<Point> = g
                            .points
                            .iter()
                            .copied()
                            .filter(|p| n.is_none_or(|n| (p.n / n - 1.0).abs() < SAME_SIZE))
                            .collect();
                        effective::d_range(if pts.is_empty() { &g.points } else { &pts })
                    };
                    let tb = derived::tokens_for_loss(law, &base.fit.theta, nn, target);
                    let tm = derived::tokens_for_loss(law, &mix.fit.theta, nn, target);
                    let far = tb.zip(tm).map(|(tb, tm)| {
                        effective::beyond(tb, at(&groups[bi]))
                            .max(effective::beyond(tm, at(&groups[mi])))
                    });
                    out.push(Speedup {
                        extrapolated: far.is_none_or(|f| f > 1.0 + 1e-9),
                        beyond_data: far,
                        family: family.clone(),
                        baseline: groups[bi].name(),
                        mixture: groups[mi].name(),
                        baseline_group: bi,
                        mixture_group: mi,
                        params: n,
                        target_loss: target,
                        tokens_baseline: derived::tokens_for_loss(law, &base.fit.theta, nn, target),
                        tokens_mixture: derived::tokens_for_loss(law, &mix.fit.theta, nn, target),
                        speedup: derived::speedup(law, &base.fit.theta, &mix.fit.theta, nn, target),
                        speedup_ci95: interval(paired, level),
                    });
                }
            }
        }
    }
    Ok(out)
}

fn optimal_ratios(
    groups: &[Group],
    fitted: &[Fitted],
    col: &str,
    opts: &StudyOptions,
) -> Result<Vec<OptimalRatio>> {
    let law = opts.law;
    let level = opts.bootstrap.level;
    let mut out = Vec::new();
    for (family, members) in families(groups, col)? {
        let mut rs = Vec::new();
        for (i, v) in &members {
            let r: f64 = v.parse().map_err(|_| {
                FitError::option(
                    col,
                    format!("group {}: ratio {v:?} is not a number", groups[*i].name()),
                )
            })?;
            rs.push((*i, r));
        }
        if distinct(rs.iter().map(|r| r.1).collect()).len() < 3 {
            return Err(FitError::option(
                col,
                format!(
                    "family {family}: {} distinct ratios; the quadratic model of loss against ratio needs at least 3",
                    distinct(rs.iter().map(|r| r.1).collect()).len()
                ),
            ));
        }
        let mut at: Vec<(f64, f64)> = members
            .iter()
            .flat_map(|(i, _)| groups[*i].points.iter().map(|p| (p.n, p.d)))
            .collect();
        at.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        at.dedup();
        let resamples = rs
            .iter()
            .map(|(i, _)| fitted[*i].resamples.len())
            .min()
            .unwrap_or(0);
        for (n, d) in at {
            let pairs = |thetas: &[Option<&Vec<f64>>]| -> Option<Vec<(f64, f64)>> {
                rs.iter()
                    .zip(thetas)
                    .map(|((_, r), t)| {
                        Some((*r, law.log_pred(t.as_ref()?, &Point { d, n, loss: 1.0 })))
                    })
                    .collect()
            };
            let best: Vec<Option<&Vec<f64>>> = rs
                .iter()
                .map(|(i, _)| Some(&fitted[*i].fit.theta))
                .collect();
            let point = pairs(&best).and_then(|p| derived::optimal_ratio(&p));
            let boot: Vec<f64> = (0..resamples)
                .filter_map(|k| {
                    let th: Vec<Option<&Vec<f64>>> = rs
                        .iter()
                        .map(|(i, _)| fitted[*i].resamples[k].as_ref())
                        .collect();
                    derived::optimal_ratio(&pairs(&th)?)
                })
                .collect();
            out.push(OptimalRatio {
                family: family.clone(),
                params: law.uses_params().then_some(n),
                tokens: d,
                ratios: distinct(rs.iter().map(|r| r.1).collect()),
                members: rs.iter().map(|r| r.0).collect(),
                optimal_ratio: point,
                optimal_ratio_ci95: interval(boot, level),
                extrapolated: false,
                grid_determined: distinct(rs.iter().map(|r| r.1).collect()).len() < 4,
            });
        }
    }
    Ok(out)
}
