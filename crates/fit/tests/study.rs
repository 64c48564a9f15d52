//! Whole fit jobs: inputs in each format, grouping and filters, the held-out check, derived
//! answers against curves built to have known answers, and every bad-input error.

mod common;

use std::path::{Path, PathBuf};

use synthscale_fit::input::Group;
use synthscale_fit::{
    fit, read_inputs, run_study, BootstrapOptions, FitError, FitOptions, Holdout, InputOptions,
    Law, Point, StudyOptions,
};

/// A power-law curve `B/D^beta + E` at `ds`, optionally with D stretched by `k` (a mixture
/// that needs k× fewer tokens for every loss).
fn power_curve(b: f64, e: f64, beta: f64, k: f64, ds: &[f64]) -> Vec<Point> {
    ds.iter()
        .map(|&d| Point {
            d,
            n: 1.0,
            loss: b / (k * d).powf(beta) + e,
        })
        .collect()
}

fn ds() -> Vec<f64> {
    (0..10).map(|i| 1e7 * 2f64.powi(i)).collect()
}

fn group(keys: &[(&str, &str)], points: Vec<Point>) -> Group {
    Group {
        keys: keys
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        points,
    }
}

fn quick(law: Law) -> StudyOptions {
    StudyOptions {
        law,
        bootstrap: BootstrapOptions {
            resamples: 50,
            ..BootstrapOptions::default()
        },
        ..StudyOptions::default()
    }
}

/// Oracle: construction. A mixture whose curve is the baseline's with D stretched 2.5× reaches
/// every loss with 2.5× fewer tokens, so D_natural(L*)/D_mixture(L*) = 2.5 exactly.
#[test]
fn speedup_of_a_stretched_curve_is_the_stretch() {
    let groups = vec![
        group(
            &[("mixture", "natural")],
            power_curve(400.0, 1.8, 0.3, 1.0, &ds()),
        ),
        group(
            &[("mixture", "rephrased")],
            power_curve(400.0, 1.8, 0.3, 2.5, &ds()),
        ),
    ];
    let opts = StudyOptions {
        baseline: Some(("mixture".into(), "natural".into())),
        target_losses: vec![2.5, 2.2],
        ..quick(Law::Power)
    };
    let r = run_study(&groups, &opts).unwrap();
    assert_eq!(r.speedups.len(), 2);
    for s in &r.speedups {
        assert_eq!(s.pair.mixture, "mixture=rephrased");
        let x = s.speedup.unwrap();
        assert!(
            (x - 2.5).abs() < 1e-3,
            "speed-up {x} at L*={}",
            s.target_loss
        );
        let [lo, hi] = s.speedup_ci95.unwrap();
        assert!(lo <= x + 1e-9 && x - 1e-9 <= hi, "{x} outside [{lo}, {hi}]");
    }
}

/// Oracle: construction. Mixtures whose asymptote is `1.8 + 0.4·(r − 0.3)²` in the
/// synthetic share r, all else equal: at large D the loss is smallest at r = 0.3.
#[test]
fn optimal_ratio_finds_the_constructed_optimum() {
    let shares = ["0", "0.25", "0.5", "0.75", "1"];
    let groups: Vec<Group> = shares
        .iter()
        .map(|s| {
            let r: f64 = s.parse().unwrap();
            let e = 1.8 + 0.4 * (r - 0.3) * (r - 0.3);
            group(
                &[("domain", "web"), ("ratio", s)],
                power_curve(400.0, e, 0.3, 1.0, &ds()),
            )
        })
        .collect();
    let opts = StudyOptions {
        ratio_col: Some("ratio".into()),
        ..quick(Law::Power)
    };
    let r = run_study(&groups, &opts).unwrap();
    assert_eq!(r.optimal_ratios.len(), ds().len());
    let last = r.optimal_ratios.last().unwrap();
    assert_eq!(last.family, "domain=web");
    let best = last.optimal_ratio.unwrap();
    assert!((best - 0.3).abs() < 0.02, "optimal ratio {best}");
    let [lo, hi] = last.optimal_ratio_ci95.unwrap();
    assert!(lo <= best + 1e-9 && best <= hi + 1e-9);
    // Two distinct ratios cannot carry a quadratic: a clear error, not a guess.
    let err = run_study(&groups[..2], &opts).unwrap_err();
    assert!(err.to_string().contains("at least 3"), "{err}");
}

