//! `synthscale bench train`: training steps (forward, backward, AdamW) of a decoder of a
//! given shape on random tokens: tokens/s, step time, MFU, memory, kernel launches.

use std::process::ExitCode;
use std::time::Instant;

use candle_core::{Device, Tensor};
use clap::Args;
use serde::Serialize;
use synthscale_model::{Decoder, Mode};
use synthscale_train::config::OptimConfig;
use synthscale_train::memory::{memory_model, Graph};
use synthscale_train::optim::AdamW;
use synthscale_train::trainer::device_peak;

use super::device_args::{dtype_name, DeviceArgs};
use super::shape::{random_tokens, ShapeArgs, ShapeReport};

#[derive(Args, Debug)]
pub struct BenchTrainArgs {
    #[command(flatten)]
    pub shape: ShapeArgs,
    /// Sequences per step.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    #[command(flatten)]
    pub device: DeviceArgs,
}

#[derive(Serialize)]
struct TrainBench {
    bench: &'static str,
    params: u64,
    #[serde(flatten)]
    shape: ShapeReport,
    steps: usize,
    threads: usize,
    device: String,
    dtype: &'static str,
    /// Mean over the timed steps.
    step_ms: f64,
    /// The fastest timed step: robust to other load on the machine.
    best_step_ms: f64,
    forward_ms: f64,
    backward_ms: f64,
    optimizer_ms: f64,
    tokens_per_s: f64,
    best_tokens_per_s: f64,
    mfu: f64,
    /// The peak FLOP/s `mfu` divides by.
    peak_flops: f64,
    peak_rss_mb: f64,
    /// GPU memory in use at the end (the allocator's pool included), CUDA only.
    #[serde(skip_serializing_if = "Option::is_none")]
    gpu_mem_used_mb: Option<f64>,
    /// The memory model's peak for this shape and graph (`synthscale_train::memory`).
    memory_estimate_mb: f64,
    /// The heap's measured peak over the run (tensor-sized allocations), CPU only.
    #[serde(skip_serializing_if = "Option::is_none")]
    heap_peak_mb: Option<f64>,
    /// Kernel launches (operations) per training step; see [`Launches`].
    launches: Launches,
    last_loss: f64,
}

/// Operations one training step runs, each a kernel launch on a GPU (custom ops and
/// candle ops alike), counted on the last timed step.
#[derive(Serialize)]
struct Launches {
    /// The forward graph's operations: its nodes that are neither parameters nor views of
    /// another node's storage (a reshape or transpose launches nothing). Any device.
    forward: u64,
    /// Buffers of at least 1 KiB allocated during backward: one per operation on the CPU,
    /// where each op writes one fresh buffer (a zero to accumulate onto counts as one, as
    /// its fill is a launch on a GPU). CPU only.
    #[serde(skip_serializing_if = "Option::is_none")]
    backward: Option<u64>,
    /// The same count during the AdamW update (CPU only).
    #[serde(skip_serializing_if = "Option::is_none")]
    optimizer: Option<u64>,
    /// (forward + backward) / layers, the yardstick (goal ≤ 25 at 124M).
    #[serde(skip_serializing_if = "Option::is_none")]
    per_layer: Option<f64>,
}

/// The forward graph's operations behind `loss` (see [`Launches::forward`]).
fn forward_ops(loss: &Tensor) -> u64 {
    let nodes = loss.sorted_nodes();
    let storage = |t: &Tensor| {
        let (s, _) = t.storage_and_layout();
        &*s as *const candle_core::Storage as usize
    };
    // Parameters' storages first, so that a transposed weight counts as the view it is.
    let mut seen: std::collections::HashSet<usize> = nodes
        .iter()
        .filter(|t| t.is_variable())
        .map(|t| storage(t))
        .collect();
    nodes
        .iter()
        .filter(|t| !t.is_variable())
        .filter(|t| seen.insert(storage(t)))
        .count() as u64
}

