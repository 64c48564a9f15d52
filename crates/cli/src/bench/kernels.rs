//! `synthscale bench kernels`: every fused op of `synthscale_model::ops` on a device against
//! its composed oracle, values and gradients.
//!
//! The oracle is the same function composed from candle's differentiable ops, in f32 on the
//! CPU, differentiated by candle's autograd, on the inputs the device sees (rounded to its
//! dtype first), so the difference measured is the op's own: on CUDA in bf16 the kernels of
//! `synthscale-kernels`, on the CPU in f32 the fused CPU ops. Errors are normalised maxima,
//! max |device − oracle| / max |oracle|, over each output and each input's gradient.

use std::process::ExitCode;

use anyhow::Context;
use candle_core::{DType, Device, Tensor, Var, D};
use clap::Args;
use serde::Serialize;
use synthscale_model::ops;

use super::device_args::{dtype_name, DeviceArgs};
use crate::util::{success_if, BadInput};

#[derive(Args, Debug)]
pub struct BenchKernelsArgs {
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// Normalised error accepted for outputs and for gradients, by dtype. bf16 keeps 8
/// significant bits (a rounding is relative 2⁻⁹ ≈ 2e-3): an output summed in f32 and rounded
/// once lands within a few roundings (1e-2); a gradient, rounded at each stage of the
/// backward pass, within 2e-2. f32 differs from the oracle by summation order only.
fn tolerances(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::BF16 => (1e-2, 2e-2),
        _ => (1e-4, 1e-4),
    }
}

#[derive(Serialize)]
struct KernelCheck {
    bench: &'static str,
    op: &'static str,
    device: String,
    dtype: &'static str,
    /// Input shapes, in argument order.
    shapes: Vec<Vec<usize>>,
    value_err: f64,
    /// One per differentiable input, in argument order.
    grad_err: Vec<f64>,
    value_tolerance: f64,
    grad_tolerance: f64,
    ok: bool,
}

/// How an input goes to the device.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// Activations and weights: rounded to the compute dtype, differentiated.
    Float,
    /// Rotary tables: f32 on every device, not differentiated.
    Table,
    /// Token ids (u32).
    Ids,
}

type OpFn = fn(&[Tensor]) -> candle_core::Result<Tensor>;

struct Case {
    op: &'static str,
    inputs: Vec<(Kind, Tensor)>,
    fused: OpFn,
    oracle: OpFn,
}

/// Deterministic values in [-1, 1) (a multiplicative hash of the index), scaled.
fn values(shape: &[usize], seed: u64, scale: f64) -> candle_core::Result<Tensor> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n as u64)
        .map(|i| {
            let h = (i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seed.wrapping_mul(0xbf58_476d);
            ((h >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0) as f32 * scale as f32
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
}

fn ids(n: usize, vocab: usize) -> candle_core::Result<Tensor> {
    // Repeats on purpose: the embedding's backward must add rows that share a word.
    let v: Vec<u32> = (0..n).map(|i| ((i * 37 + i / 5) % vocab) as u32).collect();
    Tensor::from_vec(v, n, &Device::Cpu)
}

fn rope_tables(t: usize, hd: usize) -> candle_core::Result<(Tensor, Tensor)> {
    let (mut c, mut s) = (Vec::new(), Vec::new());
    for p in 0..t {
        for i in 0..hd / 2 {
            let a = p as f64 / 10_000f64.powf(2.0 * i as f64 / hd as f64);
            c.push(a.cos() as f32);
            s.push(a.sin() as f32);
        }
    }
    Ok((
        Tensor::from_vec(c, (t, hd / 2), &Device::Cpu)?,
        Tensor::from_vec(s, (t, hd / 2), &Device::Cpu)?,
    ))
}

const EPS: f64 = 1e-5;

fn rms_norm_oracle(x: &[Tensor]) -> candle_core::Result<Tensor> {
    let inv = (x[0].sqr()?.mean_keepdim(D::Minus1)? + EPS)?
        .sqrt()?
        .recip()?;
    x[0].broadcast_mul(&inv)?.broadcast_mul(&x[1])
}

fn rope_oracle(x: &[Tensor]) -> candle_core::Result<Tensor> {
    let h = x[0].transpose(1, 2)?.contiguous()?; // [b, h, t, d]
    let d = h.dim(D::Minus1)?;
    let (x1, x2) = (
        h.narrow(D::Minus1, 0, d / 2)?,
        h.narrow(D::Minus1, d / 2, d / 2)?,
    );
    let (c, s) = (&x[1], &x[2]);
    let a = (x1.broadcast_mul(c)? - x2.broadcast_mul(s)?)?;
    let b = (x2.broadcast_mul(c)? + x1.broadcast_mul(s)?)?;
    Tensor::cat(&[a, b], D::Minus1)
}

fn attention_scale(x: &[Tensor]) -> candle_core::Result<f64> {
    Ok(1.0 / (x[0].dim(D::Minus1)? as f64).sqrt())
}

fn attention_fused(x: &[Tensor]) -> candle_core::Result<Tensor> {
    ops::causal_attention(&x[0], &x[1], &x[2], attention_scale(x)?)
}

fn attention_oracle(x: &[Tensor]) -> candle_core::Result<Tensor> {
    let (b, h, t, hd) = x[0].dims4()?;
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| (0..t).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY }))
        .collect();
    let mask = Tensor::from_vec(mask, (t, t), x[0].device())?;
    let z = (x[0].matmul(&x[1].t()?)? * attention_scale(x)?)?.broadcast_add(&mask)?;
    let e = z
        .broadcast_sub(&z.max_keepdim(D::Minus1)?.detach())?
        .exp()?;
    let p = e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?;
    p.matmul(&x[2])?.transpose(1, 2)?.reshape((b, t, h * hd))
}

