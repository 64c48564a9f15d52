//! One training run: resolve the config, resume from the last checkpoint, step through the
//! mixture stream with accumulation and clipping, evaluate every domain, checkpoint, and
//! mark the run `DONE`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::{Device, Tensor};
use synthscale_data::{eval_batches, DataDir, Mixture, MixtureSampler, SamplerConfig};
use synthscale_model::{Decoder, Mode};

use crate::checkpoint::{self, TrainState};
use crate::config::{ResolvedConfig, RunConfig};
use crate::device::open_for_run;
use crate::dist::{self, Collective, Single};
use crate::error::{Result, TrainError};
use crate::files::write_synced;
use crate::init::{self, InitRecord};
use crate::ladder;
use crate::metrics::{Metric, MetricsLog};
use crate::optim::AdamW;
use crate::tensorboard::EventWriter;
use crate::zero::Zero;

pub use crate::device::{
    compute_dtype, cpu_flops_per_cycle, device_peak, gpu_ordinal, gpu_peak_flops, open_device,
    open_device_for_rank, peak_flops,
};
pub use crate::files::{CONFIG, DONE};
/// Exit code after a requested stop (SIGTERM, SIGUSR1, SIGINT) has checkpointed: sysexits'
/// EX_TEMPFAIL, "try again later" — a scheduler requeues on it.
pub const EXIT_REQUEUE: u8 = 75;
/// Exit code when another live process holds the run directory ([`crate::run_lock`]):
/// sysexits' EX_CANTCREAT, "cannot create (user) output file" — nothing was trained, and
/// an executor must not retry it as a failure.
pub const EXIT_LOCKED: u8 = 73;

/// What the trainer reports while it runs.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// Training is about to start at `step` of `steps`.
    Start {
        config: &'a ResolvedConfig,
        step: u64,
        steps: u64,
        params: u64,
        /// The weights a continued pre-training run starts from, on its first start only.
        init_from: Option<&'a InitRecord>,
    },
    Step(&'a Metric),
    Eval(&'a Metric),
    Checkpoint {
        step: u64,
    },
}

/// How a call to [`train`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Trained to the end of the budget.
    Done { steps: u64 },
    /// The run directory was already marked `DONE`; nothing was done.
    AlreadyDone,
    /// A stop was requested; a checkpoint at `step` was written.
    Stopped { step: u64 },
}

/// Options of [`train`].
#[derive(Default)]
pub struct TrainOptions<'a> {
    pub on_event: Option<&'a dyn Fn(Event)>,
    /// Set (by a signal handler) to checkpoint at the next step boundary and return.
    pub stop: Option<&'a AtomicBool>,
    /// The ranks of a data-parallel run ([`crate::dist`]); `None`: a single process.
    pub dist: Option<&'a dyn Collective>,
    /// TensorBoard event files go here (`--tensorboard DIR`); `None`: the run config's
    /// `tensorboard = true` puts them in `<run dir>/tensorboard`, else none are written.
    pub tensorboard: Option<&'a Path>,
}

