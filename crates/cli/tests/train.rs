//! `synthscale train` end to end: a run killed with SIGKILL after a checkpoint and resumed
//! logs exactly the metrics of an uninterrupted run; SIGTERM checkpoints and exits 75;
//! a finished run is left alone; bad configs fail before training; two trainers of one run
//! directory train it once.

mod common;

use common::{bin, checkpoint_step, metrics, stderr_of};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A data directory with a BPE of at most 512 tokens (fewer: the text has 22 words).
fn data_dir(dir: &Path) -> PathBuf {
    common::prepare_markov_data(dir, common::WORDS, 300)
}

/// A run config for a tiny model: 400 steps of 256 tokens, 2 micro-batches per step.
/// `extra_model` and `extra_optim` lines replace base lines with the same key.
fn run_config(dir: &Path, extra_model: &str, extra_optim: &str) -> PathBuf {
    let p = dir.join(format!(
        "run-{}.toml",
        extra_model.len() * 31 + extra_optim.len()
    ));
    let model = override_lines("d_model = 32\nn_layers = 2\nn_heads = 2", extra_model);
    let optim = override_lines(
        "lr = 3e-3\nbatch_tokens = 256\nmicro_batch_size = 4\nwarmup_steps = 10",
        extra_optim,
    );
    let text = format!(
        "seed = 7\n[model]\n{model}\n\
         [data]\ndir = \"data\"\nweights = {{ c = 1.0 }}\ntoken_budget = 102400\n\
         [optim]\n{optim}\n\
         [eval]\ninterval = 50\nmax_tokens = 512\nbatch_size = 8\n\
         [checkpoint]\ninterval = 10\n"
    );
    std::fs::write(&p, text).unwrap();
    p
}

fn override_lines(base: &str, extra: &str) -> String {
    let key = |l: &str| l.split_once('=').map(|(k, _)| k.trim().to_string());
    let extra_keys: Vec<_> = extra.lines().filter_map(key).collect();
    let mut out: Vec<&str> = base
        .lines()
        .filter(|l| key(l).is_none_or(|k| !extra_keys.contains(&k)))
        .collect();
    out.extend(extra.lines().filter(|l| !l.trim().is_empty()));
    out.join("\n")
}

fn train(cfg: &Path, run: &Path) -> std::process::Output {
    bin()
        .arg("train")
        .arg("--config")
        .arg(cfg)
        .arg("--run-dir")
        .arg(run)
        .output()
        .unwrap()
}

/// Starts a run and waits until it has checkpointed at least `step`.
fn start_until(cfg: &Path, run: &Path, step: u64) -> std::process::Child {
    let mut cmd = bin();
    cmd.arg("train")
        .arg("--config")
        .arg(cfg)
        .arg("--run-dir")
        .arg(run);
    common::start_until(cmd, run, step)
}

