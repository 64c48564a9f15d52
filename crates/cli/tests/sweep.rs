//! `synthscale sweep` end to end: a tiny local sweep, a relaunch that starts nothing, two
//! launches at once that train each run once, and (when a Slurm cluster answers) the same
//! sweep as a job array with one task requeued mid-run and one signalled as at its time
//! limit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_synthscale"))
}

const WORDS: &[&str] = &[
    "the", "river", "carried", "small", "boats", "past", "a", "quiet", "town", "where", "people",
    "made", "bread", "and", "wrote", "letters", "to", "friends", "far", "away", "every", "morning",
];

/// A manifest over a Markov-chain corpus (as in tests/train.rs) with a `[sweep]` section;
/// the data is prepared into `<dir>/data`.
fn setup(dir: &Path, sweep: &str) -> PathBuf {
    let mut x = 12345u64;
    let mut lines = String::new();
    let mut w = 0usize;
    for d in 0..300 {
        let mut text = String::new();
        for _ in 0..120 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = (x >> 33) as usize;
            w = if r % 10 == 0 {
                r / 10 % WORDS.len()
            } else {
                (w * 5 + 3) % WORDS.len()
            };
            text.push_str(WORDS[w]);
            text.push(' ');
        }
        lines.push_str(&serde_json::json!({"id": d, "text": text}).to_string());
        lines.push('\n');
    }
    std::fs::write(dir.join("c.jsonl"), lines).unwrap();
    let manifest = dir.join("tiny.toml");
    std::fs::write(
        &manifest,
        format!(
            "[data]\ntokenizer = {{ kind = \"bpe\", vocab_size = 512 }}\nvalidation_fraction = 0.1\n\
             seq_len = 32\nout_dir = \"data\"\n[[data.sources]]\nname = \"c\"\nkind = \"natural\"\n\
             domain = \"web\"\npath = \"c.jsonl\"\n\n{sweep}"
        ),
    )
    .unwrap();
    let out = run(dir, &["data", "prepare", "tiny.toml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    manifest
}

fn run(dir: &Path, args: &[&str]) -> Output {
    bin().current_dir(dir).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    stdout(&o)
}

/// Metrics without the wall-clock fields.
fn metrics(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("tokens_per_s");
            o.remove("mfu");
            v
        })
        .collect()
}

fn run_ids(dir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(dir.join("sweep/configs"))
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

const TINY: &str = r#"
[sweep]
out_dir = "sweep"
sizes = [{ preset = "0.1M" }, { name = "tiny", d_model = 32, n_layers = 2, n_heads = 2 }]
budgets = [{ tokens = 8192 }, { tokens = 16384 }]
seeds = [0]
[sweep.mixtures]
natural = { natural = 1.0 }
[sweep.run_rule]
eval_max_tokens = 512
"#;

#[test]
fn a_tiny_sweep_runs_collects_and_a_relaunch_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d, TINY);
    let plan = ok(run(
        d,
        &["sweep", "plan", "tiny.toml", "--flops-per-s", "1e9"],
    ));
    assert!(plan.contains("4 runs"), "{plan}");
    assert!(plan.contains("0.1M_8192_natural_s0-"), "{plan}");
    assert!(plan.contains("at 1.00e9 FLOP/s"), "{plan}");
    assert!(!d.join("sweep/runs").exists(), "plan launches nothing");

    let out = ok(run(d, &["sweep", "launch", "tiny.toml", "--jobs", "2"]));
    assert!(out.contains("4 trained, 0 already done"), "{out}");
    let ids = run_ids(d);
    assert_eq!(ids.len(), 4);
    for id in &ids {
        assert!(d.join("sweep/runs").join(id).join("DONE").exists());
        // Each run is exactly the run `synthscale train` makes of its config (the oracle:
        // the trainer alone, in another directory).
        if id.starts_with("tiny_8192") {
            let alone = d.join("alone");
            let cfg = d.join("sweep/configs").join(format!("{id}.toml"));
            let o = bin()
                .arg("train")
                .arg("--config")
                .arg(&cfg)
                .arg("--run-dir")
                .arg(&alone)
                .output()
                .unwrap();
            assert!(o.status.success());
            assert_eq!(metrics(&alone), metrics(&d.join("sweep/runs").join(id)));
        }
    }
    let status = ok(run(d, &["sweep", "status", "tiny.toml"]));
    assert!(status.contains("4 runs: 4 done"), "{status}");
    assert!(status.contains("32/32"), "{status}");

    // Relaunch: nothing starts, no log grows.
    let sizes = |d: &Path| -> Vec<u64> {
        ids.iter()
            .map(|id| {
                std::fs::metadata(d.join("sweep/logs").join(format!("{id}.log")))
                    .unwrap()
                    .len()
            })
            .collect()
    };
    let before = sizes(d);
    let again = ok(run(d, &["sweep", "launch", "tiny.toml", "--jobs", "2"]));
    assert!(again.contains("0 trained, 4 already done"), "{again}");
    assert_eq!(sizes(d), before);

    // The results table: the contract's columns, 4 evaluations × 1 domain per run, one
    // final row per run, and `synthscale fit` reads it.
    let c = ok(run(d, &["sweep", "collect", "tiny.toml"]));
    assert!(c.contains("wrote 16 rows"), "{c}");
    let csv = std::fs::read_to_string(d.join("sweep/results.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(header.starts_with(
        "run_id,params,non_embedding_params,tokens,flops,mixture,natural_ratio,rephrased_ratio,\
         textbook_ratio,eval_domain,step,loss,final"
    ));
    assert_eq!(csv.lines().filter(|l| l.contains(",true,")).count(), 4);
    let fit = ok(run(
        d,
        &[
            "fit",
            "sweep/results.csv",
            "--law",
            "power",
            "--group-by",
            "size,eval_domain",
            "--bootstrap",
            "0",
        ],
    ));
    assert!(fit.contains("size=tiny,eval_domain=web"), "{fit}");
}

