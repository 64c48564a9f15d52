//! `synthscale sweep` end to end: a tiny local sweep, a relaunch that starts nothing, two
//! launches at once that train each run once, a killed launcher whose trainer dies with it,
//! relaunches and Slurm tasks that never start a second trainer beside a live one, locks of
//! reused pids, foreign data directories and Slurm time limits, and (when a Slurm cluster
//! answers) the same sweep as a job array with one task requeued mid-run and one signalled
//! as at its time limit.

mod common;

use common::{bin, checkpoint_step, metrics, ok, run_in as run, slurm_up, stdout};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A manifest over a Markov-chain corpus (as in tests/train.rs) with a `[sweep]` section;
/// the data is prepared into `<dir>/data`.
fn setup(dir: &Path, sweep: &str) -> PathBuf {
    let manifest = common::markov_sweep_manifest(dir, "tiny.toml", sweep);
    let out = run(dir, &["data", "prepare", "tiny.toml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    manifest
}

fn run_ids(dir: &Path) -> Vec<String> {
    common::run_ids(&dir.join("sweep"))
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
    let (a, b) = common::two_launches_at_once(d, "tiny.toml");
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

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
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

/// One run of 600 steps of 256 tokens, a checkpoint every 10: long enough to interfere with.
const LONG: &str = r#"
[sweep]
out_dir = "sweep"
sizes = [{ name = "tiny", d_model = 32, n_layers = 2, n_heads = 2 }]
budgets = [{ tokens = 153600 }]
seeds = [0]
[sweep.mixtures]
natural = { natural = 1.0 }
[sweep.run_rule]
batch_tokens = 256
micro_batch_size = 4
eval_max_tokens = 512
checkpoints_per_run = 60
"#;

/// Every optimizer step once, in order, and each evaluation once.
fn assert_each_step_once(run: &Path) {
    let m = metrics(run);
    let train: Vec<u64> = m
        .iter()
        .filter(|x| x.get("train_loss").is_some())
        .map(|x| x["step"].as_u64().unwrap())
        .collect();
    let last = *train.last().expect("some steps");
    assert_eq!(train, (1..=last).collect::<Vec<_>>(), "{}", run.display());
    let mut evals: Vec<(u64, String)> = m
        .iter()
        .filter(|x| x.get("val_loss").is_some())
        .map(|x| (x["step"].as_u64().unwrap(), x["eval_domain"].to_string()))
        .collect();
    let n = evals.len();
    evals.dedup();
    assert_eq!(evals.len(), n, "an evaluation logged twice");
}

/// The trainer holding a run directory, from its `run.lock` record.
fn lock_holder(run: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(run.join("run.lock")).ok()?;
    let v: Value = serde_json::from_str(text.trim()).ok()?;
    v["pid"].as_u64().map(|p| p as u32)
}

/// Whether a pid runs (a zombie does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s[s.rfind(')').unwrap() + 2..].chars().next();
            !matches!(state, Some('Z' | 'X'))
        })
        .unwrap_or(false)
}

fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill {sig} {pid}");
}

