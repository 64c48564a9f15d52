//! Data-parallel training on the CPU through MPI: a binary built with `--features mpi`,
//! OpenMPI's `mpirun` on PATH (`cargo test --release -p synthscale --features mpi --test
//! ddp`; `.ci/run` runs it).
//!
//! The oracle is the single-process run with the same global batch: 2 ranks of 1
//! micro-batch each must log its per-step losses within 1e-6 relative and end within 1e-5
//! of its weights (and, with ZeRO-1's sharded optimizer state gathered into the
//! checkpoint, of its AdamW moments), whether started by `--nproc 2` or by `mpirun` itself,
//! with the optimizer state sharded (the default) or not. A 2-rank run whose
//! rank is SIGKILLed, or that is stopped by SIGTERM, resumes to the same metrics; a resume
//! with another world size, and a world size that does not divide the step's
//! micro-batches, are refused with exit 2.
#![cfg(feature = "mpi")]

mod common;

use common::{bin, checkpoint_step, metrics, run_ids, slurm_up, start_until, stderr_of};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A tiny model, 60 steps of 256 tokens in 2 micro-batches of 4 sequences, checkpoints
/// every 10 steps and evaluations every 20.
fn run_config(dir: &Path) -> PathBuf {
    let p = dir.join("run.toml");
    std::fs::write(
        &p,
        "seed = 11\n[model]\nd_model = 32\nn_layers = 2\nn_heads = 2\n\
         [data]\ndir = \"data\"\nweights = { c = 1.0 }\ntoken_budget = 15360\n\
         [optim]\nlr = 3e-3\nbatch_tokens = 256\nmicro_batch_size = 4\nwarmup_steps = 5\n\
         [eval]\ninterval = 20\nmax_tokens = 512\nbatch_size = 8\n\
         [checkpoint]\ninterval = 10\n",
    )
    .unwrap();
    p
}

fn train_cmd(cfg: &Path, run: &Path, extra: &[&str]) -> Command {
    let mut c = bin();
    c.arg("train")
        .arg("--config")
        .arg(cfg)
        .arg("--run-dir")
        .arg(run)
        .args(extra);
    c
}

fn mpirun(n: usize) -> Command {
    let mut c = Command::new("mpirun");
    c.args([
        "-np",
        &n.to_string(),
        "--bind-to",
        "none",
        "--oversubscribe",
    ]);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        c.arg("--allow-run-as-root");
    }
    c.env("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
        .env("RAYON_NUM_THREADS", "1");
    c
}

fn ok(o: std::process::Output) {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        stderr_of(&o)
    );
}

fn ok_stdout(o: std::process::Output) -> String {
    ok(o.clone());
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The processes `pid` has started (from every thread of it).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        if let Ok(s) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out
}

/// The ranks' pids under a `--nproc` launcher (launcher → mpirun → ranks).
fn ranks_of(launcher: u32, n: usize) -> Vec<u32> {
    let t = Instant::now();
    loop {
        let ranks: Vec<u32> = children(launcher).into_iter().flat_map(children).collect();
        if ranks.len() >= n {
            return ranks;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "ranks not found");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Per-step losses within 1e-6 relative, everything else equal.
fn assert_same_run(got: &[Value], want: &[Value], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: metric lines");
    for (g, w) in got.iter().zip(want) {
        for key in ["train_loss", "val_loss", "grad_norm"] {
            if let (Some(a), Some(b)) = (g[key].as_f64(), w[key].as_f64()) {
                let rel = (a - b).abs() / b.abs().max(1e-12);
                assert!(rel <= 1e-6, "{what}: step {} {key} {a} vs {b}", w["step"]);
            } else {
                assert_eq!(g[key], w[key], "{what}: step {} {key}", w["step"]);
            }
        }
        let strip = |v: &Value| {
            let mut v = v.clone();
            for key in ["train_loss", "val_loss", "grad_norm"] {
                v.as_object_mut().unwrap().remove(key);
            }
            v
        };
        assert_eq!(strip(g), strip(w), "{what}");
    }
}

/// That `run` really ran on `n` ranks: its checkpoint records the world size, and every
/// training line the time spent in the all-reduce.
fn assert_ranks(run: &Path, n: u64) {
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("checkpoint/state.json")).unwrap())
            .unwrap();
    assert_eq!(state["world_size"].as_u64(), Some(n), "{}", run.display());
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    for line in text.lines().filter(|l| l.contains("train_loss")) {
        let v: Value = serde_json::from_str(line).unwrap();
        assert!(v["comm_s"].as_f64().is_some_and(|s| s >= 0.0), "{line}");
    }
}

