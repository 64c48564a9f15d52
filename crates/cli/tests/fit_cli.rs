//! `synthscale fit` and `synthscale bench fit`: the JSON contract, the table, and exit code 2
//! with one message naming the file, column or bound for each kind of bad input.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_synthscale"))
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = bin().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A results table: two mixtures (the second reaches every loss with 2× fewer tokens) at
/// one model size, 8 token budgets each, on two eval domains.
fn results_csv(dir: &Path) -> PathBuf {
    let mut t = String::from("run_id,params,tokens,flops,mixture,eval_domain,loss\n");
    for i in 0..8 {
        let d = 1e8 * 2f64.powi(i);
        for (mix, k) in [("natural", 1.0), ("mixed", 2.0)] {
            let l = 300.0 / (k * d).powf(0.3) + 2.0;
            t.push_str(&format!("{mix}-{i},1e8,{d},{},{mix},web,{l}\n", 6e8 * d));
            t.push_str(&format!(
                "{mix}-{i},1e8,{d},{},{mix},code,{}\n",
                6e8 * d,
                l * 0.8
            ));
        }
    }
    let p = dir.join("results.csv");
    std::fs::write(&p, t).unwrap();
    p
}

#[test]
fn fit_writes_the_json_contract_and_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let csv = results_csv(dir.path());
    let json = dir.path().join("fit.json");
    let fit = |json_out: &str| {
        run(&[
            "fit",
            csv.to_str().unwrap(),
            "--law",
            "power",
            "--group-by",
            "mixture",
            "--where",
            "eval_domain=web",
            "--baseline",
            "mixture=natural",
            "--holdout",
            "largest",
            "--bootstrap",
            "50",
            "--json",
            json_out,
        ])
    };
    let (code, out, err) = fit(json.to_str().unwrap());
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("mixture=natural") && out.contains("beta"),
        "{out}"
    );
    assert!(out.contains("speed-ups"), "{out}");
    let text = std::fs::read_to_string(&json).unwrap();
    assert!(!text.contains("NaN"));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["data"][0]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(v["start_grid"]["starts"], 270);
    // The threshold is scaled to each group's noise, and each group records its own.
    assert_eq!(v["options"]["fit"]["delta_rule"], "noise");
    assert!(v["groups"][0]["huber_delta"].as_f64().unwrap() >= 1e-4);
    assert_eq!(v["options"]["bootstrap"]["resamples"], 50);
    let g = &v["groups"][0];
    assert_eq!(g["group"]["mixture"], "natural");
    assert_eq!(g["law"], "power");
    assert_eq!(g["n_points"], 8);
    assert_eq!(g["starts"]["tried"], 270);
    assert_eq!(g["bootstrap"]["fitted"], 50);
    for key in ["objective", "rmsd_log"] {
        assert!(g[key].as_f64().unwrap() >= 0.0);
    }
    for p in ["B", "E", "beta"] {
        let x = g["params"][p].as_f64().unwrap();
        let ci = g["ci95"][p].as_array().unwrap();
        assert!(
            ci[0].as_f64().unwrap() <= x * (1.0 + 1e-6)
                && x <= ci[1].as_f64().unwrap() * (1.0 + 1e-6)
        );
    }
    assert!((g["params"]["beta"].as_f64().unwrap() - 0.3).abs() < 1e-3);
    assert!(g["holdout"]["mean_rel_error"].as_f64().unwrap() < 1e-3);
    assert!(g["derived"]["plateau"][0]["doubling_tokens"]
        .as_f64()
        .is_some());
    let s = &v["speedups"][0];
    assert!((s["speedup"].as_f64().unwrap() - 2.0).abs() < 0.01, "{s}");

    // `--json -`: the same JSON on stdout alone (the table goes to stderr), no file `-`.
    let (code, out, err) = fit("-");
    assert_eq!(code, 0, "{err}");
    let piped: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(piped["groups"], v["groups"]);
    assert!(err.contains("speed-ups"), "{err}");
    assert!(!Path::new("-").exists());
}

#[test]
fn joint_law_from_flops_with_compute_optimal_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = String::from("N,C,val\n");
    for n in [1e8, 3e8, 1e9] {
        for d in [2e9, 6e9, 2e10, 6e10] {
            let l = 1.8 + 480.0 / f64::powf(n, 0.35) + 2100.0 / f64::powf(d, 0.37);
            t.push_str(&format!("{n},{},{l}\n", 6.0 * n * d));
        }
    }
    let csv = dir.path().join("runs.csv");
    std::fs::write(&csv, t).unwrap();
    let (code, out, err) = run(&[
        "fit",
        csv.to_str().unwrap(),
        "--law",
        "chinchilla",
        "--params-col",
        "N",
        "--flops-col",
        "C",
        "--loss-col",
        "val",
        "--flops-budget",
        "1e21",
        "--bootstrap",
        "10",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("compute-optimal at C=1.000e21"), "{out}");
    assert!(out.contains("alpha"), "{out}");
}