/// Writes the sweep's run configs and a runs file without training (a Slurm launch that
/// does not submit); returns the run id and the runs file.
fn configs_only(d: &Path) -> (String, PathBuf) {
    ok(run(
        d,
        &[
            "sweep",
            "launch",
            "tiny.toml",
            "--executor",
            "slurm",
            "--no-submit",
        ],
    ));
    let id = run_ids(d).remove(0);
    let runs_file = std::fs::read_dir(d.join("sweep/slurm"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    (id, runs_file)
}

/// A `synthscale train` of the sweep's run started by hand (as an orphan of an earlier
/// launch would run), once it has checkpointed at least `step`.
fn trainer_outside(d: &Path, id: &str, step: u64) -> std::process::Child {
    let run_dir = d.join("sweep/runs").join(id);
    let child = bin()
        .current_dir(d)
        .arg("train")
        .arg("--config")
        .arg(d.join("sweep/configs").join(format!("{id}.toml")))
        .arg("--run-dir")
        .arg(&run_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        "the outside trainer's checkpoint",
        Duration::from_secs(120),
        || checkpoint_step(&run_dir) >= step,
    );
    child
}

#[test]
fn killed_launcher_leaves_no_orphan_trainer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d, LONG);
    let mut launcher = bin()
        .current_dir(d)
        .args(["sweep", "launch", "tiny.toml"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the configs", Duration::from_secs(60), || {
        d.join("sweep/configs").exists()
    });
    let id = run_ids(d).remove(0);
    let run_dir = d.join("sweep/runs").join(&id);
    wait_for("a checkpoint", Duration::from_secs(120), || {
        checkpoint_step(&run_dir) >= 10
    });
    let trainer = lock_holder(&run_dir).expect("the trainer records itself in run.lock");
    assert!(alive(trainer));
    launcher.kill().unwrap(); // SIGKILL: no handler runs in the launcher
    launcher.wait().unwrap();
    // Its trainer gets SIGTERM from the kernel (parent-death signal), checkpoints, exits.
    wait_for("the orphan to exit", Duration::from_secs(60), || {
        !alive(trainer)
    });
    assert!(!run_dir.join("DONE").exists(), "the kill must land mid-run");
    let log = std::fs::read_to_string(d.join("sweep/logs").join(format!("{id}.log"))).unwrap();
    assert!(log.contains("stopped by a signal; checkpoint"), "{log}");
    // A relaunch finishes the run, every step once.
    let out = ok(run(d, &["sweep", "launch", "tiny.toml"]));
    assert!(out.contains("1 trained"), "{out}");
    assert_each_step_once(&run_dir);
    let log = std::fs::read_to_string(d.join("sweep/logs").join(format!("{id}.log"))).unwrap();
    assert_eq!(log.matches("done after").count(), 1, "{log}");
}

#[test]
fn a_relaunch_never_starts_a_second_trainer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d, LONG);
    let (id, _) = configs_only(d);
    let run_dir = d.join("sweep/runs").join(&id);
    let outside = trainer_outside(d, &id, 10);

    // A trainer that does not let go within --lock-wait: the run is left to it.
    let out = ok(run(
        d,
        &["sweep", "launch", "tiny.toml", "--lock-wait", "1"],
    ));
    assert!(out.contains("1 held elsewhere"), "{out}");
    assert!(alive(outside.id()));

    // One that checkpoints and exits on SIGTERM while the launch waits: the launch then
    // resumes the run from its checkpoint, in one trainer at a time.
    let errlog = d.join("launch.err");
    let launch = bin()
        .current_dir(d)
        .args(["sweep", "launch", "tiny.toml", "--lock-wait", "120"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&errlog).unwrap())
        .spawn()
        .unwrap();
    wait_for("the launch to wait", Duration::from_secs(60), || {
        std::fs::read_to_string(&errlog).is_ok_and(|t| t.contains("waiting up to"))
    });
    assert!(
        alive(outside.id()),
        "the outside trainer ran on while the launch waited"
    );
    signal(outside.id(), "-TERM");
    let o = outside.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(75));
    let out = ok(launch.wait_with_output().unwrap());
    assert!(out.contains("1 trained"), "{out}");
    assert_each_step_once(&run_dir);
    let log = std::fs::read_to_string(d.join("sweep/logs").join(format!("{id}.log"))).unwrap();
    assert!(log.contains("resuming at step"), "{log}");
}

#[test]
fn a_slurm_task_never_starts_a_second_trainer() {
    // The array task's own path (`sweep task`), run here without a cluster.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d, LONG);
    let (id, runs_file) = configs_only(d);
    let run_dir = d.join("sweep/runs").join(&id);
    let outside = trainer_outside(d, &id, 10);
    let errlog = d.join("task.err");
    let task = bin()
        .current_dir(d)
        .args(["sweep", "task", "--index", "0", "--runs-file"])
        .arg(&runs_file)
        .stderr(std::fs::File::create(&errlog).unwrap())
        .spawn()
        .unwrap();
    wait_for("the task to wait", Duration::from_secs(60), || {
        std::fs::read_to_string(&errlog).is_ok_and(|t| t.contains("waiting up to"))
    });
    signal(outside.id(), "-TERM");
    let o = outside.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(75));
    let st = task.wait_with_output().unwrap();
    let err = std::fs::read_to_string(&errlog).unwrap();
    assert!(st.status.success(), "{err}");
    assert!(run_dir.join("DONE").exists(), "{err}");
    assert_each_step_once(&run_dir);
}

