//! The six figures, drawn with `plotters` into PNG and SVG from one generic drawing
//! function each, with the bundled DejaVu Sans so nothing depends on system fonts. A
//! figure whose data or fit is missing says so in the picture instead of failing.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use synthscale_fit::derived::compute_optimal;
use synthscale_fit::study::{GroupReport, Speedup};
use synthscale_fit::Law;

use crate::analysis::{theta, Analysis, Curve, Fits, Key};
use crate::error::{ReportError, Result};
use crate::format::{fmt_params, num, si};
use crate::results::{Obs, Results};

/// The family name the fit crate gives the plots' font.
const FONT: &str = "sans-serif";
/// DejaVu Sans 2.37 (Debian fonts-dejavu-core; fonts/PROVENANCE).
static FONT_BYTES: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");

/// Okabe & Ito's colour-blind-safe palette.
const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    RGBColor(160, 140, 20),
];
const GREY: RGBColor = RGBColor(120, 120, 120);

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType file committed with the crate; a failure here is
        // caught by every figure test.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
    });
}

/// One figure of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fig {
    /// 1. Loss against tokens, one panel per mixture.
    LossTokens,
    /// 2. All mixtures at one size, with speed-ups at the target loss.
    Mixtures,
    /// 3. Loss against synthetic share at each (N, D), with the fitted optimum.
    Share,
    /// 4. Speed-up over natural data against budget.
    Speedup,
    /// 5. Residuals of the rectified and power laws.
    Residuals,
    /// 6. Iso-loss contours of the joint law and the compute-optimal frontier.
    Joint,
}

impl Fig {
    /// Every figure, in report order.
    pub const ALL: [Fig; 6] = [
        Fig::LossTokens,
        Fig::Mixtures,
        Fig::Share,
        Fig::Speedup,
        Fig::Residuals,
        Fig::Joint,
    ];

    /// File stem of the PNG and SVG.
    pub fn stem(self) -> &'static str {
        match self {
            Fig::LossTokens => "fig1-loss-vs-tokens",
            Fig::Mixtures => "fig2-mixtures",
            Fig::Share => "fig3-synthetic-share",
            Fig::Speedup => "fig4-speedup",
            Fig::Residuals => "fig5-residuals",
            Fig::Joint => "fig6-joint-law",
        }
    }
}

/// A figure, drawn.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Which.
    pub fig: Fig,
    /// Its title.
    pub title: String,
    /// One line saying what it shows.
    pub caption: String,
    /// The PNG.
    pub png: PathBuf,
    /// The SVG.
    pub svg: PathBuf,
    /// What the figure says is missing (empty when complete).
    pub missing: Vec<String>,
}

/// What every figure reads.
pub struct PlotData<'a> {
    /// The results.
    pub results: &'a Results,
    /// The fits.
    pub analysis: &'a Analysis,
    /// The domain plotted.
    pub domain: &'a str,
}

type R<T> = std::result::Result<T, String>;

fn pe<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

/// Draws `fig` to `dir/<stem>.png` and `.svg`.
pub fn render(fig: Fig, d: &PlotData, dir: &Path) -> Result<Figure> {
    register_font();
    let size = fig_size(fig, d);
    let png = dir.join(format!("{}.png", fig.stem()));
    let svg = dir.join(format!("{}.svg", fig.stem()));
    let err = |message: String| ReportError::Plot {
        figure: fig.stem().to_string(),
        message,
    };
    let (title, missing) = {
        let backend = crate::glyphs::GlyphFix::new(BitMapBackend::new(&png, size), FONT_BYTES)
            .ok_or_else(|| err("the bundled font does not parse".into()))?;
        let root = backend.into_drawing_area();
        let out = draw(fig, &root, d).map_err(err)?;
        root.present().map_err(|e| err(pe(e)))?;
        out
    };
    {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        draw(fig, &root, d).map_err(err)?;
        root.present().map_err(|e| err(pe(e)))?;
    }
    Ok(Figure {
        fig,
        caption: caption(fig, d, &missing),
        title,
        png,
        svg,
        missing,
    })
}

fn grid(n: usize) -> (usize, usize) {
    let cols = n.clamp(1, 3);
    (n.max(1).div_ceil(cols), cols)
}

fn fig_size(fig: Fig, d: &PlotData) -> (u32, u32) {
    let panels = |n: usize| {
        let (r, c) = grid(n);
        (560 * c as u32, 440 * r as u32 + 50)
    };
    match fig {
        Fig::LossTokens | Fig::Joint => panels(d.results.mixtures.len()),
        Fig::Share => panels(d.analysis.optimal_share.len().max(1) * d.results.sizes.len()),
        Fig::Mixtures | Fig::Speedup => (1000, 650),
        Fig::Residuals => (1120, 500),
    }
}

fn domain_text(d: &PlotData) -> String {
    if d.domain == crate::results::MEAN {
        d.results.mean_text()
    } else {
        format!("domain {}", d.domain)
    }
}

