//! The report's files: the fit JSON, a self-contained HTML page (figures inlined, no
//! network, no script) and a Markdown summary, all printed from the same structs, written
//! into a temporary folder and moved into place only when everything succeeded.
//!
//! - `doc`: the document both pages print, and the parts they share;
//! - `findings`: the findings in sentences;
//! - `tables`: the tables, one method each;
//! - `cells`: a table's cells and their printing as HTML and Markdown;
//! - `html`: the self-contained HTML page;
//! - `markdown`: the Markdown summary.

mod cells;
mod doc;
mod findings;
mod html;
mod markdown;
mod tables;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::analysis::{analyze, Analysis};
use crate::config::ReportConfig;
use crate::error::{ReportError, Result};
use crate::plots::{render, Fig, Figure, PlotData};
use crate::results::{read_results, Mixture, RunRow, SeedNoise, UnigramLoss};
use doc::Doc;

/// What a report is made from.
#[derive(Debug, Clone)]
pub struct ReportInput {
    /// The folder holding `results.csv`.
    pub results_dir: PathBuf,
    /// The manifest, when the report was asked for by manifest (its text is shown).
    pub manifest: Option<PathBuf>,
    /// `[report]` settings.
    pub config: ReportConfig,
    /// Where the report goes; `None`: `<results_dir>/report`.
    pub out_dir: Option<PathBuf>,
}

/// What a report wrote.
#[derive(Debug, Clone)]
pub struct ReportOutput {
    /// The folder.
    pub dir: PathBuf,
    /// `report.html`.
    pub html: PathBuf,
    /// `report.md`.
    pub markdown: PathBuf,
    /// `fit.json`.
    pub json: PathBuf,
    /// The figures (paths inside `dir`).
    pub figures: Vec<Figure>,
    /// What could not be fitted or drawn, and rows left out.
    pub warnings: Vec<String>,
    /// Seconds spent reading and fitting.
    pub fit_seconds: f64,
    /// Seconds spent drawing the figures and writing the files.
    pub render_seconds: f64,
}

/// The fit JSON: the inputs, the run table and every fit.
#[derive(Debug, Serialize)]
pub struct FitJson<'a> {
    /// Writer.
    pub tool: &'static str,
    /// Its version.
    pub version: &'static str,
    /// The results table read.
    pub results: String,
    /// The manifest, if any.
    pub manifest: Option<String>,
    /// Mixtures and their shares.
    pub mixtures: &'a [Mixture],
    /// Model sizes.
    pub sizes: &'a [f64],
    /// Token budgets.
    pub budgets: &'a [f64],
    /// Evaluation domains, `mean` first.
    pub domains: &'a [String],
    /// One row per (mixture, size, budget).
    pub runs: &'a [RunRow],
    /// The unigram loss of each mixture's training tokens, per domain (`mean` included).
    pub unigram_loss: &'a [UnigramLoss],
    /// The seed-to-seed noise per domain, where the grid repeats seeds.
    pub seed_noise: &'a [SeedNoise],
    /// The fits.
    #[serde(flatten)]
    pub analysis: &'a Analysis,
    /// Rows left out of the mean.
    pub warnings: &'a [String],
}

