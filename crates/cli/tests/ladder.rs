//! Budget ladders end to end: a ladder manifest trains one constant-LR trunk and a WSD
//! cooldown branch per budget; each branch logs, bit for bit on CPU, what an independent
//! WSD run of its budget logs (the oracle: `synthscale train` of the branch's config
//! without its `[branch]` section); SIGKILL of the trunk or of a branch and a relaunch
//! change no metric; two launches at once train each run once; bad ladders exit 2; and
//! (when a Slurm cluster answers) a ladder as two job arrays, the branches' waiting on the
//! trunk's with `--dependency=afterok`.

mod common;

use common::{bin, metrics, ok, run_in as run, slurm_up, stdout};

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The Markov-chain corpus of tests/sweep.rs, prepared into `<dir>/data`, and a manifest
/// `<dir>/lad.toml` with the given `[sweep]` section.
fn setup(dir: &Path, sweep: &str) -> PathBuf {
    let manifest = common::markov_sweep_manifest(dir, "lad.toml", sweep);
    ok(run(dir, &["data", "prepare", "lad.toml"]));
    manifest
}

/// Three doubling budgets as a ladder: 64, 128 and 256 steps of 256 tokens, cooling down
/// from steps 51, 102 and 205 (decay_fraction 0.2) after 13 warm-up steps.
const LADDER: &str = r#"
[sweep]
out_dir = "sweep"
sizes = [{ name = "tiny", d_model = 32, n_layers = 2, n_heads = 2 }]
budgets = [{ tokens = 16384 }, { tokens = 32768 }, { tokens = 65536 }]
seeds = [0]
[sweep.mixtures]
natural = { natural = 1.0 }
[sweep.run_rule]
ladder = true
batch_tokens = 256
micro_batch_size = 4
eval_max_tokens = 512
"#;

/// The last step logged (0 when nothing is), ignoring a torn last line.
fn last_step(run: &Path) -> u64 {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v["step"].as_u64())
        .unwrap_or(0)
}

fn ids(dir: &Path) -> (String, Vec<String>) {
    let mut ids: Vec<String> = std::fs::read_dir(dir.join("sweep/configs"))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            p.file_stem().unwrap().to_string_lossy().into_owned()
        })
        .collect();
    ids.sort_by_key(|id| {
        let budget = id.split('_').nth(1).unwrap().to_string();
        (
            budget != "trunk",
            budget.trim_end_matches('k').parse::<f64>().unwrap_or(0.0) as u64,
        )
    });
    let trunk = ids.remove(0);
    assert!(trunk.contains("_trunk_"), "{trunk}");
    (trunk, ids)
}

/// The oracle: `synthscale train` of the branch's config without `[branch]` — an
/// independent WSD run of the branch's budget from scratch.
fn independent(dir: &Path, id: &str) -> Vec<Value> {
    let text =
        std::fs::read_to_string(dir.join("sweep/configs").join(format!("{id}.toml"))).unwrap();
    let (head, tail) = text.split_once("\n[branch]").expect("a branch config");
    // Anything after the branch table (none today) is kept.
    let rest = tail
        .split_once("\n[")
        .map(|(_, r)| format!("\n[{r}"))
        .unwrap_or_default();
    let cfg = dir
        .join("sweep/configs")
        .join(format!("{id}.alone.toml.txt"));
    std::fs::write(&cfg, format!("{head}\n{rest}")).unwrap();
    let alone = dir.join(format!("alone-{id}"));
    ok(bin()
        .arg("train")
        .arg("--config")
        .arg(&cfg)
        .arg("--run-dir")
        .arg(&alone)
        .output()
        .unwrap());
    metrics(&alone)
}

fn assert_branches_match_independent_runs(d: &Path) {
    let (trunk, branches) = ids(d);
    for id in &branches {
        let run = d.join("sweep/runs").join(id);
        assert!(run.join("DONE").exists(), "{id}");
        let (a, b) = (metrics(&run), independent(d, id));
        assert_eq!(a.len(), b.len(), "{id}");
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert_eq!(x, y, "{id}: line {i}");
        }
    }
    // Every kept branch point is gone once its branch is DONE.
    let kept: Vec<_> = std::fs::read_dir(d.join("sweep/runs").join(&trunk))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("checkpoint-step-"))
        .collect();
    // What is left: one marker per released branch point, so that a trunk resuming at
    // that step does not keep it again.
    assert!(kept.iter().all(|n| n.ends_with(".released")), "{kept:?}");
    assert_eq!(kept.len(), branches.len(), "{kept:?}");
}