fn caption(fig: Fig, d: &PlotData, missing: &[String]) -> String {
    let dom = domain_text(d);
    let c = match fig {
        Fig::LossTokens => format!(
            "Final validation loss ({dom}) against training tokens, log–log, one panel per mixture: dots are runs, lines the fitted law per model size, open rings the held-out largest budget, the dotted black line the unigram loss of the mixture's training tokens, dashed verticals the plateau (a doubling of D gains < 2%; legends say when it lies past the runs or beyond 100× them)."
        ),
        Fig::Mixtures => format!(
            "Every mixture at {} ({dom}): fitted curves, the target loss L* (dashed) and each mixture's speed-up D_natural(L*)/D_mixture(L*).",
            mixtures_size(d).map_or("one model size".into(), fmt_params)
        ),
        Fig::Share => format!(
            "Final loss ({dom}) against synthetic share, one panel per model size and one line per budget; diamonds mark the fitted optimal share with its 95% bootstrap interval."
        ),
        Fig::Speedup => format!(
            "Speed-up of each mixture over {} data against the natural-data budget D, read off the fitted curves ({dom}) where both curves lie inside the budgets that were run: solid at the largest model size, dashed at smaller ones; bars are 95% bootstrap intervals at the target loss where both curves reach it inside their runs.",
            d.analysis.config.baseline
        ),
        Fig::Residuals => format!(
            "Log residuals ln L̂ − ln L of every run under the rectified law (left) and the plain power law (right), {dom}."
        ),
        Fig::Joint => format!(
            "Iso-loss contours of the joint law L(N, D) = E + A/N^α + B/D^β per mixture ({dom}), the compute-optimal frontier (black) and the runs (crosses)."
        ),
    };
    if missing.is_empty() {
        c
    } else {
        format!("{c} Missing: {}.", missing.join("; "))
    }
}

fn draw<DB: DrawingBackend>(
    fig: Fig,
    root: &DrawingArea<DB, Shift>,
    d: &PlotData,
) -> R<(String, Vec<String>)> {
    root.fill(&WHITE).map_err(pe)?;
    let title = match fig {
        Fig::LossTokens => "Validation loss against training tokens".to_string(),
        Fig::Mixtures => "Mixtures compared at one model size".to_string(),
        Fig::Share => "Loss against synthetic share".to_string(),
        Fig::Speedup => format!("Speed-up over {} data", d.analysis.config.baseline),
        Fig::Residuals => "Residuals: rectified against power law".to_string(),
        Fig::Joint => "Joint law: iso-loss contours and the compute-optimal frontier".to_string(),
    };
    let area = titled_to_fit(root, &format!("{title} ({})", domain_text(d)))?;
    let missing = match fig {
        Fig::LossTokens => loss_tokens(&area, d)?,
        Fig::Mixtures => mixtures(&area, d)?,
        Fig::Share => share(&area, d)?,
        Fig::Speedup => speedup(&area, d)?,
        Fig::Residuals => residuals(&area, d)?,
        Fig::Joint => joint(&area, d)?,
    };
    Ok((title, missing))
}

/// Draws `text` as the figure's title at the largest size from 26 px down to 16 px whose
/// measured width fits the image with a margin; a title too long even then goes on two
/// lines, broken at the space nearest its middle. Returns the area below the title.
fn titled_to_fit<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    text: &str,
) -> R<DrawingArea<DB, Shift>> {
    let (w, _) = root.dim_in_pixel();
    let room = w.saturating_sub(40);
    let fits = |t: &str, size: i32| -> R<bool> {
        let style: TextStyle = (FONT, size).into();
        Ok(root.estimate_text_size(t, &style).map_err(pe)?.0 <= room)
    };
    for size in [26, 24, 22, 20, 18, 16] {
        if fits(text, size)? {
            return root.titled(text, (FONT, size)).map_err(pe);
        }
    }
    let mid = text.chars().count() / 2;
    let cut = text
        .char_indices()
        .filter(|(_, c)| *c == ' ')
        .map(|(i, _)| i)
        .min_by_key(|&i| (text[..i].chars().count() as i64 - mid as i64).abs())
        .unwrap_or(text.len());
    let (a, b) = text.split_at(cut);
    let lines = [a.trim(), b.trim()];
    let mut size = 20;
    while size > 12 && !(fits(lines[0], size)? && fits(lines[1], size)?) {
        size -= 1;
    }
    let line_h = size + 6;
    let (top, rest) = root.split_vertically(2 * line_h as u32 + 14);
    let style = TextStyle::from((FONT, size)).pos(plotters::style::text_anchor::Pos::new(
        plotters::style::text_anchor::HPos::Center,
        plotters::style::text_anchor::VPos::Top,
    ));
    for (i, line) in lines.iter().enumerate() {
        top.draw_text(line, &style, (w as i32 / 2, 6 + i as i32 * line_h))
            .map_err(pe)?;
    }
    Ok(rest)
}

/// Wraps `s` at about `width` characters.
fn wrap(s: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for w in s.split_whitespace() {
        if !cur.is_empty() && cur.chars().count() + 1 + w.chars().count() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(w);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

/// A panel that says what is missing.
fn message<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    head: &str,
    lines: &[String],
) -> R<()> {
    let (w, h) = area.dim_in_pixel();
    area.draw(&Rectangle::new(
        [(8, 8), (w as i32 - 8, h as i32 - 8)],
        GREY.stroke_width(1),
    ))
    .map_err(pe)?;
    let width = (w as usize / 10).max(20);
    let mut y = 30;
    for (i, line) in std::iter::once(head.to_string())
        .chain(lines.iter().cloned())
        .enumerate()
    {
        for l in wrap(&line, width) {
            let style = (FONT, if i == 0 { 20 } else { 16 })
                .into_font()
                .color(if i == 0 { &RED } else { &BLACK });
            area.draw(&Text::new(l, (20, y), style)).map_err(pe)?;
            y += if i == 0 { 28 } else { 22 };
        }
        y += 4;
    }
    Ok(())
}

fn logspace(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let (a, b) = (lo.ln(), hi.ln());
    (0..n)
        .map(|i| (a + (b - a) * i as f64 / (n - 1) as f64).exp())
        .collect()
}

/// A log axis over `[lo, hi]` widened by `pad` each side (and a factor 2 when flat).
fn log_span(lo: f64, hi: f64, pad: f64) -> Range<f64> {
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        (lo / 2.0, hi * 2.0)
    };
    lo / pad..hi * pad
}

