//! How much data a mixture is worth, read where the data are: the effective-data multiplier
//! of Hernandez et al. 2021 ("Scaling Laws for Transfer"), `L_mix(D) = L_base(k·D)` with the
//! baseline's law shared and one `k` fitted from every point, and the speed-up at each
//! observed mixture budget, `D_base(L_mix(D_m)) / D_m`, marked extrapolated where the
//! baseline's curve is read past its own data.
//!
//! The multiplier is fitted by profiling: for a given `ln k` a mixture point at `D` is a
//! baseline point at `k·D`, so the inner problem is an ordinary fit of the law to the
//! baseline's points and the mapped mixture points (from the two groups' own optima); the
//! outer problem is one-dimensional in `ln k` (a grid over `k ∈ [1e-3, 1e3]`, then golden
//! section). Intervals come from a residual bootstrap of the joint fit.

use rayon::prelude::*;
use serde::Serialize;

use crate::bootstrap::{fnv1a, percentile_interval, BootstrapOptions, SplitMix64};
use crate::error::{FitError, Result};
use crate::fit::{fit_starts, free_params, Fit, FitOptions};
use crate::law::{Law, Point};

/// Largest |ln k| searched: k from 1/1000 to 1000. A multiplier outside that range is not a
/// mixture effect a sweep of doubling budgets can measure.
pub const LN_K_MAX: f64 = 6.907_755_278_982_137;

/// Grid points of the outer search over `ln k`.
const GRID: usize = 31;

/// Which two groups a comparison reads: their names, for people, and their indices in the
/// study's `groups` (and its input), for programs, which need not parse names back. Written
/// into fit.json as the first fields of each comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pair {
    /// The family (group keys other than the baseline column).
    pub family: String,
    /// Baseline group.
    pub baseline: String,
    /// Mixture group.
    pub mixture: String,
    /// Index of the baseline group in the study's `groups`.
    pub baseline_group: usize,
    /// Index of the mixture group in the study's `groups`.
    pub mixture_group: usize,
}

/// One mixture's effective-data multiplier over the baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Multiplier {
    /// The two groups compared.
    #[serde(flatten)]
    pub pair: Pair,
    /// `k` in `L_mix(D) = L_base(k·D)`: the mixture's D tokens are worth `k·D` of the
    /// baseline's. `None` when the fit puts `k` at the edge of `[1e-3, 1e3]` (unidentified).
    pub k: Option<f64>,
    /// 95% (or `level`) residual-bootstrap interval of `k`.
    pub ci95: Option<[f64; 2]>,
    /// Whether the mixture's points, mapped to `k·D`, lie past the baseline's observed token
    /// range, so that `k` rests on the baseline's law read beyond its data.
    pub extrapolated: bool,
    /// How far past: the largest of `max(k·D_mix) / max(D_base)` and
    /// `min(D_base) / min(k·D_mix)`; 1 inside the data.
    pub beyond_data: f64,
    /// RMSD of log loss of the joint fit over both groups' points.
    pub rmsd_log: f64,
    /// Points of the joint fit (baseline and mixture).
    pub n_points: usize,
    /// Bootstrap resamples drawn and fitted.
    pub resamples: [usize; 2],
}

/// The speed-up at one observed mixture budget.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetSpeedup {
    /// The two groups compared.
    #[serde(flatten)]
    pub pair: Pair,
    /// Model size (joint law).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<f64>,
    /// The mixture's budget D_m.
    pub tokens: f64,
    /// The mixture's observed loss there (mean over its points at D_m: seeds, repeats).
    pub loss: f64,
    /// Tokens the baseline's fitted curve needs for that loss; `None` below its asymptote.
    pub tokens_baseline: Option<f64>,
    /// `tokens_baseline / tokens`.
    pub speedup: Option<f64>,
    /// 95% interval over the baseline fit's bootstrap resamples.
    pub speedup_ci95: Option<[f64; 2]>,
    /// Whether `tokens_baseline` lies outside the baseline's observed token range (or does
    /// not exist): the speed-up then reads the baseline's curve past its data.
    pub extrapolated: bool,
    /// How far past: `tokens_baseline / max(D_base)` above the data, `min(D_base) /
    /// tokens_baseline` below it; 1 inside; `None` when the baseline never reaches the loss.
    pub beyond_data: Option<f64>,
}

/// Smallest and largest D of `points`.
pub fn d_range(points: &[Point]) -> (f64, f64) {
    points.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), p| {
        (lo.min(p.d), hi.max(p.d))
    })
}

/// How far `d` lies outside `[lo, hi]`, as a ratio ≥ 1 (1 inside).
pub fn beyond(d: f64, (lo, hi): (f64, f64)) -> f64 {
    if d > hi {
        d / hi
    } else if d < lo {
        lo / d
    } else {
        1.0
    }
}

/// Relative slack on "inside the data": a budget equal to the largest observed one, read
/// back through a fitted curve, lands within rounding of it.
const INSIDE: f64 = 1.0 + 1e-9;