/// The largest |Δ| between two runs' final weights.
fn weight_diff(a: &Path, b: &Path) -> f32 {
    checkpoint_diff(a, b, "model.safetensors")
}

/// The largest |Δ| between the tensors of one file of two runs' checkpoints (the same
/// names in both).
fn checkpoint_diff(a: &Path, b: &Path, file: &str) -> f32 {
    let dev = candle_core::Device::Cpu;
    let load =
        |r: &Path| candle_core::safetensors::load(r.join("checkpoint").join(file), &dev).unwrap();
    let (wa, wb) = (load(a), load(b));
    assert_eq!(wa.len(), wb.len());
    let mut worst = 0f32;
    for (name, ta) in &wa {
        let tb = &wb[name];
        let d = (ta - tb)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        worst = worst.max(d);
    }
    worst
}

#[test]
fn two_ranks_train_the_single_process_run() {
    let dir = tempfile::tempdir().unwrap();
    common::prepare_markov_data(dir.path(), common::WORDS, 120);
    let cfg = run_config(dir.path());

    let one = dir.path().join("one");
    ok(train_cmd(&cfg, &one, &[]).output().unwrap());
    let want = metrics(&one);
    assert_eq!(
        want.iter()
            .filter(|m| m.get("train_loss").is_some())
            .count(),
        60
    );

    // --nproc 2: this binary starts mpirun.
    let two = dir.path().join("two");
    let out = train_cmd(&cfg, &two, &["--nproc", "2"]).output().unwrap();
    ok(out.clone());
    assert_ranks(&two, 2);
    assert_same_run(&metrics(&two), &want, "--nproc 2");
    let d = weight_diff(&two, &one);
    assert!(d <= 1e-5, "--nproc 2: final weights differ by {d}");
    // ZeRO-1 (the default): each rank kept half the moments, and rank 0 gathered all of
    // them into the checkpoint, as the single process keeps them.
    let d = checkpoint_diff(&two, &one, "optimizer.safetensors");
    assert!(d <= 1e-5, "--nproc 2: optimizer state differs by {d}");

    // Without ZeRO-1 (every rank keeps every moment): the same run.
    let whole_cfg = dir.path().join("whole.toml");
    std::fs::write(
        &whole_cfg,
        format!(
            "shard_optimizer = false\n{}",
            std::fs::read_to_string(&cfg).unwrap()
        ),
    )
    .unwrap();
    let whole = dir.path().join("whole");
    ok(train_cmd(&whole_cfg, &whole, &["--nproc", "2"])
        .output()
        .unwrap());
    assert_same_run(
        &metrics(&whole),
        &want,
        "--nproc 2, shard_optimizer = false",
    );
    assert!(weight_diff(&whole, &one) <= 1e-5);
    // One rank reports: one "done" line, metrics written once.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("done after")
            .count(),
        1
    );

    // mpirun itself starting the ranks.
    let mpi = dir.path().join("mpi");
    let mut c = mpirun(2);
    c.arg(env!("CARGO_BIN_EXE_synthscale"))
        .arg("train")
        .arg("--config")
        .arg(&cfg)
        .arg("--run-dir")
        .arg(&mpi);
    ok(c.output().unwrap());
    assert_ranks(&mpi, 2);
    assert_same_run(&metrics(&mpi), &want, "mpirun -np 2");
    assert!(weight_diff(&mpi, &one) <= 1e-5);

    // The step's 2 micro-batches cannot be split over 3 ranks: exit 2 before training.
    let three = dir.path().join("three");
    let out = train_cmd(&cfg, &three, &["--nproc", "3"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("2 micro-batches") && stderr_of(&out).contains("3 ranks"),
        "{}",
        stderr_of(&out)
    );
    assert!(!three.join("metrics.jsonl").exists());
}

