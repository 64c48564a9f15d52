//! Compute-optimal splits of FLOP budgets (joint law): N*, D* and L(N*, D*), with intervals
//! and whether they read the law outside the observed sizes and budgets.

use serde::Serialize;

use super::fitted::{interval, GroupFit};
use super::options::StudyOptions;
use crate::law::Point;
use crate::{derived, effective};

/// Compute-optimal split of one budget.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComputeOptimal {
    /// FLOP budget C = 6ND.
    pub flops: f64,
    /// N*.
    pub params: f64,
    /// Its 95% interval.
    pub params_ci95: Option<[f64; 2]>,
    /// D*.
    pub tokens: f64,
    /// Its 95% interval.
    pub tokens_ci95: Option<[f64; 2]>,
    /// Tokens per parameter, D*/N*.
    pub tokens_per_param: f64,
    /// L(N*, D*).
    pub loss: f64,
    /// Its 95% interval.
    pub loss_ci95: Option<[f64; 2]>,
    /// Whether N* or D* lies outside the observed sizes or budgets.
    pub extrapolated: bool,
}

/// The compute-optimal splits of one group's budgets (none for one-variable laws), with
/// intervals from its resamples.
pub(super) fn compute_optimal_splits(group: &GroupFit, opts: &StudyOptions) -> Vec<ComputeOptimal> {
    if !group.law.uses_params() {
        return Vec::new();
    }
    let (theta, points) = (group.theta, group.points);
    let level = opts.bootstrap.level;
    let ns = effective::d_range(
        &points
            .iter()
            .map(|p| Point { d: p.n, ..*p })
            .collect::<Vec<_>>(),
    );
    let ds = effective::d_range(points);
    let budgets = if opts.flops_budgets.is_empty() {
        let cmax = points.iter().map(|p| 6.0 * p.n * p.d).fold(0.0, f64::max);
        vec![cmax, 10.0 * cmax, 100.0 * cmax]
    } else {
        opts.flops_budgets.clone()
    };
    let mut compute_optimal = Vec::new();
    for c in budgets {
        if let Some((n, d, l)) = derived::compute_optimal(theta, c) {
            let rs: Vec<(f64, f64, f64)> = group
                .resamples
                .iter()
                .filter_map(|t| derived::compute_optimal(t, c))
                .collect();
            compute_optimal.push(ComputeOptimal {
                flops: c,
                params: n,
                params_ci95: interval(rs.iter().map(|r| r.0).collect(), level),
                tokens: d,
                tokens_ci95: interval(rs.iter().map(|r| r.1).collect(), level),
                tokens_per_param: d / n,
                loss: l,
                loss_ci95: interval(rs.iter().map(|r| r.2).collect(), level),
                extrapolated: effective::beyond(n, ns) > 1.0 + 1e-9
                    || effective::beyond(d, ds) > 1.0 + 1e-9,
            });
        }
    }
    compute_optimal
}