/// Noise-free curves: the held-out largest point is predicted to optimizer precision, and
/// the report carries no NaN anywhere.
#[test]
fn holdout_predicts_a_clean_curve_and_output_has_no_nan() {
    let groups = vec![group(&[], power_curve(400.0, 1.8, 0.3, 1.0, &ds()))];
    // Closed forms far past the data: searched up to 1e30 tokens here (the default stops at
    // 100× the largest budget, checked below).
    let opts = StudyOptions {
        holdout: Holdout::Largest,
        plateau_eps: 0.01,
        plateau_search: 1e30 / 5.12e9,
        ..quick(Law::Power)
    };
    let r = run_study(&groups, &opts).unwrap();
    let h = r.groups[0].holdout.as_ref().unwrap();
    assert_eq!(h.n_fit, 9);
    assert_eq!(h.held_out, *ds().last().unwrap());
    assert!(h.mean_rel_error < 1e-5, "{}", h.mean_rel_error);
    let json = serde_json::to_string(&r).unwrap();
    assert!(!json.contains("NaN") && !json.contains("nan") && !json.contains("inf"));
    // The plateau: gain of one more doubling below 1% of the loss from there on.
    let p = &r.groups[0].derived.plateau[0];
    let d = p.doubling_tokens.unwrap();
    let l = |d: f64| 400.0 / d.powf(0.3) + 1.8;
    assert!(((l(d) - l(2.0 * d)) / l(d) - 0.01).abs() < 1e-4);
    // Within 1% of E = 1.8: 400/D^0.3 = 0.018.
    let want = (400.0f64 / 0.018).powf(1.0 / 0.3);
    assert!((p.margin_tokens.unwrap() / want - 1.0).abs() < 1e-3);
    // Both lie past the largest budget (5.12e9): marked extrapolated.
    assert!(p.doubling_extrapolated && p.margin_extrapolated);

    // With the default search (100× the largest budget, 5.12e11 tokens) the margin plateau
    // (3.0e14) is beyond it: no number, and the JSON says how far was searched.
    let r = run_study(&groups, &quick(Law::Power)).unwrap();
    let p = &r.groups[0].derived.plateau[0];
    assert_eq!(p.margin_tokens, None);
    assert!(p.margin_extrapolated);
    assert_eq!(p.largest_tokens, 5.12e9);
    assert_eq!(p.search_limit, 5.12e11);
    // The doubling plateau at the default 2%: gain(D) = 2% inside the search.
    let d = p.doubling_tokens.unwrap();
    assert!(((l(d) - l(2.0 * d)) / l(d) - 0.02).abs() < 1e-4);
}

/// The joint law: one held-out largest model size, compute-optimal sizes with intervals.
#[test]
fn chinchilla_holdout_and_compute_optimal() {
    let pts = common::chinchilla_points(
        &common::epoch_chinchilla_theta(),
        &[1e8, 3e8, 1e9, 3e9],
        &[2e9, 6e9, 2e10, 6e10, 2e11],
    );
    let opts = StudyOptions {
        holdout: Holdout::Largest,
        flops_budgets: vec![1e21],
        bootstrap: BootstrapOptions {
            resamples: 20,
            ..BootstrapOptions::default()
        },
        ..quick(Law::Chinchilla)
    };
    let r = run_study(&[group(&[], pts)], &opts).unwrap();
    let g = &r.groups[0];
    let h = g.holdout.as_ref().unwrap();
    assert_eq!((h.axis, h.held_out, h.points.len()), ("params", 3e9, 5));
    assert!(h.max_rel_error < 1e-4);
    assert_eq!(g.derived.plateau.len(), 4);
    let c = &g.derived.compute_optimal[0];
    assert!((6.0 * c.params * c.tokens / 1e21 - 1.0).abs() < 1e-9);
    assert!(c.params_ci95.is_some());
}

