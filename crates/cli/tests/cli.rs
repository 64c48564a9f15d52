//! The binary's contract: exit codes 0 / 2, one clear message naming file and field, and
//! no half-written output.

mod common;

use std::path::{Path, PathBuf};

use common::{bin, code_and_output as run};

fn gpt2() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/tokenizers/gpt2.json")
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

/// The names of a folder's entries, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn prepare(m: &Path, out: &Path, force: bool) -> (i32, String, String) {
    let mut cmd = bin();
    cmd.arg("data").arg("prepare").arg(m).arg("--out").arg(out);
    if force {
        cmd.arg("--force");
    }
    run(&mut cmd)
}

#[test]
fn force_refuses_a_directory_that_is_not_a_data_dir() {
    // Issue 12's reproduction: `--force` removed a folder holding important.txt (exit 0),
    // and renamed an --out naming a file to a hidden .name.old (exit 1).
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), "");
    let out = dir.path().join("data");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("important.txt"), "keep me").unwrap();
    let (code, _, stderr) = prepare(&m, &out, true);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("data") && stderr.contains("--force") && stderr.contains("untouched"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("important.txt")).unwrap(),
        "keep me"
    );
    assert_eq!(entries(&out), vec!["important.txt"]);

    // --out naming a file: refused, with or without --force, the file as it was.
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "my notes").unwrap();
    for force in [false, true] {
        let (code, _, stderr) = prepare(&m, &file, force);
        assert_eq!(code, 2, "{stderr}");
        assert!(
            stderr.contains("notes.txt") && stderr.contains("a file"),
            "{stderr}"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "my notes");
    }

    // A data directory is replaced by --force; one with a file of the user's inside is not.
    let real = dir.path().join("real");
    assert_eq!(prepare(&m, &real, false).0, 0);
    let (code, stdout, stderr) = prepare(&m, &real, true);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("prepared"), "{stdout}");
    std::fs::write(real.join("train/README"), "notes").unwrap();
    let (code, _, stderr) = prepare(&m, &real, true);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("train/README"), "{stderr}");
    assert!(real.join("train/README").exists() && real.join("data.json").exists());
    assert_eq!(
        entries(dir.path()),
        vec![
            "a.jsonl",
            "b.jsonl",
            "data",
            "notes.txt",
            "real",
            "study.toml"
        ],
        "nothing hidden left behind"
    );
}

#[test]
fn stale_temporary_directories_of_dead_processes_are_removed_at_start() {
    // Oracle: pid_max is at most 2^22 on Linux, so pid 2^22 + 7 is dead; this test's own
    // pid is alive.
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), "");
    let dead = 4_194_304 + 7;
    let me = std::process::id();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host = host.trim();
    let names = [
        format!(".data.tmp-{dead}"),
        format!(".data.tmp-{dead}-{host}"),
        format!(".data.old-{dead}-{host}"),
        format!(".data.tmp-{me}"),
        format!(".data.tmp-{dead}-another-host"),
    ];
    for n in &names {
        std::fs::create_dir(dir.path().join(n)).unwrap();
        std::fs::write(dir.path().join(n).join("x.bin"), vec![0u8; 1000]).unwrap();
    }
    let (code, _, stderr) = prepare(&m, &dir.path().join("data"), false);
    assert_eq!(code, 0, "{stderr}");
    for n in &names[..3] {
        assert!(!dir.path().join(n).exists(), "{n} was not removed");
    }
    for n in &names[3..] {
        assert!(
            dir.path().join(n).exists(),
            "{n} belongs to a live or remote process"
        );
    }
}

