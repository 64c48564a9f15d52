//! Figure 3: loss against synthetic share at each (N, D), with the fitted optimum.

use plotters::prelude::*;

use super::chart::{legend, line_key, message, note, Area, Axes, Drawn};
use super::reads::same;
use super::reads::PlotData;
use super::scale::{grid, interp, loss_label, min_max, wrap};
use super::style::color;
use crate::analysis::ShareStudy;
use crate::format::{fmt_params, num, si};
use crate::results::Obs;

/// One panel: the mixtures of a share study (or all of them) at one model size.
struct Panel<'b> {
    title: String,
    size: f64,
    mixtures: Vec<String>,
    study: Option<&'b ShareStudy>,
}

/// Figure 3.
pub(super) fn draw<DB: DrawingBackend>(root: &Area<DB>, d: &PlotData) -> Drawn<Vec<String>> {
    let res = d.results;
    let a = d.analysis;
    let mut missing = Vec::new();
    // Panels: one per share study; without any, one panel of every mixture's share.
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
        let mut chart = Axes::panel(
            "synthetic share of training tokens",
            "validation loss (nats/token)",
        )
        .caption(&p.title, 17)
        .y_labels(&loss_label)
        .draw(area, -0.03..1.03, (llo - pad)..(lhi + pad))?;
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
            chart.draw_series(LineSeries::new(line.clone(), c.stroke_width(1)))?;
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
                        chart.draw_series(std::iter::once(ErrorBar::new_horizontal(
                            y,
                            lo,
                            o,
                            hi,
                            c.stroke_width(2),
                            8,
                        )))?;
                    }
                    chart.draw_series(std::iter::once(
                        EmptyElement::at((o, y))
                            + Polygon::new(vec![(0, -8), (8, 0), (0, 8), (-8, 0)], c.filled()),
                    ))?;
                    label = format!(
                        "{label}: share* {} {}",
                        num(o),
                        crate::format::ci(r.optimal_ratio_ci95.as_ref())
                    );
                }
            }
            chart
                .draw_series(line.iter().map(|&q| Circle::new(q, 4, c.filled())))?
                .label(label)
                .legend(line_key(c, 3));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight, 13)?;
        if p.study.is_none() {
            for (k, text) in missing.iter().enumerate() {
                for (j, l) in wrap(text, 60).iter().enumerate() {
                    note(area, l.clone(), (75, 300 + 18 * (2 * k + j) as i32))?;
                }
            }
        }
    }
    Ok(missing)
}
