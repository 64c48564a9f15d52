//! The report's files: the fit JSON, a self-contained HTML page (figures inlined, no
//! network, no script) and a Markdown summary, all printed from the same structs, written
//! into a temporary folder and moved into place only when everything succeeded.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::analysis::{analyze, Analysis, Fits, Key};
use crate::config::ReportConfig;
use crate::error::{ReportError, Result};
use crate::format::{base64, fmt_params, html_escape, key_num, num, si};
use crate::plots::{render, speedups_at, Fig, Figure, PlotData};
use crate::results::{read_results, Mixture, Results, RunRow, SeedNoise, UnigramLoss, MEAN};

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

/// A table cell.
enum Cell {
    Text(String),
    /// A number from the fit JSON, with its interval if any.
    Num(Option<f64>, Option<[f64; 2]>),
    /// A derived number with where it was read: inside the data, past it, or not found
    /// within the search limit (DESIGN house style 18: nothing extrapolated goes unmarked).
    Est(Option<f64>, Option<[f64; 2]>, Reach),
    /// A fraction shown as a percentage.
    Pct(f64),
}

/// Where a derived number was read, relative to the data it comes from.
#[derive(Debug, Clone, Copy)]
enum Reach {
    /// Inside the observed budgets (or sizes).
    Inside,
    /// Past them; by this factor where known.
    Past(Option<f64>),
    /// Not reached within this multiple of the largest observed budget.
    Beyond(f64),
    /// Inside the data, but set by the design rather than the data (an optimal share from
    /// fewer than four shares: a quadratic through three always has a vertex).
    Grid,
}

impl Reach {
    fn of(extrapolated: bool, beyond: Option<f64>) -> Reach {
        if extrapolated {
            Reach::Past(beyond.filter(|f| f.is_finite() && *f > 1.0))
        } else {
            Reach::Inside
        }
    }

    fn text(self) -> Option<String> {
        match self {
            Reach::Inside => None,
            Reach::Past(Some(f)) => Some(format!("extrapolated, {}× past the data", num(f))),
            Reach::Past(None) => Some("extrapolated".into()),
            Reach::Beyond(f) => Some(format!("beyond {}× the data", num(f))),
            Reach::Grid => Some("set by the grid: fewer than 4 shares".into()),
        }
    }
}

/// A plateau cell: the tokens, marked when past the largest budget, or "beyond" the limit.
fn plateau_cell(
    d: Option<f64>,
    ci: Option<[f64; 2]>,
    extrapolated: bool,
    p: &synthscale_fit::study::Plateau,
) -> Cell {
    match d {
        None => Cell::Est(None, None, Reach::Beyond(p.search_limit / p.largest_tokens)),
        Some(d) => Cell::Est(
            Some(d),
            ci,
            Reach::of(extrapolated, Some(d / p.largest_tokens)),
        ),
    }
}

fn t(s: impl Into<String>) -> Cell {
    Cell::Text(s.into())
}

fn n(v: f64) -> Cell {
    Cell::Num(Some(v), None)
}