#[test]
fn killed_and_resumed_runs_log_the_uninterrupted_metrics() {
    let dir = tempfile::tempdir().unwrap();
    data_dir(dir.path());
    let cfg = run_config(dir.path(), "", "");

    let a = dir.path().join("a");
    let out = train(&cfg, &a);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(a.join("DONE").exists() && a.join("config.toml").exists());
    let full = metrics(&a);
    let train_lines = full
        .iter()
        .filter(|m| m.get("train_loss").is_some())
        .count();
    assert_eq!(train_lines, 400);
    let evals: Vec<_> = full
        .iter()
        .filter(|m| m.get("val_loss").is_some())
        .collect();
    assert_eq!(evals.len(), 8, "every 50 steps, one domain");
    assert_eq!(evals[0]["eval_domain"], "web");
    // The model learns: the last validation loss is well below the first.
    let first = evals[0]["val_loss"].as_f64().unwrap();
    let last = evals[7]["val_loss"].as_f64().unwrap();
    assert!(last < first, "val loss {first} → {last}");
    assert!(
        last < 1.5,
        "val loss {last}: the chain's entropy is about 0.6 nats a word"
    );

    // SIGKILL after a checkpoint, then resume.
    let b = dir.path().join("b");
    let mut child = start_until(&cfg, &b, 20);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!b.join("DONE").exists(), "the kill must land mid-run");
    let out = train(&cfg, &b);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming at step"));
    assert_eq!(
        metrics(&b),
        full,
        "resumed metrics differ from the uninterrupted run"
    );

    // SIGTERM: checkpoint at the next step boundary, exit 75, resume to the same end.
    let c = dir.path().join("c");
    let child = start_until(&cfg, &c, 20);
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let st = child.wait_with_output().unwrap();
    assert_eq!(st.status.code(), Some(75));
    assert!(!c.join("DONE").exists());
    let stopped_at = checkpoint_step(&c);
    assert!(stopped_at >= 20);
    let m = metrics(&c);
    assert_eq!(
        m.last().unwrap()["step"].as_u64().unwrap(),
        stopped_at,
        "checkpoint at the boundary"
    );
    let out = train(&cfg, &c);
    assert!(out.status.success());
    assert_eq!(metrics(&c), full);

    // A finished run is left alone.
    let before = std::fs::read(a.join("metrics.jsonl")).unwrap();
    let out = train(&cfg, &a);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("already done"));
    assert_eq!(std::fs::read(a.join("metrics.jsonl")).unwrap(), before);

    // Export the finished run in Hugging Face's layout.
    let hf = dir.path().join("hf");
    let out = bin()
        .arg("export")
        .arg(&a)
        .arg("-o")
        .arg(&hf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: Value =
        serde_json::from_slice(&std::fs::read(hf.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "LlamaForCausalLM");
    let meta: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("data/data.json")).unwrap()).unwrap();
    assert_eq!(config["vocab_size"], meta["tokenizer"]["vocab_size"]);
    assert!(hf.join("model.safetensors").exists() && hf.join("tokenizer.json").exists());
    // transformers 5's names, and the end-of-text token as bos, eos and pad everywhere.
    let eot = meta["tokenizer"]["eot_id"].as_u64().unwrap();
    let eot_text = meta["tokenizer"]["eot_token"].as_str().unwrap();
    assert_eq!(config["dtype"], "float32");
    assert!(config.get("torch_dtype").is_none());
    assert_eq!(config["pad_token_id"], eot);
    let gen: Value =
        serde_json::from_slice(&std::fs::read(hf.join("generation_config.json")).unwrap()).unwrap();
    for k in ["bos_token_id", "eos_token_id", "pad_token_id"] {
        assert_eq!(gen[k], eot, "{k}");
    }
    let tc: Value =
        serde_json::from_slice(&std::fs::read(hf.join("tokenizer_config.json")).unwrap()).unwrap();
    for k in ["bos_token", "eos_token", "pad_token"] {
        assert_eq!(tc[k], eot_text, "{k}");
    }
    // The tokenizer starts every text with the token every training document started with
    // (oracle: Hugging Face's tokenizers library loading the exported file).
    let tok = tokenizers::Tokenizer::from_file(hf.join("tokenizer.json")).unwrap();
    let with = tok.encode("the cat sat", true).unwrap();
    let without = tok.encode("the cat sat", false).unwrap();
    assert_eq!(with.get_ids()[0] as u64, eot);
    assert_eq!(&with.get_ids()[1..], without.get_ids());
    // Readable by everyone on a shared machine.
    use std::os::unix::fs::PermissionsExt;
    for e in std::fs::read_dir(&hf).unwrap() {
        let p = e.unwrap().path();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{}", p.display());
    }
    // The model card: the run, its data and its last losses as metrics.jsonl logged them.
    let card = std::fs::read_to_string(hf.join("README.md")).unwrap();
    let last_val = evals.last().unwrap();
    assert!(
        card.contains("run `a`") && card.contains("| c | 1.0000 |"),
        "{card}"
    );
    assert!(
        card.contains(&format!(
            "| web | {} | {:.4} |",
            last_val["step"],
            last_val["val_loss"].as_f64().unwrap()
        )),
        "{card}"
    );

    // Another config in the same run directory is refused.
    let other = run_config(dir.path(), "", "weight_decay = 0.0");
    let out = train(&other, &a.with_file_name("b"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another config"));
}

#[test]
fn bad_run_configs_fail_before_training() {
    let dir = tempfile::tempdir().unwrap();
    data_dir(dir.path());
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "",
            "batch_tokens = 100",
            &["optim.batch_tokens", "32 × 4 = 128"],
        ),
        ("n_kv_heads = 3", "", &["model", "n_kv_heads"]),
        ("", "lr = -1.0", &["optim.lr"]),
        ("dmodel = 4", "", &["unknown field `dmodel`"]),
        // 51,200 tokens a step: more than the ~40k training tokens the data holds.
        (
            "",
            "batch_tokens = 51200",
            &["optim.batch_tokens", "larger than the data"],
        ),
    ];
    for (model, optim, needles) in cases {
        let cfg = run_config(dir.path(), model, optim);
        let run = dir.path().join("bad");
        let out = train(&cfg, &run);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{model}{optim}: {err}");
        for n in *needles {
            assert!(err.contains(n), "{err:?} lacks {n:?}");
        }
        assert!(!run.exists(), "nothing may be written for a bad config");
    }
    // A budget smaller than one step.
    let cfg = run_config(dir.path(), "", "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("token_budget = 102400", "token_budget = 100");
    std::fs::write(&cfg, text).unwrap();
    let out = train(&cfg, &dir.path().join("bad"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("data.token_budget"));
    // An unwritable run directory.
    let cfg = run_config(dir.path(), "", "");
    let out = train(&cfg, Path::new("/proc/synthscale-cannot-write-here"));
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("run directory"));
}

