//! Fixtures the CLI tests share: the binary, a Markov-chain corpus a model can learn far
//! below its unigram entropy, command-output helpers, and metrics without wall-clock fields.
// Each test binary uses its own subset of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `synthscale` binary under test.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_synthscale"))
}

/// The corpus's vocabulary: 22 words.
pub const WORDS: &[&str] = &[
    "the", "river", "carried", "small", "boats", "past", "a", "quiet", "town", "where", "people",
    "made", "bread", "and", "wrote", "letters", "to", "friends", "far", "away", "every", "morning",
];

/// `docs` JSONL documents of 120 words each from a Markov chain over `words`: the next word
/// is fixed by the previous one 9 times in 10, so a model can learn far below the unigram
/// entropy (about 0.6 nats per word). Deterministic (a fixed LCG).
pub fn markov_jsonl(words: &[&str], docs: usize) -> String {
    let mut x = 12345u64;
    let mut lines = String::new();
    let mut w = 0usize;
    for d in 0..docs {
        let mut text = String::new();
        for _ in 0..120 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = (x >> 33) as usize;
            w = if r % 10 == 0 {
                r / 10 % words.len()
            } else {
                (w * 5 + 3) % words.len()
            };
            text.push_str(words[w]);
            text.push(' ');
        }
        lines.push_str(&serde_json::json!({"id": d, "text": text}).to_string());
        lines.push('\n');
    }
    lines
}

/// `synthscale <args>` run in `dir`.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    bin().current_dir(dir).args(args).output().unwrap()
}

/// A command's standard output.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A command's standard error.
pub fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success (printing both streams otherwise) and returns standard output.
pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(&o),
        stderr_of(&o)
    );
    stdout(&o)
}

/// A run's `metrics.jsonl` without the wall-clock fields (`tokens_per_s`, `mfu`, `comm_s`), so that
/// runs can be compared record for record.
pub fn metrics(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("tokens_per_s");
            o.remove("mfu");
            o.remove("comm_s");
            v
        })
        .collect()
}

/// The `[data]` section of the Markov corpus: a 512-token BPE, sequences of 32 tokens, one
/// natural source `c` (domain `web`) with a tenth held out.
pub const MARKOV_DATA: &str = "[data]\ntokenizer = { kind = \"bpe\", vocab_size = 512 }\n\
    validation_fraction = 0.1\nseq_len = 32\n[[data.sources]]\nname = \"c\"\n\
    kind = \"natural\"\ndomain = \"web\"\npath = \"c.jsonl\"\n";

/// `dir/c.jsonl` (`markov_jsonl(words, docs)`) and `dir/data.toml`, prepared into
/// `dir/data`, which is returned.
pub fn prepare_markov_data(dir: &Path, words: &[&str], docs: usize) -> std::path::PathBuf {
    std::fs::write(dir.join("c.jsonl"), markov_jsonl(words, docs)).unwrap();
    std::fs::write(dir.join("data.toml"), MARKOV_DATA).unwrap();
    let out = dir.join("data");
    let st = bin()
        .args(["data", "prepare"])
        .arg(dir.join("data.toml"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", stderr_of(&st));
    out
}

/// The step of a run's latest checkpoint (0 before its first).
pub fn checkpoint_step(run: &Path) -> u64 {
    std::fs::read_to_string(run.join("checkpoint/state.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .and_then(|v| v["step"].as_u64())
        .unwrap_or(0)
}

/// Whether a Slurm cluster answers here (scripts/slurm-local.sh starts one).
pub fn slurm_up() -> Result<(), String> {
    let sinfo = Command::new("sinfo").args(["-h", "-o", "%T"]).output();
    match sinfo {
        Err(_) => Err("sinfo is not on PATH".into()),
        Ok(o) if !o.status.success() => Err(format!(
            "sinfo failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(o) => {
            let s = String::from_utf8_lossy(&o.stdout);
            if s.contains("idle") || s.contains("mix") || s.contains("alloc") {
                Ok(())
            } else {
                Err(format!("no usable node: {s:?}"))
            }
        }
    }
}

/// Starts `cmd` (a `train`, with its output discarded) and waits until its run has
/// checkpointed at least `step`; panics if it ends first or takes over 120 s.
pub fn start_until(mut cmd: Command, run: &Path, step: u64) -> Child {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while checkpoint_step(run) < step {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "no checkpoint at step {step}"
        );
        if let Some(st) = child.try_wait().unwrap() {
            panic!("the run ended ({st}) before step {step}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child
}

/// The ids of a sweep's runs (its `configs/` file names), sorted.
pub fn run_ids(sweep_dir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(sweep_dir.join("configs"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    ids.sort();
    ids
}

/// `dir/c.jsonl` (300 Markov documents over [`WORDS`]) and the manifest `dir/<name>`: that
/// corpus as its `[data]` (prepared into `dir/data`), then `sweep`. Returns the manifest.
pub fn markov_sweep_manifest(dir: &Path, name: &str, sweep: &str) -> PathBuf {
    let lines = markov_jsonl(WORDS, 300);
    std::fs::write(dir.join("c.jsonl"), lines).unwrap();
    let manifest = dir.join(name);
    std::fs::write(
        &manifest,
        format!(
            "[data]\ntokenizer = {{ kind = \"bpe\", vocab_size = 512 }}\nvalidation_fraction = 0.1\n\
             seq_len = 32\nout_dir = \"data\"\n[[data.sources]]\nname = \"c\"\nkind = \"natural\"\n\
             domain = \"web\"\npath = \"c.jsonl\"\n\n{sweep}"
        ),
    )
    .unwrap();
    manifest
}

/// Two `synthscale sweep launch <manifest> --jobs 2` started at once in `dir`, their
/// standard output captured; both outputs once both have ended.
pub fn two_launches_at_once(dir: &Path, manifest: &str) -> (Output, Output) {
    let spawn = || {
        bin()
            .current_dir(dir)
            .args(["sweep", "launch", manifest, "--jobs", "2"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    (a.wait_with_output().unwrap(), b.wait_with_output().unwrap())
}

/// Runs `cmd` to its end: its exit code (-1 when killed by a signal), standard output and
/// standard error.
pub fn code_and_output(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        stdout(&out),
        stderr_of(&out),
    )
}