/// Each kind of bad input: exit code 2, one line naming what is wrong.
#[test]
fn bad_input_exits_2_with_a_message_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let csv = results_csv(dir.path());
    let c = csv.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        // Missing column.
        (
            vec!["fit", c, "--law", "power", "--loss-col", "val_loss"],
            "no column `val_loss`",
        ),
        // The joint law without model sizes.
        (
            vec!["fit", c, "--law", "chinchilla", "--params-col", "N"],
            "no column `N`",
        ),
        // Too few points for the law.
        (
            vec!["fit", c, "--law", "rectified", "--group-by", "run_id"],
            "needs at least 5",
        ),
        // Unknown --where column.
        (
            vec!["fit", c, "--law", "power", "--where", "seed=1"],
            "no column `seed`",
        ),
        // Bad option bound.
        (
            vec!["fit", c, "--law", "power", "--huber-delta=-1"],
            "huber-delta",
        ),
    ];
    for (args, want) in cases {
        let (code, _, err) = run(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.matches("error:").count(), 1, "{args:?}: {err}");
    }
    // A non-positive loss names file, line and column.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "tokens,loss\n1e8,3.0\n2e8,0\n4e8,2.5\n8e8,2.4\n1.6e9,2.3\n",
    )
    .unwrap();
    let (code, _, err) = run(&["fit", bad.to_str().unwrap(), "--law", "power"]);
    assert_eq!(code, 2);
    assert!(err.contains("bad.csv:3: column `loss` is 0"), "{err}");
    // A curve that rises: no power law converges.
    let rising = dir.path().join("rising.csv");
    std::fs::write(
        &rising,
        "tokens,loss\n1e8,2.0\n2e8,2.1\n4e8,2.2\n8e8,2.3\n1.6e9,2.4\n",
    )
    .unwrap();
    let (code, _, err) = run(&["fit", rising.to_str().unwrap(), "--law", "power"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("did not converge"), "{err}");
}

#[test]
fn bench_fit_prints_one_json_line() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fit/tests/fixtures/epoch_chinchilla/svg_extracted_data.csv");
    let (code, out, err) = run(&[
        "bench",
        "fit",
        "--data",
        data.to_str().unwrap(),
        "--repeats",
        "1",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["bench"], "fit");
    assert_eq!(v["starts"], 4500);
    // Epoch AI's objective on this data (REFERENCE.md §2).
    assert!(v["objective"].as_f64().unwrap() <= 0.0010182740346154362 * (1.0 + 1e-9));
}

/// Oracle: a curve whose losses are all equal has no decline, so no law's parameters are
/// determined (before, `fit` printed a power law with B 1.0011, beta 0.9915 for it).
#[test]
fn fit_refuses_a_curve_flat_over_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut flat = String::from("tokens,loss,mixture\n");
    for i in 0..8 {
        flat.push_str(&format!("{},3.0,flat\n", 1e6 * 2f64.powi(i)));
    }
    let csv = dir.path().join("flat.csv");
    std::fs::write(&csv, flat).unwrap();
    for law in ["power", "rectified"] {
        let (code, out, err) = run(&[
            "fit",
            csv.to_str().unwrap(),
            "--law",
            law,
            "--group-by",
            "mixture",
        ]);
        assert_eq!(code, 2, "{law}: {out}\n{err}");
        assert!(
            err.contains("mixture=flat") && err.contains("flat over the data"),
            "{law}: {err}"
        );
        assert!(
            !out.contains("beta"),
            "{law}: a flat curve printed a fit: {out}"
        );
    }
}