fn cases() -> candle_core::Result<Vec<Case>> {
    use Kind::*;
    let (cos, sin) = rope_tables(96, 64)?;
    let attention = |b, h, t, hd, seed| -> candle_core::Result<Vec<(Kind, Tensor)>> {
        Ok(vec![
            (Float, values(&[b, h, t, hd], seed, 1.0)?),
            (Float, values(&[b, h, t, hd], seed + 1, 1.0)?),
            (Float, values(&[b, h, t, hd], seed + 2, 1.0)?),
        ])
    };
    Ok(vec![
        Case {
            op: "embedding",
            inputs: vec![
                (Float, values(&[1000, 256], 1, 1.0)?),
                (Ids, ids(512, 1000)?),
            ],
            fused: |x| ops::embedding(&x[0], &x[1]),
            oracle: |x| x[0].index_select(&x[1], 0),
        },
        Case {
            op: "rms_norm",
            inputs: vec![
                (Float, values(&[512, 768], 2, 2.0)?),
                (Float, (values(&[768], 3, 0.5)? + 1.0)?),
            ],
            fused: |x| ops::rms_norm(&x[0], &x[1], EPS),
            oracle: rms_norm_oracle,
        },
        Case {
            op: "swiglu",
            inputs: vec![
                (Float, values(&[512, 2048], 4, 3.0)?),
                (Float, values(&[512, 2048], 5, 1.0)?),
            ],
            fused: |x| ops::swiglu(&x[0], &x[1]),
            oracle: |x| x[0].silu()? * &x[1],
        },
        Case {
            op: "rope_to_heads",
            inputs: vec![
                (Float, values(&[2, 96, 4, 64], 6, 1.0)?),
                (Table, cos),
                (Table, sin),
            ],
            fused: |x| ops::rope_to_heads(&x[0], &x[1], &x[2]),
            oracle: rope_oracle,
        },
        // Sequence lengths that are not multiples of the 64-row tiles test the tails.
        Case {
            op: "causal_attention_hd64",
            inputs: attention(2, 4, 160, 64, 7)?,
            fused: attention_fused,
            oracle: attention_oracle,
        },
        Case {
            op: "causal_attention_hd128",
            inputs: attention(1, 2, 96, 128, 10)?,
            fused: attention_fused,
            oracle: attention_oracle,
        },
        // A vocabulary that is not a multiple of 128 tests the padded columns.
        Case {
            op: "linear_cross_entropy",
            inputs: vec![
                (Float, values(&[300, 256], 13, 1.0)?),
                (Float, values(&[1000, 256], 14, 0.2)?),
                (Ids, ids(300, 1000)?),
            ],
            fused: |x| ops::linear_cross_entropy(&x[0], &x[1], &x[2]),
            oracle: |x| candle_nn::loss::cross_entropy(&x[0].matmul(&x[1].t()?)?, &x[2]),
        },
    ])
}

