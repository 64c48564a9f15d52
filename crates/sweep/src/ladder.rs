//! Budget ladders (`run_rule.ladder = true`; Hägele et al. 2024, arXiv 2405.18392): per
//! size, mixture and seed, one constant-LR trunk and one WSD cooldown branch per budget.
//!
//! Every run of a ladder takes the batch, micro-batch, peak lr and warm-up that the run
//! rule gives the ladder's largest budget, and evaluates every `S_min / evals_per_run`
//! steps (`S_min` the smallest budget's steps). The trunk trains at constant lr to the
//! largest budget's cooldown start and keeps its checkpoint at every budget's cooldown
//! start `N_i = S_i − round(decay_fraction · S_i)`; branch i starts there. Since the
//! mixture stream of a budget is a prefix of a larger budget's, and the trunk evaluates
//! at the same points, each branch logs what an independent WSD run of its budget logs.
//! With the size's `init_from` (continued pre-training) the trunk starts from those
//! weights, and the branches from the trunk as always.

use std::collections::BTreeMap;

use synthscale_data::config::SourceKind;
use synthscale_train::config::{BranchSpec, OptimConfig, Schedule};

use crate::error::{Result, SweepError};
use crate::grid::{Grid, LadderRole, PlannedRun};

/// The trunk, then one branch per budget (in the manifest's budget order).
pub(crate) fn expand(
    g: &Grid,
    mix: &str,
    shares: &BTreeMap<SourceKind, f64>,
    seed: u64,
) -> Result<Vec<PlannedRun>> {
    let rule = &g.config.run_rule;
    let field = |f: String, m: String| SweepError::Field {
        file: g.manifest.to_path_buf(),
        field: f,
        message: m,
    };
    let raw: Vec<u64> = g.config.budgets.iter().map(|b| g.raw_tokens(b)).collect();
    let (imax, &d_max) = raw
        .iter()
        .enumerate()
        .max_by_key(|(_, d)| **d)
        .expect("validated: at least two budgets");
    let c = g.compute(d_max);
    let (batch, micro) = g.batch(c, d_max);
    let lr = g.lr(c);
    let s_max = d_max / batch;
    let warmup = ((rule.warmup_fraction * s_max as f64).round() as u64).max(1);
    let steps: Vec<u64> = raw.iter().map(|d| d / batch).collect();
    let s_min = *steps.iter().min().expect("budgets");
    let eval_every = (s_min / rule.evals_per_run).max(1);
    let size = g.size.label();
    let mut starts = Vec::new();
    for (i, &s) in steps.iter().enumerate() {
        let f = format!("sweep.budgets[{i}]");
        let cool = (rule.decay_fraction * s as f64).round() as u64;
        let start = s.saturating_sub(cool);
        if s == 0 || cool == 0 || start < warmup {
            return Err(field(
                f,
                format!(
                    "in the ladder of size {size}, budget {} is {s} steps of {batch} tokens (the \
                     batch of the largest budget, {}), so its cooldown of \
                     round(run_rule.decay_fraction · {s}) = {cool} steps would start at step \
                     {start}, before the warm-up ends at step {warmup} (run_rule.warmup_fraction \
                     of the largest budget's {s_max} steps); drop the budget or lower \
                     warmup_fraction",
                    g.config.budgets[i].label(),
                    g.config.budgets[imax].label()
                ),
            ));
        }
        if let Some(j) = steps[..i].iter().position(|&t| t == s) {
            return Err(field(
                f,
                format!(
                    "in the ladder of size {size}, budgets {} and {} both come to {s} steps of \
                     {batch} tokens; a ladder needs distinct budgets",
                    g.config.budgets[j].label(),
                    g.config.budgets[i].label()
                ),
            ));
        }
        starts.push(start);
    }
    let trunk_steps = *starts.iter().max().expect("budgets");
    let mut keep = starts.clone();
    keep.sort_unstable();

    let base = |tokens: u64| {
        let mut run = g.run_config(seed, shares);
        run.data.token_budget = tokens;
        run.optim.lr = lr;
        run.optim.warmup_steps = warmup;
        run.optim.batch_tokens = batch;
        run.optim.micro_batch_size = micro;
        run.eval.interval = eval_every;
        run.checkpoint.interval = (tokens / batch / rule.checkpoints_per_run).max(1);
        run
    };

    let mut trunk = base(trunk_steps * batch);
    trunk.optim.schedule = Schedule::Constant;
    // The cooldown is the branches' alone: it leaves the trunk (and its id) unchanged.
    trunk.optim.decay_fraction = OptimConfig::default().decay_fraction;
    trunk.optim.decay_shape = OptimConfig::default().decay_shape;
    trunk.checkpoint.keep_steps = keep;
    let mut trunk = g.finish(
        trunk,
        "trunk".into(),
        mix,
        shares,
        Some(LadderRole::Trunk {
            branches: Vec::new(),
        }),
    )?;
    let mut out = Vec::new();
    for (i, b) in g.config.budgets.iter().enumerate() {
        let mut run = base(steps[i] * batch);
        run.optim.schedule = Schedule::Wsd;
        // The trunk started from init_from; a branch starts from the trunk.
        run.init_from = None;
        run.branch = Some(BranchSpec {
            trunk: g.runs_dir.join(&trunk.id),
            step: starts[i],
        });
        out.push(g.finish(
            run,
            b.label(),
            mix,
            shares,
            Some(LadderRole::Branch {
                trunk: trunk.id.clone(),
                step: starts[i],
            }),
        )?);
    }
    trunk.ladder = Some(LadderRole::Trunk {
        branches: out.iter().map(|r| r.id.clone()).collect(),
    });
    out.insert(0, trunk);
    Ok(out)
}

/// One ladder's cost against its budgets as separate runs.
#[derive(Debug, Clone, PartialEq)]
pub struct LadderCost {
    pub trunk: String,
    /// The trunk's FLOPs plus every branch's cooldown.
    pub flops: f64,
    /// Every budget trained from scratch.
    pub separate_flops: f64,
    /// The largest budget trained once.
    pub largest_flops: f64,
}

/// The cost of every ladder of the sweep, in plan order.
pub fn costs(runs: &[PlannedRun]) -> Vec<LadderCost> {
    runs.iter()
        .filter_map(|t| match &t.ladder {
            Some(LadderRole::Trunk { branches }) => {
                let bs: Vec<&PlannedRun> =
                    runs.iter().filter(|r| branches.contains(&r.id)).collect();
                Some(LadderCost {
                    trunk: t.id.clone(),
                    flops: t.flops + bs.iter().map(|b| b.cost_flops()).sum::<f64>(),
                    separate_flops: bs.iter().map(|b| b.flops).sum(),
                    largest_flops: bs.iter().map(|b| b.flops).fold(0.0, f64::max),
                })
            }
            _ => None,
        })
        .collect()
}