/// `--json` into a folder that does not exist fails at once, before the fit (it used to fail
/// only after the fit, which at Epoch's 4500 starts and a bootstrap takes minutes).
#[test]
fn fit_json_path_is_checked_before_fitting() {
    let dir = tempfile::tempdir().unwrap();
    let csv = results_csv(dir.path());
    let missing = dir.path().join("nonexistent/x.json");
    let (code, out, err) = run(&[
        "fit",
        csv.to_str().unwrap(),
        "--law",
        "chinchilla",
        "--bootstrap",
        "4000",
        "--json",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(
        err.contains("--json") && err.contains("nonexistent") && err.contains("does not exist"),
        "{err}"
    );
    // The fit never started: it prints its table to stdout.
    assert!(out.is_empty(), "nothing is fitted or printed: {out}");
    let (code, _, err) = run(&[
        "fit",
        csv.to_str().unwrap(),
        "--law",
        "power",
        "--json",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is a folder"), "{err}");
}

/// Every input form a researcher's tools export, each a small fixture of the same points
/// drawn from L = 2 + 300·D^-0.3 (the oracle: the closed form; β = 0.3 within 1e-3):
/// - JSON lines of another trainer (`{"step", "tokens", "eval/loss"}`, with `--loss-col`),
///   and a JSON-lines per-step log with several curves;
/// - a W&B panel export (`Step`, a curve, its `__MIN`/`__MAX` band) with
///   `--tokens-per-step`, the bands not read as curves;
/// - a semicolon-separated table (a spreadsheet in a comma-decimal locale) and a
///   tab-separated one.
#[test]
fn fit_reads_jsonl_step_indexed_wandb_and_other_separators() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let loss = |t: f64| 300.0 / t.powf(0.3) + 2.0;
    let steps: Vec<u64> = (0..8).map(|i| 100 * 2u64.pow(i)).collect();
    let per_step = 4096.0;
    let beta_of = |out: &str, err: &str, json: &Path| -> f64 {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(json).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}\n{out}\n{err}"));
        v["groups"][0]["params"]["beta"].as_f64().unwrap()
    };
    let fit = |input: &Path, extra: &[&str]| {
        let json = d.join(format!(
            "{}.json",
            input.file_name().unwrap().to_string_lossy()
        ));
        let mut args = vec![
            "fit",
            input.to_str().unwrap(),
            "--law",
            "power",
            "--bootstrap",
            "0",
            "--json",
            json.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let (code, out, err) = run(&args);
        assert_eq!(code, 0, "{input:?}: {out}\n{err}");
        (out, err, json)
    };

    // JSON lines, long: one point per line.
    let mut jl = String::new();
    for &s in &steps {
        let t = s as f64 * per_step;
        jl.push_str(&format!(
            "{{\"step\": {s}, \"tokens\": {t}, \"eval/loss\": {}, \"lr\": 0.001}}\n",
            loss(t)
        ));
    }
    let p = d.join("metrics-other.jsonl");
    std::fs::write(&p, &jl).unwrap();
    let (out, err, json) = fit(&p, &["--loss-col", "eval/loss"]);
    assert!((beta_of(&out, &err, &json) - 0.3).abs() < 1e-3, "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["data"][0]["format"], "jsonl");

    // W&B panel export: Step, the curve, its band; tokens from steps.
    let mut w = String::from(
        "\"Step\",\"run-a - eval/loss\",\"run-a - eval/loss__MIN\",\"run-a - eval/loss__MAX\"\n",
    );
    for &s in &steps {
        let l = loss(s as f64 * per_step);
        w.push_str(&format!("{s},{l},{},{}\n", l - 0.5, l + 0.5));
    }
    let p = d.join("wandb_export.csv");
    std::fs::write(&p, &w).unwrap();
    let (out, err, json) = fit(&p, &["--tokens-per-step", "4096"]);
    assert!((beta_of(&out, &err, &json) - 0.3).abs() < 1e-3, "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(
        v["groups"].as_array().unwrap().len(),
        1,
        "the bands are no curves"
    );
    // Without --tokens-per-step: one message naming the missing token column.
    let (code, _, err) = run(&["fit", p.to_str().unwrap(), "--law", "power"]);
    assert_eq!(code, 2);
    assert!(err.contains("tokens") && err.contains("Step"), "{err}");

    // Semicolon- and tab-separated tables.
    for (name, sep) in [("semicolon.csv", ";"), ("tabs.tsv", "\t")] {
        let mut t = format!("run{sep}tokens{sep}loss\n");
        for (i, &s) in steps.iter().enumerate() {
            let tok = s as f64 * per_step;
            t.push_str(&format!("r{i}{sep}{tok}{sep}{}\n", loss(tok)));
        }
        let p = d.join(name);
        std::fs::write(&p, &t).unwrap();
        let (out, err, json) = fit(&p, &[]);
        assert!(
            (beta_of(&out, &err, &json) - 0.3).abs() < 1e-3,
            "{name}: {out}"
        );
    }
}