#[test]
fn a_reused_pid_does_not_hold_a_run_forever() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(
        d,
        &TINY
            .replace(
                ", { name = \"tiny\", d_model = 32, n_layers = 2, n_heads = 2 }",
                "",
            )
            .replace(
                "budgets = [{ tokens = 8192 }, { tokens = 16384 }]",
                "budgets = [{ tokens = 8192 }]",
            ),
    );
    let (id, _) = configs_only(d);
    // The launcher that wrote this lock died, and its pid now belongs to a `sleep`: alive,
    // with another start time (and, in a lock of an older build without start times, a
    // program that is not synthscale).
    let mut sleep = Command::new("sleep").arg("60").spawn().unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    std::fs::create_dir_all(d.join("sweep/locks")).unwrap();
    for lock in [
        format!(
            r#"{{"host":"{host}","pid":{},"slurm_job":null,"since":0,"start_time":1}}"#,
            sleep.id()
        ),
        format!(
            r#"{{"host":"{host}","pid":{},"slurm_job":null,"since":0}}"#,
            sleep.id()
        ),
    ] {
        std::fs::write(d.join("sweep/locks").join(format!("{id}.lock")), lock).unwrap();
        let _ = std::fs::remove_file(d.join("sweep/runs").join(&id).join("DONE"));
        let out = ok(run(d, &["sweep", "launch", "tiny.toml"]));
        assert!(out.contains("1 trained"), "{out}");
    }
    let _ = sleep.kill();
    let _ = sleep.wait();
}

