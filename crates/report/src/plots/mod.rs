//! The six figures, drawn with `plotters` into PNG and SVG from one generic drawing
//! function each, with the bundled DejaVu Sans so nothing depends on system fonts. A
//! figure whose data or fit is missing says so in the picture instead of failing.
//!
//! - [`chart`]: the frame every figure shares (title, axes, legend, "missing" panels);
//! - [`scale`]: axis spans, ticks, tick labels and the other numbers behind the axes;
//! - [`reads`]: what the figures read from the results and the fits;
//! - [`style`]: the bundled font and the palette;
//! - one module per figure: [`loss_tokens`], [`mixtures`], [`share`], [`speedup`],
//!   [`residuals`], [`joint`].

mod chart;
mod joint;
mod loss_tokens;
mod mixtures;
mod reads;
mod residuals;
mod scale;
mod share;
mod speedup;
mod style;

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{PlotError, ReportError, Result};
use crate::format::fmt_params;
use chart::{titled_to_fit, Drawn};
use reads::mixtures_size;
pub use reads::{speedups_at, PlotData, Read};
use scale::grid;
use style::{register_font, FONT_BYTES};

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

/// Draws `fig` to `dir/<stem>.png` and `.svg`.
pub fn render(fig: Fig, d: &PlotData, dir: &Path) -> Result<Figure> {
    register_font();
    let size = fig_size(fig, d);
    let png = dir.join(format!("{}.png", fig.stem()));
    let svg = dir.join(format!("{}.svg", fig.stem()));
    let err = |source: PlotError| ReportError::Plot {
        figure: fig.stem().to_string(),
        source,
    };
    let (title, missing) = {
        let backend = crate::glyphs::GlyphFix::new(BitMapBackend::new(&png, size), FONT_BYTES)
            .ok_or_else(|| err(PlotError::Font))?;
        let root = backend.into_drawing_area();
        let out = draw(fig, &root, d).map_err(err)?;
        root.present().map_err(|e| err(e.into()))?;
        out
    };
    {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        draw(fig, &root, d).map_err(err)?;
        root.present().map_err(|e| err(e.into()))?;
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
) -> Drawn<(String, Vec<String>)> {
    root.fill(&WHITE)?;
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
        Fig::LossTokens => loss_tokens::draw(&area, d)?,
        Fig::Mixtures => mixtures::draw(&area, d)?,
        Fig::Share => share::draw(&area, d)?,
        Fig::Speedup => speedup::draw(&area, d)?,
        Fig::Residuals => residuals::draw(&area, d)?,
        Fig::Joint => joint::draw(&area, d)?,
    };
    Ok((title, missing))
}
