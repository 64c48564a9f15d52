//! One group's fit with its bootstrap resamples, and the helpers that turn fits into report
//! entries (named parameters, percentile intervals).

use std::collections::BTreeMap;

use crate::bootstrap::percentile_interval;
use crate::fit::Fit;
use crate::law::{Law, Point};

/// Parameters (or θ coordinates) by name.
pub(super) fn named(names: &[&str], values: &[f64]) -> BTreeMap<String, f64> {
    names
        .iter()
        .map(|n| n.to_string())
        .zip(values.iter().copied())
        .collect()
}

/// One group's fit and its resamples, before reporting.
pub(super) struct Fitted {
    pub(super) fit: Fit,
    pub(super) resamples: Vec<Option<Vec<f64>>>,
}

/// The percentile interval of `values` at `level`, `None` when there are too few.
pub(super) fn interval(values: Vec<f64>, level: f64) -> Option<[f64; 2]> {
    percentile_interval(&values, level)
}

/// What a group's derived answers read: its law, best θ, fitted resamples and points.
#[derive(Clone, Copy)]
pub(super) struct GroupFit<'a> {
    pub(super) law: Law,
    pub(super) theta: &'a [f64],
    pub(super) resamples: &'a [&'a Vec<f64>],
    pub(super) points: &'a [Point],
}