#[test]
fn a_non_finite_loss_stops_the_run_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    data_dir(dir.path());
    // Weights of 1e20 overflow f32 in the first RMSNorm (x² > 3.4e38).
    let cfg = run_config(dir.path(), "init_std = 1e20", "");
    let run = dir.path().join("nan");
    let out = train(&cfg, &run);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("non-finite") && err.contains("step 1"),
        "{err}"
    );
    assert!(!run.join("DONE").exists() && !run.join("checkpoint").exists());
}

/// A run config of `steps` steps of 256 tokens (checkpoints every 10, an evaluation at the
/// end), named `name`; `extra_model` and `extra_optim` as in [`run_config`].
fn short_run_config(
    dir: &Path,
    name: &str,
    steps: u64,
    extra_model: &str,
    extra_optim: &str,
) -> PathBuf {
    let p = run_config(dir, extra_model, extra_optim);
    let text = std::fs::read_to_string(&p).unwrap().replace(
        "token_budget = 102400",
        &format!("token_budget = {}", steps * 256),
    );
    let q = dir.join(format!("{name}.toml"));
    std::fs::write(&q, text).unwrap();
    q
}

fn step_of(dir: &Path) -> u64 {
    let text = std::fs::read_to_string(dir.join("state.json")).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["step"]
        .as_u64()
        .unwrap()
}

/// A finished 40-step run with its DONE marker removed, as if the process had died after
/// its last checkpoint: `checkpoint/` at step 40, `checkpoint.prev/` at step 30.
fn finished_run_without_done(dir: &Path) -> (PathBuf, PathBuf, Vec<Value>) {
    data_dir(dir);
    let cfg = short_run_config(dir, "short", 40, "", "");
    let run = dir.join("run");
    let out = train(&cfg, &run);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(step_of(&run.join("checkpoint")), 40);
    assert_eq!(step_of(&run.join("checkpoint.prev")), 30);
    assert!(run.join("checkpoint/SHA256SUMS").is_file());
    std::fs::remove_file(run.join("DONE")).unwrap();
    let full = metrics(&run);
    (cfg, run, full)
}

#[test]
fn flipped_bytes_in_a_checkpoint_are_refused_on_resume() {
    // Issue 12's reproduction: 1,000 flipped bytes in model.safetensors resumed without
    // complaint. Oracle: SHA256SUMS, written before the checkpoint was renamed into place.
    let dir = tempfile::tempdir().unwrap();
    let (cfg, run, full) = finished_run_without_done(dir.path());
    let mp = run.join("checkpoint/model.safetensors");
    let mut bytes = std::fs::read(&mp).unwrap();
    let n = bytes.len();
    for b in &mut bytes[n - 1000..] {
        *b ^= 0x5a;
    }
    std::fs::write(&mp, &bytes).unwrap();
    let out = train(&cfg, &run);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("checkpoint/model.safetensors")
            && err.contains("field `sha256`")
            && err.contains("checkpoint.prev")
            && err.contains("step 30"),
        "{err}"
    );
    assert!(
        !run.join("DONE").exists(),
        "nothing trained from a damaged checkpoint"
    );
    assert!(
        mp.exists() && run.join("checkpoint.prev").exists(),
        "both kept"
    );
    assert_eq!(metrics(&run), full);

    // Following the message: the damaged checkpoint moved aside, the run resumes from the
    // previous one and ends with the metrics of the uninterrupted run.
    std::fs::rename(run.join("checkpoint"), run.join("checkpoint.damaged")).unwrap();
    let out = train(&cfg, &run);
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("resuming at step 30"), "{err}");
    assert!(run.join("DONE").exists());
    assert_eq!(metrics(&run), full);
}

