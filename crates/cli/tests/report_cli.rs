//! `synthscale report`: a results folder or a manifest in, the report's files out and its
//! path printed last; exit code 2 naming the file and field for bad input.

use std::path::Path;
use std::process::Command;

fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_synthscale"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Three sizes × five budgets × two mixtures on one domain, from the joint law
/// `2 + 50/N^0.3 + B/D^0.35` with B = 300 for natural and 200 for the mixture.
fn results(dir: &Path) {
    let mut t = String::from("run_id,params,non_embedding_params,tokens,flops,mixture,natural_ratio,rephrased_ratio,textbook_ratio,eval_domain,step,loss,final\n");
    for (mix, nat, b) in [("natural", 1.0, 300.0), ("reph", 0.5, 200.0)] {
        for n in [1e6, 3e6, 1e7] {
            for k in 0..5 {
                let d = 2e6 * 2f64.powi(k);
                let l = 2.0 + 50.0 / f64::powf(n, 0.3) + b / d.powf(0.35);
                t.push_str(&format!(
                    "{mix}-{n}-{k},{n},{n},{d},{},{mix},{nat},{},0,web,9,{l},true\n",
                    6.0 * n * d,
                    1.0 - nat
                ));
            }
        }
    }
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("results.csv"), t).unwrap();
}

