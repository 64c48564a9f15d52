//! Figure 6: iso-loss contours of the joint law and the compute-optimal frontier.

use plotters::prelude::*;
use synthscale_fit::derived::compute_optimal;
use synthscale_fit::study::GroupReport;
use synthscale_fit::Law;

use super::chart::{decade_axis, legend, line_key, message, Area, Axes, Drawn};
use super::reads::PlotData;
use super::scale::{logspace, si_label};
use super::style::{FONT, PALETTE};
use crate::analysis::theta;
use crate::format::num;

/// The panel's caption: the mixture and its exponents and floor. A parameter at its bound
/// is not determined by the data: named, not printed as a result.
fn caption(mixture: &str, g: &GroupReport) -> String {
    let p = |name: &str, label: &str| {
        if g.at_bound.iter().any(|b| b == name) {
            format!("{label} at a bound")
        } else {
            format!("{label} = {}", num(g.params[name]))
        }
    };
    format!(
        "{}: {}, {}, {}",
        mixture,
        p("alpha", "α"),
        p("beta", "β"),
        p("E", "E")
    )
}

/// Figure 6.
pub(super) fn draw<DB: DrawingBackend>(root: &Area<DB>, d: &PlotData) -> Drawn<Vec<String>> {
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
    let (rows, cols) = super::scale::grid(res.mixtures.len());
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
        let mut chart = Axes::panel("model parameters N", "training tokens D")
            .caption(caption(&m.name, g), 16)
            .x_labels(&si_label)
            .y_labels(&si_label)
            .draw(panel, decade_axis(&xr), decade_axis(&yr))?;
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
                chart.draw_series(LineSeries::new(
                    line.clone(),
                    PALETTE[0].mix(0.8).stroke_width(1),
                ))?;
                let (lx, ly) = line[line.len() * 2 / 3];
                chart.draw_series(std::iter::once(Text::new(
                    format!("{level:.2}"),
                    (lx, ly),
                    (FONT, 13).into_font().color(&PALETTE[0]),
                )))?;
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
                .draw_series(LineSeries::new(frontier, BLACK.stroke_width(3)))?
                .label("compute-optimal N*, D* (C = 6ND)")
                .legend(line_key(BLACK, 3));
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
            )?
            .label("runs")
            .legend(|(x, y)| Cross::new((x + 8, y), 5, PALETTE[1].stroke_width(2)));
        legend(&mut chart, SeriesLabelPosition::UpperLeft, 13)?;
    }
    Ok(missing)
}