/// Forward, backward and an AdamW update on random tokens, as a training step does.
pub fn run(a: &BenchTrainArgs) -> anyhow::Result<ExitCode> {
    let cfg = a.shape.config()?;
    let (dev, dtype) = a.device.open()?;
    let heap_base = crate::heap::reset_peak();
    let mut model = Decoder::new(&cfg, 0, &dev)?;
    model.set_compute_dtype(dtype)?;
    let mut opt = AdamW::new(model.params(), &OptimConfig::default())?;
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut tokens = || random_tokens(&mut x, a.batch * a.shape.seq_len, a.shape.vocab);
    let mut last_loss = 0.0;
    // Per timed step: forward, backward, optimizer seconds.
    let mut times: Vec<[f64; 3]> = Vec::new();
    let mut launches = None;
    for s in 0..a.warmup + a.steps {
        let ids = Tensor::from_vec(tokens(), (a.batch, a.shape.seq_len), &dev)?;
        let tgt = Tensor::from_vec(tokens(), (a.batch, a.shape.seq_len), &dev)?;
        let t0 = Instant::now();
        let loss = model.loss(&ids, &tgt, Mode::Train)?;
        last_loss = loss.to_scalar::<f32>()? as f64;
        let last = s + 1 == a.warmup + a.steps;
        let forward = if last { forward_ops(&loss) } else { 0 };
        let t1 = Instant::now();
        let n0 = crate::heap::allocations();
        let g = model.gradients(&loss.backward()?)?;
        dev.synchronize()?;
        let t2 = Instant::now();
        let n1 = crate::heap::allocations();
        // The graph goes before the update, as in the trainer (its memory is not the
        // optimizer's).
        drop(loss);
        opt.step(model.params(), &g, 1e-3)?;
        dev.synchronize()?;
        let t3 = Instant::now();
        let n2 = crate::heap::allocations();
        if last {
            let cpu = dev.is_cpu();
            let backward = cpu.then_some(n1 - n0);
            launches = Some(Launches {
                forward,
                backward,
                optimizer: cpu.then_some(n2 - n1),
                per_layer: backward.map(|b| (forward + b) as f64 / a.shape.layers as f64),
            });
        }
        if s >= a.warmup {
            times.push([
                (t1 - t0).as_secs_f64(),
                (t2 - t1).as_secs_f64(),
                (t3 - t2).as_secs_f64(),
            ]);
        }
    }
    let total = |t: &[f64; 3]| t[0] + t[1] + t[2];
    let step_s = times.iter().map(total).sum::<f64>() / a.steps as f64;
    let best_s = times.iter().map(total).fold(f64::INFINITY, f64::min);
    let mean = |i: usize| times.iter().map(|t| t[i]).sum::<f64>() / a.steps as f64 * 1e3;
    let tps = (a.batch * a.shape.seq_len) as f64 / step_s;
    let (device, peak) = device_peak(&dev);
    let graph = Graph::for_dtype(&cfg, a.device.device, dtype);
    let estimate = memory_model(&cfg, a.shape.seq_len, a.batch, 1, graph, a.device.device).total;
    let r = TrainBench {
        bench: "train",
        params: cfg.params(),
        shape: ShapeReport::new(&cfg, a.shape.seq_len, a.batch),
        steps: a.steps,
        threads: rayon::current_num_threads(),
        device,
        dtype: dtype_name(dtype),
        step_ms: step_s * 1e3,
        best_step_ms: best_s * 1e3,
        forward_ms: mean(0),
        backward_ms: mean(1),
        optimizer_ms: mean(2),
        tokens_per_s: tps,
        best_tokens_per_s: (a.batch * a.shape.seq_len) as f64 / best_s,
        mfu: tps * cfg.flops_per_token(a.shape.seq_len) as f64 / peak,
        peak_flops: peak,
        peak_rss_mb: peak_rss_mb(),
        gpu_mem_used_mb: gpu_mem_used_mb(&dev),
        memory_estimate_mb: estimate / 1e6,
        heap_peak_mb: dev
            .is_cpu()
            .then(|| (crate::heap::peak() - heap_base) as f64 / 1e6),
        launches: launches.expect("at least one step"),
        last_loss,
    };
    println!("{}", serde_json::to_string(&r)?);
    Ok(ExitCode::SUCCESS)
}

/// The process's peak resident memory (VmHWM), in MB.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Device memory in use (total − free), in MB; `None` off CUDA.
fn gpu_mem_used_mb(dev: &Device) -> Option<f64> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(d) = dev {
        return d
            .cuda_stream()
            .context()
            .mem_get_info()
            .ok()
            .map(|(free, total)| (total - free) as f64 / 1e6);
    }
    let _ = dev;
    None
}