fn min_max(v: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    v.filter(|x| x.is_finite()).fold(None, |acc, x| match acc {
        None => Some((x, x)),
        Some((a, b)) => Some((a.min(x), b.max(x))),
    })
}

/// Round ticks inside `[lo, hi]`: a log axis over less than a decade gets none of its own.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = hi - lo;
    let step = [
        0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0,
    ]
    .into_iter()
    .find(|s| span / s <= 7.0)
    .unwrap_or(100.0);
    let mut v = Vec::new();
    let mut x = (lo / step).ceil() * step;
    while x <= hi {
        v.push(x);
        x += step;
    }
    v
}

/// 1-2-5 ticks per decade inside `[lo, hi]`, thinned to decades when there are many.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut v = Vec::new();
    let mut k = lo.log10().floor() as i32;
    while 10f64.powi(k) <= hi {
        for m in [1.0, 2.0, 5.0] {
            let x = m * 10f64.powi(k);
            if x >= lo && x <= hi {
                v.push(x);
            }
        }
        k += 1;
    }
    if v.len() > 8 {
        v.retain(|x| (x.log10() - x.log10().round()).abs() < 1e-9);
    }
    v
}

fn loss_label(v: &f64) -> String {
    format!("{v:.2}")
}

fn si_label(v: &f64) -> String {
    si(*v)
}

/// The group that produced `curve` for (mixture, n), for its holdout and plateau.
fn curve_group<'a>(d: &'a PlotData, mixture: &str, n: f64, law: Law) -> Option<&'a GroupReport> {
    let a = d.analysis;
    match law {
        Law::Chinchilla => a.chinchilla.as_ref()?.group(d.domain, None, mixture),
        _ => a.rectified.as_ref()?.group(d.domain, Some(n), mixture),
    }
}

fn same(a: f64, b: f64) -> bool {
    (a / b - 1.0).abs() < 1e-6
}

fn obs<'a>(d: &'a PlotData, mixture: &'a str, n: f64) -> Vec<&'a Obs> {
    let mut v: Vec<&Obs> = d
        .results
        .domain(d.domain)
        .filter(|o| o.mixture == mixture && same(o.params, n))
        .collect();
    v.sort_by(|a, b| a.tokens.total_cmp(&b.tokens));
    v
}

/// Figure 1.
fn loss_tokens<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, d: &PlotData) -> R<Vec<String>> {
    let res = d.results;
    let mut missing = Vec::new();
    let (rows, cols) = grid(res.mixtures.len());
    let panels = root.split_evenly((rows, cols));
    let all: Vec<&Obs> = res.domain(d.domain).collect();
    let (blo, bhi) = min_max(all.iter().map(|o| o.tokens)).ok_or("no points")?;
    let (llo, lhi) = min_max(all.iter().map(|o| o.loss)).ok_or("no points")?;
    // The unigram loss of each mixture's training tokens: the floor of learning nothing
    // but token frequencies, drawn so that runs near it read as the initial plateau.
    let unigram = |m: &str| res.unigram_loss(m, d.domain);
    let uhi = res
        .mixtures
        .iter()
        .filter_map(|m| unigram(&m.name))
        .fold(lhi, f64::max);
    let xr = blo / 1.5..bhi * 3.0;
    let yr = llo * 0.96..uhi * 1.04;
    for (m, panel) in res.mixtures.iter().zip(&panels) {
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!(
                    "{} (natural {:.0}%, rephrased {:.0}%, textbook {:.0}%)",
                    m.name,
                    100.0 * m.natural,
                    100.0 * m.rephrased,
                    100.0 * m.textbook
                ),
                (FONT, 17),
            )
            .margin(8)
            .x_label_area_size(48)
            .y_label_area_size(62)
            .build_cartesian_2d(
                xr.clone()
                    .log_scale()
                    .with_key_points(log_ticks(xr.start, xr.end)),
                yr.clone()
                    .log_scale()
                    .with_key_points(ticks(yr.start, yr.end)),
            )
            .map_err(pe)?;
        chart
            .configure_mesh()
            .x_desc("training tokens D")
            .y_desc("validation loss (nats/token)")
            .x_label_formatter(&si_label)
            .y_label_formatter(&loss_label)
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 15))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(pe)?;
        if let Some(u) = unigram(&m.name) {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(xr.start, u), (xr.end, u)],
                    2,
                    5,
                    BLACK.stroke_width(2),
                ))
                .map_err(pe)?
                .label(format!("unigram loss {u:.2}"))
                .legend(|(x, y)| {
                    DashedPathElement::new(vec![(x, y), (x + 18, y)], 2, 3, BLACK.stroke_width(2))
                });
        }
        let mut drew_curve = false;
        let mut notes = Vec::new();
        for (si_, &n) in res.sizes.iter().enumerate() {
            let c = color(si_);
            let pts = obs(d, &m.name, n);
            if pts.is_empty() {
                notes.push(format!("no runs at {}", fmt_params(n)));
                missing.push(format!("{}: no runs at {}", m.name, fmt_params(n)));
                continue;
            }
            let mut label = fmt_params(n);
            if let Some(curve) = d.analysis.curve(d.domain, &m.name, n) {
                drew_curve = true;
                let xs = logspace(xr.start, xr.end, 120);
                chart
                    .draw_series(LineSeries::new(
                        xs.iter()
                            .map(|&x| (x, curve.loss(x)))
                            .filter(|p| yr.contains(&p.1)),
                        c.stroke_width(2),
                    ))
                    .map_err(pe)?;
                let g = curve_group(d, &m.name, n, curve.law);
                // Held-out points: the largest budget (one-variable laws) or this whole size.
                if let Some(h) = g.and_then(|g| g.holdout.as_ref()) {
                    let held: Vec<(f64, f64)> = pts
                        .iter()
                        .filter(|o| {
                            if h.axis == "tokens" {
                                same(o.tokens, h.held_out)
                            } else {
                                same(o.params, h.held_out)
                            }
                        })
                        .map(|o| (o.tokens, o.loss))
                        .collect();
                    chart
                        .draw_series(held.iter().map(|&p| Circle::new(p, 9, c.stroke_width(2))))
                        .map_err(pe)?;
                }
                let reading = g.and_then(|g| {
                    g.derived
                        .plateau
                        .iter()
                        .find(|p| p.params.is_none_or(|pn| same(pn, n)))
                });
                let plateau = reading.and_then(|p| p.doubling_tokens);
                // A plateau past the runs says so; one past the search limit is no number.
                let said = match reading {
                    Some(p) => match p.doubling_tokens {
                        None => format!(
                            ", plateau beyond {}× the data",
                            si(p.search_limit / p.largest_tokens)
                        ),
                        Some(t) if p.doubling_extrapolated => {
                            format!(", plateau {} tok, extrapolated", si(t))
                        }
                        Some(t) => format!(", plateau {} tok", si(t)),
                    },
                    None => String::new(),
                };
                label = format!("{label} ({}{said})", curve.law.name());
                if let Some(p) = plateau.filter(|p| xr.contains(p)) {
                    chart
                        .draw_series(DashedLineSeries::new(
                            vec![(p, yr.start), (p, yr.end)],
                            6,
                            4,
                            c.stroke_width(1),
                        ))
                        .map_err(pe)?;
                }
            }
            if d.analysis.curve(d.domain, &m.name, n).is_none() {
                // No law: join the runs so the sizes still read as curves.
                chart
                    .draw_series(DashedLineSeries::new(
                        pts.iter().map(|o| (o.tokens, o.loss)),
                        4,
                        4,
                        c.stroke_width(1),
                    ))
                    .map_err(pe)?;
            }
            chart
                .draw_series(
                    pts.iter()
                        .map(|o| Circle::new((o.tokens, o.loss), 4, c.filled())),
                )
                .map_err(pe)?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3))
                });
        }
        if !drew_curve {
            notes.push("no fitted curve (see the report's notes)".into());
            missing.push(format!("{}: no fitted curve", m.name));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(GREY)
            .label_font((FONT, 13))
            .draw()
            .map_err(pe)?;
        for (k, note) in notes.iter().enumerate() {
            panel
                .draw(&Text::new(
                    note.clone(),
                    (75, 380 - 18 * k as i32),
                    (FONT, 14).into_font().color(&RED),
                ))
                .map_err(pe)?;
        }
    }
    Ok(missing)
}

