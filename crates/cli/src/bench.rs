//! `synthscale bench …`: throughput figures as one JSON line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;
use synthscale_data::source::for_each_document;
use synthscale_data::{prepare, DataDir, Mixture, MixtureSampler, PrepareOptions, SamplerConfig};

use candle_core::{DType, Device, Tensor};
use synthscale_model::{Decoder, Mode, ModelConfig};
use synthscale_train::config::{DeviceSpec, OptimConfig};
use synthscale_train::memory::{memory_model, Graph};
use synthscale_train::optim::AdamW;
use synthscale_train::trainer::{compute_dtype, device_peak, open_device};

use crate::manifest::LoadedManifest;
use crate::util::{parse_count, BadInput};

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Tokenization (MB/s, tokens/s, on all cores and on one), `data prepare` end to end,
    /// and the mixture sampler (tokens/s), on a manifest's sources.
    Data(BenchDataArgs),
    /// Training steps (forward, backward, AdamW) of a decoder of the given shape on random
    /// tokens: tokens/s, step time, MFU, peak memory.
    Train(BenchTrainArgs),
    /// The scaling-law fitter: Epoch AI's Chinchilla fit (240 points, 4500 L-BFGS starts),
    /// timed on all threads and on one.
    Fit(crate::bench_fit::BenchFitArgs),
    /// Generation: generated tokens/s of the batched decoder at each batch size, and of
    /// candle-transformers' quantized Llama at batch 1 (the peer).
    Synth(crate::bench_synth::BenchSynthArgs),
    /// Checks a device against the CPU: the same model and batch, a few AdamW steps, the
    /// losses compared within the compute dtype's tolerance. Exit code 1 when they differ.
    GpuCheck(GpuCheckArgs),
    /// The memory model against the measured peak of the heap, on the CPU, for the fused
    /// f32 graph and the composed bf16 graph (the oracle form; the CUDA kernels' graph runs
    /// on a GPU only) at several shapes; one JSON line per case, exit code 1 when one is off
    /// by more than the tolerance.
    Memory(crate::bench_memory::BenchMemoryArgs),
    /// Every fused op (embedding, RMSNorm, SwiGLU, rotary positions, attention at head
    /// dimensions 64 and 128, the classifier) on a device against its composed oracle in f32
    /// on the CPU, values and gradients: on CUDA the bf16 kernels, on the CPU the f32 ops.
    /// One JSON line per op; exit code 1 when one is outside its dtype's tolerance.
    Kernels(crate::bench_kernels::BenchKernelsArgs),
}

/// The device and compute dtype a bench runs on.
#[derive(Args, Debug, Clone)]
pub struct DeviceArgs {
    /// Device: cpu, or cuda (GPU 0 of CUDA_VISIBLE_DEVICES; needs a binary built with
    /// `--features cuda`).
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub device: DeviceSpec,
    /// Compute dtype of the forward pass (parameters and AdamW state stay f32)
    /// [default: f32 on cpu, bf16 on cuda, as training uses].
    #[arg(long, value_parser = parse_dtype)]
    pub dtype: Option<DType>,
}

impl DeviceArgs {
    pub(crate) fn open(&self) -> anyhow::Result<(Device, DType)> {
        let dev = open_device(self.device).map_err(|m| BadInput(format!("--device: {m}")))?;
        let dtype = self.dtype.unwrap_or(compute_dtype(self.device));
        Ok((dev, dtype))
    }
}

fn parse_device(s: &str) -> Result<DeviceSpec, String> {
    match s {
        "cpu" => Ok(DeviceSpec::Cpu),
        "cuda" => Ok(DeviceSpec::Cuda),
        _ => Err(format!("unknown device {s:?}: cpu or cuda")),
    }
}

fn parse_dtype(s: &str) -> Result<DType, String> {
    match s {
        "f32" => Ok(DType::F32),
        "bf16" => Ok(DType::BF16),
        _ => Err(format!("unknown dtype {s:?}: f32 or bf16")),
    }
}

pub(crate) fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::BF16 => "bf16",
        _ => "f32",
    }
}