#[test]
fn an_edited_state_json_is_refused_on_resume() {
    // Issue 12's reproduction: step 999999 wrote DONE with the step-16 model and no final
    // evaluation. Oracle: the run's config (40 steps of 256 tokens, seed 7).
    let dir = tempfile::tempdir().unwrap();
    let (cfg, run, full) = finished_run_without_done(dir.path());
    let sp = run.join("checkpoint/state.json");
    let original = std::fs::read_to_string(&sp).unwrap();
    let state: Value = serde_json::from_str(&original).unwrap();
    let cases: &[(&str, u64, &str)] = &[
        (
            "step",
            999_999,
            "field `step`: 999999 is beyond the run's 40 steps",
        ),
        ("step", 1, "field `tokens`"),
        ("optimizer_t", 1, "field `optimizer_t`"),
        ("tokens", 5, "field `tokens`"),
        ("seed", 8, "field `seed`"),
    ];
    for (key, value, needle) in cases {
        let mut s = state.clone();
        s[*key] = (*value).into();
        std::fs::write(&sp, serde_json::to_string_pretty(&s).unwrap()).unwrap();
        let out = train(&cfg, &run);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{key} = {value}: {err}");
        assert!(
            err.contains("checkpoint/state.json") && err.contains(needle),
            "{key} = {value}: {err}"
        );
        assert!(!run.join("DONE").exists());
    }
    // Consistent edits (step 30, its tokens and update count) still fail the checksum.
    let mut s = state.clone();
    s["step"] = 30.into();
    s["tokens"] = (30 * 256).into();
    s["optimizer_t"] = 30.into();
    std::fs::write(&sp, serde_json::to_string_pretty(&s).unwrap()).unwrap();
    let out = train(&cfg, &run);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("state.json") && err.contains("field `sha256`"),
        "{err}"
    );
    // Restored, it resumes (at its last step: only DONE is left to write).
    std::fs::write(&sp, &original).unwrap();
    let out = train(&cfg, &run);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(run.join("DONE").exists());
    assert_eq!(metrics(&run), full);
}

#[test]
fn a_checkpoint_from_before_checksums_still_loads_and_a_missing_manifest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, run, _) = finished_run_without_done(dir.path());
    let sums = run.join("checkpoint/SHA256SUMS");
    let saved = std::fs::read(&sums).unwrap();
    // state.json says format 1: a checkpoint written with SHA256SUMS that has lost it.
    std::fs::remove_file(&sums).unwrap();
    let out = train(&cfg, &run);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("SHA256SUMS") && err.contains("format"),
        "{err}"
    );
    std::fs::write(&sums, saved).unwrap();
    // As an older synthscale wrote it: no SHA256SUMS, no `format` in state.json.
    std::fs::remove_file(&sums).unwrap();
    let sp = run.join("checkpoint/state.json");
    let mut s: Value = serde_json::from_str(&std::fs::read_to_string(&sp).unwrap()).unwrap();
    s.as_object_mut().unwrap().remove("format");
    std::fs::write(&sp, serde_json::to_string_pretty(&s).unwrap()).unwrap();
    let out = train(&cfg, &run);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(run.join("DONE").exists());
}

#[test]
fn stale_checkpoint_temp_dirs_of_dead_processes_are_removed_at_start() {
    // Oracle: pid_max is at most 2^22 on Linux, so pid 2^22 + 7 is dead; this test's own
    // pid is alive.
    let dir = tempfile::tempdir().unwrap();
    data_dir(dir.path());
    let cfg = short_run_config(dir.path(), "ten", 10, "", "");
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    let dead = 4_194_304 + 7;
    let me = std::process::id();
    for n in [
        format!("checkpoint.tmp-{dead}"),
        format!("checkpoint.tmp-{me}"),
        format!("checkpoint.tmp-{dead}-another-host"),
    ] {
        std::fs::create_dir(run.join(&n)).unwrap();
        std::fs::write(run.join(&n).join("model.safetensors"), vec![0u8; 4096]).unwrap();
    }
    let out = train(&cfg, &run);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(!run.join(format!("checkpoint.tmp-{dead}")).exists());
    assert!(
        run.join(format!("checkpoint.tmp-{me}")).exists(),
        "a live process's"
    );
    assert!(run
        .join(format!("checkpoint.tmp-{dead}-another-host"))
        .exists());
}