/// The output and the gradient of each `Float` input of `f` on `inputs`, with the output
/// weighted by `k` (a scalar output is differentiated as it is); all returned in f32 on
/// the CPU.
fn run(f: OpFn, inputs: &[(Kind, Tensor)], k: &Tensor) -> anyhow::Result<(Tensor, Vec<Tensor>)> {
    let vars = inputs
        .iter()
        .map(|(kind, t)| {
            Ok(match kind {
                Kind::Float => Some(Var::from_tensor(t)?),
                _ => None,
            })
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    let args: Vec<Tensor> = inputs
        .iter()
        .zip(&vars)
        .map(|((_, t), v)| {
            v.as_ref()
                .map_or_else(|| t.clone(), |v| v.as_tensor().clone())
        })
        .collect();
    let out = f(&args)?;
    let loss = if out.rank() == 0 {
        out.clone()
    } else {
        (&out * k.to_dtype(out.dtype())?)?.sum_all()?
    };
    let grads = loss.backward()?;
    let g = vars
        .iter()
        .flatten()
        .map(|v| {
            let g = grads
                .get(v.as_tensor())
                .context("an input received no gradient")?;
            Ok(g.to_dtype(DType::F32)?.to_device(&Device::Cpu)?)
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((out.to_dtype(DType::F32)?.to_device(&Device::Cpu)?, g))
}

/// max |a − b| / max |b|.
fn normalised_err(a: &Tensor, b: &Tensor) -> anyhow::Result<f64> {
    let diff = (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()? as f64;
    let scale = b.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()? as f64;
    Ok(if scale > 0.0 { diff / scale } else { diff })
}

pub fn run_cmd(a: &BenchKernelsArgs) -> anyhow::Result<ExitCode> {
    let (dev, dtype) = a.device.open()?;
    let want = if dev.is_cuda() {
        DType::BF16
    } else {
        DType::F32
    };
    if dtype != want {
        return Err(BadInput(format!(
            "--dtype: the fused ops run in {} on {} (they have no {} form there)",
            dtype_name(want),
            if dev.is_cuda() { "cuda" } else { "cpu" },
            dtype_name(dtype),
        ))
        .into());
    }
    let (value_tolerance, grad_tolerance) = tolerances(dtype);
    let name = synthscale_train::trainer::device_peak(&dev).0;
    let mut all_ok = true;
    for (i, case) in cases()?.into_iter().enumerate() {
        // The oracle sees exactly what the device sees: inputs rounded to its dtype.
        let rounded = case
            .inputs
            .iter()
            .map(|(kind, t)| {
                Ok((
                    *kind,
                    match kind {
                        Kind::Float => t.to_dtype(dtype)?.to_dtype(DType::F32)?,
                        _ => t.clone(),
                    },
                ))
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let on_device = rounded
            .iter()
            .map(|(kind, t)| {
                let t = match kind {
                    Kind::Float => t.to_dtype(dtype)?,
                    _ => t.clone(),
                };
                Ok((*kind, t.to_device(&dev)?))
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let args: Vec<Tensor> = rounded.iter().map(|(_, t)| t.clone()).collect();
        let out_shape = (case.oracle)(&args)?.dims().to_vec();
        let k = values(&out_shape, 100 + i as u64, 1.0)?
            .to_dtype(dtype)?
            .to_dtype(DType::F32)?;
        let (want_out, want_g) = run(case.oracle, &rounded, &k)?;
        let (got_out, got_g) = run(case.fused, &on_device, &k.to_device(&dev)?)
            .with_context(|| format!("{} on {name}", case.op))?;
        let value_err = normalised_err(&got_out, &want_out)?;
        let grad_err = got_g
            .iter()
            .zip(&want_g)
            .map(|(g, w)| normalised_err(g, w))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let ok = value_err <= value_tolerance
            && grad_err.iter().all(|&e| e <= grad_tolerance)
            && value_err.is_finite()
            && grad_err.iter().all(|e| e.is_finite());
        all_ok &= ok;
        let r = KernelCheck {
            bench: "kernels",
            op: case.op,
            device: name.clone(),
            dtype: dtype_name(dtype),
            shapes: case.inputs.iter().map(|(_, t)| t.dims().to_vec()).collect(),
            value_err,
            grad_err,
            value_tolerance,
            grad_tolerance,
            ok,
        };
        println!("{}", serde_json::to_string(&r)?);
    }
    Ok(success_if(all_ok))
}