/// The model size of figure 2: the one with the most fitted mixtures, then the largest.
fn mixtures_size(d: &PlotData) -> Option<f64> {
    d.results
        .sizes
        .iter()
        .copied()
        .map(|n| {
            let k = d
                .results
                .mixtures
                .iter()
                .filter(|m| d.analysis.curve(d.domain, &m.name, n).is_some())
                .count();
            (k, n)
        })
        .filter(|(k, _)| *k > 0)
        .max_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)))
        .map(|(_, n)| n)
}

/// A speed-up read with the mixture it belongs to (from the typed key of its group).
#[derive(Debug, Clone, Copy)]
pub struct Read<'a> {
    /// The fitter's answer.
    pub speedup: &'a Speedup,
    /// The mixture's name.
    pub mixture: &'a str,
}

/// Speed-ups over the baseline at size `n` on `domain`: the rectified fits' when the
/// curves are rectified, else the joint law's read at `n`.
pub fn speedups_at<'a>(a: &'a Analysis, domain: &str, n: f64) -> Vec<Read<'a>> {
    let from = |r: &'a Option<Fits>, joint: bool| -> Vec<Read<'a>> {
        let Some(r) = r.as_ref() else {
            return Vec::new();
        };
        r.speedups
            .iter()
            .filter(|s| {
                let k = r.key(s.mixture_group);
                k.domain == domain
                    && if joint {
                        s.params == Some(n)
                    } else {
                        k.params == Some(n)
                    }
            })
            .map(|s| Read {
                speedup: s,
                mixture: r.key(s.mixture_group).mixture(),
            })
            .collect()
    };
    let v = from(&a.rectified, false);
    if !v.is_empty() {
        return v;
    }
    from(&a.chinchilla, true)
}