#[test]
fn train_applies_the_sweep_memory_bound_before_allocating() {
    // Issue 12: d_model = 1,000,000 allocated until the machine ran out of memory.
    // Oracle: 2 layers at d = 65,536 hold about 1e11 parameters, 1.5 TiB with AdamW state,
    // more than this machine (or any CPU test machine) has.
    let dir = tempfile::tempdir().unwrap();
    data_dir(dir.path());
    let started = Instant::now();
    let cases: &[(&str, &[&str])] = &[
        ("d_model = 1000000", &["field `model`", "d_model = 1000000"]),
        (
            "d_model = 65536",
            &["field `model`", "GiB", "optim.micro_batch_size"],
        ),
    ];
    for (model, needles) in cases {
        let cfg = short_run_config(dir.path(), "huge", 10, model, "");
        let run = dir.path().join("huge");
        let out = train(&cfg, &run);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{model}: {err}");
        for n in *needles {
            assert!(err.contains(n), "{model}: {err:?} lacks {n:?}");
        }
        assert!(!run.exists(), "nothing may be written");
    }
    // The sweep's override, device_memory_gib, bounds a small model too.
    let cfg = short_run_config(dir.path(), "small", 10, "", "");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("device_memory_gib = 0.000001\n{text}")).unwrap();
    let out = train(&cfg, &dir.path().join("small"));
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("device_memory_gib") && err.contains("GiB"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "refused before allocating"
    );
}

#[test]
fn a_mixture_of_an_unknown_source_is_reported_in_the_mixture_field() {
    // Issue 12: `weights = { nope = 1.0 }` was reported as an error in optim.batch_tokens.
    let dir = tempfile::tempdir().unwrap();
    data_dir(dir.path());
    let cfg = short_run_config(dir.path(), "nope", 10, "", "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("weights = { c = 1.0 }", "weights = { nope = 1.0 }");
    std::fs::write(&cfg, text).unwrap();
    let out = train(&cfg, &dir.path().join("nope"));
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("data.weights.nope") && !err.contains("batch_tokens"),
        "{err}"
    );
}

#[test]
fn warmup_longer_than_the_run_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    data_dir(dir.path());
    let cfg = short_run_config(dir.path(), "warm", 10, "", "warmup_steps = 11");
    let out = train(&cfg, &dir.path().join("warm"));
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("optim.warmup_steps") && err.contains("= 10 steps"),
        "{err}"
    );
    // As long as the run is allowed.
    let cfg = short_run_config(dir.path(), "warm", 10, "", "warmup_steps = 10");
    let out = train(&cfg, &dir.path().join("warm"));
    assert!(out.status.success(), "{}", stderr_of(&out));
}

#[test]
fn a_token_id_outside_the_vocabulary_fails_before_training_naming_the_shard() {
    // Issue 12's reproduction: ids of 0xFFFF failed inside candle ("index-select invalid
    // index 65535", exit 1, a 55-line backtrace).
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let shard = data.join("train/c.bin");
    let mut bytes = std::fs::read(&shard).unwrap();
    for i in 0..50 {
        let at = 128 + 2 * (100 + 7 * i);
        bytes[at..at + 2].copy_from_slice(&[0xFF, 0xFF]);
    }
    std::fs::write(&shard, bytes).unwrap();
    let cfg = short_run_config(dir.path(), "ids", 10, "", "");
    let run = dir.path().join("ids");
    let out = train(&cfg, &run);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("train/c.bin") && err.contains("id 65535") && err.contains("vocab_size"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one message: {err}");
    assert!(!run.exists());
}

#[test]
fn export_refuses_an_output_that_is_not_an_export_and_a_changed_tokenizer() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let cfg = short_run_config(dir.path(), "exp", 10, "", "");
    let run = dir.path().join("run");
    assert!(train(&cfg, &run).status.success());
    let export = |out: &Path| {
        bin()
            .arg("export")
            .arg(&run)
            .arg("-o")
            .arg(out)
            .output()
            .unwrap()
    };

    // A folder of the user's, and a file: refused, untouched.
    let mine = dir.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("important.txt"), "keep me").unwrap();
    let out = export(&mine);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("important.txt") && err.contains("untouched"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(mine.join("important.txt")).unwrap(),
        "keep me"
    );
    let file = dir.path().join("file.txt");
    std::fs::write(&file, "notes").unwrap();
    let out = export(&file);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "notes");

    // A new folder, then the same again: an earlier export is replaced.
    let hf = dir.path().join("hf");
    for _ in 0..2 {
        let out = export(&hf);
        assert!(out.status.success(), "{}", stderr_of(&out));
    }
    let mut names: Vec<_> = std::fs::read_dir(&hf)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "README.md",
            "config.json",
            "generation_config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json"
        ]
    );

    // A tokenizer edited after the data was prepared is not shipped.
    let tok = data.join("tokenizer.json");
    let text = std::fs::read_to_string(&tok).unwrap();
    std::fs::write(&tok, text.replacen("<|endoftext|>", "<|end|>", 1)).unwrap();
    let hf2 = dir.path().join("hf2");
    let out = export(&hf2);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("tokenizer.json") && err.contains("sha256"),
        "{err}"
    );
    assert!(!hf2.exists());
}