#[test]
fn ladder_branches_log_what_independent_wsd_runs_of_their_budgets_log() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d, LADDER);
    let plan = ok(run(
        d,
        &["sweep", "plan", "lad.toml", "--flops-per-s", "1e9"],
    ));
    assert!(plan.contains("4 runs"), "{plan}");
    assert!(plan.contains("trunk of 3 branches"), "{plan}");
    assert!(plan.contains("branch from trunk step 102"), "{plan}");
    // Trunk 205 steps + cooldowns 13 + 26 + 51 = 295 against 256 (1.15×); separate runs
    // 64 + 128 + 256 = 448 (1.75×).
    assert!(plan.contains("(1.15× its largest budget)"), "{plan}");
    assert!(plan.contains("as separate runs (1.75×)"), "{plan}");
    assert!(plan.contains("batch, peak lr and warm-up"), "{plan}");

    let out = ok(run(d, &["sweep", "launch", "lad.toml", "--jobs", "2"]));
    assert!(out.contains("4 trained"), "{out}");
    assert_branches_match_independent_runs(d);

    let status = ok(run(d, &["sweep", "status", "lad.toml"]));
    assert!(status.contains("4 runs: 4 done"), "{status}");
    assert!(
        status.contains("_trunk_") && status.contains("205/205"),
        "{status}"
    );
    assert!(status.contains("256/256"), "{status}");

    // One row per branch, evaluation and domain (every 16 steps: 4 + 8 + 16), one final
    // row per budget, no trunk rows.
    let c = ok(run(d, &["sweep", "collect", "lad.toml"]));
    assert!(c.contains("wrote 28 rows"), "{c}");
    let csv = std::fs::read_to_string(d.join("sweep/results.csv")).unwrap();
    assert!(!csv.contains("_trunk_"));
    assert_eq!(csv.lines().filter(|l| l.contains(",true,")).count(), 3);
}

/// A launch in its own process group, so that SIGKILL takes it and its trainers at once,
/// as a crash of the machine would.
fn launch_bg(d: &Path) -> Child {
    bin()
        .current_dir(d)
        .args(["sweep", "launch", "lad.toml", "--jobs", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap()
}

fn kill_group(c: &mut Child) {
    let st = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", c.id())])
        .status()
        .unwrap();
    assert!(st.success());
    c.wait().unwrap();
    // Its trainers die with it; give the kernel a moment to reap them.
    std::thread::sleep(Duration::from_millis(300));
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigkill_of_the_trunk_or_a_branch_and_a_relaunch_change_no_metric() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d, LADDER);
    ok(run(d, &["sweep", "plan", "lad.toml"]));
    // The configs appear with the first launch.
    let mut launch = launch_bg(d);
    wait_for("the configs", || {
        d.join("sweep/configs").exists() && ids_ready(d)
    });
    let (trunk, branches) = ids(d);
    let trunk_dir = d.join("sweep/runs").join(&trunk);
    // The trunk, between the first and second branch points (51 and 102).
    wait_for("trunk step 70", || last_step(&trunk_dir) >= 70);
    kill_group(&mut launch);
    assert!(!trunk_dir.join("DONE").exists(), "killed too late");
    // The largest budget's branch, past its branch point 205 and its first checkpoint.
    let mid = d.join("sweep/runs").join(&branches[2]);
    let mut launch = launch_bg(d);
    wait_for("branch step 215", || {
        mid.join("DONE").exists() || last_step(&mid) >= 215
    });
    kill_group(&mut launch);
    assert!(!mid.join("DONE").exists(), "killed too late");
    let out = ok(run(d, &["sweep", "launch", "lad.toml", "--jobs", "2"]));
    assert!(out.contains(" 0 failed"), "{out}");
    assert_branches_match_independent_runs(d);
}

fn ids_ready(d: &Path) -> bool {
    std::fs::read_dir(d.join("sweep/configs")).is_ok_and(|r| {
        r.filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".toml"))
            .count()
            == 4
    })
}

#[test]
fn two_launches_of_a_ladder_at_once_train_each_trunk_and_branch_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d, &LADDER.replace("seeds = [0]", "seeds = [0, 1]"));
    let (a, b) = common::two_launches_at_once(d, "lad.toml");
    assert!(a.status.success(), "{}", stdout(&a));
    assert!(b.status.success(), "{}", stdout(&b));
    let logs = d.join("sweep/logs");
    let mut n = 0;
    for e in std::fs::read_dir(d.join("sweep/configs")).unwrap() {
        let id = e
            .unwrap()
            .path()
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(d.join("sweep/runs").join(&id).join("DONE").exists(), "{id}");
        let log = std::fs::read_to_string(logs.join(format!("{id}.log"))).unwrap();
        assert_eq!(log.matches("training ").count(), 1, "{id}: {log}");
        n += 1;
    }
    assert_eq!(n, 8);
}

