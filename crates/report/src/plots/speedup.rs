//! Figure 4: speed-up over natural data against budget.

use plotters::prelude::*;

use super::chart::{decade_axis, legend, line_key, message, Area, Axes, Drawn};
use super::reads::PlotData;
use super::reads::{same, speedups_at};
use super::scale::{log_span, logspace, min_max, si_label};
use super::style::{color, GREY};
use crate::error::PlotError;

/// A line of the figure: (mixture, colour, at the largest size, points).
type Line = (String, RGBColor, bool, Vec<(f64, f64)>);

/// Figure 4.
pub(super) fn draw<DB: DrawingBackend>(root: &Area<DB>, d: &PlotData) -> Drawn<Vec<String>> {
    let res = d.results;
    let a = d.analysis;
    let base = &a.config.baseline;
    let (blo, bhi) = (res.budgets[0], res.budgets[res.budgets.len() - 1]);
    // Read inside the runs only: both curves at budgets that were trained (a speed-up read
    // past them is an extrapolation, and the tables mark it as such).
    let xs = logspace(blo, bhi, 80);
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
    .ok_or(PlotError::Nothing("speed-ups"))?;
    let xr = xs[0]..xs[xs.len() - 1];
    let yr = log_span(ylo, yhi, 1.25);
    let mut chart = Axes::single(
        format!("{base} training tokens D (budget)"),
        format!("speed-up D_{base}(L) / D_mixture(L)"),
        95,
    )
    .x_labels(&si_label)
    .y_labels(&|v| format!("{v:.2}×"))
    .draw(root, decade_axis(&xr), decade_axis(&yr))?;
    chart.draw_series(DashedLineSeries::new(
        vec![(xr.start, 1.0), (xr.end, 1.0)],
        8,
        5,
        GREY.stroke_width(1),
    ))?;
    for (label, c, solid, pts) in lines {
        let style = c.stroke_width(if solid { 3 } else { 2 });
        let anno = if solid {
            chart.draw_series(LineSeries::new(pts, style))?
        } else {
            chart.draw_series(DashedLineSeries::new(pts, 10, 6, style))?
        };
        if solid {
            anno.label(label).legend(line_key(c, 3));
        }
    }
    for (x, lo, v, hi, c) in bars {
        chart.draw_series(std::iter::once(ErrorBar::new_vertical(
            x,
            lo,
            v,
            hi,
            c.stroke_width(2),
            10,
        )))?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft, 15)?;
    Ok(Vec::new())
}
