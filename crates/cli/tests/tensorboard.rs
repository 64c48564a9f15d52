//! TensorBoard event files from `synthscale train`, read back by TensorBoard's own reader
//! (`tensorboard.backend.event_processing.event_accumulator.EventAccumulator`, the oracle):
//! every training and evaluation line of `metrics.jsonl` is a scalar at its step, also for
//! a run killed with SIGKILL and resumed (TensorBoard drops the killed process's events
//! past the checkpoint, as metrics.jsonl does).
//!
//! Needs a Python with the `tensorboard` package: `SYNTHSCALE_PYTHON` (`.ci/run` sets it to
//! a venv it makes), else `python3`. Without one the test says so and passes, unless
//! `SYNTHSCALE_REQUIRE_TENSORBOARD=1` (CI) makes it fail.

mod common;

use common::{bin, metrics, stderr_of};

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn python() -> String {
    std::env::var("SYNTHSCALE_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn tensorboard_available() -> bool {
    let ok = Command::new(python())
        .args([
            "-c",
            "import tensorboard.backend.event_processing.event_accumulator",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok && std::env::var("SYNTHSCALE_REQUIRE_TENSORBOARD").as_deref() == Ok("1") {
        panic!(
            "SYNTHSCALE_REQUIRE_TENSORBOARD=1 but {} has no tensorboard",
            python()
        );
    }
    ok
}

/// The scalars TensorBoard reads from `dir`: tag → [(step, value)].
fn read_events(dir: &Path) -> serde_json::Map<String, Value> {
    let script = "import json, sys\n\
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator\n\
acc = EventAccumulator(sys.argv[1], size_guidance={'scalars': 0})\n\
acc.Reload()\n\
print(json.dumps({t: [[e.step, e.value] for e in acc.Scalars(t)] for t in acc.Tags()['scalars']}))\n";
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_object().unwrap().clone()
}

/// Every line of `metrics.jsonl` against the events: train/loss, train/lr, train/tokens
/// and val/<domain> at each step, as f32.
fn assert_events_match(events: &serde_json::Map<String, Value>, lines: &[Value]) {
    let series = |tag: &str| -> Vec<(u64, f64)> {
        events[tag]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap()))
            .collect()
    };
    for (tag, key, domain) in [
        ("train/loss", "train_loss", None),
        ("train/lr", "lr", None),
        ("train/tokens", "tokens", None),
        ("val/web", "val_loss", Some("web")),
    ] {
        let want: Vec<(u64, f64)> = lines
            .iter()
            .filter(|m| match domain {
                Some(d) => m["eval_domain"] == d,
                None => m.get("train_loss").is_some(),
            })
            .map(|m| (m["step"].as_u64().unwrap(), m[key].as_f64().unwrap()))
            .collect();
        let got = series(tag);
        assert_eq!(
            got.len(),
            want.len(),
            "{tag}: {} points, not {}",
            got.len(),
            want.len()
        );
        for ((gs, gv), (ws, wv)) in got.iter().zip(&want) {
            assert_eq!(gs, ws, "{tag}");
            // TensorBoard keeps f32. A training loss is the mean of two f32 losses, which
            // can fall exactly between two f32 values, where a last-bit difference in
            // parsing the JSON decides the rounding: one f32 step apart at most.
            let ulp = (*wv as f32).abs() as f64 * f32::EPSILON as f64;
            assert!((gv - wv).abs() <= ulp, "{tag} at step {ws}: {gv} vs {wv}");
        }
    }
    for tag in ["train/grad_norm", "train/tokens_per_s", "train/mfu"] {
        assert!(events.contains_key(tag), "{tag}");
    }
}

#[test]
fn tensorboard_reads_the_runs_metrics_also_after_a_kill_and_resume() {
    if !tensorboard_available() {
        eprintln!("skipped: {} has no tensorboard package", python());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::prepare_markov_data(d, common::WORDS, 120);
    let cfg = d.join("run.toml");
    std::fs::write(
        &cfg,
        "seed = 3\ntensorboard = true\n[model]\nd_model = 32\nn_layers = 2\nn_heads = 2\n\
         [data]\ndir = \"data\"\nweights = { c = 1.0 }\ntoken_budget = 61440\n\
         [optim]\nlr = 3e-3\nbatch_tokens = 256\nmicro_batch_size = 4\nwarmup_steps = 5\n\
         [eval]\ninterval = 40\nmax_tokens = 512\nbatch_size = 8\n\
         [checkpoint]\ninterval = 10\n",
    )
    .unwrap();

    // `tensorboard = true`: <run dir>/tensorboard.
    let whole = d.join("whole");
    let out = bin()
        .args(["train", "--config"])
        .arg(&cfg)
        .arg("--run-dir")
        .arg(&whole)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let want = metrics(&whole);
    assert_events_match(&read_events(&whole.join("tensorboard")), &want);

    // Killed after a checkpoint, resumed: what TensorBoard shows is what metrics.jsonl
    // keeps, which is the uninterrupted run's.
    let killed = d.join("killed");
    let tb = d.join("tb-killed");
    let mut cmd = bin();
    cmd.args(["train", "--config"])
        .arg(&cfg)
        .arg("--run-dir")
        .arg(&killed)
        .arg("--tensorboard")
        .arg(&tb);
    let mut child = common::start_until(cmd, &killed, 20);
    // Let it log some steps past the checkpoint before the kill.
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!killed.join("DONE").exists(), "the kill must land mid-run");
    let out = bin()
        .args(["train", "--config"])
        .arg(&cfg)
        .arg("--run-dir")
        .arg(&killed)
        .arg("--tensorboard")
        .arg(&tb)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(metrics(&killed), want);
    let files = std::fs::read_dir(&tb).unwrap().count();
    assert_eq!(files, 2, "one event file per process");
    assert_events_match(&read_events(&tb), &want);
}
