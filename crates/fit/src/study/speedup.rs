//! Speed-ups of each mixture over its family's baseline at target losses: the ratio of the
//! tokens the two fitted curves need, with paired-resample intervals.

use serde::Serialize;

use super::curves::{at_size, curve_sizes, families};
use super::fitted::{interval, Fitted};
use super::options::StudyOptions;
use crate::effective::Pair;
use crate::error::Result;
use crate::input::Group;
use crate::law::Point;
use crate::{derived, effective};

/// Speed-up of one mixture over the baseline at one target loss.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Speedup {
    /// The two groups compared.
    #[serde(flatten)]
    pub pair: Pair,
    /// Model size the curves are read at (joint law).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<f64>,
    /// L*.
    pub target_loss: f64,
    /// D_baseline(L*).
    pub tokens_baseline: Option<f64>,
    /// D_mixture(L*).
    pub tokens_mixture: Option<f64>,
    /// D_baseline(L*) / D_mixture(L*).
    pub speedup: Option<f64>,
    /// Its 95% interval (paired resamples of the two fits).
    pub speedup_ci95: Option<[f64; 2]>,
    /// Whether either curve is read outside its observed budgets to reach L* (or never
    /// reaches it).
    pub extrapolated: bool,
    /// How far past the data, the larger of the two curves' ratios (1 inside).
    pub beyond_data: Option<f64>,
}

/// Speed-ups of every mixture over its family's baseline group (`col` = `base_value`).
pub(super) fn speedups(
    groups: &[Group],
    fitted: &[Fitted],
    (col, base_value): &(String, String),
    opts: &StudyOptions,
) -> Result<Vec<Speedup>> {
    let law = opts.law;
    let level = opts.bootstrap.level;
    let mut out = Vec::new();
    for (family, members) in families(groups, col)? {
        let Some(&(base_index, _)) = members.iter().find(|(_, v)| v == base_value) else {
            continue;
        };
        let base = &fitted[base_index];
        for n in curve_sizes(law, &groups[base_index].points) {
            let size = n.unwrap_or(1.0);
            let targets = if opts.target_losses.is_empty() {
                let dmax = groups[base_index]
                    .points
                    .iter()
                    .filter(|p| at_size(p, n))
                    .map(|p| p.d)
                    .fold(0.0, f64::max);
                vec![law.predict(&base.fit.theta, size, dmax)]
            } else {
                opts.target_losses.clone()
            };
            for &target in &targets {
                for &(mix_index, _) in members.iter().filter(|(i, _)| *i != base_index) {
                    let mix = &fitted[mix_index];
                    let paired: Vec<f64> = base
                        .resamples
                        .iter()
                        .zip(&mix.resamples)
                        .filter_map(|(b, m)| {
                            derived::speedup(law, b.as_ref()?, m.as_ref()?, size, target)
                        })
                        .collect();
                    let at = |g: &Group| {
                        let pts: Vec<Point> =
                            g.points.iter().copied().filter(|p| at_size(p, n)).collect();
                        effective::d_range(if pts.is_empty() { &g.points } else { &pts })
                    };
                    let tokens_baseline =
                        derived::tokens_for_loss(law, &base.fit.theta, size, target);
                    let tokens_mixture =
                        derived::tokens_for_loss(law, &mix.fit.theta, size, target);
                    let far = tokens_baseline.zip(tokens_mixture).map(
                        |(tokens_baseline, tokens_mixture)| {
                            effective::beyond(tokens_baseline, at(&groups[base_index]))
                                .max(effective::beyond(tokens_mixture, at(&groups[mix_index])))
                        },
                    );
                    out.push(Speedup {
                        extrapolated: far.is_none_or(|f| f > 1.0 + 1e-9),
                        beyond_data: far,
                        pair: Pair {
                            family: family.clone(),
                            baseline: groups[base_index].name(),
                            mixture: groups[mix_index].name(),
                            baseline_group: base_index,
                            mixture_group: mix_index,
                        },
                        params: n,
                        target_loss: target,
                        tokens_baseline,
                        tokens_mixture,
                        speedup: derived::speedup(
                            law,
                            &base.fit.theta,
                            &mix.fit.theta,
                            size,
                            target,
                        ),
                        speedup_ci95: interval(paired, level),
                    });
                }
            }
        }
    }
    Ok(out)
}
