//! `synthscale report`: a results folder (or a manifest's) fitted, plotted and written up
//! as HTML, Markdown and JSON.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use synthscale_report::{build_report, ReportConfig, ReportError, ReportInput};

use crate::manifest::LoadedManifest;
use crate::util::{plain_logs, spinner};

/// Fit the laws to a results table and write the report: `report.html` (self-contained:
/// figures inlined, no network), `report.md`, `fit.json` and the six figures as PNG and
/// SVG.
///
/// The input is a results folder holding `results.csv` (the table of `synthscale sweep
/// collect`), or a manifest, which reads `results/<manifest stem>/` and its optional
/// `[report]` section (baseline, headline_domain, target_loss, holdout, bootstrap, seed).
/// Fits the data cannot determine (too few budgets, sizes or shares) are skipped with a
/// warning, and the figures say what is missing.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A manifest (`.toml`) or a results folder.
    pub input: PathBuf,
    /// Output folder [default: <results folder>/report].
    #[arg(short = 'o', long = "out")]
    pub out: Option<PathBuf>,
    /// Bootstrap resamples for the 95% intervals [default: the manifest's, else 200].
    #[arg(long)]
    pub bootstrap: Option<usize>,
    /// Target loss L* for the speed-ups [default: the baseline's fitted loss at its largest
    /// budget].
    #[arg(long)]
    pub target_loss: Option<f64>,
}

pub fn run(a: ReportArgs) -> anyhow::Result<ExitCode> {
    let t = Instant::now();
    let is_manifest = a.input.is_file() && a.input.extension().is_some_and(|e| e == "toml");
    let (results_dir, manifest, mut config) = if is_manifest {
        let m = LoadedManifest::load(&a.input)?;
        (
            m.results_dir(),
            Some(a.input.clone()),
            m.manifest.report.clone().unwrap_or_default(),
        )
    } else if a.input.is_dir() {
        (a.input.clone(), None, ReportConfig::default())
    } else {
        return Err(ReportError::Empty {
            path: a.input.clone(),
            message: "neither a manifest (.toml) nor a results folder".into(),
        }
        .into());
    };
    if let Some(b) = a.bootstrap {
        config.bootstrap = b;
    }
    if let Some(l) = a.target_loss {
        config.target_loss = Some(l);
    }
    if plain_logs() {
        eprintln!(
            "report: fitting {} ({} bootstrap resamples)",
            results_dir.join("results.csv").display(),
            config.bootstrap
        );
    }
    let pb = spinner();
    pb.set_message("fitting and drawing the report");
    let out = build_report(&ReportInput {
        results_dir,
        manifest,
        config,
        out_dir: a.out.clone(),
    });
    pb.finish_and_clear();
    let out = out.context("writing the report")?;
    for w in &out.warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "figures: {}",
        out.figures
            .iter()
            .map(|f| f.png.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("markdown: {}", out.markdown.display());
    println!("fit JSON: {}", out.json.display());
    println!(
        "fits {:.1} s, figures and files {:.2} s",
        out.fit_seconds, out.render_seconds
    );
    println!(
        "report ({:.1} s): {}",
        t.elapsed().as_secs_f64(),
        out.html.display()
    );
    Ok(ExitCode::SUCCESS)
}