#[test]
fn pinned_e_is_kept_and_frees_one_parameter() {
    let pts = power_curve(400.0, 1.8, 0.3, 1.0, &ds());
    let opts = FitOptions {
        pin_e: Some(1.7),
        ..FitOptions::default()
    };
    let f = fit(Law::Power, &pts, &opts, "pinned").unwrap();
    assert_eq!(Law::Power.params(&f.theta)[1], 1.7);
    // Three points fit two free parameters; the full law needs four.
    assert!(fit(Law::Power, &pts[..3], &opts, "three").is_ok());
    match fit(Law::Power, &pts[..3], &FitOptions::default(), "three") {
        Err(FitError::TooFewPoints { n: 3, min: 4, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn too_few_distinct_sizes_is_an_error_naming_the_axis() {
    // Ten points at one model size: the joint law's N-part is not determined.
    let pts: Vec<Point> = power_curve(400.0, 1.8, 0.3, 1.0, &ds())
        .into_iter()
        .map(|p| Point { n: 1e8, ..p })
        .collect();
    match fit(Law::Chinchilla, &pts, &FitOptions::default(), "one size") {
        Err(FitError::TooFewSizes {
            axis: "params",
            n: 1,
            min: 3,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // Repeated evaluations at three token counts cannot fix the rectified law's four.
    let three: Vec<Point> = ds()[..3]
        .iter()
        .flat_map(|&d| power_curve(400.0, 1.8, 0.3, 1.0, &[d, d]))
        .collect();
    let err = fit(Law::Rectified, &three, &FitOptions::default(), "g").unwrap_err();
    assert!(
        err.to_string().contains("3 distinct values of `tokens`"),
        "{err}"
    );
}

#[test]
fn a_rising_curve_does_not_converge_to_a_power_law() {
    let pts: Vec<Point> = ds()
        .iter()
        .map(|&d| Point {
            d,
            n: 1.0,
            loss: 1.0 + 0.1 * d.ln(),
        })
        .collect();
    let err = fit(Law::Power, &pts, &FitOptions::default(), "domain=web").unwrap_err();
    assert!(matches!(err, FitError::NotConverged { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("domain=web") && msg.contains("`beta`") && msg.contains("bounds"),
        "{msg}"
    );
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn long_csv_groups_filters_and_bad_cells() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("run_id,params,tokens,loss,mixture,eval_domain\n");
    for (i, d) in ds().iter().enumerate() {
        for (mix, k) in [("natural", 1.0), ("mixed", 2.0)] {
            let l = 400.0 / (k * d).powf(0.3) + 1.8;
            csv.push_str(&format!("r{i},1e8,{d},{l},{mix},web\n"));
            csv.push_str(&format!("r{i},1e8,{d},{},{mix},code\n", l + 0.1));
        }
    }
    // Written with a byte-order mark, as spreadsheets export CSV.
    let p = write(dir.path(), "results.csv", &format!("\u{feff}{csv}"));
    let opts = InputOptions {
        group_by: Some(vec!["mixture".into()]),
        filters: vec![("eval_domain".into(), "web".into())],
        ..InputOptions::default()
    };
    let table = read_inputs(std::slice::from_ref(&p), &opts).unwrap();
    assert_eq!(table.columns[0], "run_id");
    let groups = table.groups(Law::Power, &opts).unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].name(), "mixture=natural");
    assert_eq!(groups[0].points.len(), 10);
    assert_eq!(table.sources[0].sha256.len(), 64);

    // A non-positive loss names file, line and column.
    let bad = csv.replace("r3,1e8", "r3,1e8x");
    let p2 = write(dir.path(), "bad.csv", &bad);
    let err = read_inputs(&[p2], &opts)
        .unwrap()
        .groups(Law::Chinchilla, &opts)
        .unwrap_err();
    assert!(
        err.to_string().contains("bad.csv:") && err.to_string().contains("`params`"),
        "{err}"
    );
    let neg = csv.replace("r2,1e8,", "r2,-1e8,");
    let p3 = write(dir.path(), "neg.csv", &neg);
    match read_inputs(&[p3], &opts)
        .unwrap()
        .groups(Law::Chinchilla, &opts)
    {
        Err(FitError::NonPositive { column, line, .. }) => {
            assert_eq!(column, "params");
            assert!(line > 1);
        }
        other => panic!("{other:?}"),
    }
    // A missing column names the column and lists those present.
    let opts2 = InputOptions {
        loss_col: "val_loss".into(),
        ..opts.clone()
    };
    let err = read_inputs(std::slice::from_ref(&p), &opts2)
        .unwrap()
        .groups(Law::Power, &opts2)
        .unwrap_err();
    assert!(
        matches!(err, FitError::MissingColumn { ref column, .. } if column == "val_loss"),
        "{err}"
    );
    let opts3 = InputOptions {
        filters: vec![("eval_domain".into(), "nowhere".into())],
        ..opts
    };
    let err = read_inputs(&[p], &opts3)
        .unwrap()
        .groups(Law::Power, &opts3)
        .unwrap_err();
    assert!(err.to_string().contains("--where"), "{err}");
}

/// Two trainers' per-step logs in the OLMo-style wide shape: `_step`, a token counter, a
/// FLOP counter in GFLOPs, and one column per evaluation set, some steps without evals.
#[test]
fn wide_per_step_logs_give_one_curve_per_eval_column() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (name, n) in [("small", 1e8_f64), ("large", 4e8)] {
        let mut t = String::from(
            "_step,eval/web-validation/CrossEntropyLoss,eval/code-validation/CrossEntropyLoss,throughput/total_tokens,throughput/total_training_Gflops,optim/lr\n",
        );
        t.push_str("0,10.9,10.9,0,0,0.001\n");
        for i in 1..=12 {
            let d = 1e8 * i as f64;
            let l = 1.7 + 400.0 / n.powf(0.34) + 2000.0 / d.powf(0.37);
            let code = if i % 3 == 0 {
                format!("{}", l - 0.2)
            } else {
                String::new()
            };
            t.push_str(&format!("{i},{l},{code},{d},{},0.001\n", 6.0 * n * d / 1e9));
        }
        paths.push(write(dir.path(), &format!("{name}.csv"), &t));
    }
    let opts = InputOptions::default();
    let table = read_inputs(&paths, &opts).unwrap();
    // One-variable laws: one curve per file and column.
    let groups = table.groups(Law::Power, &opts).unwrap();
    let names: Vec<String> = groups.iter().map(|g| g.name()).collect();
    assert_eq!(groups.len(), 4, "{names:?}");
    assert!(names.contains(&"file=small,curve=eval/code-validation/CrossEntropyLoss".to_string()));
    let web = groups
        .iter()
        .find(|g| g.name().starts_with("file=small,curve=eval/web"))
        .unwrap();
    assert_eq!(web.points.len(), 12, "step 0 skipped");
    let code = groups
        .iter()
        .find(|g| g.name().starts_with("file=small,curve=eval/code"))
        .unwrap();
    assert_eq!(code.points.len(), 4, "empty cells skipped");
    // The joint law: one surface per eval column across files, N from GFLOPs / (6D).
    let groups = table.groups(Law::Chinchilla, &opts).unwrap();
    assert_eq!(groups.len(), 2);
    let ns: Vec<f64> = groups[0].points.iter().map(|p| p.n).collect();
    assert!(ns.iter().any(|n| (n / 1e8 - 1.0).abs() < 1e-9));
    assert!(ns.iter().any(|n| (n / 4e8 - 1.0).abs() < 1e-9));
}

/// synthscale run directories: `metrics.jsonl` with training and evaluation lines.
#[test]
fn run_directories_read_eval_lines() {
    let dir = tempfile::tempdir().unwrap();
    for (run, n) in [("n1e8-natural", 1e8_f64), ("n1e8-mixed", 1e8)] {
        let rd = dir.path().join(run);
        std::fs::create_dir(&rd).unwrap();
        let mut t = String::new();
        for step in 0..=8u64 {
            let tokens = step as f64 * 1e7;
            let flops = 6.0 * n * tokens;
            t.push_str(&format!(
                "{{\"step\":{step},\"tokens\":{tokens},\"flops\":{flops},\"lr\":0.001,\"train_loss\":3.0,\"grad_norm\":1.0,\"tokens_per_s\":1000,\"mfu\":0.1}}\n"
            ));
            for dom in ["web", "code"] {
                let l = if step == 0 {
                    10.8
                } else {
                    2.0 + 300.0 / tokens.powf(0.3)
                };
                t.push_str(&format!(
                    "{{\"step\":{step},\"tokens\":{tokens},\"flops\":{flops},\"eval_domain\":\"{dom}\",\"val_loss\":{l}}}\n"
                ));
            }
        }
        write(&rd, "metrics.jsonl", &t);
    }
    let opts = InputOptions::default();
    let table = read_inputs(&[dir.path().to_path_buf()], &opts).unwrap();
    assert_eq!(table.sources.len(), 2);
    let groups = table.groups(Law::Rectified, &opts).unwrap();
    assert_eq!(groups.len(), 4);
    assert!(groups.iter().all(|g| g.points.len() == 8));
    assert_eq!(groups[0].keys[0].0, "run");
    let joint = table.groups(Law::Chinchilla, &opts).unwrap();
    assert!(
        (joint[0].points[0].n / 1e8 - 1.0).abs() < 1e-9,
        "N = flops / (6 tokens)"
    );
}

/// Intervals are a function of the data and the seed alone: the same seed gives the same
/// intervals whatever the thread timing, another seed other intervals.
#[test]
fn bootstrap_intervals_reproduce_from_the_seed() {
    let mut rng = synthscale_fit::bootstrap::SplitMix64::new(5);
    let pts: Vec<Point> = power_curve(400.0, 1.8, 0.3, 1.0, &ds())
        .into_iter()
        .map(|p| Point {
            loss: p.loss * (0.01 * rng.normal()).exp(),
            ..p
        })
        .collect();
    let groups = vec![group(&[("domain", "web")], pts)];
    let a = run_study(&groups, &quick(Law::Power)).unwrap();
    let b = run_study(&groups, &quick(Law::Power)).unwrap();
    assert_eq!(a.groups[0].ci95, b.groups[0].ci95);
    let mut other = quick(Law::Power);
    other.bootstrap.seed = 1;
    let c = run_study(&groups, &other).unwrap();
    assert_ne!(a.groups[0].ci95, c.groups[0].ci95);
    assert_eq!(
        (a.groups[0].bootstrap.drawn, a.groups[0].bootstrap.fitted),
        (50, 50)
    );
}

/// Oracle: construction. A curve with no asymptote (`400/D^0.3`, E = 0) fits with E
/// collapsed toward 0: the report labels E as at its bound (undetermined) instead of
/// reading it as an irreducible loss; a curve with E = 1.8 has none at a bound.
#[test]
fn a_collapsed_asymptote_is_labelled_at_its_bound() {
    let no_e: Vec<Point> = ds()
        .iter()
        .map(|&d| Point {
            d,
            n: 1.0,
            loss: 400.0 / d.powf(0.3),
        })
        .collect();
    let opts = StudyOptions {
        bootstrap: BootstrapOptions {
            resamples: 0,
            ..BootstrapOptions::default()
        },
        ..quick(Law::Power)
    };
    let r = run_study(&[group(&[], no_e)], &opts).unwrap();
    assert_eq!(
        r.groups[0].at_bound,
        vec!["E".to_string()],
        "{:?}",
        r.groups[0].params
    );
    let with_e = vec![group(&[], power_curve(400.0, 1.8, 0.3, 1.0, &ds()))];
    let r = run_study(&with_e, &opts).unwrap();
    assert!(
        r.groups[0].at_bound.is_empty(),
        "{:?}",
        r.groups[0].at_bound
    );
}

/// More than six model sizes: plateaus are read at the smallest, the geometric middle (no
/// size of the data) and the largest; each is searched up to 100× the largest budget (the
/// middle one took 0 tokens as its largest budget, and printed "beyond NaN× the data").
#[test]
fn plateaus_between_the_data_sizes_search_from_the_largest_budget() {
    let pts = common::chinchilla_points(
        &common::epoch_chinchilla_theta(),
        &[1e8, 2e8, 4e8, 8e8, 1.6e9, 3.2e9, 6.4e9],
        &[2e9, 6e9, 2e10, 6e10, 2e11],
    );
    let opts = StudyOptions {
        bootstrap: BootstrapOptions {
            resamples: 0,
            ..BootstrapOptions::default()
        },
        ..quick(Law::Chinchilla)
    };
    let r = run_study(&[group(&[], pts)], &opts).unwrap();
    let plateaus = &r.groups[0].derived.plateau;
    assert_eq!(plateaus.len(), 3);
    for p in plateaus {
        assert_eq!(p.largest_tokens, 2e11, "{p:?}");
        assert_eq!(p.search_limit, 2e13, "{p:?}");
    }
}