#[derive(Args, Debug)]
pub struct BenchDataArgs {
    /// Manifest whose [data] sources and tokenizer are measured.
    #[arg(long, default_value = "experiments/quickstart.toml")]
    pub manifest: PathBuf,
    /// Tokens the sampler serves while timed.
    #[arg(long, default_value = "200M", value_parser = parse_count)]
    pub sampler_tokens: u64,
    /// Sampler batch size (sequences).
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Sampler sequence length [default: the manifest's data.seq_len].
    #[arg(long)]
    pub seq_len: Option<usize>,
}

#[derive(Serialize)]
struct DataBench {
    bench: &'static str,
    manifest: String,
    threads: usize,
    documents: u64,
    text_mb: f64,
    tokens: u64,
    tokenize_s: f64,
    tokenize_mb_per_s: f64,
    tokenize_tokens_per_s: f64,
    tokenize_1thread_tokens_per_s: f64,
    prepare_s: f64,
    prepare_mb_per_s: f64,
    sampler_batch: String,
    sampler_tokens: u64,
    sampler_s: f64,
    sampler_tokens_per_s: f64,
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Data(a) => bench_data(&a),
        BenchCommand::Train(a) => bench_train(&a),
        BenchCommand::Fit(a) => crate::bench_fit::run(&a),
        BenchCommand::Synth(a) => crate::bench_synth::run(&a),
        BenchCommand::GpuCheck(a) => gpu_check(&a),
        BenchCommand::Memory(a) => crate::bench_memory::run(&a),
        BenchCommand::Kernels(a) => crate::bench_kernels::run_cmd(&a),
    }
}

fn bench_data(a: &BenchDataArgs) -> anyhow::Result<ExitCode> {
    let m = LoadedManifest::load(&a.manifest)?;
    let cfg = &m.manifest.data;
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let out = scratch.path().join("data");

    // 1. `data prepare` end to end: read, decompress, parse, split, tokenize, write.
    let t = Instant::now();
    prepare(cfg, &m.path, &out, &PrepareOptions::default())?;
    let prepare_s = t.elapsed().as_secs_f64();
    let data = DataDir::open(&out)?;
    let tok = data.tokenizer()?;

    // 2. Tokenization alone, on text already in memory.
    let mut texts = Vec::new();
    for src in &cfg.sources {
        for_each_document(src, |d| {
            texts.push(d.text);
            Ok(())
        })?;
    }
    let bytes: u64 = texts.iter().map(|t| t.len() as u64).sum();
    let t = Instant::now();
    let ids = tok.encode_many(&texts)?;
    let tokenize_s = t.elapsed().as_secs_f64();
    let tokens: u64 = ids.iter().map(|v| v.len() as u64).sum();
    drop(ids);
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let sample = &texts[..texts.len().div_ceil(4)];
    let t = Instant::now();
    let sample_tokens: u64 = one
        .install(|| tok.encode_many(sample))?
        .iter()
        .map(|v| v.len() as u64)
        .sum();
    let one_s = t.elapsed().as_secs_f64();

    // 3. The sampler: equal weights over every source, streamed for `sampler_tokens`.
    let n = data.meta().sources.len() as f64;
    let mut mixture = Mixture {
        weights: data
            .meta()
            .sources
            .iter()
            .map(|s| (s.name.clone(), 1.0 / n))
            .collect(),
    };
    let drift: f64 = 1.0 - mixture.weights.iter().map(|w| w.1).sum::<f64>();
    mixture.weights[0].1 += drift;
    let seq_len = a.seq_len.unwrap_or(data.meta().seq_len);
    let scfg = SamplerConfig {
        seq_len,
        batch_size: a.batch_size,
        token_budget: a.sampler_tokens,
        seed: 0,
    };
    let sampler = MixtureSampler::new(&data, &mixture, scfg, Path::new("<bench>"))?;
    let t = Instant::now();
    let mut checksum = 0u64;
    for b in sampler.stream(0) {
        checksum = checksum.wrapping_add(b.inputs[b.inputs.len() - 1] as u64);
    }
    let sampler_s = t.elapsed().as_secs_f64();
    std::hint::black_box(checksum);

    let r = DataBench {
        bench: "data",
        manifest: m.path.display().to_string(),
        threads: rayon::current_num_threads(),
        documents: texts.len() as u64,
        text_mb: bytes as f64 / 1e6,
        tokens,
        tokenize_s,
        tokenize_mb_per_s: bytes as f64 / 1e6 / tokenize_s,
        tokenize_tokens_per_s: tokens as f64 / tokenize_s,
        tokenize_1thread_tokens_per_s: sample_tokens as f64 / one_s,
        prepare_s,
        prepare_mb_per_s: bytes as f64 / 1e6 / prepare_s,
        sampler_batch: format!("{}x{}", a.batch_size, seq_len),
        sampler_tokens: sampler.tokens(),
        sampler_s,
        sampler_tokens_per_s: sampler.tokens() as f64 / sampler_s,
    };
    println!("{}", serde_json::to_string(&r)?);
    Ok(ExitCode::SUCCESS)
}