#[test]
fn bad_ladders_exit_2_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d, LADDER);
    for (edit, field) in [
        (
            LADDER.replace("ladder = true", "ladder = true\ndecay_fraction = 1.2"),
            "sweep.run_rule.decay_fraction",
        ),
        (
            LADDER.replace(
                "budgets = [{ tokens = 16384 }, { tokens = 32768 }, { tokens = 65536 }]",
                "budgets = [{ tokens = 65536 }]",
            ),
            "sweep.budgets",
        ),
        (
            LADDER.replace("budgets = [", "budgets = [{ tokens = 2048 }, "),
            "sweep.budgets[0]",
        ),
    ] {
        let text = std::fs::read_to_string(d.join("lad.toml")).unwrap();
        let head = text.split_once("\n[sweep]").unwrap().0;
        std::fs::write(d.join("bad.toml"), format!("{head}\n{edit}")).unwrap();
        let o = run(d, &["sweep", "plan", "bad.toml", "--data", "data"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(&format!("`{field}`")), "{err}");
        assert!(err.contains("bad.toml"), "{err}");
    }
}

#[test]
fn a_ladder_on_slurm_runs_its_branches_after_the_trunk_like_independent_runs() {
    if let Err(why) = slurm_up() {
        eprintln!("skipped: no Slurm cluster ({why}); scripts/slurm-local.sh starts one");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(
        d,
        &format!("{LADDER}[slurm]\ncpus_per_task = 1\nmax_parallel = 2\ntime = \"00:10:00\"\n"),
    );
    let out = ok(run(
        d,
        &["sweep", "launch", "lad.toml", "--executor", "slurm"],
    ));
    // Two arrays: the trunk's, then the branches', which waits for the first to complete.
    let jobs: Vec<(String, PathBuf)> = out
        .lines()
        .filter_map(|l| l.strip_prefix("submitted job array "))
        .map(|l| {
            let (job, rest) = l.split_once(' ').unwrap();
            (
                job.to_string(),
                PathBuf::from(rest.rsplit(' ').next().unwrap()),
            )
        })
        .collect();
    assert_eq!(jobs.len(), 2, "{out}");
    let first = std::fs::read_to_string(&jobs[0].1).unwrap();
    let second = std::fs::read_to_string(&jobs[1].1).unwrap();
    assert!(!first.contains("--dependency"), "{first}");
    assert!(
        second.contains(&format!("#SBATCH --dependency=afterok:{}\n", jobs[0].0)),
        "{second}"
    );
    let (trunk, branches) = ids(d);
    let t = Instant::now();
    while !branches
        .iter()
        .all(|id| d.join("sweep/runs").join(id).join("DONE").exists())
    {
        assert!(t.elapsed() < Duration::from_secs(600), "timed out");
        // No branch starts before its trunk is DONE (the dependency).
        for id in &branches {
            if d.join("sweep/runs").join(id).exists() {
                assert!(
                    d.join("sweep/runs").join(&trunk).join("DONE").exists(),
                    "{id}"
                );
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_branches_match_independent_runs(d);
    // Once Slurm lets go of both arrays, a relaunch submits nothing.
    for (job, _) in &jobs {
        let t = Instant::now();
        while Command::new("squeue")
            .args(["-h", "-j", job])
            .output()
            .is_ok_and(|o| !String::from_utf8_lossy(&o.stdout).trim().is_empty())
        {
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "job {job} stays queued"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let again = ok(run(
        d,
        &["sweep", "launch", "lad.toml", "--executor", "slurm"],
    ));
    assert!(again.contains("nothing to submit"), "{again}");
}

#[test]
fn plan_prints_a_gpu_ladders_cost_in_gpu_hours_too() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(
        d,
        &LADDER.replace("[sweep]\n", "[sweep]\ndevice = \"cuda\"\n"),
    );
    let plan = ok(run(
        d,
        &["sweep", "plan", "lad.toml", "--flops-per-s", "1e9"],
    ));
    let line = plan
        .lines()
        .find(|l| l.starts_with("ladder tiny_trunk_"))
        .unwrap_or_else(|| panic!("{plan}"));
    // Both figures, the ladder's and the separate runs', in GPU-hours at 1e9 FLOP/s.
    assert_eq!(line.matches(" GPU-hours").count(), 2, "{line}");
    assert!(plan.contains("ladders in all: "), "{plan}");
}
