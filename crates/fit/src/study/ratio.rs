//! The optimal synthetic ratio: per family and observed (N, D), the argmin of a quadratic in
//! the ratio fitted to the members' predicted log losses.

use serde::Serialize;

use super::curves::{distinct, families};
use super::fitted::{interval, Fitted};
use super::options::StudyOptions;
use crate::derived;
use crate::error::{FitError, Result};
use crate::input::Group;
use crate::law::Point;

/// The optimal synthetic ratio at one (N, D).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OptimalRatio {
    /// The family (group keys other than the ratio column).
    pub family: String,
    /// N (joint law).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<f64>,
    /// D.
    pub tokens: f64,
    /// The ratios the model was fitted over.
    pub ratios: Vec<f64>,
    /// Indices in `groups` of the family's members, one per ratio run.
    pub members: Vec<usize>,
    /// argmin of the quadratic-in-ratio model of ln L̂ (see [`derived::optimal_ratio`]).
    pub optimal_ratio: Option<f64>,
    /// Its 95% interval.
    pub optimal_ratio_ci95: Option<[f64; 2]>,
    /// Always false: the optimum is searched within the observed ratios, at an observed
    /// (N, D).
    pub extrapolated: bool,
    /// Whether fewer than four ratios were run: a quadratic through three points always
    /// has a vertex, so the grid, not the data, then sets the answer.
    pub grid_determined: bool,
}

/// Optimal ratios of every family whose members differ in the ratio column `col`.
pub(super) fn optimal_ratios(
    groups: &[Group],
    fitted: &[Fitted],
    col: &str,
    opts: &StudyOptions,
) -> Result<Vec<OptimalRatio>> {
    let law = opts.law;
    let level = opts.bootstrap.level;
    let mut out = Vec::new();
    for (family, members) in families(groups, col)? {
        let mut rs = Vec::new();
        for (i, v) in &members {
            let r: f64 = v.parse().map_err(|_| {
                FitError::option(
                    col,
                    format!("group {}: ratio {v:?} is not a number", groups[*i].name()),
                )
            })?;
            rs.push((*i, r));
        }
        if distinct(rs.iter().map(|r| r.1).collect()).len() < 3 {
            return Err(FitError::option(
                col,
                format!(
                    "family {family}: {} distinct ratios; the quadratic model of loss against ratio needs at least 3",
                    distinct(rs.iter().map(|r| r.1).collect()).len()
                ),
            ));
        }
        let mut at: Vec<(f64, f64)> = members
            .iter()
            .flat_map(|(i, _)| groups[*i].points.iter().map(|p| (p.n, p.d)))
            .collect();
        at.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        at.dedup();
        let resamples = rs
            .iter()
            .map(|(i, _)| fitted[*i].resamples.len())
            .min()
            .unwrap_or(0);
        for (n, d) in at {
            let pairs = |thetas: &[Option<&Vec<f64>>]| -> Option<Vec<(f64, f64)>> {
                rs.iter()
                    .zip(thetas)
                    .map(|((_, r), t)| {
                        Some((*r, law.log_pred(t.as_ref()?, &Point { d, n, loss: 1.0 })))
                    })
                    .collect()
            };
            let best: Vec<Option<&Vec<f64>>> = rs
                .iter()
                .map(|(i, _)| Some(&fitted[*i].fit.theta))
                .collect();
            let point = pairs(&best).and_then(|p| derived::optimal_ratio(&p));
            let boot: Vec<f64> = (0..resamples)
                .filter_map(|k| {
                    let th: Vec<Option<&Vec<f64>>> = rs
                        .iter()
                        .map(|(i, _)| fitted[*i].resamples[k].as_ref())
                        .collect();
                    derived::optimal_ratio(&pairs(&th)?)
                })
                .collect();
            out.push(OptimalRatio {
                family: family.clone(),
                params: law.uses_params().then_some(n),
                tokens: d,
                ratios: distinct(rs.iter().map(|r| r.1).collect()),
                members: rs.iter().map(|r| r.0).collect(),
                optimal_ratio: point,
                optimal_ratio_ci95: interval(boot, level),
                extrapolated: false,
                grid_determined: distinct(rs.iter().map(|r| r.1).collect()).len() < 4,
            });
        }
    }
    Ok(out)
}