/// Figure 2.
fn mixtures<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, d: &PlotData) -> R<Vec<String>> {
    let Some(n) = mixtures_size(d) else {
        let why: Vec<String> = d.analysis.skipped.iter().take(6).cloned().collect();
        message(root, "No fitted curve at any model size", &why)?;
        return Ok(vec!["no fitted curve at any model size".into()]);
    };
    let mut missing = Vec::new();
    let res = d.results;
    let pts: Vec<&Obs> = res.domain(d.domain).filter(|o| same(o.params, n)).collect();
    let (blo, bhi) = min_max(pts.iter().map(|o| o.tokens)).ok_or("no points")?;
    let (llo, lhi) = min_max(pts.iter().map(|o| o.loss)).ok_or("no points")?;
    let sps = speedups_at(d.analysis, d.domain, n);
    let target = sps.first().map(|s| s.speedup.target_loss);
    let xr = blo / 2.0..bhi * 4.0;
    let ylo = target.map_or(llo, |t| t.min(llo));
    let yr = ylo * 0.96..lhi * 1.04;
    let mut chart = ChartBuilder::on(root)
        .caption(format!("model size {}", fmt_params(n)), (FONT, 18))
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(
            xr.clone()
                .log_scale()
                .with_key_points(log_ticks(xr.start, xr.end)),
            yr.clone()
                .log_scale()
                .with_key_points(ticks(yr.start, yr.end)),
        )
        .map_err(pe)?;
    chart
        .configure_mesh()
        .x_desc("training tokens D")
        .y_desc("validation loss (nats/token)")
        .x_label_formatter(&si_label)
        .y_label_formatter(&loss_label)
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 17))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(pe)?;
    if let Some(t) = target {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(xr.start, t), (xr.end, t)],
                8,
                5,
                GREY.stroke_width(2),
            ))
            .map_err(pe)?
            .label(format!("target loss L* = {}", num(t)))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], GREY.stroke_width(2)));
    } else {
        missing.push(format!(
            "speed-ups (no {} baseline curve at this size)",
            d.analysis.config.baseline
        ));
    }
    for (mi, m) in res.mixtures.iter().enumerate() {
        let c = color(mi);
        let mo = obs(d, &m.name, n);
        let curve = d.analysis.curve(d.domain, &m.name, n);
        if mo.is_empty() && curve.is_none() {
            missing.push(format!("{} at {}", m.name, fmt_params(n)));
            continue;
        }
        let mut label = m.name.clone();
        if let Some(curve) = &curve {
            let xs = logspace(xr.start, xr.end, 120);
            chart
                .draw_series(LineSeries::new(
                    xs.iter()
                        .map(|&x| (x, curve.loss(x)))
                        .filter(|p| yr.contains(&p.1)),
                    c.stroke_width(2),
                ))
                .map_err(pe)?;
            if let Some(t) = target {
                if let Some(dm) = curve.tokens_for(t).filter(|x| xr.contains(x)) {
                    chart
                        .draw_series(std::iter::once(TriangleMarker::new((dm, t), 8, c.filled())))
                        .map_err(pe)?;
                }
            }
            if let Some(s) = sps.iter().find(|r| r.mixture == m.name).map(|r| r.speedup) {
                label = format!(
                    "{label}: {}× {}{}",
                    s.speedup.map_or("—".into(), num),
                    crate::format::ci(s.speedup_ci95.as_ref()),
                    match (s.extrapolated, s.beyond_data) {
                        (false, _) => String::new(),
                        (true, Some(f)) if f.is_finite() && f > 1.0 => {
                            format!(" extrapolated, {}× past the runs", num(f))
                        }
                        (true, _) => " extrapolated".into(),
                    }
                );
            } else if m.name == d.analysis.config.baseline {
                label = format!("{label} (baseline)");
            }
        } else {
            missing.push(format!("{}: no fitted curve at {}", m.name, fmt_params(n)));
            label = format!("{label} (no fit)");
        }
        chart
            .draw_series(
                mo.iter()
                    .map(|o| Circle::new((o.tokens, o.loss), 5, c.filled())),
            )
            .map_err(pe)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(GREY)
        .label_font((FONT, 15))
        .draw()
        .map_err(pe)?;
    Ok(missing)
}

/// Linear interpolation of `(x, y)` pairs sorted by x, at `x`.
fn interp(pairs: &[(f64, f64)], x: f64) -> Option<f64> {
    pairs.windows(2).find_map(|w| {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        (x >= x0 && x <= x1 && x1 > x0).then(|| y0 + (y1 - y0) * (x - x0) / (x1 - x0))
    })
}

