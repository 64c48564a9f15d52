//! Figure 2: every mixture at one model size, with the speed-ups at the target loss.

use plotters::prelude::*;

use super::chart::{
    decade_axis, legend, line_key, loss_axis, message, run_dots, Area, Axes, Drawn,
};
use super::reads::PlotData;
use super::reads::{mixtures_size, obs, same, speedups_at};
use super::scale::{fitted, loss_label, min_max, si_label};
use super::style::{color, GREY};
use crate::error::PlotError;
use crate::format::{fmt_params, num};
use crate::results::Obs;

/// Figure 2.
pub(super) fn draw<DB: DrawingBackend>(root: &Area<DB>, d: &PlotData) -> Drawn<Vec<String>> {
    let Some(n) = mixtures_size(d) else {
        let why: Vec<String> = d.analysis.skipped.iter().take(6).cloned().collect();
        message(root, "No fitted curve at any model size", &why)?;
        return Ok(vec!["no fitted curve at any model size".into()]);
    };
    let mut missing = Vec::new();
    let res = d.results;
    let pts: Vec<&Obs> = res.domain(d.domain).filter(|o| same(o.params, n)).collect();
    let (blo, bhi) = min_max(pts.iter().map(|o| o.tokens)).ok_or(PlotError::Nothing("points"))?;
    let (llo, lhi) = min_max(pts.iter().map(|o| o.loss)).ok_or(PlotError::Nothing("points"))?;
    let sps = speedups_at(d.analysis, d.domain, n);
    let target = sps.first().map(|s| s.speedup.target_loss);
    let xr = blo / 2.0..bhi * 4.0;
    let ylo = target.map_or(llo, |t| t.min(llo));
    let yr = ylo * 0.96..lhi * 1.04;
    let mut chart = Axes::single("training tokens D", "validation loss (nats/token)", 70)
        .caption(format!("model size {}", fmt_params(n)), 18)
        .x_labels(&si_label)
        .y_labels(&loss_label)
        .draw(root, decade_axis(&xr), loss_axis(&yr))?;
    if let Some(t) = target {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(xr.start, t), (xr.end, t)],
                8,
                5,
                GREY.stroke_width(2),
            ))?
            .label(format!("target loss L* = {}", num(t)))
            .legend(line_key(GREY, 2));
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
            chart.draw_series(LineSeries::new(fitted(curve, &xr, &yr), c.stroke_width(2)))?;
            if let Some(t) = target {
                if let Some(dm) = curve.tokens_for(t).filter(|x| xr.contains(x)) {
                    chart.draw_series(std::iter::once(TriangleMarker::new(
                        (dm, t),
                        8,
                        c.filled(),
                    )))?;
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
        run_dots(&mut chart, &mo, 5, c, label)?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight, 15)?;
    Ok(missing)
}