/// The report writes its files into `out` by name. `out` may be missing, empty, or an
/// earlier report (its `fit.json` says `"tool": "synthscale report"`); a file, or a folder
/// holding anything else, is refused untouched, so `-o ~/papers` never overwrites a
/// `report.md` the user wrote.
pub fn check_out_dir(out: &Path) -> Result<()> {
    let refuse = |message: &str| {
        Err(ReportError::Output {
            path: out.to_path_buf(),
            message: message.to_string(),
        })
    };
    let Ok(meta) = std::fs::metadata(out) else {
        return Ok(());
    };
    if !meta.is_dir() {
        return refuse("exists and is not a folder; choose another output folder (-o)");
    }
    let mut entries = std::fs::read_dir(out).map_err(|e| ReportError::read(out, e))?;
    if entries.next().is_none() {
        return Ok(());
    }
    let earlier = std::fs::read_to_string(out.join("fit.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v.get("tool").and_then(|t| t.as_str()) == Some("synthscale report"));
    if earlier {
        return Ok(());
    }
    refuse(
        "is a folder that holds files but no earlier report (no fit.json written by \
         `synthscale report`); the report would overwrite files there by name, so it is left \
         untouched: choose a new or empty output folder (-o)",
    )
}

/// Reads the results, fits, draws and writes the report.
pub fn build_report(input: &ReportInput) -> Result<ReportOutput> {
    let csv = input.results_dir.join("results.csv");
    if !csv.is_file() {
        return Err(ReportError::Empty {
            path: input.results_dir.clone(),
            message: "no results.csv here (run `synthscale sweep collect` first)".into(),
        });
    }
    let file = input
        .manifest
        .clone()
        .unwrap_or_else(|| input.results_dir.clone());
    input.config.validate(&file)?;
    let manifest_text = match &input.manifest {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|e| ReportError::read(p, e))?),
        None => None,
    };
    let cfg = &input.config;
    let results = read_results(&csv, &cfg.mean_domains)?;
    if !results.domains.contains(&cfg.headline_domain) {
        return Err(ReportError::Config {
            file,
            message: format!(
                "[report] headline_domain: {:?} is not among the results' domains ({})",
                cfg.headline_domain,
                results.domains.join(", ")
            ),
        });
    }
    let out = input
        .out_dir
        .clone()
        .unwrap_or_else(|| input.results_dir.join("report"));
    // Checked before the fits, which take minutes: nothing is lost and no time is wasted.
    check_out_dir(&out)?;
    let t0 = std::time::Instant::now();
    let analysis = analyze(&results, cfg)?;
    let fit_seconds = t0.elapsed().as_secs_f64();
    let t1 = std::time::Instant::now();

    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    std::fs::create_dir_all(&parent).map_err(|e| ReportError::write(&parent, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".report-")
        .tempdir_in(&parent)
        .map_err(|e| ReportError::write(&parent, e))?;
    let data = PlotData {
        results: &results,
        analysis: &analysis,
        domain: &cfg.headline_domain,
    };
    let mut figures = Vec::new();
    for fig in Fig::ALL {
        figures.push(render(fig, &data, tmp.path())?);
    }
    let fit = FitJson {
        tool: "synthscale report",
        version: env!("CARGO_PKG_VERSION"),
        results: csv.display().to_string(),
        manifest: input.manifest.as_ref().map(|p| p.display().to_string()),
        mixtures: &results.mixtures,
        sizes: &results.sizes,
        budgets: &results.budgets,
        domains: &results.domains,
        runs: &results.runs,
        unigram_loss: &results.unigram,
        seed_noise: &results.seed_noise,
        analysis: &analysis,
        warnings: &results.warnings,
    };
    let json = serde_json::to_string_pretty(&fit)
        .map_err(|e| ReportError::Internal(format!("serializing the fit JSON: {e}")))?;
    let doc = Doc {
        results: &results,
        analysis: &analysis,
        figures: &figures,
        manifest: input.manifest.as_deref().zip(manifest_text.as_deref()),
    };
    let files = [
        ("fit.json", json + "\n"),
        ("report.html", doc.html()?),
        ("report.md", doc.markdown()),
    ];
    for (name, text) in &files {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).map_err(|e| ReportError::write(&p, e))?;
    }
    // Everything exists: move it into place.
    std::fs::create_dir_all(&out).map_err(|e| ReportError::write(&out, e))?;
    let entries = std::fs::read_dir(tmp.path()).map_err(|e| ReportError::write(tmp.path(), e))?;
    for e in entries {
        let e = e.map_err(|e| ReportError::write(tmp.path(), e))?;
        let dest = out.join(e.file_name());
        std::fs::rename(e.path(), &dest).map_err(|e| ReportError::write(&dest, e))?;
    }
    let figures = figures
        .into_iter()
        .map(|mut f| {
            f.png = out.join(f.png.file_name().expect("named"));
            f.svg = out.join(f.svg.file_name().expect("named"));
            f
        })
        .collect::<Vec<_>>();
    let mut warnings = results.warnings.clone();
    warnings.extend(analysis.skipped.iter().cloned());
    for f in &figures {
        for m in &f.missing {
            warnings.push(format!("{}: {m}", f.fig.stem()));
        }
    }
    Ok(ReportOutput {
        fit_seconds,
        render_seconds: t1.elapsed().as_secs_f64(),
        html: out.join("report.html"),
        markdown: out.join("report.md"),
        json: out.join("fit.json"),
        dir: out,
        figures,
        warnings,
    })
}
