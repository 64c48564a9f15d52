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
