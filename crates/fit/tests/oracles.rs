//! The fitter against published fits: Epoch AI's Chinchilla replication and Lin et al.'s
//! rectified-law fine-tuning curves (fixtures and attribution in `tests/fixtures/`).

use std::path::{Path, PathBuf};

use synthscale_fit::bootstrap::resample_fits;
use synthscale_fit::{fit, read_inputs, BootstrapOptions, FitOptions, InputOptions, Law, Point};

/// Epoch AI's procedure: Huber on log residuals with delta = 1e-3, fixed.
fn epoch_procedure() -> FitOptions {
    FitOptions::default().fixed(1e-3)
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// Epoch AI's 240 points: D = Training FLOP / (6 · Model Size), the 5 highest-loss rows of
/// 245 dropped (Besiroglu et al. 2024, `data_analysis.ipynb`).
fn epoch_points() -> Vec<Point> {
    let opts = InputOptions {
        params_col: "Model Size".into(),
        flops_col: Some("Training FLOP".into()),
        drop_highest_loss: 5,
        ..InputOptions::default()
    };
    let table = read_inputs(&[fixture("epoch_chinchilla/svg_extracted_data.csv")], &opts).unwrap();
    assert_eq!(table.rows.len(), 245);
    let pts = table
        .groups(Law::Chinchilla, &opts)
        .unwrap()
        .remove(0)
        .points;
    assert_eq!(pts.len(), 240);
    // The five dropped are the five highest losses (5.01 … 3.45; the next is 3.41).
    let kept_max = pts.iter().map(|p| p.loss).fold(0.0, f64::max);
    assert!(
        (kept_max - 3.4059279641864753).abs() < 1e-12,
        "largest kept loss {kept_max}"
    );
    pts
}

/// Oracle: Epoch AI, "Chinchilla Scaling: A replication attempt" (Besiroglu et al. 2024),
/// their Huber (delta 1e-3) L-BFGS-B fit from the 4500-point grid on this data:
/// objective 0.0010182740346154362, E = 1.817235504463726, alpha = 0.3473126576,
/// beta = 0.3671826174 (`published.json`, `epoch_huber_grid_LBFGSB_fit`).
#[test]
fn epoch_chinchilla_fit_matches_or_beats_the_published_objective() {
    let pts = epoch_points();
    let f = fit(Law::Chinchilla, &pts, &epoch_procedure(), "epoch").unwrap();
    assert_eq!(f.starts, 4500);
    let published_objective = 0.0010182740346154362;
    assert!(
        f.objective <= published_objective * (1.0 + 1e-9),
        "objective {:.16e} worse than Epoch's {published_objective:.16e}",
        f.objective
    );
    let p = Law::Chinchilla.params(&f.theta);
    let (e, alpha, beta) = (p[2], p[3], p[4]);
    for (name, got, want) in [
        ("E", e, 1.817235504463726),
        ("alpha", alpha, 0.3473126576),
        ("beta", beta, 0.3671826174),
    ] {
        assert!(
            (got / want - 1.0).abs() < 0.005,
            "{name} = {got}, Epoch's {want} (more than 0.5% apart)"
        );
    }
    // A and B are poorly determined (Epoch's bootstrap SE: 124 and 1293); 2% is loose.
    assert!(
        (p[0] / 477.84171252965143 - 1.0).abs() < 0.02,
        "A = {}",
        p[0]
    );
    assert!(
        (p[1] / 2143.8637880335505 - 1.0).abs() < 0.02,
        "B = {}",
        p[1]
    );
}

/// Oracle: Epoch AI's bootstrap 95% intervals on the same data (4000 resamples):
/// E 1.769–1.871, alpha 0.317–0.373, beta 0.331–0.415 (`published.json`). Ours use 400
/// resamples restarted from the full fit's optima, so the endpoints agree to within the
/// Monte Carlo error of a 2.5% percentile from 400 draws: 15% of the interval's width.
#[test]
fn epoch_chinchilla_bootstrap_intervals_match_the_published_ones() {
    let pts = epoch_points();
    let opts = epoch_procedure();
    let f = fit(Law::Chinchilla, &pts, &opts, "epoch").unwrap();
    // Epoch AI's procedure: resample the points (cases), not residuals.
    let boot = BootstrapOptions {
        resamples: 400,
        seed: 1,
        method: synthscale_fit::bootstrap::Resampling::Cases,
        ..BootstrapOptions::default()
    };
    let rs = resample_fits(Law::Chinchilla, &pts, &f.optima, &opts, &boot, "epoch");
    let ok: Vec<Vec<f64>> = rs.into_iter().flatten().collect();
    assert!(ok.len() >= 396, "only {} of 400 resamples fitted", ok.len());
    for (j, name, lo, hi) in [
        (2, "E", 1.769, 1.871),
        (3, "alpha", 0.317, 0.373),
        (4, "beta", 0.331, 0.415),
    ] {
        let vals: Vec<f64> = ok.iter().map(|t| Law::Chinchilla.params(t)[j]).collect();
        let [a, b] = synthscale_fit::bootstrap::percentile_interval(&vals, 0.95).unwrap();
        let tol = 0.15 * (hi - lo);
        assert!(
            (a - lo).abs() < tol && (b - hi).abs() < tol,
            "{name}: ours [{a:.4}, {b:.4}], Epoch's [{lo}, {hi}]"
        );
    }
}

/// Lin et al.'s curves of one dataset: 30 models × the 14 non-zero sizes (200 … 1,638,400
/// examples); column `0` (zero-shot) is not fitted.
fn lin_curves(dataset: &str) -> Vec<(String, Vec<Point>)> {
    let text =
        std::fs::read_to_string(fixture(&format!("lin2024_rectified/{dataset}.csv"))).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let sizes: Vec<(usize, f64)> = header
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.parse::<f64>().ok().filter(|&d| d > 0.0).map(|d| (i, d)))
        .collect();
    assert_eq!(sizes.len(), 14);
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let pts = sizes
                .iter()
                .map(|&(i, d)| Point {
                    d,
                    n: 1.0,
                    loss: f[i].parse().unwrap(),
                })
                .collect();
            (f[0].to_string(), pts)
        })
        .collect()
}

