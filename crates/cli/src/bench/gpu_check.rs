//! `synthscale bench gpu-check`: a device against the CPU: the same model and batch, a few
//! AdamW steps, the losses and gradient norms compared within the dtype's tolerance.

use std::path::Path;
use std::process::ExitCode;

use candle_core::{DType, Device, Tensor};
use clap::Args;
use serde::Serialize;
use synthscale_model::{Decoder, Mode, ModelConfig};
use synthscale_train::config::OptimConfig;
use synthscale_train::optim::AdamW;
use synthscale_train::trainer::device_peak;

use super::device_args::{dtype_name, DeviceArgs};
use super::shape::{random_tokens, ShapeArgs};
use crate::util::success_if;

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
pub fn run(a: &GpuCheckArgs) -> anyhow::Result<ExitCode> {
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
    Ok(success_if(ok))
}
