//! What the figures read from the results and the fits: the runs of one curve, the group
//! behind a curve, the size of figure 2 and the speed-ups at one size.

use synthscale_fit::study::{GroupReport, Speedup};
use synthscale_fit::Law;

use crate::analysis::{Analysis, Fits};
use crate::results::{Obs, Results};

/// What every figure reads.
pub struct PlotData<'a> {
    /// The results.
    pub results: &'a Results,
    /// The fits.
    pub analysis: &'a Analysis,
    /// The domain plotted.
    pub domain: &'a str,
}

/// The group that produced `curve` for (mixture, n), for its holdout and plateau.
pub(super) fn curve_group<'a>(
    d: &'a PlotData,
    mixture: &str,
    n: f64,
    law: Law,
) -> Option<&'a GroupReport> {
    let a = d.analysis;
    match law {
        Law::Chinchilla => a.chinchilla.as_ref()?.group(d.domain, None, mixture),
        _ => a.rectified.as_ref()?.group(d.domain, Some(n), mixture),
    }
}

/// Whether two sizes or budgets are the same number (read back from a table).
pub(super) fn same(a: f64, b: f64) -> bool {
    (a / b - 1.0).abs() < 1e-6
}

/// The runs of `mixture` at size `n` on the plotted domain, by budget.
pub(super) fn obs<'a>(d: &'a PlotData, mixture: &'a str, n: f64) -> Vec<&'a Obs> {
    let mut v: Vec<&Obs> = d
        .results
        .domain(d.domain)
        .filter(|o| o.mixture == mixture && same(o.params, n))
        .collect();
    v.sort_by(|a, b| a.tokens.total_cmp(&b.tokens));
    v
}

/// The model size of figure 2: the one with the most fitted mixtures, then the largest.
pub(super) fn mixtures_size(d: &PlotData) -> Option<f64> {
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
                let k = r.key(s.pair.mixture_group);
                k.domain == domain
                    && if joint {
                        s.params == Some(n)
                    } else {
                        k.params == Some(n)
                    }
            })
            .map(|s| Read {
                speedup: s,
                mixture: r.key(s.pair.mixture_group).mixture(),
            })
            .collect()
    };
    let v = from(&a.rectified, false);
    if !v.is_empty() {
        return v;
    }
    from(&a.chinchilla, true)
}
