//! Bootstrap intervals: refit resampled data and read 95% intervals off the percentiles of
//! every parameter and derived quantity.
//!
//! Two ways to resample ([`Resampling`]). By default the full fit's log residuals are
//! redrawn with replacement onto its predictions, so every resample keeps every budget: a
//! curve of 5 budgets resampled by points has at most a handful of distinct subsets, and
//! most of them lack the distinct budgets the law needs, so intervals would rest on a few
//! values. Epoch AI's replication of Chinchilla resampled the points themselves (`cases`);
//! its oracle test runs that way.
//!
//! Cost: Epoch AI refit each of 4000 resamples from one start. We restart each resample
//! from the full-data fit's distinct local optima (the best and up to 7 more, see
//! [`crate::fit::Fit::optima`]), not from the whole grid: a resample is a small
//! perturbation of the data, so its optimum lies in one of the basins the full grid
//! found, and L-BFGS converges from a nearby optimum in a few iterations. That makes 1000
//! resamples of the Epoch data take seconds instead of hours.

use rayon::prelude::*;
use serde::Serialize;

use crate::fit::{fit_resample, FitOptions};
use crate::law::{Law, Point};

/// How intervals are drawn.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BootstrapOptions {
    /// Resamples; 0 turns intervals off. Epoch AI used 4000; 1000 gives 95% percentile
    /// endpoints to within a few percent of their spread.
    pub resamples: usize,
    /// Seed of the resampling; each group mixes in a hash of its name, so its intervals do
    /// not depend on which other groups are fitted.
    pub seed: u64,
    /// Confidence level of the intervals.
    pub level: f64,
    /// What is resampled.
    pub method: Resampling,
}

/// What a bootstrap resample redraws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Resampling {
    /// The full fit's log residuals, scaled by `sqrt(n/(n − p))` for the `p` fitted
    /// parameters, drawn with replacement and added to its predictions (the residual
    /// bootstrap for regression; Efron and Tibshirani 1993, §9.4).
    Residuals,
    /// The points, drawn with replacement (Epoch AI's bootstrap of Chinchilla's data).
    Cases,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        BootstrapOptions {
            resamples: 1000,
            seed: 0,
            level: 0.95,
            method: Resampling::Residuals,
        }
    }
}

/// SplitMix64 (Steele, Lea and Flood 2014): tiny, seedable, and its stream is fixed by this
/// code alone, so intervals reproduce across versions of any library.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias is below 2^-50 for our `n`).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// FNV-1a of a string: mixes a group's name into the seed.
pub fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Refits `resamples` bootstrap resamples of `points`, each from `restarts`. Returns the θ
/// of each resample that fitted (`None` where none of the restarts ended in bounds).
pub fn resample_fits(
    law: Law,
    points: &[Point],
    restarts: &[Vec<f64>],
    fit_opts: &FitOptions,
    opts: &BootstrapOptions,
    group: &str,
) -> Vec<Option<Vec<f64>>> {
    let base = opts.seed ^ fnv1a(group);
    let n = points.len();
    // Residual bootstrap: predictions and scaled log residuals of the full fit (the first
    // restart is its best optimum).
    let (preds, resid): (Vec<f64>, Vec<f64>) = match (opts.method, restarts.first()) {
        (Resampling::Residuals, Some(theta)) => {
            let p = crate::fit::free_params(law, fit_opts);
            let scale = if n > p {
                (n as f64 / (n - p) as f64).sqrt()
            } else {
                1.0
            };
            points
                .iter()
                .map(|pt| {
                    let lp = law.log_pred(theta, pt);
                    (lp, (pt.loss.ln() - lp) * scale)
                })
                .unzip()
        }
        _ => (Vec::new(), Vec::new()),
    };
    (0..opts.resamples)
        .into_par_iter()
        .map(|k| {
            let mut rng =
                SplitMix64::new(base.wrapping_add((k as u64).wrapping_mul(0xA24B_AED4_963E_E407)));
            // Restarts run one after another inside a resample; the resamples run in parallel.
            if !resid.is_empty() {
                let drawn: Vec<Point> = points
                    .iter()
                    .zip(&preds)
                    .map(|(pt, lp)| Point {
                        loss: (lp + resid[rng.below(n)]).exp(),
                        ..*pt
                    })
                    .collect();
                return fit_resample(law, &drawn, &vec![1; n], restarts, fit_opts, group).ok();
            }
            let mut counts = vec![0u32; n];
            for _ in 0..n {
                counts[rng.below(n)] += 1;
            }
            // A resample can hold too few distinct sizes for the law; it then says nothing
            // and is dropped (the caller reports how many resamples fitted).
            fit_resample(law, points, &counts, restarts, fit_opts, group).ok()
        })
        .collect()
}

/// The central `level` percentile interval of `values` (NaN-free), interpolating linearly
/// between order statistics as NumPy's `percentile` does. `None` when empty.
pub fn percentile_interval(values: &[f64], level: f64) -> Option<[f64; 2]> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let pos = p * (v.len() - 1) as f64;
        let lo = pos.floor() as usize;
        let hi = pos.ceil() as usize;
        v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
    };
    let tail = (1.0 - level) / 2.0;
    Some([q(tail), q(1.0 - tail)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_like_numpy() {
        // numpy.percentile(range(101), [2.5, 97.5]) = [2.5, 97.5]
        let v: Vec<f64> = (0..=100).map(f64::from).collect();
        let [lo, hi] = percentile_interval(&v, 0.95).unwrap();
        assert!((lo - 2.5).abs() < 1e-12 && (hi - 97.5).abs() < 1e-12);
        assert!(percentile_interval(&[], 0.95).is_none());
    }

    #[test]
    fn splitmix_is_uniform_enough() {
        let mut r = SplitMix64::new(7);
        let mut hist = [0u32; 10];
        for _ in 0..100_000 {
            hist[r.below(10)] += 1;
        }
        for h in hist {
            assert!((9_500..10_500).contains(&h), "{hist:?}");
        }
        let mean: f64 = (0..100_000).map(|_| r.normal()).sum::<f64>() / 1e5;
        assert!(mean.abs() < 0.02);
    }
}
