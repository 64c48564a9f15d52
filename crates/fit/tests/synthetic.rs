//! Curves drawn from known parameters with noise: the fitter must recover them, and its
//! 95% bootstrap intervals must cover the truth at close to the stated rate.

mod common;

use synthscale_fit::bootstrap::{percentile_interval, resample_fits, SplitMix64};
use synthscale_fit::{fit, BootstrapOptions, FitOptions, Law, Point};

/// Points of `law` with θ `truth` at sizes `ds` (and model sizes `ns`), each loss times
/// `exp(sigma·z)`, z standard normal.
fn draw(
    law: Law,
    truth: &[f64],
    ns: &[f64],
    ds: &[f64],
    sigma: f64,
    rng: &mut SplitMix64,
) -> Vec<Point> {
    let mut pts = Vec::new();
    for &n in ns {
        for &d in ds {
            let loss = law.predict(truth, n, d) * (sigma * rng.normal()).exp();
            pts.push(Point { d, n, loss });
        }
    }
    pts
}

fn log_spaced(lo: f64, hi: f64, k: usize) -> Vec<f64> {
    (0..k)
        .map(|i| (lo.ln() + (hi.ln() - lo.ln()) * i as f64 / (k - 1) as f64).exp())
        .collect()
}

/// Fraction of `trials` datasets whose 95% interval of each law parameter covers the truth.
fn coverage(
    law: Law,
    truth: &[f64],
    ns: &[f64],
    ds: &[f64],
    sigma: f64,
    trials: usize,
) -> Vec<f64> {
    let opts = FitOptions::default();
    let boot = BootstrapOptions {
        resamples: 200,
        seed: 3,
        ..BootstrapOptions::default()
    };
    let true_params = law.params(truth);
    let mut hits = vec![0usize; true_params.len()];
    let mut rng = SplitMix64::new(42);
    for t in 0..trials {
        let pts = draw(law, truth, ns, ds, sigma, &mut rng);
        let name = format!("trial {t}");
        let f = fit(law, &pts, &opts, &name).unwrap();
        let rs: Vec<Vec<f64>> = resample_fits(
            law,
            &pts,
            &f.optima,
            &opts.fixed(f.huber_delta),
            &boot,
            &name,
        )
        .into_iter()
        .flatten()
        .collect();
        for (j, &want) in true_params.iter().enumerate() {
            let vals: Vec<f64> = rs.iter().map(|th| law.params(th)[j]).collect();
            let [lo, hi] = percentile_interval(&vals, 0.95).unwrap();
            if lo <= want && want <= hi {
                hits[j] += 1;
            }
        }
    }
    hits.iter().map(|&h| h as f64 / trials as f64).collect()
}

/// The stated rate: nominal 95%. Percentile-bootstrap intervals of a nonlinear fit to a
/// dozen points run a little narrow, and 40 trials carry a binomial standard error of
/// 3.4 points at 95%, so each parameter must be covered in at least 85% of the trials
/// (three standard errors below nominal).
const MIN_COVERAGE: f64 = 0.85;

#[test]
fn power_law_intervals_cover_the_truth() {
    // B = e^5 ≈ 148, E = e^0.5 ≈ 1.65, beta = 0.35; D from 1e6 to 1e10; 1% noise.
    let truth = [5.0, 0.5, 0.35];
    let cov = coverage(
        Law::Power,
        &truth,
        &[1.0],
        &log_spaced(1e6, 1e10, 12),
        0.01,
        40,
    );
    eprintln!("power-law coverage (B, E, beta): {cov:?}");
    for (name, c) in Law::Power.param_names().iter().zip(&cov) {
        assert!(
            *c >= MIN_COVERAGE,
            "{name}: covered in {:.0}% of trials",
            100.0 * c
        );
    }
}

#[test]
fn rectified_law_intervals_cover_the_truth() {
    // A curve shaped like Lin et al.'s LaMini-GPT-124M FLAN fit: B = 583, D_l = 173,
    // E = 1.09, beta = 0.46, at their 14 sizes (200 … 1,638,400 examples); 0.5% noise.
    let truth = [583f64.ln(), 173f64.ln(), 1.09f64.ln(), 0.46];
    let ds: Vec<f64> = (0..14).map(|i| 200.0 * 2f64.powi(i)).collect();
    let cov = coverage(Law::Rectified, &truth, &[1.0], &ds, 0.005, 40);
    eprintln!("rectified coverage (B, D_l, E, beta): {cov:?}");
    for (name, c) in Law::Rectified.param_names().iter().zip(&cov) {
        assert!(
            *c >= MIN_COVERAGE,
            "{name}: covered in {:.0}% of trials",
            100.0 * c
        );
    }
}

/// The joint law, from Epoch AI's fitted parameters on a 5 × 8 grid of (N, D) with 1%
/// noise, over six draws: the default fit (threshold scaled to the noise) recovers E and
/// alpha to a few percent, and is no worse than Epoch's fixed delta = 1e-3 on E, alpha and
/// beta. Beta is weakly determined by this grid: both rules miss it by about 16% on
/// average (measured: default E 2.6%, alpha 3.9%, beta 15.5%; fixed 1e-3 2.8%, 5.5%,
/// 15.8%), so one draw alone says little.
#[test]
fn chinchilla_parameters_are_recovered() {
    let truth = common::epoch_chinchilla_theta();
    let ns = log_spaced(7e7, 1.6e10, 5);
    let ds = log_spaced(5e9, 5e11, 8);
    let want = Law::Chinchilla.params(&truth);
    let draws = [9u64, 10, 11, 12, 13, 14];
    let mean_errors = |opts: &FitOptions| {
        let mut err = [0.0f64; 5];
        for seed in draws {
            let mut rng = SplitMix64::new(seed);
            let pts = draw(Law::Chinchilla, &truth, &ns, &ds, 0.01, &mut rng);
            let f = fit(Law::Chinchilla, &pts, opts, "synthetic").unwrap();
            let got = Law::Chinchilla.params(&f.theta);
            for j in 0..5 {
                err[j] += (got[j] / want[j] - 1.0).abs() / draws.len() as f64;
            }
        }
        err
    };
    let default = mean_errors(&FitOptions::default());
    let epoch = mean_errors(&FitOptions::default().fixed(1e-3));
    eprintln!("mean relative errors (A, B, E, alpha, beta): default {default:?}, 1e-3 {epoch:?}");
    for (j, name, tol) in [(2, "E", 0.04), (3, "alpha", 0.06), (4, "beta", 0.2)] {
        assert!(
            default[j] < tol,
            "{name}: mean relative error {}",
            default[j]
        );
        assert!(
            default[j] <= 1.1 * epoch[j],
            "{name}: default {} worse than fixed 1e-3 {}",
            default[j],
            epoch[j]
        );
    }
    let mut rng = SplitMix64::new(9);
    let pts = draw(Law::Chinchilla, &truth, &ns, &ds, 0.01, &mut rng);
    // Noise-free data: recovered to optimizer precision.
    let exact: Vec<Point> = pts
        .iter()
        .map(|p| Point {
            loss: Law::Chinchilla.predict(&truth, p.n, p.d),
            ..*p
        })
        .collect();
    let f = fit(Law::Chinchilla, &exact, &FitOptions::default(), "exact").unwrap();
    for (g, w) in f.theta.iter().zip(&truth) {
        assert!((g - w).abs() < 1e-4, "θ {:?} vs {truth:?}", f.theta);
    }
}