/// Figure 3.
fn share<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, d: &PlotData) -> R<Vec<String>> {
    let res = d.results;
    let a = d.analysis;
    let mut missing = Vec::new();
    // Panels: one per share study; without any, one panel of every mixture's share.
    struct Panel<'b> {
        title: String,
        size: f64,
        mixtures: Vec<String>,
        study: Option<&'b crate::analysis::ShareStudy>,
    }
    let mut panels: Vec<Panel> = Vec::new();
    if a.optimal_share.is_empty() {
        missing.extend(
            a.skipped
                .iter()
                .filter(|s| s.starts_with("optimal") || s.starts_with("speed-ups and optimal"))
                .cloned(),
        );
        if missing.is_empty() {
            missing.push("no optimal share fitted".into());
        }
        for &n in &res.sizes {
            panels.push(Panel {
                title: format!("{}: every mixture (no optimum fitted)", fmt_params(n)),
                size: n,
                mixtures: res.mixtures.iter().map(|m| m.name.clone()).collect(),
                study: None,
            });
        }
    } else {
        for st in &a.optimal_share {
            for &n in &res.sizes {
                panels.push(Panel {
                    title: format!(
                        "{} share at {} ({} law)",
                        st.kind,
                        fmt_params(n),
                        st.report.law.name()
                    ),
                    size: n,
                    mixtures: st.mixtures.clone(),
                    study: Some(st),
                });
            }
        }
    }
    let (rows, cols) = grid(panels.len());
    let areas = root.split_evenly((rows, cols));
    for (p, area) in panels.iter().zip(&areas) {
        let share_of = |name: &str| res.mixture(name).map(|m| m.synthetic());
        let pts: Vec<(&Obs, f64)> = res
            .domain(d.domain)
            .filter(|o| same(o.params, p.size))
            .filter_map(|o| {
                p.mixtures
                    .contains(&o.mixture)
                    .then(|| share_of(&o.mixture).map(|s| (o, s)))
                    .flatten()
            })
            .collect();
        let Some((llo, lhi)) = min_max(pts.iter().map(|(o, _)| o.loss)) else {
            message(area, &p.title, &["no runs".into()])?;
            continue;
        };
        let pad = (lhi - llo).max(1e-3) * 0.08;
        let mut chart = ChartBuilder::on(area)
            .caption(&p.title, (FONT, 17))
            .margin(10)
            .x_label_area_size(48)
            .y_label_area_size(62)
            .build_cartesian_2d(-0.03..1.03, (llo - pad)..(lhi + pad))
            .map_err(pe)?;
        chart
            .configure_mesh()
            .x_desc("synthetic share of training tokens")
            .y_desc("validation loss (nats/token)")
            .y_label_formatter(&loss_label)
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 15))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(pe)?;
        let n = p.size;
        let mut cells: Vec<(f64, f64)> = pts.iter().map(|(o, _)| (o.params, o.tokens)).collect();
        cells.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.total_cmp(&y.1)));
        cells.dedup();
        for (ci_, &(_, t)) in cells.iter().enumerate() {
            let c = color(ci_);
            let mut line: Vec<(f64, f64)> = pts
                .iter()
                .filter(|(o, _)| o.params == n && o.tokens == t)
                .map(|(o, s)| (*s, o.loss))
                .collect();
            line.sort_by(|x, y| x.0.total_cmp(&y.0));
            let mut label = format!("{} tok", si(t));
            chart
                .draw_series(LineSeries::new(line.clone(), c.stroke_width(1)))
                .map_err(pe)?;
            if let Some(st) = p.study {
                let r = st.report.optimal_ratios.iter().find(|x| {
                    // The family's members share its domain and size: read the first one's key.
                    let k = x.members.first().map(|&i| st.report.key(i));
                    k.is_some_and(|k| k.domain == d.domain)
                        && x.tokens == t
                        && x.params.or(k.and_then(|k| k.params)) == Some(n)
                });
                if let Some(opt) = r.and_then(|r| r.optimal_ratio.map(|o| (o, r))) {
                    let (o, r) = opt;
                    let y = interp(&line, o).unwrap_or(line[0].1);
                    if let Some([lo, hi]) = r.optimal_ratio_ci95 {
                        chart
                            .draw_series(std::iter::once(ErrorBar::new_horizontal(
                                y,
                                lo,
                                o,
                                hi,
                                c.stroke_width(2),
                                8,
                            )))
                            .map_err(pe)?;
                    }
                    chart
                        .draw_series(std::iter::once(
                            EmptyElement::at((o, y))
                                + Polygon::new(vec![(0, -8), (8, 0), (0, 8), (-8, 0)], c.filled()),
                        ))
                        .map_err(pe)?;
                    label = format!(
                        "{label}: share* {} {}",
                        num(o),
                        crate::format::ci(r.optimal_ratio_ci95.as_ref())
                    );
                }
            }
            chart
                .draw_series(line.iter().map(|&q| Circle::new(q, 4, c.filled())))
                .map_err(pe)?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(GREY)
            .label_font((FONT, 13))
            .draw()
            .map_err(pe)?;
        if p.study.is_none() {
            for (k, note) in missing.iter().enumerate() {
                for (j, l) in wrap(note, 60).iter().enumerate() {
                    area.draw(&Text::new(
                        l.clone(),
                        (75, 300 + 18 * (2 * k + j) as i32),
                        (FONT, 14).into_font().color(&RED),
                    ))
                    .map_err(pe)?;
                }
            }
        }
    }
    Ok(missing)
}

/// Figure 4.
fn speedup<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, d: &PlotData) -> R<Vec<String>> {
    let res = d.results;
    let a = d.analysis;
    let base = &a.config.baseline;
    let (blo, bhi) = (res.budgets[0], res.budgets[res.budgets.len() - 1]);
    // Read inside the runs only: both curves at budgets that were trained (a speed-up read
    // past them is an extrapolation, and the tables mark it as such).
    let xs = logspace(blo, bhi, 80);
    // (mixture, colour, at the largest size, points)
    type Line = (String, RGBColor, bool, Vec<(f64, f64)>);
    let mut lines: Vec<Line> = Vec::new();
    let mut bars: Vec<(f64, f64, f64, f64, RGBColor)> = Vec::new();
    let largest = res.sizes[res.sizes.len() - 1];
    for &n in &res.sizes {
        let Some(bc) = a.curve(d.domain, base, n) else {
            continue;
        };
        for (mi, m) in res.mixtures.iter().enumerate() {
            if &m.name == base {
                continue;
            }
            let Some(mc) = a.curve(d.domain, &m.name, n) else {
                continue;
            };
            let pts: Vec<(f64, f64)> = xs
                .iter()
                .filter_map(|&x| {
                    let dm = mc.tokens_for(bc.loss(x))?;
                    (dm >= blo * 0.999 && dm <= bhi * 1.001).then_some((x, x / dm))
                })
                .collect();
            if pts.is_empty() {
                continue;
            }
            lines.push((m.name.clone(), color(mi), same(n, largest), pts));
        }
        // Intervals at the target loss only where both curves reach it inside their runs; an
        // extrapolated speed-up is in the tables, marked, not drawn as a measurement here.
        for r in speedups_at(a, d.domain, n)
            .into_iter()
            .filter(|r| !r.speedup.extrapolated)
        {
            let s = r.speedup;
            if let (Some(tb), Some(v), Some([lo, hi])) =
                (s.tokens_baseline, s.speedup, s.speedup_ci95)
            {
                let mi = res
                    .mixtures
                    .iter()
                    .position(|m| m.name == r.mixture)
                    .unwrap_or(0);
                bars.push((tb, lo, v, hi, color(mi)));
            }
        }
    }
    if lines.is_empty() {
        let mut why = vec![if res.mixture(base).is_none() {
            format!("no `{base}` mixture in the results: nothing to compare against")
        } else {
            format!("no size with fitted curves for both `{base}` and another mixture")
        }];
        why.extend(a.skipped.iter().take(5).cloned());
        message(root, "No speed-up to show", &why)?;
        return Ok(vec![why[0].clone()]);
    }
    let (ylo, yhi) = min_max(
        lines
            .iter()
            .flat_map(|l| l.3.iter().map(|p| p.1))
            .chain(bars.iter().flat_map(|b| [b.1, b.3]))
            .chain([1.0]),
    )
    .ok_or("no speed-ups")?;
    let xr = xs[0]..xs[xs.len() - 1];
    let yr = log_span(ylo, yhi, 1.25);
    let mut chart = ChartBuilder::on(root)
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(95)
        .build_cartesian_2d(
            xr.clone()
                .log_scale()
                .with_key_points(log_ticks(xr.start, xr.end)),
            yr.clone()
                .log_scale()
                .with_key_points(log_ticks(yr.start, yr.end)),
        )
        .map_err(pe)?;
    chart
        .configure_mesh()
        .x_desc(format!("{base} training tokens D (budget)"))
        .y_desc(format!("speed-up D_{base}(L) / D_mixture(L)"))
        .x_label_formatter(&si_label)
        .y_label_formatter(&|v| format!("{v:.2}×"))
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 17))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(pe)?;
    chart
        .draw_series(DashedLineSeries::new(
            vec![(xr.start, 1.0), (xr.end, 1.0)],
            8,
            5,
            GREY.stroke_width(1),
        ))
        .map_err(pe)?;
    for (label, c, solid, pts) in lines {
        let style = c.stroke_width(if solid { 3 } else { 2 });
        let anno = if solid {
            chart.draw_series(LineSeries::new(pts, style)).map_err(pe)?
        } else {
            chart
                .draw_series(DashedLineSeries::new(pts, 10, 6, style))
                .map_err(pe)?
        };
        if solid {
            anno.label(label).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3))
            });
        }
    }
    for (x, lo, v, hi, c) in bars {
        chart
            .draw_series(std::iter::once(ErrorBar::new_vertical(
                x,
                lo,
                v,
                hi,
                c.stroke_width(2),
                10,
            )))
            .map_err(pe)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(GREY)
        .label_font((FONT, 15))
        .draw()
        .map_err(pe)?;
    Ok(Vec::new())
}

