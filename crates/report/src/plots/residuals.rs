//! Figure 5: residuals of the rectified and power laws.

use plotters::prelude::*;
use synthscale_fit::study::GroupReport;
use synthscale_fit::Law;

use super::chart::{legend, log_axis, message, Area, Axes, Drawn};
use super::reads::obs;
use super::reads::PlotData;
use super::scale::{log_span, log_ticks, min_max, si_label};
use super::style::{color, GREY};
use crate::analysis::{theta, Curve, Key};
use crate::error::PlotError;
use crate::format::num;

/// Figure 5.
pub(super) fn draw<DB: DrawingBackend>(root: &Area<DB>, d: &PlotData) -> Drawn<Vec<String>> {
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
            let n = k.params.ok_or(PlotError::NoModelSize)?;
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
        let (xlo, xhi) = min_max(pts.iter().map(|p| p.0)).ok_or(PlotError::Nothing("points"))?;
        let m = pts.iter().map(|p| p.1.abs()).fold(1e-4, f64::max) * 1.3;
        let rmsd = groups.iter().map(|(g, _)| g.rmsd_log).sum::<f64>() / groups.len() as f64;
        let xr = log_span(xlo, xhi, 1.5);
        let mut chart = Axes::panel("training tokens D", "residual ln L̂ − ln L")
            .caption(
                format!("{}: mean RMSD of ln L = {}", law.formula(), num(rmsd)),
                16,
            )
            .y_area(72)
            .x_labels(&si_label)
            .y_labels(&|v| {
                if m < 0.01 {
                    format!("{v:.1e}")
                } else {
                    format!("{v:.3}")
                }
            })
            // The ticks span the data widened by 1.5, also where a flat span is widened more.
            .draw(area, log_axis(&xr, log_ticks(xlo / 1.5, xhi * 1.5)), -m..m)?;
        chart.draw_series(LineSeries::new(
            vec![(xr.start, 0.0), (xr.end, 0.0)],
            GREY.stroke_width(1),
        ))?;
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
                .draw_series(mine.iter().map(|&q| Circle::new(q, 4, c.filled())))?
                .label(mx.name.clone())
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, c.filled()));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight, 13)?;
    }
    Ok(missing)
}
