//! `init_from` (continued pre-training) end to end: a run starts from the final weights of
//! a finished run or of its export, bit for bit, with a fresh optimizer and step; a source
//! of another model shape or tokenizer is refused (exit 2) naming the file, field and both
//! values before anything trains; a run with a checkpoint of its own resumes from it and
//! never reads the source again; a sweep size's `init_from` is checked at plan time.

mod common;

use common::{bin, metrics, stderr_of};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;
use synthscale_train::{train, Event, Outcome, TrainOptions};

/// A data directory `dir/data` from the Markov corpus (20 words, 200 documents).
fn data_dir(dir: &Path) -> PathBuf {
    common::prepare_markov_data(dir, &common::WORDS[..20], 200)
}

/// `synthscale export <run> -o <out>`, which must succeed.
fn export(run: &Path, out: &Path) {
    let o = bin()
        .arg("export")
        .arg(run)
        .arg("-o")
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
}

/// A run config `dir/<name>.toml` of `steps` steps of 256 tokens; `model` is the model
/// section's shape, `extra` lines go at the top (e.g. `init_from = "a"`).
fn run_config(dir: &Path, name: &str, seed: u64, steps: u64, model: &str, extra: &str) -> PathBuf {
    let p = dir.join(format!("{name}.toml"));
    let text = format!(
        "seed = {seed}\n{extra}\n[model]\n{model}\n\
         [data]\ndir = \"data\"\nweights = {{ c = 1.0 }}\ntoken_budget = {}\n\
         [optim]\nlr = 3e-3\nbatch_tokens = 256\nmicro_batch_size = 4\nwarmup_steps = 2\n\
         [eval]\ninterval = 5\nmax_tokens = 512\nbatch_size = 8\n\
         [checkpoint]\ninterval = 5\n",
        steps * 256
    );
    std::fs::write(&p, text).unwrap();
    p
}

const SMALL: &str = "d_model = 32\nn_layers = 2\nn_heads = 2";

fn train_bin(cfg: &Path, run: &Path) -> std::process::Output {
    bin()
        .arg("train")
        .arg("--config")
        .arg(cfg)
        .arg("--run-dir")
        .arg(run)
        .output()
        .unwrap()
}

/// Trains `cfg` into `run` with the binary; panics unless it finishes.
fn train_ok(cfg: &Path, run: &Path) -> std::process::Output {
    let out = train_bin(cfg, run);
    assert!(out.status.success(), "{}", stderr_of(&out));
    out
}

/// Starts `cfg` in `run` in this process and stops it at its first step boundary: the
/// trainer then checkpoints the weights it starts from, at step 0.
fn checkpoint_at_start(cfg: &Path, run: &Path) {
    let stop = AtomicBool::new(true);
    let opts = TrainOptions {
        on_event: None,
        stop: Some(&stop),
        dist: None,
        tensorboard: None,
    };
    assert_eq!(
        train(cfg, run, &opts).unwrap(),
        Outcome::Stopped { step: 0 }
    );
}

/// Every tensor of a safetensors file as its f32 bits.
fn tensors(path: &Path) -> HashMap<String, Vec<u32>> {
    candle_core::safetensors::load(path, &candle_core::Device::Cpu)
        .unwrap()
        .into_iter()
        .map(|(k, t)| {
            let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            (k, v.into_iter().map(f32::to_bits).collect())
        })
        .collect()
}

fn state(run: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("checkpoint/state.json")).unwrap())
        .unwrap()
}