/// Figure 5.
fn residuals<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, d: &PlotData) -> R<Vec<String>> {
    let a = d.analysis;
    let res = d.results;
    let mut missing = Vec::new();
    let halves = root.split_evenly((1, 2));
    for (law, report, area) in [
        (Law::Rectified, &a.rectified, &halves[0]),
        (Law::Power, &a.power, &halves[1]),
    ] {
        let groups: Vec<(&GroupReport, &Key)> = report
            .iter()
            .flat_map(|r| r.groups.iter().zip(&r.keys))
            .filter(|(_, k)| k.domain == d.domain)
            .collect();
        if groups.is_empty() {
            let why: Vec<String> = a
                .skipped
                .iter()
                .filter(|s| s.starts_with(&format!("{} law", law.name())))
                .take(4)
                .cloned()
                .collect();
            missing.push(format!("no {} fit", law.name()));
            message(area, &format!("{} law: not fitted", law.name()), &why)?;
            continue;
        }
        let mut pts: Vec<(f64, f64, usize)> = Vec::new();
        for (g, k) in &groups {
            let th = theta(law, g);
            let m = k.mixture();
            let n = k
                .params
                .ok_or("a one-variable fit without its model size")?;
            let mi = res.mixtures.iter().position(|x| x.name == m).unwrap_or(0);
            for o in obs(d, m, n) {
                let c = Curve {
                    law,
                    theta: th.clone(),
                    n: 1.0,
                };
                pts.push((o.tokens, c.loss(o.tokens).ln() - o.loss.ln(), mi));
            }
        }
        let (xlo, xhi) = min_max(pts.iter().map(|p| p.0)).ok_or("no points")?;
        let m = pts.iter().map(|p| p.1.abs()).fold(1e-4, f64::max) * 1.3;
        let rmsd = groups.iter().map(|(g, _)| g.rmsd_log).sum::<f64>() / groups.len() as f64;
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{}: mean RMSD of ln L = {}", law.formula(), num(rmsd)),
                (FONT, 16),
            )
            .margin(10)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(
                log_span(xlo, xhi, 1.5)
                    .log_scale()
                    .with_key_points(log_ticks(xlo / 1.5, xhi * 1.5)),
                -m..m,
            )
            .map_err(pe)?;
        chart
            .configure_mesh()
            .x_desc("training tokens D")
            .y_desc("residual ln L̂ − ln L")
            .x_label_formatter(&si_label)
            .y_label_formatter(&|v| {
                if m < 0.01 {
                    format!("{v:.1e}")
                } else {
                    format!("{v:.3}")
                }
            })
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 15))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(pe)?;
        let xr = log_span(xlo, xhi, 1.5);
        chart
            .draw_series(LineSeries::new(
                vec![(xr.start, 0.0), (xr.end, 0.0)],
                GREY.stroke_width(1),
            ))
            .map_err(pe)?;
        for (mi, mx) in res.mixtures.iter().enumerate() {
            let c = color(mi);
            let mine: Vec<(f64, f64)> = pts
                .iter()
                .filter(|p| p.2 == mi)
                .map(|p| (p.0, p.1))
                .collect();
            if mine.is_empty() {
                continue;
            }
            chart
                .draw_series(mine.iter().map(|&q| Circle::new(q, 4, c.filled())))
                .map_err(pe)?
                .label(mx.name.clone())
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, c.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(GREY)
            .label_font((FONT, 13))
            .draw()
            .map_err(pe)?;
    }
    Ok(missing)
}