/// `n` token ids below `vocab` from a xorshift64 stream with state `x`.
fn random_tokens(x: &mut u64, n: usize, vocab: usize) -> Vec<u32> {
    (0..n)
        .map(|_| {
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            (*x % vocab as u64) as u32
        })
        .collect()
}

/// The decoder shape a bench builds (defaults: the ~5M-parameter model of
/// REFERENCE.md §4, with SwiGLU).
#[derive(Args, Debug, Clone)]
pub struct ShapeArgs {
    #[arg(long, default_value_t = 256)]
    pub d_model: usize,
    #[arg(long, default_value_t = 4)]
    pub layers: usize,
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    #[arg(long, default_value_t = 8192)]
    pub vocab: usize,
    #[arg(long, default_value_t = 256)]
    pub seq_len: usize,
}

impl ShapeArgs {
    fn config(&self) -> anyhow::Result<ModelConfig> {
        let mut cfg = ModelConfig::from_shape(self.d_model, self.layers, self.heads, self.vocab);
        cfg.max_seq_len = self.seq_len;
        cfg.validate()?;
        Ok(cfg)
    }
}

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
    d_model: usize,
    layers: usize,
    heads: usize,
    vocab: usize,
    seq_len: usize,
    batch: usize,
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
pub fn bench_train(a: &BenchTrainArgs) -> anyhow::Result<ExitCode> {
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
        d_model: a.shape.d_model,
        layers: a.shape.layers,
        heads: a.shape.heads,
        vocab: a.shape.vocab,
        seq_len: a.shape.seq_len,
        batch: a.batch,
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

#[derive(Args, Debug)]
pub struct GpuCheckArgs {
    #[command(flatten)]
    pub shape: ShapeArgs,
    /// Sequences in the batch.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// AdamW steps on the batch; the loss before each is compared.
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Largest relative loss difference accepted [default: 1e-2 for bf16 (8 significant
    /// bits, rounding through a few layers), 1e-3 for f32 (reduction order only)].
    #[arg(long)]
    pub tolerance: Option<f64>,
    /// Run every op composed from candle's ops on the device (the oracle form) instead of
    /// the fused ops (on CUDA in bf16, the kernels of synthscale-kernels).
    #[arg(long)]
    pub composed: bool,
    #[command(flatten)]
    pub device: DeviceArgs,
}

#[derive(Serialize)]
struct GpuCheck {
    bench: &'static str,
    device: String,
    dtype: &'static str,
    /// The device's graph: "fused" (the fused ops where the device has them) or "composed".
    ops: &'static str,
    params: u64,
    /// Losses before each step: the CPU in f32 (the reference), and the device.
    cpu_f32_loss: Vec<f64>,
    device_loss: Vec<f64>,
    max_rel_diff: f64,
    tolerance: f64,
    /// Global gradient norms at each step, likewise.
    cpu_f32_grad_norm: Vec<f64>,
    device_grad_norm: Vec<f64>,
    max_rel_grad_norm_diff: f64,
    /// Twice the loss tolerance: a norm sums squares of every gradient, each rounded
    /// through the backward pass as well as the forward.
    grad_norm_tolerance: f64,
    ok: bool,
}

/// Losses and global gradient norms of each of `steps` AdamW steps on one batch, starting
/// from `weights`.
fn losses_on(
    cfg: &ModelConfig,
    weights: &std::collections::HashMap<String, Tensor>,
    dev: &Device,
    dtype: DType,
    batch: (&[u32], &[u32], usize, usize),
    steps: usize,
    composed: bool,
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let (inputs, targets, b, t) = batch;
    let moved = weights
        .iter()
        // A fresh copy: the optimizer updates its variables in place.
        .map(|(k, v)| Ok((k.clone(), v.to_device(dev)?.copy()?)))
        .collect::<candle_core::Result<_>>()?;
    let mut model = Decoder::from_tensors(cfg, moved, Path::new("<gpu-check>"))?;
    model.set_compute_dtype(dtype)?;
    model.set_composed_ops(composed);
    let mut opt = AdamW::new(model.params(), &OptimConfig::default())?;
    let ids = Tensor::from_slice(inputs, (b, t), dev)?;
    let tgt = Tensor::from_slice(targets, (b, t), dev)?;
    let (mut losses, mut norms) = (Vec::with_capacity(steps), Vec::with_capacity(steps));
    for _ in 0..steps {
        let loss = model.loss(&ids, &tgt, Mode::Train)?;
        let mut g = model.gradients(&loss.backward()?)?;
        // The trainer's step (on CUDA the device norm and multi-tensor update), unclipped.
        norms.push(opt.clip_and_step(model.params(), &mut g, 1e-3, 0.0, |_| Ok(()))?);
        losses.push(loss.to_scalar::<f32>()? as f64);
    }
    Ok((losses, norms))
}

/// The same model, weights and batch on the CPU in f32 and on the device in its dtype.
fn gpu_check(a: &GpuCheckArgs) -> anyhow::Result<ExitCode> {
    let cfg = a.shape.config()?;
    let (dev, dtype) = a.device.open()?;
    let weights = Decoder::new(&cfg, 0, &Device::Cpu)?.tensors();
    // Text-like targets: the next token of a repeating random sequence, so the loss falls
    // over the steps and a wrong backward pass shows.
    let period = random_tokens(&mut 0x9e37_79b9_7f4a_7c15u64, 97, a.shape.vocab);
    let n = a.batch * a.shape.seq_len;
    let stream: Vec<u32> = (0..n + 1).map(|i| period[(i * 31 + i / 97) % 97]).collect();
    let batch = (&stream[..n], &stream[1..], a.batch, a.shape.seq_len);
    let (cpu, cpu_norm) = losses_on(
        &cfg,
        &weights,
        &Device::Cpu,
        DType::F32,
        batch,
        a.steps,
        false,
    )?;
    let (other, other_norm) = losses_on(&cfg, &weights, &dev, dtype, batch, a.steps, a.composed)?;
    let max_rel = |a: &[f64], b: &[f64]| {
        a.iter()
            .zip(b)
            .map(|(c, o)| ((o - c) / c).abs())
            .fold(0.0, f64::max)
    };
    let max_rel_diff = max_rel(&cpu, &other);
    let max_rel_grad_norm_diff = max_rel(&cpu_norm, &other_norm);
    let tolerance = a
        .tolerance
        .unwrap_or(if dtype == DType::BF16 { 1e-2 } else { 1e-3 });
    let grad_norm_tolerance = 2.0 * tolerance;
    let ok = max_rel_diff <= tolerance
        && max_rel_grad_norm_diff <= grad_norm_tolerance
        && other.iter().chain(&other_norm).all(|l| l.is_finite());
    let r = GpuCheck {
        bench: "gpu-check",
        device: device_peak(&dev).0,
        dtype: dtype_name(dtype),
        ops: if a.composed { "composed" } else { "fused" },
        params: cfg.params(),
        cpu_f32_loss: cpu,
        device_loss: other,
        max_rel_diff,
        tolerance,
        cpu_f32_grad_norm: cpu_norm,
        device_grad_norm: other_norm,
        max_rel_grad_norm_diff,
        grad_norm_tolerance,
        ok,
    };
    println!("{}", serde_json::to_string(&r)?);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