/// The sha256 that a checkpoint's SHA256SUMS records for model.safetensors.
fn recorded_sha(checkpoint: &Path) -> String {
    std::fs::read_to_string(checkpoint.join("SHA256SUMS"))
        .unwrap()
        .lines()
        .find(|l| l.ends_with("  model.safetensors"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Data and a finished 20-step source run `dir/a`.
fn source(dir: &Path) -> PathBuf {
    data_dir(dir);
    let cfg = run_config(dir, "a", 7, 20, SMALL, "");
    let a = dir.join("a");
    train_ok(&cfg, &a);
    assert!(a.join("DONE").exists());
    a
}

#[test]
fn a_run_from_a_finished_run_starts_with_its_final_weights_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let a = source(dir);
    // Another seed, schedule length and learning rate: a new run, only the weights shared.
    let cfg = run_config(dir, "b", 3, 10, SMALL, "init_from = \"a\"");
    let b = dir.join("b");
    checkpoint_at_start(&cfg, &b);
    // Oracle: the source's final checkpoint, tensor by tensor, bit for bit.
    let want = tensors(&a.join("checkpoint/model.safetensors"));
    assert_eq!(tensors(&b.join("checkpoint/model.safetensors")), want);
    // A fresh optimizer, step and data position; the source recorded with the sha256 the
    // source's own SHA256SUMS gives its weights.
    let s = state(&b);
    assert_eq!(
        (s["step"].as_u64(), s["optimizer_t"].as_u64()),
        (Some(0), Some(0))
    );
    let init = &s["init_from"];
    assert_eq!(init["kind"], "run");
    assert_eq!(init["step"], 20);
    assert_eq!(init["sha256"], recorded_sha(&a.join("checkpoint")).as_str());
    assert!(init["weights"]
        .as_str()
        .unwrap()
        .ends_with("checkpoint/model.safetensors"));
    let opt = tensors(&b.join("checkpoint/optimizer.safetensors"));
    assert!(opt
        .values()
        .flatten()
        .all(|&bits| f32::from_bits(bits) == 0.0));
    // The resolved config names the source.
    let resolved = std::fs::read_to_string(b.join("config.toml")).unwrap();
    assert!(resolved.contains("init_from = "), "{resolved}");

    // A second run from the same weights, trained with the binary from scratch, logs the
    // same first loss as a run resumed from that step-0 checkpoint: the start is the source.
    let c = dir.join("c");
    let out = train_ok(&cfg, &c);
    let err = stderr_of(&out);
    assert!(err.contains("from the weights of"), "{err}");
    train_ok(&cfg, &b);
    assert_eq!(metrics(&b), metrics(&c));
    // Near where the source ended, far below where it began from a random init: it
    // continues, not restarts.
    let loss = |m: &Value| m["train_loss"].as_f64();
    let first = metrics(&c).iter().find_map(loss).unwrap();
    let source: Vec<f64> = metrics(&a).iter().filter_map(loss).collect();
    let (source_first, source_last) = (source[0], source[source.len() - 1]);
    assert!(
        first < source_last + 0.5 && first < source_first - 1.0,
        "{first} vs the source's {source_first} … {source_last}"
    );
}

#[test]
fn a_run_from_an_export_starts_like_one_from_the_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let a = source(dir);
    let hf = dir.join("hf");
    export(&a, &hf);

    let from_export = run_config(dir, "e", 3, 10, SMALL, "init_from = \"hf\"");
    let e = dir.join("e");
    checkpoint_at_start(&from_export, &e);
    // Oracle: the source run's final checkpoint, bit for bit.
    assert_eq!(
        tensors(&e.join("checkpoint/model.safetensors")),
        tensors(&a.join("checkpoint/model.safetensors"))
    );
    let s = state(&e);
    assert_eq!(s["init_from"]["kind"], "export");
    assert!(s["init_from"].get("step").is_none());
    train_ok(&from_export, &e);

    // Oracle: the same run started from the run directory logs the same metrics.
    let from_run = run_config(dir, "r", 3, 10, SMALL, "init_from = \"a\"");
    let r = dir.join("r");
    train_ok(&from_run, &r);
    assert_eq!(metrics(&e), metrics(&r));
}

#[test]
fn a_source_of_another_shape_or_tokenizer_is_refused_naming_file_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let a = source(dir);
    let hf = dir.join("hf");
    export(&a, &hf);

    let wide = "d_model = 64\nn_layers = 2\nn_heads = 2";
    for (name, src, file, field) in [
        ("w1", "a", "config.toml", "`model.d_model`"),
        ("w2", "hf", "config.json", "`hidden_size`"),
    ] {
        let cfg = run_config(dir, name, 3, 10, wide, &format!("init_from = {src:?}"));
        let run = dir.join(name);
        let out = train_bin(&cfg, &run);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        // The source's file and field, its value (32) and the run's (64).
        assert!(err.contains(&format!("{src}/{file}")), "{err}");
        assert!(err.contains(field), "{err}");
        assert!(
            err.contains("32 there") && err.contains("d_model = 64"),
            "{err}"
        );
        // Nothing written, nothing trained.
        assert!(!run.join("config.toml").exists() && !run.join("metrics.jsonl").exists());
    }

    // Another tokenizer: the data-stage hash the export recorded in config.json against
    // the data's hash.
    let config_path = hf.join("config.json");
    let good: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    let key = "synthscale_tokenizer_sha256";
    assert_eq!(good[key].as_str().unwrap().len(), 64);
    let mut other = good.clone();
    other[key] = serde_json::json!("0".repeat(64));
    std::fs::write(&config_path, other.to_string()).unwrap();
    let cfg = run_config(dir, "t", 3, 10, SMALL, "init_from = \"hf\"");
    let out = train_bin(&cfg, &dir.join("t"));
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("hf/config.json") && err.contains(key), "{err}");
    // An export without the record (another tool's): its tokenizer.json's bytes.
    let mut bare = good.clone();
    bare.as_object_mut().unwrap().remove(key);
    std::fs::write(&config_path, bare.to_string()).unwrap();
    let out = train_bin(&cfg, &dir.join("t"));
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("hf/tokenizer.json") && err.contains("`sha256`"),
        "{err}"
    );
    std::fs::write(&config_path, good.to_string()).unwrap();

    // Not a source at all.
    let cfg = run_config(dir, "n", 3, 10, SMALL, "init_from = \"data\"");
    let out = train_bin(&cfg, &dir.join("n"));
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`init_from`") && err.contains("neither"),
        "{err}"
    );
}

