//! The binary's contract: exit codes 0 / 2, one clear message naming file and field, and
//! no half-written output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_synthscale"))
}

fn gpt2() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/tokenizers/gpt2.json")
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn doc(i: usize) -> String {
    format!(
        "Record {i} tells how the river town of number {i} kept its mills, its schools \
         and its bells through {} winters, and what the teachers wrote about it. ",
        i * 7 % 50
    )
    .repeat(4)
}

/// A manifest with two JSONL sources in `dir`; `extra` is appended to `[data]`.
fn manifest(dir: &Path, extra: &str) -> PathBuf {
    for (name, first) in [("a", 0), ("b", 500)] {
        let lines: String = (first..first + 120)
            .map(|i| format!("{}\n", serde_json::json!({ "text": doc(i) })))
            .collect();
        std::fs::write(dir.join(format!("{name}.jsonl")), lines).unwrap();
    }
    let m = dir.join("study.toml");
    std::fs::write(
        &m,
        format!(
            "[data]\ntokenizer = {{ kind = \"file\", path = {:?} }}\nvalidation_fraction = 0.1\n\
             seq_len = 32\n{extra}\n\
             [[data.sources]]\nname = \"a\"\nkind = \"natural\"\ndomain = \"web\"\npath = \"a.jsonl\"\n\
             [[data.sources]]\nname = \"b\"\nkind = \"rephrased\"\ndomain = \"web\"\npath = \"b.jsonl\"\n",
            gpt2()
        ),
    )
    .unwrap();
    m
}

#[test]
fn prepare_inspect_and_mix_work_and_a_rerun_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), "");
    let out = dir.path().join("data");
    let (code, stdout, stderr) = run(bin()
        .arg("data")
        .arg("prepare")
        .arg(&m)
        .arg("--out")
        .arg(&out));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("prepared"), "{stdout}");
    assert!(
        stdout.contains("web") && stdout.contains("rephrased"),
        "{stdout}"
    );
    // Plain progress lines when stderr is not a terminal.
    assert!(
        stderr.contains("[1/2] a:") && stderr.contains("[2/2] b:"),
        "{stderr}"
    );

    let (code, stdout, _) = run(bin()
        .arg("data")
        .arg("prepare")
        .arg(&m)
        .arg("--out")
        .arg(&out));
    assert_eq!(code, 0);
    assert!(stdout.contains("up to date"), "{stdout}");

    let (code, stdout, _) = run(bin().args(["data", "inspect"]).arg(&out));
    assert_eq!(code, 0);
    assert!(
        stdout.contains("validation domains") && stdout.contains("gpt2.json"),
        "{stdout}"
    );
    let (code, stdout, _) = run(bin().args(["data", "inspect", "--json"]).arg(&out));
    assert_eq!(code, 0);
    let meta: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(meta["tokenizer"]["eot_id"], 50256);

    let (code, stdout, stderr) = run(bin().args(["data", "mix"]).arg(&out).args([
        "--shares",
        "natural=0.667,rephrased=0.333",
        "--budget",
        "2k",
        "--batch-size",
        "4",
        "--json",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let r: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    // 2000 tokens / (4 × 32) = 15 whole steps = 60 sequences: 40 natural, 20 rephrased.
    assert_eq!(r["steps"], 15);
    assert_eq!(r["sources"][0]["sequences"], 40);
    assert_eq!(r["sources"][1]["sequences"], 20);
}

#[test]
fn bad_manifests_exit_2_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &[&str])] = &[
        (
            "sequence_len = 5",
            &["study.toml", "unknown field `sequence_len`"],
        ),
        (
            "max_repeats = -1.0",
            &["study.toml", "data.max_repeats", "-1"],
        ),
        ("token_dtype = \"u8\"", &["study.toml", "token_dtype"]),
    ];
    for (extra, needles) in cases {
        let m = manifest(dir.path(), extra);
        let out = dir.path().join("data");
        let (code, _, stderr) = run(bin()
            .arg("data")
            .arg("prepare")
            .arg(&m)
            .arg("--out")
            .arg(&out));
        assert_eq!(code, 2, "{extra}: {stderr}");
        assert_eq!(stderr.matches("error:").count(), 1, "one message: {stderr}");
        for n in *needles {
            assert!(stderr.contains(n), "{extra}: {stderr:?} lacks {n:?}");
        }
        assert!(!out.exists());
    }
    // A manifest that does not exist.
    let (code, _, stderr) = run(bin().args(["data", "prepare", "no-such.toml"]));
    assert_eq!(code, 2);
    assert!(stderr.contains("no-such.toml"), "{stderr}");
}

#[test]
fn bad_corpora_exit_2_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), "");
    let out = dir.path().join("data");
    std::fs::write(
        dir.path().join("b.jsonl"),
        b"{\"text\": \"fine\"}\n{\"txt\": \"typo\"}\n",
    )
    .unwrap();
    let before: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let (code, _, stderr) = run(bin()
        .arg("data")
        .arg("prepare")
        .arg(&m)
        .arg("--out")
        .arg(&out));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("b.jsonl:2") && stderr.contains("`text`"),
        "{stderr}"
    );
    let after: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        before.len(),
        after.len(),
        "no temporary directory left: {after:?}"
    );
    assert!(!out.exists());
}

#[test]
fn bad_mixtures_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), "");
    let out = dir.path().join("data");
    assert_eq!(
        run(bin()
            .arg("data")
            .arg("prepare")
            .arg(&m)
            .arg("--out")
            .arg(&out))
        .0,
        0
    );
    let cases: &[(&[&str], &str)] = &[
        (
            &["--weights", "a=0.5,b=0.4", "--budget", "10k"],
            "sum to 0.9",
        ),
        (&["--weights", "a=1", "--budget", "0"], "positive"),
        (&["--weights", "a=1", "--budget=-5"], "positive"),
        (
            &["--weights", "a=1", "--budget", "100"],
            "less than one batch",
        ),
        (&["--weights", "nope=1", "--budget", "10k"], "mixture.nope"),
        (
            &["--shares", "synthetic=1", "--budget", "10k"],
            "not a kind",
        ),
        (
            &["--shares", "textbook=1", "--budget", "10k"],
            "no textbook source",
        ),
    ];
    for (args, needle) in cases {
        let (code, _, stderr) = run(bin().args(["data", "mix"]).arg(&out).args(*args));
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: {stderr:?} lacks {needle:?}"
        );
    }
}