/// Mean RMSD of log loss over a dataset's curves, each fitted from the law's grid.
fn mean_rmsd(law: Law, dataset: &str, opts: &FitOptions) -> (f64, usize) {
    let curves = lin_curves(dataset);
    let n = curves.len();
    let total: f64 = curves
        .iter()
        .map(|(name, pts)| fit(law, pts, opts, name).unwrap().rmsd_log)
        .sum();
    (total / n as f64, n)
}

/// Oracle: Lin et al. 2024 ("Selecting Large Language Model to Fine-tune via Rectified
/// Scaling Law"), mean RMSD of log loss of their rectified fits per dataset: FLAN 0.00648,
/// WMT19 0.01228, Gigaword 0.00515; the plain power law's: 0.03583, 0.06290, 0.01057
/// (`rmsd.csv`, averaged over the 30 models). Ours must be no worse, and rectified must
/// beat power on every dataset.
///
/// RMSD is a least-squares criterion, so the curves are fitted with Huber delta = 1: above
/// every residual at the optimum, where Huber is exactly half the squared error. With the
/// robust default delta = 1e-3 (near-L1 at these residuals) the means are 0.00687, 0.01274,
/// 0.00548: that objective trades RMSD for robustness to outlying points, and is checked
/// for rectified-beats-power only.
#[test]
fn lin_rectified_fits_match_or_beat_the_published_rmsd() {
    // Lin et al.'s procedure: least squares (Huber above every residual).
    let least_squares = FitOptions::default().fixed(1.0);
    for (dataset, published) in [("flan", 0.00648), ("wmt19", 0.01228), ("gigaword", 0.00515)] {
        let (rect, n) = mean_rmsd(Law::Rectified, dataset, &least_squares);
        let (power, _) = mean_rmsd(Law::Power, dataset, &least_squares);
        assert_eq!(n, 30);
        eprintln!("{dataset}: rectified {rect:.5} (published {published}), power {power:.5}");
        assert!(
            rect <= published,
            "{dataset}: mean RMSD {rect:.5} > published {published}"
        );
        assert!(
            rect < power,
            "{dataset}: rectified {rect:.5} does not beat power {power:.5}"
        );
    }
}

/// Lin et al.'s finding, with the robust default objective: the rectified law fits every
/// dataset better than the plain power law (published power-law means: FLAN 0.03583,
/// WMT19 0.06290, Gigaword 0.01057).
#[test]
fn lin_rectified_beats_power_with_the_default_huber_objective() {
    let opts = FitOptions::default();
    for dataset in ["flan", "wmt19"] {
        let (rect, _) = mean_rmsd(Law::Rectified, dataset, &opts);
        let (power, _) = mean_rmsd(Law::Power, dataset, &opts);
        eprintln!("{dataset} (delta 1e-3): rectified {rect:.5}, power {power:.5}");
        assert!(
            rect < power,
            "{dataset}: rectified {rect:.5} does not beat power {power:.5}"
        );
    }
}

/// The default threshold (scaled to each curve's noise, `DeltaRule::Noise`) measured against
/// both oracles' published figures, each of which was obtained by its authors' own
/// procedure: Lin et al.'s mean RMSDs (least squares) and Epoch AI's parameters (delta 1e-3).
#[test]
fn the_default_delta_against_both_oracles() {
    // Measured (2026-12-03): FLAN 0.00644, WMT19 0.01192, Gigaword 0.00515 against the
    // published 0.00648, 0.01228, 0.00515 (Gigaword equal to five digits, hence the 0.1%
    // slack); Epoch: delta 0.0076, E 1.8312, alpha 0.3509, beta 0.3783, each inside Epoch's
    // published bootstrap interval (E 1.769–1.871, alpha 0.317–0.373, beta 0.331–0.415),
    // 0.8%, 1.0% and 3.0% from their point estimates.
    let opts = FitOptions::default();
    for (dataset, published) in [("flan", 0.00648), ("wmt19", 0.01228), ("gigaword", 0.00515)] {
        let (rect, _) = mean_rmsd(Law::Rectified, dataset, &opts);
        eprintln!(
            "{dataset}: default delta, rectified mean RMSD {rect:.5} (published {published})"
        );
        assert!(
            rect <= published * 1.001,
            "{dataset}: {rect:.5} > {published}"
        );
    }
    let f = fit(Law::Chinchilla, &epoch_points(), &opts, "epoch").unwrap();
    let p = Law::Chinchilla.params(&f.theta);
    eprintln!(
        "epoch: default delta {:.5}: E {:.4} alpha {:.4} beta {:.4} (published 1.8172, 0.34731, 0.36718)",
        f.huber_delta, p[2], p[3], p[4]
    );
    for (j, name, lo, hi) in [
        (2, "E", 1.769, 1.871),
        (3, "alpha", 0.317, 0.373),
        (4, "beta", 0.331, 0.415),
    ] {
        assert!(
            p[j] >= lo && p[j] <= hi,
            "{name} = {} outside [{lo}, {hi}]",
            p[j]
        );
    }
}