#[test]
fn a_two_rank_run_killed_or_stopped_resumes_to_the_same_metrics() {
    let dir = tempfile::tempdir().unwrap();
    common::prepare_markov_data(dir.path(), common::WORDS, 120);
    let cfg = run_config(dir.path());
    let full = dir.path().join("full");
    ok(train_cmd(&cfg, &full, &["--nproc", "2"]).output().unwrap());
    assert_ranks(&full, 2);
    let want = metrics(&full);

    // Rank 1 SIGKILLed after a checkpoint: mpirun ends the job; a relaunch resumes.
    let killed = dir.path().join("killed");
    let mut launcher = start_until(train_cmd(&cfg, &killed, &["--nproc", "2"]), &killed, 10);
    let ranks = ranks_of(launcher.id(), 2);
    // SAFETY: kill(2) on a process this test started (through mpirun).
    unsafe { libc::kill(ranks[1] as libc::pid_t, libc::SIGKILL) };
    let st = launcher.wait().unwrap();
    assert!(!st.success(), "the job must fail when a rank dies");
    assert!(!killed.join("DONE").exists(), "the kill must land mid-run");
    let out = train_cmd(&cfg, &killed, &["--nproc", "2"])
        .output()
        .unwrap();
    ok(out.clone());
    assert!(
        stderr_of(&out).contains("resuming at step"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(metrics(&killed), want, "killed and resumed");

    // SIGTERM to the launcher: every rank checkpoints at the same step, exit 75.
    let stopped = dir.path().join("stopped");
    let launcher = start_until(train_cmd(&cfg, &stopped, &["--nproc", "2"]), &stopped, 10);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(launcher.id() as libc::pid_t, libc::SIGTERM) };
    let out = launcher.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(75));
    let at = checkpoint_step(&stopped);
    assert!(!stopped.join("DONE").exists() && at >= 10);
    assert_eq!(metrics(&stopped).last().unwrap()["step"].as_u64(), Some(at));

    // The same run resumed by one process: refused, nothing written.
    let before = std::fs::read(stopped.join("metrics.jsonl")).unwrap();
    let out = train_cmd(&cfg, &stopped, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("trained by 2 process(es)"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(
        std::fs::read(stopped.join("metrics.jsonl")).unwrap(),
        before
    );

    ok(train_cmd(&cfg, &stopped, &["--nproc", "2"])
        .output()
        .unwrap());
    assert_eq!(metrics(&stopped), want, "stopped and resumed");
}

/// A sweep manifest over the Markov corpus whose one size trains on `ranks` processes;
/// its data is prepared into `<dir>/data`.
fn sweep_setup(dir: &Path, ranks: u32) {
    std::fs::write(
        dir.join("c.jsonl"),
        common::markov_jsonl(common::WORDS, 120),
    )
    .unwrap();
    std::fs::write(
        dir.join("tiny.toml"),
        format!(
            "[data]\ntokenizer = {{ kind = \"bpe\", vocab_size = 512 }}\n\
             validation_fraction = 0.1\nseq_len = 32\nout_dir = \"data\"\n\
             [[data.sources]]\nname = \"c\"\nkind = \"natural\"\ndomain = \"web\"\n\
             path = \"c.jsonl\"\n\n[sweep]\nout_dir = \"sweep\"\n\
             sizes = [{{ name = \"tiny\", d_model = 32, n_layers = 2, n_heads = 2, ranks = {ranks} }}]\n\
             budgets = [{{ tokens = 15360 }}]\nseeds = [0]\n\
             [sweep.mixtures]\nnatural = {{ natural = 1.0 }}\n\
             [sweep.run_rule]\nbatch_tokens = 256\nmicro_batch_size = 4\neval_max_tokens = 512\n\
             checkpoints_per_run = 6\n\
             [slurm]\ncpus_per_task = 1\ntime = \"00:10:00\"\n"
        ),
    )
    .unwrap();
    let out = common::run_in(dir, &["data", "prepare", "tiny.toml"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
}

/// The text of the sbatch script a Slurm launch of the sweep in `d` wrote.
fn sbatch_script(d: &Path) -> String {
    let path = std::fs::read_dir(d.join("sweep/slurm"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "sbatch"))
        .unwrap();
    std::fs::read_to_string(path).unwrap()
}

/// The sweep's one run, and the same run config trained by one process beside it: the
/// sweep's 2-rank run must be that run.
fn assert_sweep_run_is_the_single_process_run(d: &Path) {
    let ids = run_ids(&d.join("sweep"));
    assert_eq!(ids.len(), 1);
    let run = d.join("sweep/runs").join(&ids[0]);
    assert!(run.join("DONE").exists(), "{}", run.display());
    assert_ranks(&run, 2);
    let single = d.join("single");
    let cfg = d.join("sweep/configs").join(format!("{}.toml", ids[0]));
    ok(train_cmd(&cfg, &single, &[]).output().unwrap());
    assert_same_run(&metrics(&run), &metrics(&single), "the sweep's 2-rank run");
    assert!(weight_diff(&run, &single) <= 1e-5);
}

#[test]
fn a_sweep_size_of_two_ranks_runs_locally_as_the_single_process_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Three ranks cannot split a step's two micro-batches: refused at plan time, naming them.
    sweep_setup(d, 3);
    let out = common::run_in(d, &["sweep", "plan", "tiny.toml"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("ranks") && stderr_of(&out).contains("over 3 ranks"),
        "{}",
        stderr_of(&out)
    );
    let m = d.join("tiny.toml");
    let text = std::fs::read_to_string(&m).unwrap();
    std::fs::write(&m, text.replace("ranks = 3", "ranks = 2")).unwrap();
    let plan = ok_stdout(common::run_in(d, &["sweep", "plan", "tiny.toml"]));
    assert!(plan.contains("on 2 data-parallel ranks"), "{plan}");
    // On Slurm with one rank per node, the run's array asks for 2 nodes of 1 task each.
    let text = std::fs::read_to_string(&m).unwrap();
    std::fs::write(
        &m,
        text.replace("[slurm]\n", "[slurm]\nranks_per_node = 1\n"),
    )
    .unwrap();
    ok(common::run_in(
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
    let script = sbatch_script(d);
    assert!(
        script.contains("#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n")
            && !script.contains("--ntasks="),
        "{script}"
    );
    ok(common::run_in(d, &["sweep", "launch", "tiny.toml"]));
    assert_sweep_run_is_the_single_process_run(d);
}

#[test]
fn a_sweep_size_of_two_ranks_runs_under_slurm_as_a_two_task_srun_step() {
    if let Err(why) = slurm_up() {
        eprintln!("skipped: no Slurm cluster ({why}); scripts/slurm-local.sh starts one");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sweep_setup(d, 2);
    let out = common::run_in(d, &["sweep", "launch", "tiny.toml", "--executor", "slurm"]);
    ok(out.clone());
    assert!(sbatch_script(d).contains("#SBATCH --ntasks=2\n"));
    let t = Instant::now();
    let done = || {
        std::fs::read_dir(d.join("sweep/runs"))
            .map(|mut r| r.any(|e| e.unwrap().path().join("DONE").exists()))
            .unwrap_or(false)
    };
    while !done() {
        if t.elapsed() > Duration::from_secs(300) {
            let logs: Vec<String> = std::fs::read_dir(d.join("sweep/logs"))
                .map(|r| {
                    r.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
                        .collect()
                })
                .unwrap_or_default();
            panic!(
                "the Slurm run did not finish in 300 s; logs:\n{}",
                logs.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_sweep_run_is_the_single_process_run(d);
}
