//! `synthscale sweep plan`: every run of the grid (N, D, 6ND, batch, accumulation, learning
//! rate, mixture, time) and the totals, GPU packing and ladder costs; launches nothing.

use std::process::ExitCode;

use clap::Args;
use synthscale_data::config::SourceKind;
use synthscale_sweep::Sweep;

use super::format::{duration, sci};
use super::load::{plan_loaded, sweep_section, Common};
use crate::manifest::LoadedManifest;
use crate::util::{thousands, BadInput};

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub common: Common,
    /// Measured training throughput in FLOP/s for the time estimates [default:
    /// sweep.flops_per_second, else the runs of this sweep measured so far].
    #[arg(long)]
    pub flops_per_s: Option<f64>,
    /// Runs at once, for the total time.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// One JSON object per run (id, size, budget, mixture, shares, seed, params, tokens,
    /// FLOPs, memory, steps, batch, micro-batch, accumulation, lr, ranks, runs per GPU,
    /// ladder role, estimated seconds or null) instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// The sweep `sweep plan` shows: against the prepared data where there is some, else
/// against what the manifest's `[data]` fixes (true in the second place: planned before
/// `data prepare`, the corpora need not be here).
fn load_for_plan(c: &Common) -> anyhow::Result<(Sweep, bool)> {
    let m = LoadedManifest::load_with(&c.manifest, false)?;
    let cfg = sweep_section(&m)?;
    let data = c.data.clone().unwrap_or_else(|| m.data_dir());
    if data.join(synthscale_data::datadir::META_FILE).exists() {
        return Ok((plan_loaded(&m, c)?, false));
    }
    let meta = synthscale_data::DataMeta::provisional(&m.manifest.data)?;
    let sweep = Sweep::plan_with_meta(
        &c.manifest,
        &data,
        &meta,
        cfg,
        m.manifest.slurm.as_ref(),
        c.out.as_deref(),
    )?;
    Ok((sweep, true))
}

fn mixture_text(shares: &std::collections::BTreeMap<SourceKind, f64>) -> String {
    shares
        .iter()
        .filter(|(_, v)| **v > 0.0)
        .map(|(k, v)| format!("{}={v}", k.as_str()))
        .collect::<Vec<_>>()
        .join(",")
}