/// Trains the run described by `config_path` in `run_dir`, resuming if it has a checkpoint.
///
/// In a data-parallel run ([`TrainOptions::dist`]) every rank calls this with the same
/// arguments; rank 0 alone holds the run directory's lock, writes into it and reports
/// events, and every rank returns the same outcome.
pub fn train(config_path: &Path, run_dir: &Path, opts: &TrainOptions) -> Result<Outcome> {
    let comm: &dyn Collective = opts.dist.unwrap_or(&Single);
    let world = comm.world();
    let root = world.is_root();
    let emit = |e: Event| {
        if let (true, Some(f)) = (root, opts.on_event) {
            f(e)
        }
    };
    let run_cfg = RunConfig::load(config_path)?;
    let data = DataDir::open(&run_cfg.data.dir)?;
    let cfg = run_cfg.resolve(data.meta(), &data.meta().tokenizer.hash, config_path)?;
    let ranks_sharing = if run_cfg.shard_optimizer == Some(false) {
        1
    } else {
        world.size
    };
    crate::bounds::check_memory(&cfg, run_cfg.device_memory_gib, ranks_sharing, config_path)?;
    let my_micro = dist::my_micro_batches(world, cfg.accumulation())?;
    // An engine bound to a GPU (NCCL) trains on that GPU: its collectives run on its stream.
    let dev = match comm.device() {
        Some(d) => d,
        None => open_for_run(cfg.device, world.local_rank, config_path)?,
    };
    // Held until this returns (or the process dies): one trainer per run directory (rank 0
    // for all ranks of a data-parallel run).
    let _lock = if root {
        Some(crate::run_lock::acquire(run_dir)?)
    } else {
        None
    };
    // init_from is checked (shape, tokenizer) before the run directory is written; a run
    // with a checkpoint of its own resumes from it and never reads the source again.
    let init_source = match (&cfg.init_from, checkpoint::find(run_dir)) {
        (Some(src), None) => Some(init::check(
            src,
            &cfg.model,
            &cfg.tokenizer_hash,
            config_path,
        )?),
        _ => None,
    };
    if root {
        prepare_run_dir(run_dir, &cfg)?;
        checkpoint::remove_stale(run_dir)?;
    }
    // The other ranks read the run directory once rank 0 has set it up.
    comm.barrier()?;
    if run_dir.join(DONE).exists() {
        if let (true, Some(b)) = (root, &cfg.branch) {
            ladder::release(b)?;
        }
        return Ok(Outcome::AlreadyDone);
    }

    // The data stream, the evaluation sets.
    let mixture = Mixture {
        weights: cfg.mixture.iter().map(|(k, v)| (k.clone(), *v)).collect(),
    };
    let sampler = MixtureSampler::new(
        &data,
        &mixture,
        SamplerConfig {
            seq_len: cfg.seq_len,
            batch_size: cfg.batch_sequences(),
            token_budget: cfg.token_budget,
            seed: cfg.seed,
        },
        config_path,
    )?;
    let steps = sampler.steps();
    let eval_sets: Vec<(String, Vec<synthscale_data::Batch>)> = data
        .meta()
        .domains()
        .into_keys()
        .map(|d| {
            let tokens = data.validation_tokens(&d).unwrap_or_default();
            let n = (cfg.eval.max_tokens / cfg.seq_len as u64) as usize;
            let batches = eval_batches(&tokens, cfg.seq_len, cfg.eval.batch_size, n);
            (d, batches)
        })
        .collect();

    // Model and optimizer: from the checkpoint (verified), from the trunk's checkpoint for
    // a ladder branch's first start, from init_from's weights with a fresh optimizer, or
    // fresh.
    let (mut model, mut opt, mut state) = match (checkpoint::find(run_dir), &cfg.branch) {
        (Some(dir), _) => checkpoint::load(&dir, &cfg, &dev)?,
        (None, Some(b)) => ladder::start_branch(b, run_dir, &cfg, &dev, root)?,
        (None, None) => {
            let (model, init_from) = match &init_source {
                Some(src) => {
                    let (model, record) = init::load(src, &cfg, &dev)?;
                    (model, Some(record))
                }
                None => (Decoder::new(&cfg.model, cfg.seed, &dev)?, None),
            };
            let opt = AdamW::new(model.params(), &cfg.optim)?;
            let state = TrainState {
                init_from,
                world_size: world.size as u64,
                ..TrainState::start(cfg.seed)
            };
            (model, opt, state)
        }
    };
    // Resuming is exact only with the world size the run started with: the gradient sums'
    // order (and so their rounding) depends on it.
    if state.world_size != world.size as u64 && state.step > 0 {
        return Err(TrainError::World {
            message: format!(
                "{} was trained by {} process(es) up to step {}; resume it with the same \
                 number (it is now started with {})",
                run_dir.display(),
                state.world_size,
                state.step,
                world.size
            ),
        });
    }
    state.world_size = world.size as u64;
    // ZeRO-1: each rank keeps the moments of its share of the parameters.
    let zero = (world.size > 1 && run_cfg.shard_optimizer != Some(false))
        .then(|| Zero::new(model.params(), world.rank, world.size));
    if let Some(z) = &zero {
        opt.shard(&z.owned())?;
    }
    model.set_compute_dtype(compute_dtype(cfg.device))?;
    if root
        && cfg.checkpoint.keep_steps.contains(&state.step)
        && !ladder::released(run_dir, state.step)
    {
        // A crash may have fallen between the checkpoint and its kept copy.
        ladder::keep(run_dir, state.step)?;
    }
    let mut log = if root {
        Some(MetricsLog::open(run_dir, state.step)?)
    } else {
        None
    };
    // TensorBoard: the same lines as metrics.jsonl, from rank 0.
    let tb_dir = match (opts.tensorboard, run_cfg.tensorboard) {
        (Some(dir), _) => Some(dir.to_path_buf()),
        (None, Some(true)) => Some(run_dir.join("tensorboard")),
        _ => None,
    };
    let mut tb = match tb_dir {
        Some(dir) if root => Some(EventWriter::create(&dir, state.step)?),
        _ => None,
    };
    emit(Event::Start {
        config: &cfg,
        step: state.step,
        steps,
        params: model.count_params(),
        init_from: state.init_from.as_ref().filter(|_| state.step == 0),
    });

    let flops_per_token = cfg.model.flops_per_token(cfg.seq_len) as f64;
    let (_, peak) = device_peak(&dev);
    let accum = cfg.accumulation();
    let micro = cfg.optim.micro_batch_size;
    let mut last_checkpoint = state.step;
    let stop_requested = || opts.stop.is_some_and(|s| s.load(Ordering::SeqCst));
    // A data-parallel run stops on a flag summed with each step's loss, so that a signal
    // to any rank stops every rank at the same step boundary.
    let mut stop_agreed = false;

    for batch in sampler.stream(state.step) {
        let stop = if world.size == 1 {
            stop_requested()
        } else {
            stop_agreed
        };
        if stop {
            save_checkpoint(run_dir, &model, &opt, &state, zero.as_ref(), comm)?;
            comm.barrier()?;
            emit(Event::Checkpoint { step: state.step });
            return Ok(Outcome::Stopped { step: state.step });
        }
        let started = Instant::now();
        let lr = cfg.lr_at(state.step);
        let mut grads: Option<Vec<Tensor>> = None;
        let mut loss_sum = 0.0f64;
        let t = cfg.seq_len;
        for &a in &my_micro {
            let rows = a * micro..(a + 1) * micro;
            let ids = Tensor::from_slice(
                &batch.inputs[rows.start * t..rows.end * t],
                (micro, t),
                &dev,
            )?;
            let tgt = Tensor::from_slice(
                &batch.targets[rows.start * t..rows.end * t],
                (micro, t),
                &dev,
            )?;
            let loss = model.loss(&ids, &tgt, Mode::Train)?;
            loss_sum += loss.to_scalar::<f32>()? as f64;
            let micro_grads = model.gradients(&(loss / accum as f64)?.backward()?)?;
            grads = Some(match grads.take() {
                None => micro_grads,
                Some(acc) => acc
                    .into_iter()
                    .zip(micro_grads)
                    .map(|(a, g)| a + g)
                    .collect::<candle_core::Result<_>>()?,
            });
        }
        let mut grads = grads.expect("at least one micro-batch per step");
        let mut comm_s = None;
        // ZeRO-1's global gradient norm, from the owners' sums of squares.
        let mut sharded_norm = None;
        if world.size > 1 {
            let t0 = Instant::now();
            let mut sums = [loss_sum, f64::from(u8::from(stop_requested())), 0.0];
            match &zero {
                Some(z) => {
                    z.reduce_grads(comm, &mut grads)?;
                    sums[2] = z.norm_sq(&grads)?;
                }
                None => dist::all_reduce_grads(comm, &mut grads)?,
            }
            comm.all_reduce_sum_f64(&mut sums)?;
            loss_sum = sums[0];
            stop_agreed = sums[1] > 0.0;
            if zero.is_some() {
                sharded_norm = Some(sums[2].sqrt());
            }
            comm_s = Some(t0.elapsed().as_secs_f64());
        }
        let train_loss = loss_sum / accum as f64;
        if !train_loss.is_finite() {
            return Err(TrainError::NonFinite {
                what: "training loss",
                value: train_loss,
                step: state.step + 1,
                last_checkpoint,
            });
        }
        let next_step = state.step + 1;
        let check = |norm: f64| {
            if norm.is_finite() {
                return Ok(());
            }
            Err(TrainError::NonFinite {
                what: "gradient norm",
                value: norm,
                step: next_step,
                last_checkpoint,
            })
        };
        let norm = match (&zero, sharded_norm) {
            (Some(z), Some(norm)) => {
                check(norm)?;
                z.clip(&mut grads, norm, cfg.optim.grad_clip)?;
                opt.step(model.params(), &grads, lr)?;
                let t0 = Instant::now();
                z.broadcast_params(comm, model.params())?;
                comm_s = comm_s.map(|c| c + t0.elapsed().as_secs_f64());
                norm
            }
            _ => opt.clip_and_step(model.params(), &mut grads, lr, cfg.optim.grad_clip, check)?,
        };
        state.step += 1;
        state.tokens += cfg.optim.batch_tokens;
        state.optimizer_t = opt.t();
        let secs = started.elapsed().as_secs_f64();
        let tps = cfg.optim.batch_tokens as f64 / secs;
        let m = Metric {
            step: state.step,
            tokens: state.tokens,
            flops: state.tokens as f64 * flops_per_token,
            lr: Some(lr),
            train_loss: Some(train_loss),
            grad_norm: Some(norm),
            tokens_per_s: Some(tps),
            mfu: Some(tps * flops_per_token / peak),
            comm_s,
            eval_domain: None,
            val_loss: None,
        };
        if let Some(log) = log.as_mut() {
            log.write(&m)?;
        }
        if let Some(tb) = tb.as_mut() {
            tb.metric(&m)?;
        }
        emit(Event::Step(&m));

        let last = state.step == steps;
        let every = |k: u64| k > 0 && state.step % k == 0;
        if root && (last || every(cfg.eval.interval)) {
            for (domain, batches) in &eval_sets {
                let val = evaluate(&model, batches, &dev)?;
                let m = Metric {
                    step: state.step,
                    tokens: state.tokens,
                    flops: state.tokens as f64 * flops_per_token,
                    lr: None,
                    train_loss: None,
                    grad_norm: None,
                    tokens_per_s: None,
                    mfu: None,
                    comm_s: None,
                    eval_domain: Some(domain.clone()),
                    val_loss: Some(val),
                };
                if let Some(log) = log.as_mut() {
                    log.write(&m)?;
                }
                if let Some(tb) = tb.as_mut() {
                    tb.metric(&m)?;
                }
                emit(Event::Eval(&m));
            }
        }
        let keep = cfg.checkpoint.keep_steps.contains(&state.step);
        if last || every(cfg.checkpoint.interval) || keep {
            save_checkpoint(run_dir, &model, &opt, &state, zero.as_ref(), comm)?;
            if root && keep {
                ladder::keep(run_dir, state.step)?;
            }
            // No rank runs ahead of a checkpoint rank 0 has not finished writing.
            comm.barrier()?;
            last_checkpoint = state.step;
            emit(Event::Checkpoint { step: state.step });
        }
    }
    if root {
        write_synced(&run_dir.join(DONE), format!("{}\n", state.step).as_bytes())?;
        if let Some(b) = &cfg.branch {
            ladder::release(b)?;
        }
    }
    comm.barrier()?;
    Ok(Outcome::Done { steps })
}

