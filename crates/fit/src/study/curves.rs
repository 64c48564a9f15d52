//! Which curves are read together: families of groups that differ in one column, and the
//! model sizes at which the joint law's curves in D are read.

use crate::error::{FitError, Result};
use crate::input::{group_name, Group};
use crate::law::{Law, Point};

/// The distinct values of `v`, ascending.
pub(super) fn distinct(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v.dedup();
    v
}

/// Model sizes within this relative distance are one size (sizes read off plots, like
/// Epoch AI's, differ in their last digits).
const SAME_SIZE: f64 = 1e-3;

/// Whether `p` is of model size `n` (within [`SAME_SIZE`]); every point is of size `None`.
pub(super) fn at_size(p: &Point, n: Option<f64>) -> bool {
    n.is_none_or(|n| (p.n / n - 1.0).abs() < SAME_SIZE)
}

/// More distinct sizes than this, and curves are read at three sizes only.
pub(super) const MAX_SIZES: usize = 6;

/// The model sizes at which curves in D are read for the joint law (plateaus, speed-ups):
/// each distinct size in the data, or, past [`MAX_SIZES`] of them, the smallest, the
/// geometric middle and the largest. `[None]` for one-variable laws.
pub(super) fn curve_sizes(law: Law, points: &[Point]) -> Vec<Option<f64>> {
    if !law.uses_params() {
        return vec![None];
    }
    let mut sizes: Vec<f64> = Vec::new();
    for n in distinct(points.iter().map(|p| p.n).collect()) {
        if sizes.last().is_none_or(|&m| n / m - 1.0 >= SAME_SIZE) {
            sizes.push(n);
        }
    }
    if sizes.len() > MAX_SIZES {
        let (lo, hi) = (sizes[0], sizes[sizes.len() - 1]);
        sizes = vec![lo, (lo * hi).sqrt(), hi];
    }
    sizes.into_iter().map(Some).collect()
}

/// A family's name and its members: (group index, value of the varying column).
pub(super) type Family = (String, Vec<(usize, String)>);

/// Families: groups that agree on every key but `col`, in order of first appearance, each
/// with its members' indices and their `col` values.
pub(super) fn families(groups: &[Group], col: &str) -> Result<Vec<Family>> {
    let mut out: Vec<Family> = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        let Some(v) = g
            .keys
            .iter()
            .find(|(k, _)| k == col)
            .map(|(_, v)| v.clone())
        else {
            return Err(FitError::option(
                col,
                format!("column `{col}` must be one of the --group-by columns"),
            ));
        };
        let rest: Vec<(String, String)> =
            g.keys.iter().filter(|(k, _)| k != col).cloned().collect();
        let fam = group_name(&rest);
        match out.iter_mut().find(|(f, _)| *f == fam) {
            Some((_, m)) => m.push((i, v)),
            None => out.push((fam, vec![(i, v)])),
        }
    }
    Ok(out)
}