#[test]
fn two_launches_at_once_train_each_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d, &TINY.replace("seeds = [0]", "seeds = [0, 1]"));
    let spawn = || {
        bin()
            .current_dir(d)
            .args(["sweep", "launch", "tiny.toml", "--jobs", "2"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success());
    let ids = run_ids(d);
    assert_eq!(ids.len(), 8);
    for id in &ids {
        assert!(d.join("sweep/runs").join(id).join("DONE").exists(), "{id}");
        // One start line per run across both launches: no run was trained twice.
        let log = std::fs::read_to_string(d.join("sweep/logs").join(format!("{id}.log"))).unwrap();
        let starts = log.matches("training ").count();
        assert_eq!(starts, 1, "{id}: {log}");
    }
    let trained = |o: &Output| -> usize {
        let s = stdout(o);
        s.lines()
            .find_map(|l| l.split(" trained").next()?.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(
        trained(&a) + trained(&b),
        8,
        "{}\n{}",
        stdout(&a),
        stdout(&b)
    );
}

/// Whether a Slurm cluster answers here (scripts/slurm-local.sh starts one).
fn slurm_up() -> Result<(), String> {
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

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn checkpoint_step(run: &Path) -> u64 {
    std::fs::read_to_string(run.join("checkpoint/state.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .and_then(|v| v["step"].as_u64())
        .unwrap_or(0)
}

#[test]
fn slurm_tasks_requeued_or_signalled_mid_run_finish_like_uninterrupted_runs() {
    if let Err(why) = slurm_up() {
        eprintln!("skipped: no Slurm cluster ({why}); scripts/slurm-local.sh starts one");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Two runs of 600 steps, a checkpoint every 10: long enough to requeue one mid-run.
    setup(
        d,
        r#"
[sweep]
out_dir = "sweep"
sizes = [{ name = "tiny", d_model = 32, n_layers = 2, n_heads = 2 }]
budgets = [{ tokens = 153600 }]
seeds = [0, 1]
[sweep.mixtures]
natural = { natural = 1.0 }
[sweep.run_rule]
batch_tokens = 256
micro_batch_size = 4
eval_max_tokens = 512
checkpoints_per_run = 60
[slurm]
cpus_per_task = 1
max_parallel = 2
time = "00:10:00"
"#,
    );
    let out = ok(run(
        d,
        &["sweep", "launch", "tiny.toml", "--executor", "slurm"],
    ));
    let job: String = out
        .lines()
        .find_map(|l| l.strip_prefix("submitted job array "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    let ids = run_ids(d);
    // The runs file maps index 0 to the first run of the plan (sorted ids here: seed 0).
    let first = d.join("sweep/runs").join(&ids[0]);
    wait_for("a checkpoint of task 0", Duration::from_secs(300), || {
        checkpoint_step(&first) >= 20
    });
    let st = Command::new("scontrol")
        .args(["requeue", &format!("{job}_0")])
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let interrupted_at = checkpoint_step(&first);
    assert!(
        interrupted_at < 600,
        "the requeue came after the run finished"
    );
    // Task 1 gets what a time limit sends: USR1 to the batch shell only (`--signal=B:USR1`),
    // which passes it on; the trainer checkpoints, exits 75 and the script requeues itself.
    let second = d.join("sweep/runs").join(&ids[1]);
    wait_for("a checkpoint of task 1", Duration::from_secs(300), || {
        checkpoint_step(&second) >= 20
    });
    assert!(
        !second.join("DONE").exists(),
        "task 1 finished before its signal"
    );
    let st = Command::new("scancel")
        .args(["--batch", "--signal=USR1", &format!("{job}_1")])
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    wait_for("both runs DONE", Duration::from_secs(600), || {
        ids.iter()
            .all(|id| d.join("sweep/runs").join(id).join("DONE").exists())
    });
    for (i, (id, run_dir)) in [(&ids[0], &first), (&ids[1], &second)]
        .into_iter()
        .enumerate()
    {
        // Each interrupted task resumed rather than restarted.
        let log = std::fs::read_to_string(d.join("sweep/logs").join(format!("{id}.log"))).unwrap();
        assert!(log.contains("resuming at step"), "{id}: {log}");
        // Oracle: the same config trained uninterrupted by `synthscale train` logs the same
        // metrics, final loss included, bit for bit on CPU.
        let alone = d.join(format!("alone{i}"));
        let o = bin()
            .arg("train")
            .arg("--config")
            .arg(d.join("sweep/configs").join(format!("{id}.toml")))
            .arg("--run-dir")
            .arg(&alone)
            .output()
            .unwrap();
        assert!(o.status.success());
        let (a, b) = (metrics(&alone), metrics(run_dir));
        assert_eq!(a.last(), b.last());
        assert_eq!(a, b);
    }
    // Wait for Slurm to let go of the job, then a relaunch submits nothing.
    wait_for(
        "the array to leave the queue",
        Duration::from_secs(120),
        || {
            Command::new("squeue")
                .args(["-h", "-j", &job])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().is_empty())
                .unwrap_or(true)
        },
    );
    let again = ok(run(
        d,
        &["sweep", "launch", "tiny.toml", "--executor", "slurm"],
    ));
    assert!(again.contains("nothing to submit"), "{again}");
    assert!(again.contains("2 already done"), "{again}");
}