#[test]
fn a_damaged_data_dir_is_refused_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), "");
    let out = dir.path().join("data");
    assert_eq!(prepare(&m, &out, false).0, 0);
    let inspect = || run(bin().args(["data", "inspect"]).arg(&out));
    assert_eq!(inspect().0, 0);

    // Each damage, then the file restored.
    let shard = out.join("train/a.bin");
    let meta_path = out.join("data.json");
    let tok_path = out.join("tokenizer.json");
    let meta_text = std::fs::read_to_string(&meta_path).unwrap();
    let meta: serde_json::Value = serde_json::from_str(&meta_text).unwrap();
    let edit_meta = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = meta.clone();
        f(&mut v);
        std::fs::write(&meta_path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    };

    // A token id of 0xFFFF (GPT-2's vocabulary has 50,257): refused when the shard is
    // opened, naming the shard and the header field, not deep inside the model.
    let good = std::fs::read(&shard).unwrap();
    let mut bad = good.clone();
    bad[128 + 2 * 10..128 + 2 * 11].copy_from_slice(&[0xFF, 0xFF]);
    std::fs::write(&shard, &bad).unwrap();
    let (code, _, stderr) = inspect();
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("a.bin") && stderr.contains("65535") && stderr.contains("vocab_size"),
        "{stderr}"
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "one message, no backtrace: {stderr}"
    );
    std::fs::write(&shard, &good).unwrap();

    // data.json's vocabulary against the shard headers.
    edit_meta(&|v| v["tokenizer"]["vocab_size"] = 60000.into());
    let (code, _, stderr) = inspect();
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("data.json") && stderr.contains("tokenizer.vocab_size"),
        "{stderr}"
    );

    // A source's kind against the kind its shards were prepared as.
    edit_meta(&|v| v["sources"][1]["kind"] = "textbook".into());
    let (code, _, stderr) = inspect();
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("data.json") && stderr.contains("sources[1].kind"),
        "{stderr}"
    );
    std::fs::write(&meta_path, &meta_text).unwrap();
    assert_eq!(inspect().0, 0);

    // An edited tokenizer.json no longer hashes to the recorded tokenizer.
    let tok = std::fs::read_to_string(&tok_path).unwrap();
    std::fs::write(
        &tok_path,
        tok.replacen("\"<|endoftext|>\"", "\"<|end|>\"", 1),
    )
    .unwrap();
    let (code, _, stderr) = inspect();
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("tokenizer.json") && stderr.contains("sha256"),
        "{stderr}"
    );
    std::fs::write(&tok_path, tok).unwrap();
    assert_eq!(inspect().0, 0);
}

/// `synthscale completions bash`: bash itself (the oracle) loads the script and, called as
/// bash's completion calls it (command, current word, previous word), completes
/// `synthscale sw` to `sweep` and `synthscale train --np` to `--nproc`.
#[test]
fn bash_completes_subcommands_and_options() {
    let out = bin().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("synthscale.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let complete = |words: &str, cword: usize| -> String {
        let o = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{words}'; \
                 COMP_POINT=${{#COMP_LINE}}; \
                 _synthscale synthscale \"${{COMP_WORDS[COMP_CWORD]}}\" \
                 \"${{COMP_WORDS[COMP_CWORD-1]}}\"; echo \"${{COMPREPLY[@]}}\"",
                script.display()
            ))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(complete("synthscale sw", 1), "sweep");
    assert!(complete("synthscale train --np", 2)
        .split(' ')
        .any(|w| w == "--nproc"));
    for shell in ["zsh", "fish"] {
        let o = bin().args(["completions", shell]).output().unwrap();
        assert!(o.status.success() && !o.stdout.is_empty(), "{shell}");
    }
}

/// `synthscale man`: groff (the oracle, where installed) renders the top page and every
/// subcommand's page without a warning, and the pages name their options.
#[test]
fn man_pages_render_for_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin().args(["man"]).output().unwrap();
    assert!(out.status.success());
    let top = String::from_utf8(out.stdout).unwrap();
    assert!(
        top.contains(".TH synthscale 1") && top.contains("sweep"),
        "{top}"
    );
    let o = bin()
        .args(["man", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plan = std::fs::read_to_string(dir.path().join("synthscale-sweep-plan.1")).unwrap();
    assert!(plan.contains("flops\\-per\\-s"), "{plan}");
    let pages: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for name in [
        "synthscale.1",
        "synthscale-train.1",
        "synthscale-bench-synth.1",
    ] {
        assert!(dir.path().join(name).exists(), "{name}");
    }
    let groff = std::process::Command::new("groff").arg("-v").output();
    if groff.is_err() {
        eprintln!("groff not installed: pages checked without rendering");
        return;
    }
    for p in &pages {
        let o = std::process::Command::new("groff")
            .args(["-k", "-man", "-Tutf8", "-ww", "-z"]) // -k: preconv, as man runs it
            .arg(p)
            .output()
            .unwrap();
        assert!(
            o.status.success() && o.stderr.is_empty(),
            "{}: {}",
            p.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}
