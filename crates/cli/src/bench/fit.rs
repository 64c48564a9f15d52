//! `synthscale bench fit`: Epoch AI's Chinchilla fit (4500 L-BFGS starts on 240 points),
//! timed; `scripts/bench/fit_reference.py` runs the same grid with SciPy for comparison.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use serde::Serialize;
use synthscale_fit::{fit, read_inputs, FitOptions, InputOptions, Law, Point};

#[derive(Args, Debug)]
pub struct BenchFitArgs {
    /// Epoch AI's Chinchilla data (columns `Model Size`, `Training FLOP`, `loss`).
    #[arg(
        long,
        default_value = "crates/fit/tests/fixtures/epoch_chinchilla/svg_extracted_data.csv"
    )]
    pub data: PathBuf,
    /// Timed repetitions on all threads; the fastest is reported.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
}

#[derive(Serialize)]
struct FitBench {
    bench: &'static str,
    data: String,
    points: usize,
    starts: usize,
    threads: usize,
    fit_s: f64,
    fit_1thread_s: f64,
    objective: f64,
    starts_converged: usize,
    e: f64,
    alpha: f64,
    beta: f64,
    a: f64,
    b: f64,
}

/// Epoch AI's points: D = C/(6N), the 5 highest-loss rows dropped.
pub fn epoch_points(path: &std::path::Path) -> anyhow::Result<Vec<Point>> {
    let opts = InputOptions {
        params_col: "Model Size".into(),
        flops_col: Some("Training FLOP".into()),
        drop_highest_loss: 5,
        ..InputOptions::default()
    };
    let table = read_inputs(&[path.to_path_buf()], &opts)?;
    Ok(table.groups(Law::Chinchilla, &opts)?.remove(0).points)
}

pub fn run(a: &BenchFitArgs) -> anyhow::Result<ExitCode> {
    let points = epoch_points(&a.data)?;
    // Epoch AI's procedure (delta 1e-3, fixed): the fit the SciPy peer runs.
    let opts = FitOptions::default().fixed(1e-3);
    let law = Law::Chinchilla;
    let mut best = f64::INFINITY;
    let mut result = None;
    for _ in 0..a.repeats.max(1) {
        let t = Instant::now();
        let f = fit(law, &points, &opts, "epoch")?;
        best = best.min(t.elapsed().as_secs_f64());
        result = Some(f);
    }
    let f = result.expect("at least one repeat");
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let t = Instant::now();
    one.install(|| fit(law, &points, &opts, "epoch"))?;
    let one_s = t.elapsed().as_secs_f64();
    let p = law.params(&f.theta);
    let r = FitBench {
        bench: "fit",
        data: a.data.display().to_string(),
        points: points.len(),
        starts: f.starts,
        threads: rayon::current_num_threads(),
        fit_s: best,
        fit_1thread_s: one_s,
        objective: f.objective,
        starts_converged: f.starts_converged,
        a: p[0],
        b: p[1],
        e: p[2],
        alpha: p[3],
        beta: p[4],
    };
    println!("{}", serde_json::to_string(&r)?);
    Ok(ExitCode::SUCCESS)
}