#[test]
fn report_from_a_manifest_writes_every_file_and_prints_its_path_last() {
    let tmp = tempfile::tempdir().unwrap();
    results(&tmp.path().join("results/study"));
    // The manifest is read whole, as every command reads it: its [data] names a corpus.
    std::fs::write(tmp.path().join("c.jsonl"), "{\"text\": \"a b c\"}\n").unwrap();
    std::fs::write(
        tmp.path().join("study.toml"),
        "[data]\n[[data.sources]]\nname = \"c\"\nkind = \"natural\"\ndomain = \"web\"\n\
         path = \"c.jsonl\"\n\n[report]\nbootstrap = 0\nholdout = false\n",
    )
    .unwrap();
    let (code, out, err) = run(tmp.path(), &["report", "study.toml"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with("report (") && last.ends_with("results/study/report/report.html"),
        "{out}"
    );
    let rep = tmp.path().join("results/study/report");
    for f in [
        "report.html",
        "report.md",
        "fit.json",
        "fig1-loss-vs-tokens.png",
        "fig6-joint-law.svg",
    ] {
        assert!(rep.join(f).is_file(), "{f}");
    }
    // Two mixtures: no optimal share (it needs three), said as a warning, not a failure.
    assert!(
        err.contains("warning: optimal rephrased share: 2 distinct share(s)"),
        "{err}"
    );
    // The manifest is shown in the HTML.
    let html = std::fs::read_to_string(rep.join("report.html")).unwrap();
    assert!(html.contains("<h2>Manifest</h2>") && html.contains("holdout = false"));
}

#[test]
fn report_bad_input_exits_2_naming_the_file_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, err) = run(tmp.path(), &["report", "."]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no results.csv here"), "{err}");
    std::fs::write(tmp.path().join("m.toml"), "[report]\nbootstrap = -1\n").unwrap();
    let (code, _, err) = run(tmp.path(), &["report", "m.toml"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("m.toml") && err.contains("line 2") && err.contains("bootstrap"),
        "{err}"
    );
    results(&tmp.path().join("r"));
    let (code, _, err) = run(tmp.path(), &["report", "r", "--target-loss=-2"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("target_loss: -2 must be a positive loss"),
        "{err}"
    );
    assert!(!tmp.path().join("r/report").exists());
}

/// A `[report] baseline` that names no mixture of the manifest is bad input (exit 2 naming
/// the field and the mixtures), before any fitting; it used to be a warning with exit 0.
#[test]
fn an_unknown_baseline_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    results(&tmp.path().join("results/study"));
    std::fs::write(tmp.path().join("c.jsonl"), "{\"text\": \"a b c\"}\n").unwrap();
    let manifest = |report: &str| {
        format!(
            "[data]\n[[data.sources]]\nname = \"c\"\nkind = \"natural\"\ndomain = \"web\"\n\
             path = \"c.jsonl\"\n\n[sweep]\nsizes = [{{ preset = \"0.1M\" }}]\n\
             budgets = [{{ tokens = 16384 }}]\nseeds = [0]\n\n[sweep.mixtures]\n\
             natural = {{ natural = 1.0 }}\nreph = {{ natural = 0.5, rephrased = 0.5 }}\n\n\
             [report]\nbootstrap = 0\nholdout = false\n{report}"
        )
    };
    std::fs::write(
        tmp.path().join("study.toml"),
        manifest("baseline = \"nope\"\n"),
    )
    .unwrap();
    let (code, _, err) = run(tmp.path(), &["report", "study.toml"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("study.toml")
            && err.contains("[report] baseline: \"nope\"")
            && err.contains("natural, reph"),
        "{err}"
    );
    std::fs::write(
        tmp.path().join("study.toml"),
        manifest("mean_domains = [\"web\", \"nope\"]\n"),
    )
    .unwrap();
    let (code, _, err) = run(tmp.path(), &["report", "study.toml"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("[report] mean_domains: \"nope\""), "{err}");
    assert!(!tmp.path().join("results/study/report").exists());
}

/// `-o` naming a folder of the user's files is refused untouched (the report writes
/// report.md, report.html, fit.json and figures by name); a new folder and an earlier
/// report's folder are written.
#[test]
fn report_refuses_an_output_folder_that_is_not_a_report() {
    let tmp = tempfile::tempdir().unwrap();
    results(&tmp.path().join("r"));
    let mine = tmp.path().join("papers");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("report.md"), "my own notes\n").unwrap();
    let args = ["report", "r", "--bootstrap", "0", "-o", "papers"];
    let (code, out, err) = run(tmp.path(), &args);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(
        err.contains("papers") && err.contains("no earlier report"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(mine.join("report.md")).unwrap(),
        "my own notes\n"
    );
    assert_eq!(std::fs::read_dir(&mine).unwrap().count(), 1);
    // A file in the way is refused too.
    std::fs::write(tmp.path().join("afile"), "x").unwrap();
    let (code, _, err) = run(
        tmp.path(),
        &["report", "r", "--bootstrap", "0", "-o", "afile"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a folder"), "{err}");
    // A new folder, then the same folder again (an earlier report): both written.
    for _ in 0..2 {
        let (code, out, err) = run(
            tmp.path(),
            &["report", "r", "--bootstrap", "0", "-o", "new"],
        );
        assert_eq!(code, 0, "{out}\n{err}");
        assert!(tmp.path().join("new/fit.json").is_file());
    }
}

/// A mixture whose losses are all 3.0 is noted, not fitted: before, the report fitted
/// E = 0.87 to it. Oracle: a constant curve determines no law.
#[test]
fn report_notes_a_flat_group_instead_of_fitting_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    results(&dir);
    let mut t = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    for n in [1e6, 3e6, 1e7] {
        for k in 0..5 {
            let d = 2e6 * 2f64.powi(k);
            t.push_str(&format!(
                "flat-{n}-{k},{n},{n},{d},{},flat,0.5,0,0.5,web,9,3.0,true\n",
                6.0 * n * d
            ));
        }
    }
    std::fs::write(dir.join("results.csv"), t).unwrap();
    let (code, out, err) = run(tmp.path(), &["report", "r", "--bootstrap", "0"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        err.contains("mixture=flat") && err.contains("flat over the data"),
        "{err}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report/fit.json")).unwrap())
            .unwrap();
    fn fitted_flat(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Object(m) => {
                (m.contains_key("params") && m.get("group").is_some_and(|g| g["mixture"] == "flat"))
                    || m.values().any(fitted_flat)
            }
            serde_json::Value::Array(a) => a.iter().any(fitted_flat),
            _ => false,
        }
    }
    assert!(!fitted_flat(&v), "a flat group was fitted");
    // The other mixtures are still fitted.
    assert!(!v["rectified"]["groups"].as_array().unwrap().is_empty());
}