/// Rank 0 writes the checkpoint; under ZeRO-1 every rank first sends it its share of the
/// optimizer state (a collective: every rank calls this).
fn save_checkpoint(
    run_dir: &Path,
    model: &Decoder,
    opt: &AdamW,
    state: &TrainState,
    zero: Option<&Zero>,
    comm: &dyn Collective,
) -> Result<()> {
    let gathered = match zero {
        Some(z) => z.gather_state(comm, opt, model.params())?,
        None => None,
    };
    if comm.world().is_root() {
        match gathered {
            Some(st) => checkpoint::save_with_state(run_dir, model, &st, state)?,
            None => checkpoint::save(run_dir, model, opt, state)?,
        }
    }
    Ok(())
}

/// Mean loss per token over evaluation batches, without tracking gradients.
pub fn evaluate(model: &Decoder, batches: &[synthscale_data::Batch], dev: &Device) -> Result<f64> {
    let mut sum = 0.0f64;
    let mut n = 0usize;
    for b in batches {
        let ids = Tensor::from_slice(&b.inputs, (b.batch_size, b.seq_len), dev)?;
        let tgt = Tensor::from_slice(&b.targets, (b.batch_size, b.seq_len), dev)?;
        let loss = model.loss(&ids, &tgt, Mode::Eval)?.to_scalar::<f32>()? as f64;
        sum += loss * b.batch_size as f64;
        n += b.batch_size;
    }
    Ok(if n == 0 { f64::NAN } else { sum / n as f64 })
}