#[test]
fn a_data_dir_prepared_from_another_data_section_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d, TINY);
    // The same corpus prepared under another domain name, into `other`.
    let text = std::fs::read_to_string(d.join("tiny.toml")).unwrap();
    std::fs::write(
        d.join("other.toml"),
        text.replace("domain = \"web\"", "domain = \"news\"")
            .replace("out_dir = \"data\"", "out_dir = \"other\""),
    )
    .unwrap();
    ok(run(d, &["data", "prepare", "other.toml"]));
    for cmd in ["plan", "launch", "collect"] {
        let o = run(d, &["sweep", cmd, "tiny.toml", "--data", "other"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {err}");
        assert!(
            err.contains("tiny.toml") && err.contains("`data.sources[0].domain`"),
            "{err}"
        );
    }
    assert!(!d.join("sweep/runs").exists(), "nothing was trained");
    // Its own data passes.
    ok(run(d, &["sweep", "plan", "tiny.toml", "--data", "data"]));
}

#[test]
fn slurm_time_limits_outside_sbatch_forms_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d, TINY);
    let text = std::fs::read_to_string(d.join("tiny.toml")).unwrap();
    for t in ["1:00:00:00:00", "1-24:00:00", "00:61:00", "soon"] {
        std::fs::write(
            d.join("t.toml"),
            format!("{text}\n[slurm]\ntime = \"{t}\"\n"),
        )
        .unwrap();
        let o = run(d, &["sweep", "plan", "t.toml", "--data", "data"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{t}: {err}");
        assert!(
            err.contains("t.toml") && err.contains("`slurm.time`"),
            "{t}: {err}"
        );
    }
    std::fs::write(
        d.join("t.toml"),
        format!("{text}\n[slurm]\ntime = \"1-12:00:00\"\n"),
    )
    .unwrap();
    ok(run(d, &["sweep", "plan", "t.toml", "--data", "data"]));
}

/// Pipes and scripts: a reader that closes the pipe early ends the output quietly (exit 0,
/// no panic); `--json` gives one JSON object per run; the status table's columns hold a run
/// id longer than 40 characters; missing inputs are exit 2 with one message naming them.
#[test]
fn the_cli_behaves_in_pipes_and_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Seeds enough for a table longer than a pipe's buffer, and a long size name.
    let long = "a_size_name_long_enough_to_push_ids_past_forty_characters";
    let seeds: Vec<String> = (0..300).map(|s| s.to_string()).collect();
    let sweep = TINY
        .replace("name = \"tiny\"", &format!("name = \"{long}\""))
        .replace("seeds = [0]", &format!("seeds = [{}]", seeds.join(", ")));
    setup(d, &sweep);
    for args in [
        &["sweep", "status", "tiny.toml"][..],
        &["sweep", "plan", "tiny.toml"][..],
    ] {
        let mut child = bin()
            .current_dir(d)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Read one line, then close the pipe as `head -1` does.
        let mut first = String::new();
        {
            use std::io::BufRead;
            let mut r = std::io::BufReader::new(child.stdout.take().unwrap());
            r.read_line(&mut first).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            common::stderr_of(&out)
        );
        assert!(
            !common::stderr_of(&out).contains("panicked"),
            "{args:?}: {}",
            common::stderr_of(&out)
        );
        assert!(!first.is_empty());
    }

    // JSON: one object per run, the ids those of the plan.
    let plan = stdout(&run(d, &["sweep", "plan", "tiny.toml", "--json"]));
    let planned: Vec<Value> = plan
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(planned.len(), 2 * 2 * 300);
    assert!(planned
        .iter()
        .all(|r| r["runs_per_gpu"] == 1 && r["ranks"] == 1));
    let status = stdout(&run(d, &["sweep", "status", "tiny.toml", "--json"]));
    let rows: Vec<Value> = status
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), planned.len());
    assert!(rows
        .iter()
        .zip(&planned)
        .all(|(s, p)| s["id"] == p["id"] && s["state"] == "pending"));

    // The table: every row's state column starts where the header's does.
    let table = stdout(&run(d, &["sweep", "status", "tiny.toml"]));
    let at = table.lines().next().unwrap().find("state").unwrap();
    for line in table.lines().skip(1).filter(|l| !l.contains(" runs: ")) {
        assert_eq!(line.find("pending"), Some(at), "{table}");
    }

    // Missing inputs: exit 2, one message naming the file, said once.
    let out = run(d, &["train", "--config", "nope.toml", "--run-dir", "r"]);
    assert_eq!(out.status.code(), Some(2));
    let err = common::stderr_of(&out);
    assert!(
        err.contains("nope.toml") && err.lines().count() == 1,
        "{err}"
    );
    let out = run(d, &["sweep", "plan", "nope.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = common::stderr_of(&out);
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
    let out = run(d, &["export", "data", "--out", "exported"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(common::stderr_of(&out).contains("not a run directory"));
}

/// `sweep plan` before `data prepare`, the corpus not yet on the machine, with a tokenizer
/// file: the plan is the one made after preparing (the oracle): the same run ids, shapes,
/// budgets, batches, learning rates and memory, marked as planned without data.
#[test]
fn sweep_plan_before_data_prepare_matches_the_plan_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let manifest = setup(d, TINY);
    // The same study with the tokenizer as a file (a BPE's trained size is only known
    // after training).
    std::fs::copy(d.join("data/tokenizer.json"), d.join("tok.json")).unwrap();
    let text = std::fs::read_to_string(&manifest).unwrap().replace(
        "tokenizer = { kind = \"bpe\", vocab_size = 512 }",
        "tokenizer = { kind = \"file\", path = \"tok.json\" }",
    );
    std::fs::write(&manifest, text).unwrap();
    ok(run(d, &["data", "prepare", "tiny.toml", "--force"]));
    let rows = |out: &Output| -> Vec<Value> {
        stdout(out)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let after = rows(&run(d, &["sweep", "plan", "tiny.toml", "--json"]));
    std::fs::remove_dir_all(d.join("data")).unwrap();
    std::fs::rename(d.join("c.jsonl"), d.join("c.jsonl.away")).unwrap();
    let before = rows(&run(d, &["sweep", "plan", "tiny.toml", "--json"]));
    assert_eq!(before.len(), 4);
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b["data_prepared"], false);
        assert_eq!(a["data_prepared"], true);
        for key in [
            "id",
            "params",
            "tokens",
            "flops",
            "memory_bytes",
            "batch_tokens",
            "micro_batch_size",
            "lr",
            "steps",
        ] {
            assert_eq!(b[key], a[key], "{key}");
        }
    }
    let text = ok(run(d, &["sweep", "plan", "tiny.toml"]));
    assert!(
        text.contains("planned before `synthscale data prepare`"),
        "{text}"
    );
    // Launching still needs the data, and says so.
    let o = run(d, &["sweep", "launch", "tiny.toml"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("c.jsonl"));
    drop(manifest);
}
