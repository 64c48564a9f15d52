//! The effective-data answers of a study: each mixture's multiplier and per-budget speed-ups
//! over its family's baseline (the arithmetic is [`crate::effective`]'s).

use super::curves::families;
use super::fitted::Fitted;
use super::options::StudyOptions;
use crate::effective::{self, BudgetSpeedup, Multiplier};
use crate::error::Result;
use crate::input::Group;

/// Multipliers and per-budget speed-ups of every mixture over its family's baseline.
pub(super) fn effective_answers(
    groups: &[Group],
    fitted: &[Fitted],
    (col, base_value): &(String, String),
    opts: &StudyOptions,
) -> Result<(Vec<Multiplier>, Vec<BudgetSpeedup>)> {
    let law = opts.law;
    let mut mults = Vec::new();
    let mut budgets = Vec::new();
    for (family, members) in families(groups, col)? {
        let Some(&(base_index, _)) = members.iter().find(|(_, v)| v == base_value) else {
            continue;
        };
        let base = &groups[base_index];
        let base_resamples: Vec<&Vec<f64>> =
            fitted[base_index].resamples.iter().flatten().collect();
        for &(mix_index, _) in members.iter().filter(|(i, _)| *i != base_index) {
            let mix = &groups[mix_index];
            let names = effective::Pair {
                family: family.clone(),
                baseline: base.name(),
                mixture: mix.name(),
                baseline_group: base_index,
                mixture_group: mix_index,
            };
            let mut starts = fitted[base_index].fit.optima.clone();
            starts.extend(fitted[mix_index].fit.optima.iter().cloned());
            // The joint fit uses the baseline's threshold: the baseline's law is the one read.
            mults.push(effective::multiplier(
                law,
                &names,
                &base.points,
                &mix.points,
                &starts,
                &opts.fit.fixed(fitted[base_index].fit.huber_delta),
                &opts.bootstrap,
            )?);
            budgets.extend(effective::budget_speedups(
                law,
                &names,
                &base.points,
                &fitted[base_index].fit.theta,
                &base_resamples,
                &mix.points,
                opts.bootstrap.level,
            ));
        }
    }
    Ok((mults, budgets))
}