/// Creates the run directory and writes `config.toml` first; a directory holding another
/// run's config is refused.
fn prepare_run_dir(run_dir: &Path, cfg: &ResolvedConfig) -> Result<()> {
    std::fs::create_dir_all(run_dir).map_err(|e| TrainError::RunDir {
        path: run_dir.to_path_buf(),
        message: format!("cannot create the run directory: {e}"),
    })?;
    let path = run_dir.join(CONFIG);
    let text = toml::to_string(cfg).map_err(|e| TrainError::Serialize {
        path: path.clone(),
        message: e.to_string(),
    })?;
    if path.exists() {
        let old = std::fs::read_to_string(&path).map_err(|e| TrainError::read(&path, e))?;
        let same = toml::from_str::<ResolvedConfig>(&old).is_ok_and(|o| &o == cfg);
        if !same {
            return Err(TrainError::RunDir {
                path: run_dir.to_path_buf(),
                message: format!(
                    "holds a run with another config ({}); use another run directory",
                    path.display()
                ),
            });
        }
        return Ok(());
    }
    let tmp: PathBuf = run_dir.join(format!("{CONFIG}.tmp"));
    write_synced(&tmp, text.as_bytes()).map_err(|e| TrainError::RunDir {
        path: run_dir.to_path_buf(),
        message: format!("the run directory is not writable: {e}"),
    })?;
    std::fs::rename(&tmp, &path).map_err(|e| TrainError::write(&path, e))
}