#[test]
fn a_resumed_run_resumes_from_its_own_checkpoint_and_ignores_init_from() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    source(dir);
    let cfg = run_config(dir, "b", 3, 10, SMALL, "init_from = \"a\"");
    // Oracle: the run trained without interruption.
    let whole = dir.join("whole");
    train_ok(&cfg, &whole);

    // Stopped after step 5 (checkpointed there), then the source is taken away.
    let b = dir.join("b");
    let stop = AtomicBool::new(false);
    let on_event = |e: Event| {
        if let Event::Step(m) = e {
            if m.step == 5 {
                stop.store(true, Ordering::SeqCst);
            }
        }
    };
    let opts = TrainOptions {
        on_event: Some(&on_event),
        stop: Some(&stop),
        dist: None,
        tensorboard: None,
    };
    assert_eq!(
        train(&cfg, &b, &opts).unwrap(),
        Outcome::Stopped { step: 5 }
    );
    std::fs::rename(dir.join("a"), dir.join("a-moved")).unwrap();
    let out = train_ok(&cfg, &b);
    let err = stderr_of(&out);
    assert!(err.contains("resuming at step 5"), "{err}");
    assert_eq!(metrics(&b), metrics(&whole));
    // The source stays recorded in the run's state.
    assert_eq!(state(&b)["init_from"]["kind"], "run");

    // Without its own checkpoint, the missing source is an error naming the field.
    let fresh = dir.join("fresh");
    let out = train_bin(&cfg, &fresh);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`init_from`") && err.contains("not a directory"),
        "{err}"
    );
}

#[test]
fn a_sweep_size_starts_from_its_init_from_and_plan_checks_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    source(dir);
    let manifest = |name: &str, size: &str| {
        let p = dir.join(format!("{name}.toml"));
        let data = common::MARKOV_DATA;
        std::fs::write(
            &p,
            format!(
                "{data}[sweep]\nsizes = [{{ {size} }}]\n\
                 budgets = [{{ tokens = 1280 }}, {{ tokens = 2560 }}]\nseeds = [0]\n\
                 [sweep.mixtures]\nnatural = {{ natural = 1.0 }}\n\
                 [sweep.run_rule]\nladder = true\nbatch_tokens = 128\nmicro_batch_size = 4\n\
                 lr = 3e-3\nwarmup_fraction = 0.05\n"
            ),
        )
        .unwrap();
        p
    };
    let plan = |m: &Path| {
        bin()
            .current_dir(dir)
            .args(["sweep", "plan"])
            .arg(m)
            .args(["--data", "data"])
            .output()
            .unwrap()
    };
    let small = "d_model = 32, n_layers = 2, n_heads = 2";
    let m = manifest("ok", &format!("{small}, init_from = \"a\""));
    let out = plan(&m);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "init_from: every ladder trunk of size d32l2 starts from the weights of run directory"
        ) && text.contains(&format!("{}", dir.join("a").display())),
        "{text}"
    );

    // Launched: the trunk starts from the source, the branches from the trunk.
    let out = bin()
        .current_dir(dir)
        .args(["sweep", "launch"])
        .arg(&m)
        .args(["--data", "data"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let runs: Vec<PathBuf> = std::fs::read_dir(dir.join("results/ok/runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(runs.len(), 3);
    for r in &runs {
        let name = r.file_name().unwrap().to_string_lossy().into_owned();
        let cfg = std::fs::read_to_string(r.join("config.toml")).unwrap();
        // Every run's state records the source: the trunk took it, the branches inherit it.
        assert_eq!(state(r)["init_from"]["kind"], "run", "{name}");
        assert_eq!(
            name.contains("_trunk_"),
            cfg.contains("init_from"),
            "{name}: {cfg}"
        );
    }

    // A size of another shape: refused at plan time, naming the size's field and the
    // source's file and field.
    let m = manifest(
        "wide",
        "d_model = 64, n_layers = 2, n_heads = 2, init_from = \"a\"",
    );
    let out = plan(&m);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("wide.toml")
            && err.contains("`sweep.sizes[0].init_from`")
            && err.contains("`model.d_model`"),
        "{err}"
    );
    // A path that does not exist: refused when the manifest is read, even by data prepare.
    let m = manifest("gone", &format!("{small}, init_from = \"no-such-run\""));
    for args in [&["sweep", "plan"][..], &["data", "prepare"][..]] {
        let out = bin().current_dir(dir).args(args).arg(&m).output().unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("`sweep.sizes[0].init_from`") && err.contains("does not exist"),
            "{err}"
        );
    }
}
