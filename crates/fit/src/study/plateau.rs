//! Plateaus of each fitted curve: where a doubling of data stops paying, and where the loss
//! comes within a margin of its asymptote, with intervals and the extrapolation marks.

use serde::Serialize;

use super::curves::{at_size, curve_sizes};
use super::fitted::{interval, GroupFit};
use super::options::StudyOptions;
use crate::derived;

/// Plateau of one curve (one model size for the joint law).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plateau {
    /// Model size of the curve (joint law).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<f64>,
    /// Asymptote of the curve in D.
    pub asymptote: f64,
    /// Tokens after which a doubling gains less than `eps` of the loss (`null`: beyond
    /// `search_limit`).
    pub doubling_tokens: Option<f64>,
    /// Its 95% interval.
    pub doubling_tokens_ci95: Option<[f64; 2]>,
    /// Tokens from which the loss is within `margin` of the asymptote.
    pub margin_tokens: Option<f64>,
    /// Its 95% interval.
    pub margin_tokens_ci95: Option<[f64; 2]>,
    /// The largest observed budget of the curve.
    pub largest_tokens: f64,
    /// Plateaus are searched up to this many tokens (`plateau_search` × `largest_tokens`).
    pub search_limit: f64,
    /// Whether the doubling plateau lies past the largest observed budget (or beyond the
    /// search limit): a reading of the fitted law beyond the data.
    pub doubling_extrapolated: bool,
    /// Whether the margin plateau lies past the largest observed budget (or beyond the
    /// search limit).
    pub margin_extrapolated: bool,
}

/// The plateaus of one group's curve (one per size read, joint law), with intervals from its
/// resamples.
pub(super) fn plateaus(group: &GroupFit, opts: &StudyOptions) -> Vec<Plateau> {
    let GroupFit {
        law,
        theta,
        resamples,
        points,
    } = *group;
    let level = opts.bootstrap.level;
    curve_sizes(law, points)
        .into_iter()
        .map(|n| {
            let size = n.unwrap_or(1.0);
            // The largest budget at this size; a size read between the data's sizes (the
            // geometric middle of many) takes the largest budget of any size.
            let largest_at_size = points
                .iter()
                .filter(|p| at_size(p, n))
                .map(|p| p.d)
                .fold(0.0, f64::max);
            let largest = if largest_at_size > 0.0 {
                largest_at_size
            } else {
                points.iter().map(|p| p.d).fold(0.0, f64::max)
            };
            let limit = opts.plateau_search * largest;
            let doubling =
                |t: &[f64]| derived::plateau_doubling(law, t, size, opts.plateau_eps, limit);
            let margin = |t: &[f64]| {
                derived::plateau_margin(law, t, size, opts.plateau_margin).filter(|&d| d <= limit)
            };
            let past = |d: Option<f64>| d.is_none_or(|d| d > largest);
            Plateau {
                params: n,
                asymptote: derived::asymptote_in_d(law, theta, size),
                doubling_tokens: doubling(theta),
                doubling_tokens_ci95: interval(
                    resamples.iter().filter_map(|t| doubling(t)).collect(),
                    level,
                ),
                margin_tokens: margin(theta),
                margin_tokens_ci95: interval(
                    resamples.iter().filter_map(|t| margin(t)).collect(),
                    level,
                ),
                largest_tokens: largest,
                search_limit: limit,
                doubling_extrapolated: past(doubling(theta)),
                margin_extrapolated: past(margin(theta)),
            }
        })
        .collect()
}
