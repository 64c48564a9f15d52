//! `synthscale sweep status` (the table of runs, once or watched) and `sweep collect` (the
//! results table `synthscale fit` reads).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use synthscale_sweep::{collect, status, State, Sweep};

use super::format::duration;
use super::load::{load, Common};
use crate::util::BadInput;

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub common: Common,
    /// Refresh every this many seconds until every run is done or failed.
    #[arg(long, num_args = 0..=1, default_missing_value = "5")]
    pub watch: Option<f64>,
    /// One JSON object per run (id, state, step, steps, train_loss, val_loss, elapsed_s,
    /// owner) instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CollectArgs {
    #[command(flatten)]
    pub common: Common,
    /// Output CSV [default: <sweep folder>/results.csv].
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// Prints the status table (columns as wide as their longest entry), or with `json` one
/// JSON object per run; returns whether every run is done or failed.
fn print_status(sweep: &Sweep, json: bool) -> anyhow::Result<bool> {
    let rows = status(sweep)?;
    let finished = rows
        .iter()
        .all(|r| matches!(r.state, State::Done | State::Failed));
    if json {
        for r in &rows {
            println!(
                "{}",
                serde_json::to_string(r).context("serializing a status row")?
            );
        }
        return Ok(finished);
    }
    let fmt = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.4}"));
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                r.state.as_str().to_string(),
                format!("{}/{}", r.step, r.steps),
                fmt(r.train_loss),
                fmt(r.val_loss),
                duration(r.elapsed_s),
                r.owner.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let head = ["run", "state", "step", "train", "val", "elapsed", "owner"];
    let width: Vec<usize> = (0..6)
        .map(|c| {
            cells
                .iter()
                .map(|row| row[c].chars().count())
                .chain([head[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |c: [&str; 7]| {
        format!(
            "{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}  {:>w4$}  {:>w5$}  {}",
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            c[5],
            c[6],
            w0 = width[0],
            w1 = width[1],
            w2 = width[2],
            w3 = width[3],
            w4 = width[4],
            w5 = width[5]
        )
        .trim_end()
        .to_string()
    };
    println!("{}", line(head));
    let mut counts = std::collections::BTreeMap::new();
    for (r, c) in rows.iter().zip(&cells) {
        *counts.entry(r.state.as_str()).or_insert(0) += 1;
        println!("{}", line(c.each_ref().map(String::as_str)));
    }
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    println!("{} runs: {}", rows.len(), summary.join(", "));
    Ok(finished)
}

pub fn run_status(a: &StatusArgs) -> anyhow::Result<ExitCode> {
    let sweep = load(&a.common)?;
    let Some(every) = a.watch else {
        print_status(&sweep, a.json)?;
        return Ok(ExitCode::SUCCESS);
    };
    if !(every.is_finite() && every > 0.0) {
        return Err(BadInput(format!("--watch {every} must be > 0 seconds")).into());
    }
    loop {
        if std::io::stdout().is_terminal() {
            // Clear the screen and home the cursor.
            print!("\x1b[2J\x1b[H");
        }
        let finished = print_status(&sweep, a.json)?;
        if finished {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_secs_f64(every));
    }
}

pub fn run_collect(a: &CollectArgs) -> anyhow::Result<ExitCode> {
    let sweep = load(&a.common)?;
    let (path, rows) = collect(&sweep, a.output.as_deref())?;
    let done = status(&sweep)?
        .iter()
        .filter(|r| r.state == State::Done)
        .count();
    println!(
        "wrote {} rows from {} runs ({done} done) to {}",
        rows,
        sweep.runs.len(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