fn mapped(base: &[Point], mix: &[Point], ln_k: f64) -> Vec<Point> {
    let k = ln_k.exp();
    base.iter()
        .copied()
        .chain(mix.iter().map(|p| Point { d: p.d * k, ..*p }))
        .collect()
}

/// The inner fit at one `ln k`: `None` when no start ends in bounds.
fn profile(
    law: Law,
    base: &[Point],
    mix: &[Point],
    ln_k: f64,
    starts: &[Vec<f64>],
    opts: &FitOptions,
    group: &str,
) -> Option<Fit> {
    fit_starts(law, &mapped(base, mix, ln_k), starts, opts, group).ok()
}

/// Minimizes `f` over `[lo, hi]` by a grid of `n` points and `iters` golden-section steps
/// around the best (each shrinks the bracket by 0.618: 25 steps take a bracket of two grid
/// cells in ln k to below 1e-5); returns `(x, f(x), whether the best grid point was an end)`.
fn minimize_1d(
    f: &(dyn Fn(f64) -> f64 + Sync),
    lo: f64,
    hi: f64,
    n: usize,
    iters: usize,
) -> (f64, f64, bool) {
    let xs: Vec<f64> = (0..n)
        .map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64)
        .collect();
    let ys: Vec<f64> = xs.par_iter().map(|&x| f(x)).collect();
    let (i, _) = ys
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .expect("a grid");
    let at_edge = i == 0 || i == n - 1;
    let (mut a, mut b) = (xs[i.saturating_sub(1)], xs[(i + 1).min(n - 1)]);
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut c, mut d) = (b - g * (b - a), a + g * (b - a));
    let (mut fc, mut fd) = (f(c), f(d));
    for _ in 0..iters {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - g * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + g * (b - a);
            fd = f(d);
        }
    }
    let (x, y) = if fc < fd { (c, fc) } else { (d, fd) };
    if y <= ys[i] {
        (x, y, at_edge)
    } else {
        (xs[i], ys[i], at_edge)
    }
}

/// The joint fit of `L_mix(D) = L_base(k·D)`: `(ln k, the fit, k at the search's edge)`.
pub fn fit_multiplier(
    law: Law,
    base: &[Point],
    mix: &[Point],
    starts: &[Vec<f64>],
    opts: &FitOptions,
    group: &str,
) -> Result<(f64, Fit, bool)> {
    let cost = |ln_k: f64| {
        profile(law, base, mix, ln_k, starts, opts, group).map_or(f64::INFINITY, |f| f.objective)
    };
    let (ln_k, _, edge) = minimize_1d(&cost, -LN_K_MAX, LN_K_MAX, GRID, 25);
    let fit = profile(law, base, mix, ln_k, starts, opts, group).ok_or_else(|| {
        FitError::NotConverged {
            group: group.to_string(),
            law: law.name(),
            detail: "the joint fit of the baseline and the mixture (L_mix(D) = L_base(k·D)) \
                     found no fit inside the law's bounds for any k in [1e-3, 1e3]"
                .into(),
        }
    })?;
    let edge = edge || ln_k.abs() > LN_K_MAX - 1e-6;
    Ok((ln_k, fit, edge))
}

/// Residual bootstrap of the multiplier: each resample adds log residuals of the joint fit,
/// drawn with replacement (scaled by `sqrt(n/(n−p))` for the fitted parameters), to its
/// predictions and refits `k` near the estimate (`k̂/10` to `10·k̂`) from the joint optimum.
/// Returns the resampled `k`s that fitted.
#[allow(clippy::too_many_arguments)]
pub fn bootstrap_multiplier(
    law: Law,
    base: &[Point],
    mix: &[Point],
    ln_k: f64,
    fit: &Fit,
    opts: &FitOptions,
    boot: &BootstrapOptions,
    group: &str,
) -> Vec<f64> {
    let all = mapped(base, mix, ln_k);
    let preds: Vec<f64> = all.iter().map(|p| law.log_pred(&fit.theta, p)).collect();
    let n = all.len();
    let p = free_params(law, opts) + 1;
    let scale = if n > p {
        (n as f64 / (n - p) as f64).sqrt()
    } else {
        1.0
    };
    let resid: Vec<f64> = all
        .iter()
        .zip(&preds)
        .map(|(pt, lp)| (pt.loss.ln() - lp) * scale)
        .collect();
    let nb = base.len();
    let seed = boot.seed ^ fnv1a(group) ^ 0x5EED_4B1D;
    (0..boot.resamples)
        .into_par_iter()
        .filter_map(|r| {
            let mut rng =
                SplitMix64::new(seed.wrapping_add((r as u64).wrapping_mul(0xA24B_AED4_963E_E407)));
            let mut draw = |i: usize, pt: &Point| Point {
                loss: (preds[i] + resid[rng.below(n)]).exp(),
                ..*pt
            };
            let b: Vec<Point> = base.iter().enumerate().map(|(i, pt)| draw(i, pt)).collect();
            let m: Vec<Point> = mix
                .iter()
                .enumerate()
                .map(|(i, pt)| draw(nb + i, pt))
                .collect();
            let starts = std::slice::from_ref(&fit.theta);
            let cost = |x: f64| {
                profile(law, &b, &m, x, starts, opts, group).map_or(f64::INFINITY, |f| f.objective)
            };
            let width = std::f64::consts::LN_10;
            let (x, y, _) = minimize_1d(&cost, ln_k - width, ln_k + width, 9, 16);
            y.is_finite().then(|| x.exp())
        })
        .collect()
}