pub fn run(a: &PlanArgs) -> anyhow::Result<ExitCode> {
    let (sweep, provisional) = load_for_plan(&a.common)?;
    if let Some(t) = a.flops_per_s {
        if !(t.is_finite() && t > 0.0) {
            return Err(BadInput(format!("--flops-per-s {t} must be > 0")).into());
        }
    }
    let (rate, source) = match (a.flops_per_s, sweep.config.flops_per_second) {
        (Some(t), _) => (Some(t), "--flops-per-s".to_string()),
        (None, Some(t)) => (Some(t), "sweep.flops_per_second".to_string()),
        (None, None) => match synthscale_sweep::results::measured_flops_per_second(&sweep) {
            Some(t) => (Some(t), "measured on this sweep's runs".to_string()),
            None => (None, String::new()),
        },
    };
    if a.json {
        for r in &sweep.runs {
            let row = serde_json::json!({
                "id": r.id,
                "size": r.size,
                "budget": r.budget,
                "mixture": r.mixture,
                "shares": r.shares,
                "seed": r.seed,
                "params": r.params,
                "non_embedding_params": r.non_embedding_params,
                "tokens": r.tokens,
                "flops": r.flops,
                "cost_flops": r.cost_flops(),
                "memory_bytes": r.memory_bytes,
                "steps": r.steps(),
                "batch_tokens": r.resolved.optim.batch_tokens,
                "micro_batch_size": r.resolved.optim.micro_batch_size,
                "accumulation": r.resolved.accumulation(),
                "lr": r.resolved.optim.lr,
                "ranks": r.ranks,
                "runs_per_gpu": sweep.runs_per_gpu(r),
                "ladder": match &r.ladder {
                    Some(synthscale_sweep::LadderRole::Trunk { .. }) => Some("trunk"),
                    Some(synthscale_sweep::LadderRole::Branch { .. }) => Some("branch"),
                    None => None,
                },
                "seconds": rate.map(|x| r.cost_flops() / x),
                "data_prepared": !provisional,
            });
            println!("{row}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "sweep {}: {} runs in {}; data {}",
        sweep.name,
        sweep.runs.len(),
        sweep.out_dir.display(),
        sweep.data_dir.display()
    );
    if provisional {
        println!(
            "planned before `synthscale data prepare`: with a tokenizer file every figure is \
             final; a BPE is taken at its vocab_size (a small corpus can train fewer tokens). \
             Checks that count the data's tokens (a batch larger than the data, repeats) run \
             once the data is prepared"
        );
    }
    println!(
        "{:<40} {:>12} {:>12} {:>12} {:>8} {:>10} {:>7} {:>5} {:>6} {:>7} {:>5} {:>9} {:>8}  mixture",
        "run",
        "N",
        "N non-emb",
        "D",
        "D/N",
        "6ND FLOPs",
        "batch",
        "micro",
        "accum",
        "mem GiB",
        "steps",
        "lr",
        "time"
    );
    let (mut total_flops, mut total_6nd, mut total_s) = (0.0, 0.0, 0.0);
    for r in &sweep.runs {
        let six_nd = 6.0 * r.params as f64 * r.tokens as f64;
        // A ladder branch costs only its cooldown; the trunk trained the rest.
        let cost = r.cost_flops();
        let t = rate.map_or(f64::NAN, |x| cost / x);
        total_flops += cost;
        total_6nd += six_nd * cost / r.flops;
        total_s += t;
        println!(
            "{:<40} {:>12} {:>12} {:>12} {:>8.2} {:>10} {:>7} {:>5} {:>6} {:>7.1} {:>5} {:>9.3e} {:>8}  {}{}{}",
            r.id,
            thousands(r.params),
            thousands(r.non_embedding_params),
            thousands(r.tokens),
            r.tokens as f64 / r.params as f64,
            sci(six_nd),
            r.resolved.optim.batch_tokens,
            r.resolved.optim.micro_batch_size,
            r.resolved.accumulation(),
            r.memory_bytes / (1u64 << 30) as f64,
            r.steps(),
            r.resolved.optim.lr,
            duration(t),
            mixture_text(&r.shares),
            match &r.ladder {
                Some(synthscale_sweep::LadderRole::Trunk { branches }) =>
                    format!("  trunk of {} branches", branches.len()),
                Some(synthscale_sweep::LadderRole::Branch { step, .. }) =>
                    format!("  branch from trunk step {step}"),
                None => String::new(),
            },
            // The time column is one device's; mem GiB is per rank.
            if r.ranks > 1 {
                format!("  on {} data-parallel ranks", r.ranks)
            } else {
                String::new()
            }
        );
    }
    println!(
        "total: {} runs, 6ND = {} FLOPs ({} with attention and the output head counted)",
        sweep.runs.len(),
        sci(total_6nd),
        sci(total_flops)
    );
    match rate {
        Some(x) => println!(
            "time: {} of training at {} FLOP/s ({source}); {} with --jobs {}",
            duration(total_s),
            sci(x),
            duration(total_s / a.jobs.max(1) as f64),
            a.jobs.max(1)
        ),
        None => println!(
            "time: unknown; measure FLOP/s with `synthscale bench train` and pass --flops-per-s \
             (or set sweep.flops_per_second)"
        ),
    }
    println!("D/N uses total parameters N; budgets given as tokens_per_param use non-embedding N.");
    for (size, src) in &sweep.init_sources {
        println!(
            "init_from: every {} of size {size} starts from the weights of {} (fresh optimizer, \
             step and data position)",
            if sweep.config.run_rule.ladder {
                "ladder trunk"
            } else {
                "run"
            },
            src.describe()
        );
    }
    print_packing(&sweep);
    print_ladders(&sweep, rate);
    Ok(ExitCode::SUCCESS)
}

/// On CUDA, how the runs of each size share GPUs (the memory model's estimate plus each
/// process's CUDA context against one GPU's memory, up to sweep.max_runs_per_gpu).
fn print_packing(sweep: &Sweep) {
    if sweep.config.device != synthscale_train::config::DeviceSpec::Cuda {
        return;
    }
    let gib = (1u64 << 30) as f64;
    let mut seen = std::collections::BTreeSet::new();
    for r in &sweep.runs {
        if !seen.insert(r.size.clone()) {
            continue;
        }
        let k = sweep.runs_per_gpu(r);
        let how = if r.ranks > 1 {
            format!("{} GPUs per run, one per rank", r.ranks)
        } else if k > 1 {
            format!(
                "{k} runs per GPU ({:.1} GiB each with its CUDA context, of {:.0} GiB; cap \
                 sweep.max_runs_per_gpu = {})",
                (r.memory_bytes + synthscale_sweep::gpu_pool::CUDA_PROCESS_OVERHEAD_BYTES) / gib,
                sweep.gpu_bytes() / gib,
                sweep.config.max_runs_per_gpu
            )
        } else {
            "one run per GPU".into()
        };
        println!("packing: size {}: {how}", r.size);
    }
}

/// Each ladder's cost beside its budgets as separate runs, in FLOPs and, on GPUs,
/// GPU-hours at `rate` FLOP/s per GPU.
fn print_ladders(sweep: &Sweep, rate: Option<f64>) {
    let costs = synthscale_sweep::ladder::costs(&sweep.runs);
    if costs.is_empty() {
        return;
    }
    let r = &sweep.config.run_rule;
    println!(
        "ladders (run_rule.ladder): per size, mixture and seed one constant-LR trunk to the \
         largest budget's cooldown start, and per budget a {} cooldown over the last {} of its \
         steps from the trunk's checkpoint; every budget of a ladder takes the batch, peak lr \
         and warm-up of the run rule at its largest budget",
        match r.decay_shape {
            synthscale_train::config::DecayShape::Linear => "linear",
            synthscale_train::config::DecayShape::OneMinusSqrt => "1-sqrt",
        },
        r.decay_fraction
    );
    let gpus = match sweep.config.device {
        synthscale_train::config::DeviceSpec::Cuda => Some(sweep.slurm.gpus_per_task.max(1) as f64),
        synthscale_train::config::DeviceSpec::Cpu => None,
    };
    let hours = |f: f64| match (gpus, rate) {
        (Some(g), Some(x)) => format!(" = {:.1} GPU-hours", f / x * g / 3600.0),
        _ => String::new(),
    };
    let (mut lad, mut sep) = (0.0, 0.0);
    for c in &costs {
        lad += c.flops;
        sep += c.separate_flops;
        println!(
            "ladder {}: {} FLOPs{} ({:.2}× its largest budget) against {} FLOPs{} as separate \
             runs ({:.2}×)",
            c.trunk,
            sci(c.flops),
            hours(c.flops),
            c.flops / c.largest_flops,
            sci(c.separate_flops),
            hours(c.separate_flops),
            c.separate_flops / c.largest_flops
        );
    }
    println!(
        "ladders in all: {} FLOPs{} against {} FLOPs{} as separate runs ({:.0}% saved)",
        sci(lad),
        hours(lad),
        sci(sep),
        hours(sep),
        100.0 * (1.0 - lad / sep)
    );
}
