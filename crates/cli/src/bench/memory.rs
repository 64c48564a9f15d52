//! `synthscale bench memory`: the memory model against the heap's measured peak, on the
//! CPU, for both graphs (fused f32 and composed bf16) at several shapes.

use std::process::ExitCode;

use candle_core::{DType, Device, Tensor};
use clap::Args;
use serde::Serialize;
use synthscale_model::{Decoder, Mode, ModelConfig};
use synthscale_train::config::{DeviceSpec, OptimConfig};
use synthscale_train::memory::{memory_model, Graph, MemoryModel};
use synthscale_train::optim::AdamW;

use super::shape::ShapeReport;
use crate::heap;
use crate::util::{success_if, BadInput};

#[derive(Args, Debug)]
pub struct BenchMemoryArgs {
    /// Shapes as d_model:layers:heads:vocab:seq_len:batch, comma-separated [default: three
    /// shapes where, in turn, the logits, the attention scores and the weights dominate].
    #[arg(long)]
    pub shapes: Option<String>,
    /// Largest accepted |measured / estimated − 1|; exit code 1 beyond it.
    #[arg(long, default_value_t = 0.2)]
    pub tolerance: f64,
}

const DEFAULT_SHAPES: &str = "128:2:4:4096:128:8,256:4:4:512:256:4,256:4:4:8192:64:8";

#[derive(Serialize)]
struct Case {
    bench: &'static str,
    graph: Graph,
    #[serde(flatten)]
    shape: ShapeReport,
    params: u64,
    /// The heap's peak over two training steps, counted allocations only (≥ 64 KiB).
    measured_mb: f64,
    estimated_mb: f64,
    /// What the forward pass left allocated (the graph's activations), measured.
    forward_kept_mb: f64,
    /// The model's `activations` plus its weight copies.
    forward_kept_estimated_mb: f64,
    /// measured / estimated.
    ratio: f64,
    within: bool,
    model: MemoryModel,
}

fn parse_shape(s: &str) -> anyhow::Result<(ModelConfig, usize, usize)> {
    let v: Vec<usize> = s
        .split(':')
        .map(|x| x.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| BadInput(format!("--shapes: {s:?}: {e}")))?;
    let [d, l, h, vocab, t, b] = v[..] else {
        return Err(BadInput(format!(
            "--shapes: {s:?} must be d_model:layers:heads:vocab:seq_len:batch"
        ))
        .into());
    };
    let mut cfg = ModelConfig::from_shape(d, l, h, vocab);
    cfg.max_seq_len = t;
    cfg.validate()
        .map_err(|e| BadInput(format!("--shapes: {s:?}: {e}")))?;
    Ok((cfg, t, b))
}

/// Peak heap bytes of two training steps (forward, backward, AdamW) of `cfg` at `dtype`,
/// and the bytes the second forward pass left allocated.
fn measure(cfg: &ModelConfig, t: usize, b: usize, dtype: DType) -> anyhow::Result<(f64, f64)> {
    let dev = Device::Cpu;
    let base = heap::reset_peak();
    let mut model = Decoder::new(cfg, 0, &dev)?;
    model.set_compute_dtype(dtype)?;
    let mut opt = AdamW::new(model.params(), &OptimConfig::default())?;
    let ids: Vec<u32> = (0..b * t)
        .map(|i| ((i * 7919) % cfg.vocab_size) as u32)
        .collect();
    let tgt: Vec<u32> = (0..b * t)
        .map(|i| ((i * 104_729 + 1) % cfg.vocab_size) as u32)
        .collect();
    let ids = Tensor::from_vec(ids, (b, t), &dev)?;
    let tgt = Tensor::from_vec(tgt, (b, t), &dev)?;
    let mut kept = 0;
    for _ in 0..2 {
        let before = heap::live();
        let loss = model.loss(&ids, &tgt, Mode::Train)?;
        kept = heap::live() - before;
        let g = model.gradients(&loss.backward()?)?;
        drop(loss);
        opt.step(model.params(), &g, 1e-3)?;
    }
    Ok(((heap::peak() - base) as f64, kept as f64))
}

pub fn run(a: &BenchMemoryArgs) -> anyhow::Result<ExitCode> {
    if !(a.tolerance.is_finite() && a.tolerance > 0.0) {
        return Err(BadInput(format!("--tolerance {}: must be > 0", a.tolerance)).into());
    }
    let shapes = a.shapes.as_deref().unwrap_or(DEFAULT_SHAPES);
    let mut ok = true;
    for s in shapes.split(',') {
        let (cfg, t, b) = parse_shape(s)?;
        for dtype in [DType::F32, DType::BF16] {
            let graph = Graph::for_dtype(&cfg, DeviceSpec::Cpu, dtype);
            let model = memory_model(&cfg, t, b, 1, graph, DeviceSpec::Cpu);
            let (measured, kept) = measure(&cfg, t, b, dtype)?;
            let ratio = measured / model.total;
            let within = (ratio - 1.0).abs() <= a.tolerance;
            ok &= within;
            let c = Case {
                bench: "memory",
                graph,
                shape: ShapeReport::new(&cfg, t, b),
                params: cfg.params(),
                measured_mb: measured / 1e6,
                estimated_mb: model.total / 1e6,
                forward_kept_mb: kept / 1e6,
                forward_kept_estimated_mb: (model.activations + model.weight_copies) / 1e6,
                ratio,
                within,
                model,
            };
            println!("{}", serde_json::to_string(&c)?);
        }
    }
    Ok(success_if(ok))
}
