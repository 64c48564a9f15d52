//! Figure 1: loss against tokens, one panel per mixture.

use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::chart::{decade_axis, legend, loss_axis, note, run_dots, Area, Axes, Drawn};
use super::reads::PlotData;
use super::reads::{curve_group, obs, same};
use super::scale::{fitted, grid, loss_label, min_max, si_label};
use super::style::color;
use crate::error::PlotError;
use crate::format::{fmt_params, si};
use crate::results::Obs;

/// Figure 1.
pub(super) fn draw<DB: DrawingBackend>(root: &Area<DB>, d: &PlotData) -> Drawn<Vec<String>> {
    let res = d.results;
    let mut missing = Vec::new();
    let (rows, cols) = grid(res.mixtures.len());
    let panels = root.split_evenly((rows, cols));
    let all: Vec<&Obs> = res.domain(d.domain).collect();
    let (blo, bhi) = min_max(all.iter().map(|o| o.tokens)).ok_or(PlotError::Nothing("points"))?;
    let (llo, lhi) = min_max(all.iter().map(|o| o.loss)).ok_or(PlotError::Nothing("points"))?;
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
        let mut chart = Axes::panel("training tokens D", "validation loss (nats/token)")
            .caption(
                format!(
                    "{} (natural {:.0}%, rephrased {:.0}%, textbook {:.0}%)",
                    m.name,
                    100.0 * m.natural,
                    100.0 * m.rephrased,
                    100.0 * m.textbook
                ),
                17,
            )
            .margin(8)
            .x_labels(&si_label)
            .y_labels(&loss_label)
            .draw(panel, decade_axis(&xr), loss_axis(&yr))?;
        if let Some(u) = unigram(&m.name) {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(xr.start, u), (xr.end, u)],
                    2,
                    5,
                    BLACK.stroke_width(2),
                ))?
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
                chart.draw_series(LineSeries::new(fitted(&curve, &xr, &yr), c.stroke_width(2)))?;
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
                        .draw_series(held.iter().map(|&p| Circle::new(p, 9, c.stroke_width(2))))?;
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
                    chart.draw_series(DashedLineSeries::new(
                        vec![(p, yr.start), (p, yr.end)],
                        6,
                        4,
                        c.stroke_width(1),
                    ))?;
                }
            }
            if d.analysis.curve(d.domain, &m.name, n).is_none() {
                // No law: join the runs so the sizes still read as curves.
                chart.draw_series(DashedLineSeries::new(
                    pts.iter().map(|o| (o.tokens, o.loss)),
                    4,
                    4,
                    c.stroke_width(1),
                ))?;
            }
            run_dots(&mut chart, &pts, 4, c, label)?;
        }
        if !drew_curve {
            notes.push("no fitted curve (see the report's notes)".into());
            missing.push(format!("{}: no fitted curve", m.name));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight, 13)?;
        for (k, text) in notes.iter().enumerate() {
            note(panel, text.clone(), (75, 380 - 18 * k as i32))?;
        }
    }
    Ok(missing)
}