/// The multiplier of `mix` over `base` with its interval and extrapolation marks.
#[allow(clippy::too_many_arguments)]
pub fn multiplier(
    law: Law,
    pair: &Pair,
    base: &[Point],
    mix: &[Point],
    starts: &[Vec<f64>],
    opts: &FitOptions,
    boot: &BootstrapOptions,
) -> Result<Multiplier> {
    let group = format!(
        "{} over {} (effective-data multiplier)",
        pair.mixture, pair.baseline
    );
    let (ln_k, fit, edge) = fit_multiplier(law, base, mix, starts, opts, &group)?;
    let k = ln_k.exp();
    let ks = if edge {
        Vec::new()
    } else {
        bootstrap_multiplier(law, base, mix, ln_k, &fit, opts, boot, &group)
    };
    let range = d_range(base);
    let (mlo, mhi) = d_range(mix);
    let far = beyond(k * mhi, range).max(beyond(k * mlo, range));
    Ok(Multiplier {
        pair: pair.clone(),
        k: (!edge).then_some(k),
        ci95: percentile_interval(&ks, boot.level),
        extrapolated: far > INSIDE,
        beyond_data: far,
        rmsd_log: fit.rmsd_log,
        n_points: base.len() + mix.len(),
        resamples: [if edge { 0 } else { boot.resamples }, ks.len()],
    })
}

/// Speed-ups at each observed budget of `mix` (per model size for the joint law), read off
/// the baseline's fitted curve `theta` (and its bootstrap resamples for the interval).
pub fn budget_speedups(
    law: Law,
    pair: &Pair,
    base: &[Point],
    theta: &[f64],
    resamples: &[&Vec<f64>],
    mix: &[Point],
    level: f64,
) -> Vec<BudgetSpeedup> {
    // Mean observed loss at each (N, D) of the mixture.
    let mut cells: Vec<(f64, f64, f64, usize)> = Vec::new();
    for p in mix {
        let n = if law.uses_params() { p.n } else { 1.0 };
        match cells.iter_mut().find(|c| c.0 == n && c.1 == p.d) {
            Some(c) => {
                c.2 += p.loss;
                c.3 += 1;
            }
            None => cells.push((n, p.d, p.loss, 1)),
        }
    }
    cells.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    cells
        .into_iter()
        .map(|(n, d, sum, count)| {
            let loss = sum / count as f64;
            // The baseline's observed tokens at this size (all of them for one-variable laws).
            let at_size: Vec<Point> = base
                .iter()
                .copied()
                .filter(|p| !law.uses_params() || (p.n / n - 1.0).abs() < 1e-3)
                .collect();
            let range = if at_size.is_empty() {
                d_range(base)
            } else {
                d_range(&at_size)
            };
            let tb = crate::derived::tokens_for_loss(law, theta, n, loss);
            let boot: Vec<f64> = resamples
                .iter()
                .filter_map(|t| crate::derived::tokens_for_loss(law, t, n, loss))
                .map(|x| x / d)
                .collect();
            let far = tb.map(|t| beyond(t, range));
            BudgetSpeedup {
                pair: pair.clone(),
                params: law.uses_params().then_some(n),
                tokens: d,
                loss,
                tokens_baseline: tb,
                speedup: tb.map(|t| t / d),
                speedup_ci95: percentile_interval(&boot, level),
                extrapolated: far.is_none_or(|f| f > INSIDE),
                beyond_data: far,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beyond_is_a_ratio_past_either_end() {
        assert_eq!(beyond(5.0, (1.0, 10.0)), 1.0);
        assert_eq!(beyond(30.0, (1.0, 10.0)), 3.0);
        assert_eq!(beyond(0.25, (1.0, 10.0)), 4.0);
    }

    #[test]
    fn golden_section_finds_a_parabola_vertex() {
        let f = |x: f64| (x - 0.7).powi(2) + 1.0;
        let (x, y, edge) = minimize_1d(&f, -3.0, 3.0, 13, 40);
        assert!((x - 0.7).abs() < 1e-6 && (y - 1.0).abs() < 1e-12 && !edge);
        let (_, _, edge) = minimize_1d(&|x: f64| x, -3.0, 3.0, 13, 40);
        assert!(edge);
    }
}