struct Table {
    title: String,
    head: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    fn new(title: impl Into<String>, head: &[&str]) -> Self {
        Table {
            title: title.into(),
            head: head.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }
}

fn span(v: f64) -> String {
    format!("<span data-v=\"{}\">{}</span>", key_num(v), num(v))
}

fn cell_html(c: &Cell) -> String {
    match c {
        Cell::Text(s) => format!("<td>{}</td>", html_escape(s)),
        Cell::Num(None, _) => "<td class=\"n\">—</td>".into(),
        Cell::Num(Some(v), iv) => {
            let ci = iv.map_or(String::new(), |[lo, hi]| {
                format!(" <small>[{}, {}]</small>", span(lo), span(hi))
            });
            format!("<td class=\"n\">{}{ci}</td>", span(*v))
        }
        Cell::Pct(v) => format!(
            "<td class=\"n\"><span data-v=\"{}\">{:.3}%</span></td>",
            key_num(*v),
            100.0 * v
        ),
        Cell::Est(v, iv, reach) => {
            let inner = cell_html(&Cell::Num(*v, *iv));
            match reach.text() {
                None => inner,
                Some(note) => inner.replace(
                    "</td>",
                    &format!(" <small class=\"x\">({})</small></td>", html_escape(&note)),
                ),
            }
        }
    }
}

fn cell_md(c: &Cell) -> String {
    match c {
        Cell::Text(s) => s.replace('|', "\\|"),
        Cell::Num(None, _) => "—".into(),
        Cell::Num(Some(v), iv) => {
            let ci = iv.map_or(String::new(), |[lo, hi]| {
                format!(" [{}, {}]", num(lo), num(hi))
            });
            format!("{}{ci}", num(*v))
        }
        Cell::Pct(v) => format!("{:.3}%", 100.0 * v),
        Cell::Est(v, iv, reach) => {
            let inner = cell_md(&Cell::Num(*v, *iv));
            match reach.text() {
                None => inner,
                Some(note) => format!("{inner} *({note})*"),
            }
        }
    }
}

fn table_html(tb: &Table, level: u8) -> String {
    let mut s = format!("<h{level}>{}</h{level}>\n", html_escape(&tb.title));
    if tb.rows.is_empty() {
        s.push_str("<p class=\"none\">none</p>\n");
        return s;
    }
    s.push_str("<table>\n<thead><tr>");
    for h in &tb.head {
        s.push_str(&format!("<th>{}</th>", html_escape(h)));
    }
    s.push_str("</tr></thead>\n<tbody>\n");
    for r in &tb.rows {
        s.push_str("<tr>");
        for c in r {
            s.push_str(&cell_html(c));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody></table>\n");
    s
}

fn table_md(tb: &Table, level: usize) -> String {
    let mut s = format!("{} {}\n\n", "#".repeat(level), tb.title);
    if tb.rows.is_empty() {
        s.push_str("none\n\n");
        return s;
    }
    s.push_str(&format!("| {} |\n", tb.head.join(" | ")));
    s.push_str(&format!("|{}\n", "---|".repeat(tb.head.len())));
    for r in &tb.rows {
        let cells: Vec<String> = r.iter().map(cell_md).collect();
        s.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    s.push('\n');
    s
}

struct Doc<'a> {
    results: &'a Results,
    analysis: &'a Analysis,
    figures: &'a [Figure],
    manifest: Option<(&'a Path, &'a str)>,
}

/// `mixture, size` of a group, as a reader names it, from its typed key.
fn who(k: &Key) -> (String, String) {
    let m = match (&k.mixture, k.share) {
        (Some(m), _) => m.clone(),
        (None, Some(s)) => format!("share {}", num(s)),
        (None, None) => "all".into(),
    };
    (m, k.params.map_or("all sizes".to_string(), fmt_params))
}

impl Doc<'_> {
    fn headline(&self) -> &str {
        &self.analysis.config.headline_domain
    }

    fn runs_table(&self) -> Table {
        let mut head = vec![
            "mixture",
            "N",
            "non-embedding N",
            "D",
            "D/N",
            "FLOPs",
            "seeds",
        ];
        let doms: Vec<String> = self
            .results
            .domains
            .iter()
            .map(|d| format!("loss: {d}"))
            .collect();
        head.extend(doms.iter().map(String::as_str));
        let mut tb = Table::new("Runs (final validation loss, nats/token)", &head);
        for r in &self.results.runs {
            let mut row = vec![
                t(r.mixture.clone()),
                n(r.params),
                n(r.non_embedding_params),
                n(r.tokens),
                n(r.tokens / r.params),
                n(r.flops),
                t(r.seeds.to_string()),
            ];
            for d in &self.results.domains {
                row.push(Cell::Num(r.loss.get(d).copied(), None));
            }
            tb.rows.push(row);
        }
        tb
    }

    /// Parameters of one law on one domain.
    fn params_table(&self, r: &Fits, domain: &str) -> Table {
        let law = r.law;
        let mut head = vec!["mixture", "model size"];
        head.extend(law.param_names().iter().copied());
        head.extend([
            "RMSD ln L",
            "points",
            "held-out error",
            "resamples fitted",
            "at a bound (not determined)",
        ]);
        let mut tb = Table::new(
            format!("{} law {} — {domain}", law.name(), law.formula()),
            &head,
        );
        for (g, k) in r.on(domain) {
            let (m, size) = who(k);
            let mut row = vec![t(m), t(size)];
            for p in law.param_names() {
                row.push(Cell::Num(Some(g.params[*p]), g.ci95.get(*p).copied()));
            }
            row.push(n(g.rmsd_log));
            row.push(t(g.n_points.to_string()));
            row.push(match &g.holdout {
                Some(h) => Cell::Pct(h.mean_rel_error),
                None => t("—"),
            });
            row.push(t(if g.bootstrap.drawn == 0 {
                "—".to_string()
            } else {
                format!("{} of {}", g.bootstrap.fitted, g.bootstrap.drawn)
            }));
            row.push(t(if g.at_bound.is_empty() {
                "none".to_string()
            } else {
                g.at_bound.join(", ")
            }));
            tb.rows.push(row);
        }
        tb
    }

    fn laws(&self) -> Vec<&Fits> {
        [
            &self.analysis.rectified,
            &self.analysis.power,
            &self.analysis.chinchilla,
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    fn holdout_table(&self) -> Table {
        let mut tb = Table::new(
            format!(
                "Held-out check — {}: fit without the largest budget (joint law: largest size), predict it",
                self.headline()
            ),
            &[
                "law",
                "mixture",
                "model size",
                "held out",
                "fitted on",
                "mean |L̂−L|/L",
                "max |L̂−L|/L",
            ],
        );
        for r in self.laws() {
            for (g, k) in r.on(self.headline()) {
                if let Some(h) = &g.holdout {
                    let (m, size) = who(k);
                    tb.rows.push(vec![
                        t(r.law.name()),
                        t(m),
                        t(size),
                        t(format!("{} = {}", h.axis, si(h.held_out))),
                        t(format!("{} points", h.n_fit)),
                        Cell::Pct(h.mean_rel_error),
                        Cell::Pct(h.max_rel_error),
                    ]);
                }
            }
        }
        tb
    }

    fn plateau_table(&self) -> Table {
        let o = self
            .laws()
            .first()
            .map(|r| r.options.clone())
            .unwrap_or_default();
        let (eps, margin) = (num(100.0 * o.plateau_eps), num(100.0 * o.plateau_margin));
        let margin_head = format!("within {margin}% of L∞ from D");
        let mut tb = Table::new(
            format!(
                "Plateaus — {}: tokens after which a doubling of D gains < {eps}% of the loss (about the gain per doubling where SynthLLM's 8B model approaches its ceiling), and from which the loss is within {margin}% of its asymptote L∞; searched up to {}× each curve's largest budget",
                self.headline(),
                num(o.plateau_search)
            ),
            &["law", "mixture", "model size", "L∞", "doubling plateau D", &margin_head],
        );
        for r in self.laws() {
            for (g, k) in r.on(self.headline()) {
                let (m, size) = who(k);
                // An asymptote at its bound is not determined by the data: neither it nor
                // the distance to it is printed as a result.
                let e_free = !g.at_bound.iter().any(|b| b == "E");
                let undetermined = || t("— (E at a bound: not determined)");
                for p in &g.derived.plateau {
                    let size = p.params.map_or(size.clone(), fmt_params);
                    tb.rows.push(vec![
                        t(r.law.name()),
                        t(m.clone()),
                        t(size),
                        if e_free {
                            n(p.asymptote)
                        } else {
                            undetermined()
                        },
                        plateau_cell(
                            p.doubling_tokens,
                            p.doubling_tokens_ci95,
                            p.doubling_extrapolated,
                            p,
                        ),
                        if e_free {
                            plateau_cell(
                                p.margin_tokens,
                                p.margin_tokens_ci95,
                                p.margin_extrapolated,
                                p,
                            )
                        } else {
                            undetermined()
                        },
                    ]);
                }
            }
        }
        tb
    }

    fn speedup_table(&self) -> Table {
        let base = &self.analysis.config.baseline;
        let mut tb = Table::new(
            format!(
                "Speed-ups over {base} — {}: D_{base}(L*) / D_mixture(L*) read off the fitted curves",
                self.headline()
            ),
            &[
                "law",
                "mixture",
                "model size",
                "target loss L*",
                &format!("D_{base}(L*)"),
                "D_mixture(L*)",
                "speed-up",
            ],
        );
        for r in [&self.analysis.rectified, &self.analysis.chinchilla]
            .into_iter()
            .flatten()
        {
            for s in r
                .speedups
                .iter()
                .filter(|s| r.key(s.mixture_group).domain == self.headline())
            {
                let key = r.key(s.mixture_group);
                let size = s.params.or(key.params).map_or("—".into(), fmt_params);
                tb.rows.push(vec![
                    t(r.law.name()),
                    t(key.mixture()),
                    t(size),
                    n(s.target_loss),
                    Cell::Num(s.tokens_baseline, None),
                    Cell::Num(s.tokens_mixture, None),
                    Cell::Est(
                        s.speedup,
                        s.speedup_ci95,
                        Reach::of(s.extrapolated, s.beyond_data),
                    ),
                ]);
            }
        }
        tb
    }

    fn multiplier_table(&self) -> Table {
        let base = &self.analysis.config.baseline;
        let mut tb = Table::new(
            format!(
                "Effective-data multipliers over {base} — {}: k with L_mixture(D) = L_{base}(k·D), the {base} law shared, fitted to every point of both curves (Hernandez et al. 2021); k > 1: a mixture token is worth k {base} tokens",
                self.headline()
            ),
            &["law", "mixture", "model size", "k", "RMSD ln L", "points", "resamples fitted"],
        );
        for r in [&self.analysis.rectified, &self.analysis.chinchilla]
            .into_iter()
            .flatten()
        {
            for m in r
                .multipliers
                .iter()
                .filter(|m| r.key(m.mixture_group).domain == self.headline())
            {
                let key = r.key(m.mixture_group);
                let size = key.params.map_or("all sizes".into(), fmt_params);
                tb.rows.push(vec![
                    t(r.law.name()),
                    t(key.mixture()),
                    t(size),
                    match m.k {
                        Some(k) => Cell::Est(
                            Some(k),
                            m.ci95,
                            Reach::of(m.extrapolated, Some(m.beyond_data)),
                        ),
                        None => t("not identified (k at the edge of 1e-3 … 1e3)"),
                    },
                    n(m.rmsd_log),
                    t(m.n_points.to_string()),
                    t(format!("{} of {}", m.resamples[1], m.resamples[0])),
                ]);
            }
        }
        tb
    }

    fn share_table(&self) -> Table {
        let mut tb = Table::new(
            format!(
                "Optimal synthetic share — {}: argmin over share of a quadratic in share of the fitted ln L, within the shares run",
                self.headline()
            ),
            &["kind", "law", "model size", "D", "shares run", "optimal share"],
        );
        for s in &self.analysis.optimal_share {
            for x in s.report.optimal_ratios.iter() {
                // The family's members share its domain and size: read the first one's key.
                let Some(key) = x.members.first().map(|&i| s.report.key(i)) else {
                    continue;
                };
                if key.domain != self.headline() {
                    continue;
                }
                let size = x.params.or(key.params).map_or("—".into(), fmt_params);
                tb.rows.push(vec![
                    t(s.kind.clone()),
                    t(s.report.law.name()),
                    t(size),
                    n(x.tokens),
                    t(x.ratios
                        .iter()
                        .map(|r| num(*r))
                        .collect::<Vec<_>>()
                        .join(", ")),
                    Cell::Est(
                        x.optimal_ratio,
                        x.optimal_ratio_ci95,
                        if x.grid_determined {
                            Reach::Grid
                        } else {
                            Reach::Inside
                        },
                    ),
                ]);
            }
        }
        tb
    }

    fn compute_table(&self) -> Table {
        let mut tb = Table::new(
            format!(
                "Compute-optimal splits (joint law) — {}: N* and D* minimizing L at C = 6ND",
                self.headline()
            ),
            &["mixture", "FLOPs C", "N*", "D*", "D*/N*", "L(N*, D*)"],
        );
        if let Some(r) = &self.analysis.chinchilla {
            for (g, k) in r.on(self.headline()) {
                for c in &g.derived.compute_optimal {
                    tb.rows.push(vec![
                        t(who(k).0),
                        n(c.flops),
                        Cell::Num(Some(c.params), c.params_ci95),
                        Cell::Num(Some(c.tokens), c.tokens_ci95),
                        n(c.tokens_per_param),
                        Cell::Est(Some(c.loss), c.loss_ci95, Reach::of(c.extrapolated, None)),
                    ]);
                }
            }
        }
        tb
    }

    /// The headline findings, as sentences.
    fn findings(&self) -> Vec<String> {
        let a = self.analysis;
        let mut out = Vec::new();
        let res = self.results;
        out.push(format!(
            "{} runs: {} mixture(s) × {} model size(s) ({}) × {} budget(s) ({} to {} tokens); loss is {}.",
            res.runs.len(),
            res.mixtures.len(),
            res.sizes.len(),
            res.sizes.iter().map(|&n| si(n)).collect::<Vec<_>>().join(", "),
            res.budgets.len(),
            si(res.budgets[0]),
            si(res.budgets[res.budgets.len() - 1]),
            if self.headline() == MEAN {
                format!("the validation loss {}", res.mean_text())
            } else {
                format!("on domain {}", self.headline())
            }
        ));
        // How far below the unigram baseline the runs end: near it, they measure the initial
        // plateau of training, not a scaling law.
        let gaps: Vec<f64> = res
            .runs
            .iter()
            .filter_map(|r| {
                let u = res.unigram_loss(&r.mixture, self.headline())?;
                Some(u - r.loss.get(self.headline())?)
            })
            .collect();
        if let (Some(lo), Some(hi)) = (
            gaps.iter().copied().reduce(f64::min),
            gaps.iter().copied().reduce(f64::max),
        ) {
            out.push(format!(
                "Runs end {} to {} nats below the unigram loss of their mixture's training tokens ({} of {} runs at least 0.3 nats below; figure 1's dotted line).",
                num(lo),
                num(hi),
                gaps.iter().filter(|g| **g >= 0.3).count(),
                gaps.len()
            ));
        }
        if let Some(sn) = res.seed_noise(self.headline()) {
            out.push(format!(
                "Seed-to-seed noise: the SD of ln L between runs that differ only in their seed is {} ({}%), pooled over {} cell(s) ({} degree(s) of freedom){}.",
                num(sn.sd_log),
                num(100.0 * sn.sd_log),
                sn.cells,
                sn.dof,
                if sn.dof >= crate::analysis::MIN_SEED_DOF {
                    "; the fits' Huber threshold is 1.345 times it"
                } else {
                    ""
                }
            ));
        }
        if let Some(&n) = res
            .sizes
            .iter()
            .rev()
            .find(|&&n| !speedups_at(a, self.headline(), n).is_empty())
        {
            for r in speedups_at(a, self.headline(), n) {
                let s = r.speedup;
                let mark = Reach::of(s.extrapolated, s.beyond_data)
                    .text()
                    .map_or(String::new(), |m| {
                        format!(" ({m}: a curve is read past its runs)")
                    });
                out.push(format!(
                    "At {}, {} reaches L* = {} with a speed-up of {}× {} over {} (D_{}(L*) / D_mixture(L*); below 1 means more tokens){mark}.",
                    fmt_params(n),
                    r.mixture,
                    num(s.target_loss),
                    s.speedup.map_or("—".into(), num),
                    crate::format::ci(s.speedup_ci95.as_ref()),
                    a.config.baseline,
                    a.config.baseline
                ));
            }
        }
        for s in &a.optimal_share {
            let xs: Vec<f64> = s
                .report
                .optimal_ratios
                .iter()
                .filter(|x| {
                    x.members
                        .first()
                        .is_some_and(|&i| s.report.key(i).domain == self.headline())
                })
                .filter_map(|x| x.optimal_ratio)
                .collect();
            if let (Some(lo), Some(hi)) = (
                xs.iter().copied().reduce(f64::min),
                xs.iter().copied().reduce(f64::max),
            ) {
                let grid = s.report.optimal_ratios.iter().any(|x| x.grid_determined);
                out.push(format!(
                    "Optimal {} share across sizes and budgets: {} to {}{}.",
                    s.kind,
                    num(lo),
                    num(hi),
                    if grid {
                        " (fewer than 4 shares were run: a quadratic through 3 always has a \
                         vertex, so the grid, not the data, sets this)"
                    } else {
                        ""
                    }
                ));
            }
        }
        if a.rectified.is_none() && a.chinchilla.is_none() {
            out.push("No scaling law could be fitted: see Notes for what the results lack.".into());
        }
        out
    }

    fn tables(&self) -> Vec<(Table, bool)> {
        // The answers first; the run table (one row per run) after them.
        let mut v = Vec::new();
        for r in self.laws() {
            v.push((self.params_table(r, self.headline()), false));
        }
        v.push((self.holdout_table(), false));
        v.push((self.plateau_table(), false));
        v.push((self.multiplier_table(), false));
        v.push((self.speedup_table(), false));
        v.push((self.share_table(), false));
        if self.analysis.chinchilla.is_some() {
            v.push((self.compute_table(), false));
        }
        v.push((self.runs_table(), false));
        // Per-domain parameters: folded away in the HTML.
        for df in &self.analysis.per_domain {
            for r in [&df.rectified, &df.power, &df.chinchilla]
                .into_iter()
                .flatten()
            {
                v.push((self.params_table(r, &df.eval_domain), true));
            }
        }
        v
    }

    /// How the Huber threshold was chosen on the headline domain.
    fn delta_text(&self) -> String {
        match self.results.seed_noise(self.headline()) {
            Some(sn) if sn.dof >= crate::analysis::MIN_SEED_DOF => format!(
                "δ = 1.345 × the seed-to-seed SD of ln L, {} = {}",
                num(sn.sd_log),
                num(1.345 * sn.sd_log)
            ),
            _ => "δ = 1.345 × 1.4826 × the median absolute log residual of a least-squares \
                  pre-fit of each curve, at least 10⁻⁴ (recorded per fit as huber_delta)"
                .to_string(),
        }
    }

    fn notes(&self) -> Vec<String> {
        let mut v = self.results.warnings.clone();
        v.extend(self.analysis.skipped.iter().cloned());
        for f in self.figures {
            for m in &f.missing {
                v.push(format!("figure {}: {m}", f.fig.stem()));
            }
        }
        v
    }

    fn html(&self) -> Result<String> {
        let mut s = String::new();
        s.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        s.push_str("<title>synthscale report</title>\n<style>\n");
        s.push_str(
            "body{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}\n\
             table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}\n\
             th,td{border:1px solid #ccc;padding:3px 7px;text-align:left}\n\
             td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\n\
             th{background:#f0f0f0}\n small{color:#666}\n\
             figure{margin:1.5em 0}\n figure img{max-width:100%;border:1px solid #ddd}\n\
             figcaption{font-size:14px;color:#333;margin-top:.3em}\n\
             pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:12px}\n\
             .none{color:#888}\n",
        );
        s.push_str("</style>\n</head>\n<body>\n");
        s.push_str("<h1>Scaling-law report</h1>\n");
        s.push_str(&format!(
            "<p>Results: <code>{}</code> ({} rows, {} final). Written by synthscale {}.</p>\n",
            html_escape(&self.results.path.display().to_string()),
            self.results.rows,
            self.results.final_rows,
            env!("CARGO_PKG_VERSION")
        ));
        s.push_str("<h2>Findings</h2>\n<ul>\n");
        for f in self.findings() {
            s.push_str(&format!("<li>{}</li>\n", html_escape(&f)));
        }
        s.push_str("</ul>\n<h2>Figures</h2>\n");
        for (i, f) in self.figures.iter().enumerate() {
            let bytes = std::fs::read(&f.png).map_err(|e| ReportError::read(&f.png, e))?;
            s.push_str(&format!(
                "<figure id=\"{}\"><img alt=\"{}\" src=\"data:image/png;base64,{}\">\n<figcaption><b>Figure {}.</b> {}</figcaption></figure>\n",
                f.fig.stem(),
                html_escape(&f.title),
                base64(&bytes),
                i + 1,
                html_escape(&f.caption)
            ));
        }
        s.push_str("<h2>Tables</h2>\n");
        let mut folded = false;
        for (tb, fold) in self.tables() {
            if fold && !folded {
                s.push_str("<details><summary>Fitted parameters on every other domain</summary>\n");
                folded = true;
            }
            s.push_str(&table_html(&tb, 3));
        }
        if folded {
            s.push_str("</details>\n");
        }
        let notes = self.notes();
        s.push_str("<h2>Notes</h2>\n");
        if notes.is_empty() {
            s.push_str("<p class=\"none\">Every fit and figure is complete.</p>\n");
        } else {
            s.push_str("<ul>\n");
            for n in notes {
                s.push_str(&format!("<li>{}</li>\n", html_escape(&n)));
            }
            s.push_str("</ul>\n");
        }
        s.push_str(&format!(
            "<h2>Fitting</h2>\n<p>Every law is fitted by synthscale-fit: sum of Huber losses of log residuals ({}), L-BFGS from the law's full start grid, {} bootstrap resamples of the residuals (seed {}) for 95% percentile intervals. The fit JSON (<code>fit.json</code>) holds every number above at full precision.</p>\n",
            html_escape(&self.delta_text()),
            self.analysis.config.bootstrap,
            self.analysis.config.seed
        ));
        if let Some((p, text)) = self.manifest {
            s.push_str(&format!(
                "<h2>Manifest</h2>\n<p><code>{}</code></p>\n<pre>{}</pre>\n",
                html_escape(&p.display().to_string()),
                html_escape(text)
            ));
        }
        s.push_str("</body>\n</html>\n");
        Ok(s)
    }

    fn markdown(&self) -> String {
        let mut s = String::from("# Scaling-law report\n\n");
        s.push_str(&format!(
            "Results: `{}` ({} rows, {} final). Full report: `report.html`; every number at full precision: `fit.json`.\n\n## Findings\n\n",
            self.results.path.display(),
            self.results.rows,
            self.results.final_rows
        ));
        for f in self.findings() {
            s.push_str(&format!("- {f}\n"));
        }
        s.push_str("\n## Figures\n\n");
        for (i, f) in self.figures.iter().enumerate() {
            let file = f
                .png
                .file_name()
                .map_or(String::new(), |x| x.to_string_lossy().into_owned());
            s.push_str(&format!(
                "![{}]({file})\n\n**Figure {}.** {}\n\n",
                f.title,
                i + 1,
                f.caption
            ));
        }
        s.push_str("## Tables\n\n");
        for (tb, _) in self.tables() {
            s.push_str(&table_md(&tb, 3));
        }
        let notes = self.notes();
        if !notes.is_empty() {
            s.push_str("## Notes\n\n");
            for n in notes {
                s.push_str(&format!("- {n}\n"));
            }
            s.push('\n');
        }
        if let Some((p, _)) = self.manifest {
            s.push_str(&format!("Manifest: `{}`\n", p.display()));
        }
        s
    }
}
