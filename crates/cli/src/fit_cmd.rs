//! `synthscale fit`: scaling laws fitted to logged losses, printed as a table and written
//! as JSON.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde::Serialize;
use synthscale_fit::bootstrap::Resampling;
use synthscale_fit::fit::DeltaRule;
use synthscale_fit::input::{parse_filter, SourceFile};
use synthscale_fit::study::{GroupReport, Plateau};
use synthscale_fit::{
    read_inputs, run_study, BootstrapOptions, FitError, FitOptions, Holdout, InputOptions, Law,
    StudyOptions, StudyReport,
};

use synthscale_report::format::four_decimals as num;

use crate::util::{plain_logs, spinner};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LawArg {
    /// L(D) = B/(D_l + D^beta) + E (Lin et al. 2024; SynthLLM's law).
    Rectified,
    /// L(D) = B/D^beta + E.
    Power,
    /// L(N,D) = E + A/N^alpha + B/D^beta (Chinchilla approach 3, Epoch AI's procedure).
    Chinchilla,
}

impl From<LawArg> for Law {
    fn from(l: LawArg) -> Law {
        match l {
            LawArg::Rectified => Law::Rectified,
            LawArg::Power => Law::Power,
            LawArg::Chinchilla => Law::Chinchilla,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum HoldoutArg {
    /// No held-out check.
    None,
    /// Fit each group without its largest D (joint law: largest N), report the relative
    /// error of the prediction there.
    Largest,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ResampleArg {
    /// Redraw the full fit's log residuals onto its predictions (every budget kept).
    Residuals,
    /// Redraw the points with replacement (Epoch AI's bootstrap of Chinchilla's data).
    Cases,
}

/// Fit a scaling law to every group of points, from the law's full start grid, with
/// bootstrap intervals and derived answers.
///
/// Inputs: CSV tables with `tokens` and `loss` columns (and `params` for the joint law),
/// synthscale run directories (`metrics.jsonl`, or a folder of run folders), or wide
/// per-step CSV logs of other trainers, where every column whose name contains `--curves`
/// is one curve. The fit minimizes the sum of Huber losses of log residuals with L-BFGS
/// from every start of the law's grid.
#[derive(Args, Debug)]
pub struct FitArgs {
    /// Input files or run directories.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// The law to fit.
    #[arg(long, value_enum)]
    pub law: LawArg,
    /// Columns that split rows into groups, one fit each (comma-separated) [default: one
    /// group for tables; per curve for logs; per run and eval_domain for run directories].
    #[arg(long, value_delimiter = ',')]
    pub group_by: Vec<String>,
    /// Keep only rows where column = value (repeatable; numbers compare as numbers).
    #[arg(long = "where", value_parser = parse_filter)]
    pub filters: Vec<(String, String)>,
    /// Also write the full report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Column with training tokens D.
    #[arg(long, default_value = "tokens")]
    pub tokens_col: String,
    /// Column with the loss.
    #[arg(long, default_value = "loss")]
    pub loss_col: String,
    /// Column with model parameters N (joint law).
    #[arg(long, default_value = "params")]
    pub params_col: String,
    /// Column with training FLOPs C; tokens are then D = C/(6N).
    #[arg(long)]
    pub flops_col: Option<String>,
    /// Step-indexed logs without a token column (a W&B panel export): tokens are the step
    /// column (`step`, `_step`, `Step`) × this.
    #[arg(long)]
    pub tokens_per_step: Option<f64>,
    /// Wide per-step logs: columns whose name contains this (any case) are curves.
    #[arg(long, default_value = "loss")]
    pub curves: String,
    /// Drop the K highest-loss points of each group before fitting (Epoch AI drops 5 from
    /// Chinchilla's data).
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub drop_highest_loss: usize,
    /// Held-out extrapolation check.
    #[arg(long, value_enum, default_value = "none")]
    pub holdout: HoldoutArg,
    /// Huber threshold on log residuals, fixed: Epoch AI's procedure is 1e-3, least squares
    /// is 1 [default: scaled to each group's noise, 1.345 × the MAD-estimated σ of a
    /// least-squares fit's log residuals].
    #[arg(long)]
    pub huber_delta: Option<f64>,
    /// Bootstrap resamples for 95% intervals (0: none).
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// What each bootstrap resample redraws.
    #[arg(long, value_enum, default_value_t = ResampleArg::Residuals)]
    pub resample: ResampleArg,
    /// Pin the asymptote E to this loss instead of fitting it.
    #[arg(long)]
    pub pin_e: Option<f64>,
    /// Doubling plateau: a doubling of D that gains less than this fraction of the loss
    /// (2%: the gain per doubling where SynthLLM's 8B model "approaches its ceiling", read
    /// off their Table 1; see `StudyOptions::plateau_eps`).
    #[arg(long, default_value_t = 0.02)]
    pub plateau_eps: f64,
    /// Plateaus are searched up to this multiple of each curve's largest budget; one further
    /// out is reported as beyond it, not as a number.
    #[arg(long, default_value_t = 100.0)]
    pub plateau_search: f64,
    /// Margin plateau: within this fraction above the asymptote.
    #[arg(long, default_value_t = 0.01)]
    pub plateau_margin: f64,
    /// Speed-ups over baseline groups, e.g. `mixture=natural` (the column must be a
    /// --group-by column): D_baseline(L*) / D_mixture(L*) for every other group of a family.
    #[arg(long, value_parser = parse_filter)]
    pub baseline: Option<(String, String)>,
    /// Target losses L* for speed-ups (comma-separated) [default: the baseline's fitted
    /// loss at its largest D].
    #[arg(long, value_delimiter = ',')]
    pub target_loss: Vec<f64>,
    /// Optimal synthetic ratio at each (N, D): the --group-by column holding each group's
    /// synthetic share (at least three distinct values per family).
    #[arg(long)]
    pub ratio_col: Option<String>,
    /// Compute-optimal N and D for these FLOP budgets (joint law; comma-separated)
    /// [default: 1, 10, 100 × the largest 6ND in each group].
    #[arg(long, value_delimiter = ',')]
    pub flops_budget: Vec<f64>,
}

/// The JSON written by `--json`: the report plus what reproduces it.
#[derive(Serialize)]
struct FitFile<'a> {
    tool: &'static str,
    version: &'static str,
    data: &'a [SourceFile],
    rows: usize,
    #[serde(flatten)]
    report: &'a StudyReport,
}

pub fn run(a: FitArgs) -> anyhow::Result<ExitCode> {
    let law: Law = a.law.into();
    let input = InputOptions {
        tokens_col: a.tokens_col.clone(),
        loss_col: a.loss_col.clone(),
        params_col: a.params_col.clone(),
        flops_col: a.flops_col.clone(),
        curves: a.curves.clone(),
        filters: a.filters.clone(),
        group_by: (!a.group_by.is_empty()).then(|| a.group_by.clone()),
        drop_highest_loss: a.drop_highest_loss,
        tokens_per_step: a.tokens_per_step,
    };
    if let Some(t) = a.tokens_per_step {
        if !(t.is_finite() && t > 0.0) {
            return Err(FitError::Option {
                option: "--tokens-per-step".into(),
                message: format!("{t} must be > 0"),
            }
            .into());
        }
    }
    let opts = StudyOptions {
        law,
        fit: FitOptions {
            huber_delta: a.huber_delta.unwrap_or(FitOptions::default().huber_delta),
            delta_rule: if a.huber_delta.is_some() {
                DeltaRule::Fixed
            } else {
                DeltaRule::Noise
            },
            pin_e: a.pin_e,
            ..FitOptions::default()
        },
        bootstrap: BootstrapOptions {
            resamples: a.bootstrap,
            seed: a.seed,
            method: match a.resample {
                ResampleArg::Residuals => Resampling::Residuals,
                ResampleArg::Cases => Resampling::Cases,
            },
            ..BootstrapOptions::default()
        },
        holdout: match a.holdout {
            HoldoutArg::None => Holdout::None,
            HoldoutArg::Largest => Holdout::Largest,
        },
        plateau_eps: a.plateau_eps,
        plateau_margin: a.plateau_margin,
        plateau_search: a.plateau_search,
        baseline: a.baseline.clone(),
        target_losses: a.target_loss.clone(),
        ratio_col: a.ratio_col.clone(),
        flops_budgets: a.flops_budget.clone(),
    };
    let json_stdout = a.json.as_deref() == Some(Path::new("-"));
    if let (Some(path), false) = (&a.json, json_stdout) {
        check_json_path(path)?;
    }
    let t = Instant::now();
    let table = read_inputs(&a.inputs, &input)?;
    let groups = table.groups(law, &input)?;
    if plain_logs() {
        eprintln!(
            "fitting the {} law to {} group(s), {} points, {} starts each, {} bootstrap resamples",
            law.name(),
            groups.len(),
            groups.iter().map(|g| g.points.len()).sum::<usize>(),
            law.start_grid().len(),
            a.bootstrap
        );
    }
    let pb = spinner();
    pb.set_message(format!("fitting {} group(s)", groups.len()));
    let report = run_study(&groups, &opts);
    pb.finish_and_clear();
    let report = report?;
    let file = FitFile {
        tool: "synthscale fit",
        version: env!("CARGO_PKG_VERSION"),
        data: &table.sources,
        rows: groups.iter().map(|g| g.points.len()).sum(),
        report: &report,
    };
    if json_stdout {
        // `--json -`: stdout holds the JSON alone (the report goes to stderr).
        let text = serde_json::to_string_pretty(&file).context("serializing the report")?;
        eprint!("{}", report_text(&report, t.elapsed().as_secs_f64()));
        println!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", report_text(&report, t.elapsed().as_secs_f64()));
    if let Some(path) = &a.json {
        write_json(path, &file)?;
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Checks, before any fitting, that `--json` can be written: its folder exists and takes a
/// new file, and the path is not a folder. A fit of minutes is not run only to fail at the end.
fn check_json_path(path: &Path) -> anyhow::Result<()> {
    let bad = |message: String| FitError::Option {
        option: "--json".into(),
        message: format!("{}: {message}", path.display()),
    };
    if path.is_dir() {
        return Err(bad("is a folder; name a file".into()).into());
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(bad(format!("its folder {} does not exist", dir.display())).into());
    }
    tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| bad(format!("cannot write in {}: {e}", dir.display())))?;
    Ok(())
}

/// Writes beside the destination and renames: never a half-written report.
fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("serializing the report")?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let write_err = |source| FitError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(write_err)?;
    tmp.write_all(text.as_bytes()).map_err(write_err)?;
    tmp.write_all(b"\n").map_err(write_err)?;
    tmp.persist(path).map_err(|e| write_err(e.error))?;
    Ok(())
}

fn opt(v: Option<f64>) -> String {
    v.map_or("—".into(), num)
}

fn ci(v: Option<&[f64; 2]>) -> String {
    v.map_or(String::new(), |[lo, hi]| {
        format!(" [{}, {}]", num(*lo), num(*hi))
    })
}

/// " (extrapolated, 3.2× past the data)" where a derived number reads a curve past its data.
fn extrap(extrapolated: bool, beyond: Option<f64>) -> String {
    match (extrapolated, beyond) {
        (false, _) => String::new(),
        (true, Some(f)) if f.is_finite() && f > 1.0 => {
            format!(" (extrapolated, {}× past the data)", num(f))
        }
        (true, _) => " (extrapolated)".into(),
    }
}

/// A speed-up with its interval, marked where it reads a curve past its data.
fn speedup(v: Option<f64>, ci95: Option<[f64; 2]>, past: bool, beyond: Option<f64>) -> String {
    format!("{}{}{}", opt(v), ci(ci95.as_ref()), extrap(past, beyond))
}

/// A plateau: its tokens, or "beyond" the search limit, marked when past the data.
fn plateau_at(d: Option<f64>, ci95: Option<&[f64; 2]>, extrapolated: bool, p: &Plateau) -> String {
    match d {
        None => format!(
            "beyond {}× the data (> {} tokens)",
            num(p.search_limit / p.largest_tokens),
            num(p.search_limit)
        ),
        Some(d) => format!(
            "{}{}{}",
            num(d),
            ci(ci95),
            extrap(extrapolated, Some(d / p.largest_tokens))
        ),
    }
}

/// Appends one formatted line to a String.
macro_rules! say {
    ($o:expr) => {
        $o.push('\n')
    };
    ($o:expr, $($t:tt)*) => {{
        $o.push_str(&format!($($t)*));
        $o.push('\n');
    }};
}

/// `title` and one line a speed-up (mixture, baseline, where it was read, the speed-up);
/// nothing when there are none.
fn speedup_section<'a>(
    out: &mut String,
    title: &str,
    reads: impl ExactSizeIterator<Item = (&'a String, &'a String, String, String)>,
) {
    if reads.len() == 0 {
        return;
    }
    say!(out, "{title}");
    for (mixture, baseline, read, sp) in reads {
        say!(out, "  {mixture} vs {baseline}{read}: {sp}");
    }
    say!(out);
}

/// The human-readable report of a fit.
fn report_text(r: &StudyReport, secs: f64) -> String {
    let mut out = String::new();
    let o = &r.options;
    say!(out,
        "{} law: {}; Huber delta {}, {} starts per group, {} bootstrap resamples (seed {}); {:.1} s",
        r.law.name(),
        r.formula,
        match o.fit.delta_rule {
            DeltaRule::Fixed => o.fit.huber_delta.to_string(),
            DeltaRule::Noise => "scaled to each group's noise".to_string(),
        },
        r.start_grid.starts,
        o.bootstrap.resamples,
        o.bootstrap.seed,
        secs
    );
    if let Some(e) = o.fit.pin_e {
        say!(out, "E pinned at {e}");
    }
    say!(out);
    if r.groups.len() > 1 {
        print_summary(&mut out, r);
    }
    for g in &r.groups {
        print_group(&mut out, r, g);
    }
    let reads = r.speedups.iter().map(|s| {
        let at = s
            .params
            .map_or(String::new(), |n| format!(" at N={}", num(n)));
        let sp = speedup(s.speedup, s.speedup_ci95, s.extrapolated, s.beyond_data);
        (
            &s.pair.mixture,
            &s.pair.baseline,
            format!("{at} at L*={}", num(s.target_loss)),
            sp,
        )
    });
    speedup_section(&mut out, "speed-ups D_baseline(L*) / D_mixture(L*):", reads);
    if !r.multipliers.is_empty() {
        say!(
            out,
            "effective-data multipliers k, L_mixture(D) = L_baseline(k·D), baseline law shared:"
        );
        for m in &r.multipliers {
            let k = match m.k {
                Some(k) => format!("{}{}", num(k), ci(m.ci95.as_ref())),
                None => "not identified (k at the edge of [1e-3, 1e3])".into(),
            };
            let reach = extrap(m.extrapolated, Some(m.beyond_data));
            let [drawn, fitted] = m.resamples;
            say!(out,
                "  {} vs {}: k = {k}{reach}; rmsd_log {:.5} over {} points, {fitted} of {drawn} resamples fitted",
                m.pair.mixture, m.pair.baseline, m.rmsd_log, m.n_points
            );
        }
        say!(out);
    }
    let reads = r.budget_speedups.iter().map(|s| {
        let at = s.params.map_or(String::new(), |n| format!(" N={}", num(n)));
        let read = format!("{at} D={} (loss {})", num(s.tokens), num(s.loss));
        let sp = speedup(s.speedup, s.speedup_ci95, s.extrapolated, s.beyond_data);
        (&s.pair.mixture, &s.pair.baseline, read, sp)
    });
    let title = "speed-ups at each observed mixture budget, D_baseline(L_mixture(D)) / D:";
    speedup_section(&mut out, title, reads);
    if !r.optimal_ratios.is_empty() {
        say!(
            out,
            "optimal synthetic ratio (quadratic in ratio of fitted log loss):"
        );
        for x in &r.optimal_ratios {
            let at = x.params.map_or(String::new(), |n| format!("N={} ", num(n)));
            let grid = if x.grid_determined {
                " (fewer than 4 ratios: the grid, not the data, sets it)"
            } else {
                ""
            };
            let ratio = opt(x.optimal_ratio) + &ci(x.optimal_ratio_ci95.as_ref());
            say!(out, "  {} {at}D={}: {ratio}{grid}", x.family, num(x.tokens));
        }
        say!(out);
    }
    out
}

fn print_summary(out: &mut String, r: &StudyReport) {
    let width = r
        .groups
        .iter()
        .map(|g| g.name.chars().count())
        .max()
        .unwrap_or(5)
        .clamp(5, 60);
    let mut head = format!("{:<width$} {:>6}", "group", "points");
    for name in r.law.param_names() {
        head.push_str(&format!(" {name:>10}"));
    }
    head.push_str(&format!(" {:>12} {:>9}", "objective", "rmsd_log"));
    let holdout = r.groups.iter().any(|g| g.holdout.is_some());
    if holdout {
        head.push_str(&format!(" {:>12}", "held-out err"));
    }
    say!(out, "{head}");
    for g in &r.groups {
        let name: String = g.name.chars().take(width).collect();
        let mut line = format!("{name:<width$} {:>6}", g.n_points);
        for p in r.law.param_names() {
            line.push_str(&format!(" {:>10}", num(g.params[*p])));
        }
        line.push_str(&format!(" {:>12.6e} {:>9.5}", g.objective, g.rmsd_log));
        if let Some(h) = &g.holdout {
            line.push_str(&format!(" {:>11.3}%", 100.0 * h.mean_rel_error));
        }
        say!(out, "{line}");
    }
    say!(out);
}

fn print_group(out: &mut String, r: &StudyReport, g: &GroupReport) {
    say!(
        out,
        "{}  ({} points; Huber delta {}, objective {:.6e}, rmsd_log {:.5}; {}/{} starts in bounds)",
        g.name,
        g.n_points,
        num(g.huber_delta),
        g.objective,
        g.rmsd_log,
        g.starts.in_bounds,
        g.starts.tried
    );
    for name in r.law.param_names() {
        say!(
            out,
            "  {:<6} {:>10}{}",
            name,
            num(g.params[*name]),
            ci(g.ci95.get(*name))
        );
    }
    if !g.at_bound.is_empty() {
        say!(
            out,
            "  at a bound: {} (not determined by the data; read this fit as a label, not a result)",
            g.at_bound.join(", ")
        );
    }
    if g.bootstrap.drawn > 0 {
        say!(
            out,
            "  (95% bootstrap intervals from {} of {} resamples)",
            g.bootstrap.fitted,
            g.bootstrap.drawn
        );
    }
    if let Some(h) = &g.holdout {
        say!(out,
            "  held out largest {} = {}: mean relative error {:.4}% (max {:.4}%) over {} point(s), fitted on {}",
            h.axis,
            num(h.held_out),
            100.0 * h.mean_rel_error,
            100.0 * h.max_rel_error,
            h.points.len(),
            h.n_fit
        );
    }
    let o = &r.options;
    for p in &g.derived.plateau {
        let at = p
            .params
            .map_or(String::new(), |n| format!(" at N={}", num(n)));
        say!(
            out,
            "  plateau{at}: doubling D gains < {}% from D = {}; within {}% of L∞={} from D = {}",
            100.0 * o.plateau_eps,
            plateau_at(
                p.doubling_tokens,
                p.doubling_tokens_ci95.as_ref(),
                p.doubling_extrapolated,
                p
            ),
            100.0 * o.plateau_margin,
            num(p.asymptote),
            plateau_at(
                p.margin_tokens,
                p.margin_tokens_ci95.as_ref(),
                p.margin_extrapolated,
                p
            ),
        );
    }
    for c in &g.derived.compute_optimal {
        say!(
            out,
            "  compute-optimal at C={}: N={}{}, D={}{}, D/N={}, L={}{}{}",
            num(c.flops),
            num(c.params),
            ci(c.params_ci95.as_ref()),
            num(c.tokens),
            ci(c.tokens_ci95.as_ref()),
            num(c.tokens_per_param),
            num(c.loss),
            ci(c.loss_ci95.as_ref()),
            extrap(c.extrapolated, None)
        );
    }
    say!(out);
}