/// `synthscale_train::EXIT_LOCKED`: the run directory is held by another live process.
const EXIT_LOCKED: i32 = 73;

/// Every optimizer step once, in order, and each step's evaluation once per domain.
fn assert_each_step_once(run: &Path, steps: u64) {
    let m = metrics(run);
    let train: Vec<u64> = m
        .iter()
        .filter(|x| x.get("train_loss").is_some())
        .map(|x| x["step"].as_u64().unwrap())
        .collect();
    assert_eq!(train, (1..=steps).collect::<Vec<_>>(), "{}", run.display());
    let mut evals: Vec<(u64, String)> = m
        .iter()
        .filter(|x| x.get("val_loss").is_some())
        .map(|x| {
            (
                x["step"].as_u64().unwrap(),
                x["eval_domain"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let n = evals.len();
    evals.dedup();
    assert_eq!(evals.len(), n, "an evaluation logged twice");
}

#[test]
fn two_trainers_on_one_run_dir_train_it_once() {
    let dir = tempfile::tempdir().unwrap();
    data_dir(dir.path());
    let cfg = run_config(dir.path(), "", "");

    // A second trainer while the first is mid-run: refused at once, naming the directory
    // and the holder, exit 73; the first trains on undisturbed.
    let run = dir.path().join("dup");
    let first = start_until(&cfg, &run, 10);
    let second = train(&cfg, &run);
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(EXIT_LOCKED), "{err}");
    assert!(err.contains(&run.display().to_string()), "{err}");
    assert!(err.contains(&format!("pid {}", first.id())), "{err}");
    let st = first.wait_with_output().unwrap();
    assert!(st.status.success());
    assert!(run.join("DONE").exists());
    assert_each_step_once(&run, 400);

    // Two started at the same instant: exactly one trains.
    let run = dir.path().join("dup2");
    let spawn = || {
        bin()
            .arg("train")
            .arg("--config")
            .arg(&cfg)
            .arg("--run-dir")
            .arg(&run)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let mut codes = vec![a.status.code(), b.status.code()];
    codes.sort();
    assert_eq!(
        codes,
        vec![Some(0), Some(EXIT_LOCKED)],
        "{}\n{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    let done = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).contains("done after");
    assert_eq!(done(&a) as u32 + done(&b) as u32, 1);
    assert_each_step_once(&run, 400);
    // The lock dies with its holder: the finished directory opens again at once.
    let out = train(&cfg, &run);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("already done"));
}

/// Without the `mpi` feature a data-parallel launch is refused up front, naming what is
/// missing; a launcher's rank variables that contradict each other are bad input too.
#[cfg(not(feature = "mpi"))]
#[test]
fn data_parallel_launches_need_the_mpi_build() {
    let dir = tempfile::tempdir().unwrap();
    data_dir(dir.path());
    let cfg = run_config(dir.path(), "", "");
    let run = dir.path().join("r");
    // (arguments, environment, what the error says)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 3] = [
        (
            &["--nproc", "2"],
            &[],
            "--nproc 2 needs a binary built with --features mpi",
        ),
        (
            &[],
            &[("RANK", "1"), ("WORLD_SIZE", "2")],
            "no data-parallel engine",
        ),
        (
            &[],
            &[("RANK", "2"), ("WORLD_SIZE", "2")],
            "RANK=2 is not below WORLD_SIZE=2",
        ),
    ];
    for (args, env, msg) in cases {
        let out = bin()
            .arg("train")
            .arg("--config")
            .arg(&cfg)
            .arg("--run-dir")
            .arg(&run)
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} {env:?}: {}",
            stderr_of(&out)
        );
        assert!(stderr_of(&out).contains(msg), "{}", stderr_of(&out));
        assert!(!run.exists(), "nothing written");
    }
}