/// Figure 6.
fn joint<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, d: &PlotData) -> R<Vec<String>> {
    let a = d.analysis;
    let res = d.results;
    let skipped_joint: Vec<String> = a
        .skipped
        .iter()
        .filter(|s| s.starts_with("chinchilla law"))
        .cloned()
        .collect();
    let Some(report) = a.chinchilla.as_ref() else {
        let mut why = vec![format!(
            "The joint law needs at least 3 model sizes and 3 budgets per mixture; the results have {} size(s) and {} budget(s).",
            res.sizes.len(),
            res.budgets.len()
        )];
        why.extend(skipped_joint.iter().take(4).cloned());
        message(root, "Joint law not fitted", &why)?;
        return Ok(vec![why[0].clone()]);
    };
    let mut missing = Vec::new();
    let (rows, cols) = grid(res.mixtures.len());
    let panels = root.split_evenly((rows, cols));
    let (nlo, nhi) = (res.sizes[0], res.sizes[res.sizes.len() - 1]);
    let (dlo, dhi) = (res.budgets[0], res.budgets[res.budgets.len() - 1]);
    let xr = nlo / 3.0..nhi * 30.0;
    let yr = dlo / 3.0..dhi * 30.0;
    for (m, panel) in res.mixtures.iter().zip(&panels) {
        let Some(g) = report.group(d.domain, None, &m.name) else {
            let why: Vec<String> = skipped_joint
                .iter()
                .filter(|s| s.contains(&format!("mixture={}", m.name)))
                .cloned()
                .collect();
            missing.push(format!("{}: joint law not fitted", m.name));
            message(panel, &format!("{}: joint law not fitted", m.name), &why)?;
            continue;
        };
        let th = theta(Law::Chinchilla, g);
        let mut chart = ChartBuilder::on(panel)
            .caption(
                {
                    // A parameter at its bound is not determined by the data: named, not
                    // printed as a result.
                    let p = |name: &str, label: &str| {
                        if g.at_bound.iter().any(|b| b == name) {
                            format!("{label} at a bound")
                        } else {
                            format!("{label} = {}", num(g.params[name]))
                        }
                    };
                    format!(
                        "{}: {}, {}, {}",
                        m.name,
                        p("alpha", "α"),
                        p("beta", "β"),
                        p("E", "E")
                    )
                },
                (FONT, 16),
            )
            .margin(10)
            .x_label_area_size(48)
            .y_label_area_size(62)
            .build_cartesian_2d(
                xr.clone()
                    .log_scale()
                    .with_key_points(log_ticks(xr.start, xr.end)),
                yr.clone()
                    .log_scale()
                    .with_key_points(log_ticks(yr.start, yr.end)),
            )
            .map_err(pe)?;
        chart
            .configure_mesh()
            .x_desc("model parameters N")
            .y_desc("training tokens D")
            .x_label_formatter(&si_label)
            .y_label_formatter(&si_label)
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 15))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(pe)?;
        let l = |n: f64, dd: f64| Law::Chinchilla.predict(&th, n, dd);
        let (lmin, lmax) = (l(xr.end, yr.end), l(xr.start, yr.start));
        let (e, a_, b) = (th[2].exp(), th[0].exp(), th[1].exp());
        let (alpha, beta) = (th[3], th[4]);
        let ns = logspace(xr.start, xr.end, 200);
        for k in 1..=6 {
            let level = lmin * (lmax / lmin).powf(k as f64 / 7.0);
            let line: Vec<(f64, f64)> = ns
                .iter()
                .filter_map(|&n| {
                    let rem = level - e - a_ * n.powf(-alpha);
                    (rem > 0.0).then(|| (n, (b / rem).powf(1.0 / beta)))
                })
                .filter(|p| yr.contains(&p.1))
                .collect();
            if line.len() >= 2 {
                chart
                    .draw_series(LineSeries::new(
                        line.clone(),
                        PALETTE[0].mix(0.8).stroke_width(1),
                    ))
                    .map_err(pe)?;
                let (lx, ly) = line[line.len() * 2 / 3];
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!("{level:.2}"),
                        (lx, ly),
                        (FONT, 13).into_font().color(&PALETTE[0]),
                    )))
                    .map_err(pe)?;
            }
        }
        let cs = logspace(6.0 * xr.start * yr.start, 6.0 * xr.end * yr.end, 120);
        let frontier: Vec<(f64, f64)> = cs
            .iter()
            .filter_map(|&c| compute_optimal(&th, c).map(|(n, dd, _)| (n, dd)))
            .filter(|(n, dd)| xr.contains(n) && yr.contains(dd))
            .collect();
        if frontier.len() >= 2 {
            chart
                .draw_series(LineSeries::new(frontier, BLACK.stroke_width(3)))
                .map_err(pe)?
                .label("compute-optimal N*, D* (C = 6ND)")
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], BLACK.stroke_width(3))
                });
        } else {
            missing.push(format!(
                "{}: compute-optimal frontier outside the plotted range",
                m.name
            ));
        }
        let runs: Vec<(f64, f64)> = res
            .domain(d.domain)
            .filter(|o| o.mixture == m.name)
            .map(|o| (o.params, o.tokens))
            .collect();
        chart
            .draw_series(
                runs.iter()
                    .map(|&p| Cross::new(p, 5, PALETTE[1].stroke_width(2))),
            )
            .map_err(pe)?
            .label("runs")
            .legend(|(x, y)| Cross::new((x + 8, y), 5, PALETTE[1].stroke_width(2)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(GREY)
            .label_font((FONT, 13))
            .draw()
            .map_err(pe)?;
    }
    Ok(missing)
}
