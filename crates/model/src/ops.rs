//! Fused CPU ops with their own backward passes: the output head with its cross-entropy,
//! causal attention, RMSNorm, SwiGLU and rotary positions.
//!
//! Composed from elementwise candle ops, each of these allocates several full-size
//! intermediates forward and backward; fused, each is one pass over its input, split over
//! rows on rayon's threads in fixed chunks (so results do not depend on scheduling). The
//! composed versions in `decoder.rs` are their oracles (tests below) and what runs on
//! devices these ops have no kernel for.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// Rows per rayon task: large enough to amortise scheduling, fixed for determinism.
const ROWS_PER_TASK: usize = 64;

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("{what}: expected f32 input")
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("{what}: input must be contiguous"),
    }
}

fn u32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [u32]> {
    let CpuStorage::U32(v) = s else {
        candle_core::bail!("{what}: expected u32 targets")
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("{what}: targets must be contiguous"),
    }
}

/// RMSNorm over the last dimension: x / sqrt(mean(x²) + eps) · w.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2(&w.contiguous()?, RmsNorm { eps: eps as f32 })
}

struct RmsNorm {
    eps: f32,
}

fn inv_rms(row: &[f32], eps: f32) -> f32 {
    let ms = row.iter().map(|v| v * v).sum::<f32>() / row.len() as f32;
    1.0 / (ms + eps).sqrt()
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "synthscale-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = *l1.shape().dims().last().unwrap_or(&0);
        let x = f32_slice(s1, l1, "rms_norm")?;
        let w = f32_slice(s2, l2, "rms_norm")?;
        if w.len() != d {
            candle_core::bail!("rms_norm: gain of {} for rows of {d}", w.len());
        }
        let mut out = vec![0f32; x.len()];
        let eps = self.eps;
        out.par_chunks_mut(d * ROWS_PER_TASK)
            .zip(x.par_chunks(d * ROWS_PER_TASK))
            .for_each(|(o, rows)| {
                for (orow, row) in o.chunks_exact_mut(d).zip(rows.chunks_exact(d)) {
                    let r = inv_rms(row, eps);
                    for ((oj, &xj), &wj) in orow.iter_mut().zip(row).zip(w) {
                        *oj = xj * r * wj;
                    }
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let packed = x.apply_op3_no_bwd(w, &grad.contiguous()?, &RmsNormGrad { eps: self.eps })?;
        let n = x.elem_count();
        let dx = packed.narrow(0, 0, n)?.reshape(x.shape())?;
        let dw = packed.narrow(0, n, w.elem_count())?.reshape(w.shape())?;
        Ok((Some(dx), Some(dw)))
    }
}

/// Per row, with r = 1/rms(x) and gw = g ⊙ w:
/// dx = r·gw − x·r³·mean(gw ⊙ x); dw = Σ_rows g ⊙ x·r. Output: dx then dw, flattened.
struct RmsNormGrad {
    eps: f32,
}

impl CustomOp3 for RmsNormGrad {
    fn name(&self) -> &'static str {
        "synthscale-rms-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = *l1.shape().dims().last().unwrap_or(&0);
        let x = f32_slice(s1, l1, "rms_norm backward")?;
        let w = f32_slice(s2, l2, "rms_norm backward")?;
        let g = f32_slice(s3, l3, "rms_norm backward")?;
        let mut out = vec![0f32; x.len() + d];
        let eps = self.eps;
        let (dx, dw_out) = out.split_at_mut(x.len());
        let partial: Vec<Vec<f32>> = dx
            .par_chunks_mut(d * ROWS_PER_TASK)
            .zip(
                x.par_chunks(d * ROWS_PER_TASK)
                    .zip(g.par_chunks(d * ROWS_PER_TASK)),
            )
            .map(|(o, (xs, gs))| {
                let mut dw = vec![0f32; d];
                for ((orow, xr), gr) in o
                    .chunks_exact_mut(d)
                    .zip(xs.chunks_exact(d))
                    .zip(gs.chunks_exact(d))
                {
                    let r = inv_rms(xr, eps);
                    let mut dot = 0f32;
                    for j in 0..d {
                        dot += gr[j] * w[j] * xr[j];
                        dw[j] += gr[j] * xr[j] * r;
                    }
                    let c = r * r * r * dot / d as f32;
                    for j in 0..d {
                        orow[j] = r * gr[j] * w[j] - xr[j] * c;
                    }
                }
                dw
            })
            .collect();
        for p in partial {
            for (a, b) in dw_out.iter_mut().zip(p) {
                *a += b;
            }
        }
        Ok((CpuStorage::F32(out), Shape::from(x.len() + d)))
    }
}

/// SwiGLU's gate: silu(gate) ⊙ up, elementwise (Shazeer 2020).
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)
}

struct SwiGlu;

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "synthscale-swiglu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = f32_slice(s1, l1, "swiglu")?;
        let u = f32_slice(s2, l2, "swiglu")?;
        if g.len() != u.len() {
            candle_core::bail!("swiglu: gate and up differ in size");
        }
        let mut out = vec![0f32; g.len()];
        const CHUNK: usize = 1 << 14;
        out.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
            .for_each(|(o, (g, u))| {
                for ((o, &g), &u) in o.iter_mut().zip(g).zip(u) {
                    *o = g * sigmoid(g) * u;
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let packed = gate.apply_op3_no_bwd(up, &grad.contiguous()?, &SwiGluGrad)?;
        let n = gate.elem_count();
        let dg = packed.narrow(0, 0, n)?.reshape(gate.shape())?;
        let du = packed.narrow(0, n, n)?.reshape(up.shape())?;
        Ok((Some(dg), Some(du)))
    }
}

/// d/dgate = g ⊙ up ⊙ σ(x)(1 + x(1 − σ(x))), d/dup = g ⊙ silu(x); output both, flattened.
struct SwiGluGrad;

impl CustomOp3 for SwiGluGrad {
    fn name(&self) -> &'static str {
        "synthscale-swiglu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "swiglu backward")?;
        let u = f32_slice(s2, l2, "swiglu backward")?;
        let g = f32_slice(s3, l3, "swiglu backward")?;
        let n = x.len();
        let mut out = vec![0f32; 2 * n];
        let (dx, du) = out.split_at_mut(n);
        const CHUNK: usize = 1 << 14;
        dx.par_chunks_mut(CHUNK)
            .zip(du.par_chunks_mut(CHUNK))
            .zip(
                x.par_chunks(CHUNK)
                    .zip(u.par_chunks(CHUNK))
                    .zip(g.par_chunks(CHUNK)),
            )
            .for_each(|((dx, du), ((x, u), g))| {
                for i in 0..x.len() {
                    let s = sigmoid(x[i]);
                    dx[i] = g[i] * u[i] * s * (1.0 + x[i] * (1.0 - s));
                    du[i] = g[i] * x[i] * s;
                }
            });
        Ok((CpuStorage::F32(out), Shape::from(2 * n)))
    }
}

/// Rotary positions applied while moving heads forward: `x` `[b, t, h, d]` (a linear
/// layer's output, reshaped) → `[b, h, t, d]` rotated in the half-split layout, with
/// `cos`, `sin` `[t, d/2]`. Saves the transpose copy and the eight ops of the composed form.
pub fn rope_to_heads(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    x.contiguous()?
        .apply_op3(&cos.contiguous()?, &sin.contiguous()?, RopeToHeads)
}

struct RopeToHeads;

/// Rotates (or, with `inverse`, rotates back) one `[d]` vector at position `pos`.
fn rotate(src: &[f32], dst: &mut [f32], cos: &[f32], sin: &[f32], inverse: bool) {
    let h = src.len() / 2;
    let sgn = if inverse { -1.0 } else { 1.0 };
    for j in 0..h {
        let (a, b) = (src[j], src[j + h]);
        let (c, s) = (cos[j], sgn * sin[j]);
        dst[j] = a * c - b * s;
        dst[j + h] = b * c + a * s;
    }
}

impl CustomOp3 for RopeToHeads {
    fn name(&self) -> &'static str {
        "synthscale-rope-to-heads"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, t, h, d) = l1.shape().dims4()?;
        let x = f32_slice(s1, l1, "rope")?;
        let cos = f32_slice(s2, l2, "rope")?;
        let sin = f32_slice(s3, l3, "rope")?;
        if cos.len() < t * d / 2 || sin.len() < t * d / 2 {
            candle_core::bail!("rope: tables shorter than {t} positions");
        }
        let mut out = vec![0f32; x.len()];
        // One task per (batch, head): a [t, d] block of the output.
        out.par_chunks_mut(t * d).enumerate().for_each(|(bh, o)| {
            let (bi, hi) = (bh / h, bh % h);
            for p in 0..t {
                let src = &x[((bi * t + p) * h + hi) * d..][..d];
                let hd = d / 2;
                rotate(
                    src,
                    &mut o[p * d..(p + 1) * d],
                    &cos[p * hd..][..hd],
                    &sin[p * hd..][..hd],
                    false,
                );
            }
        });
        let _ = b;
        Ok((CpuStorage::F32(out), Shape::from((b, h, t, d))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = grad.contiguous()?.apply_op3_no_bwd(
            cos,
            sin,
            &RopeFromHeadsGrad {
                shape: x.dims().to_vec(),
            },
        )?;
        Ok((Some(g), None, None))
    }
}

/// The adjoint: `[b, h, t, d]` gradients rotated back and laid out as `[b, t, h, d]`.
struct RopeFromHeadsGrad {
    shape: Vec<usize>,
}

impl CustomOp3 for RopeFromHeadsGrad {
    fn name(&self) -> &'static str {
        "synthscale-rope-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, h, t, d) = l1.shape().dims4()?;
        let g = f32_slice(s1, l1, "rope backward")?;
        let cos = f32_slice(s2, l2, "rope backward")?;
        let sin = f32_slice(s3, l3, "rope backward")?;
        let mut out = vec![0f32; g.len()];
        let hd = d / 2;
        // One task per (batch, position): a [h, d] block of the output.
        out.par_chunks_mut(h * d).enumerate().for_each(|(bp, o)| {
            let (bi, p) = (bp / t, bp % t);
            for hi in 0..h {
                let src = &g[((bi * h + hi) * t + p) * d..][..d];
                rotate(
                    src,
                    &mut o[hi * d..(hi + 1) * d],
                    &cos[p * hd..][..hd],
                    &sin[p * hd..][..hd],
                    true,
                );
            }
        });
        let _ = b;
        Ok((CpuStorage::F32(out), Shape::from(self.shape.clone())))
    }
}

/// Mean cross-entropy of the logits `h · wᵀ` (`h` `[n, d]`, `w` `[v, d]`, f32) against
/// targets `[n]` (u32), without the logits entering the autograd graph.
///
/// Composed, the `[n, v]` logits (134 MB at 4,096 tokens × 8,192 words) are written by the
/// head's matmul, read by the loss, and in backward their gradient is written, added onto a
/// fresh zero tensor by candle's gradient accumulation and read twice by the matmul's
/// backward. Fused, the forward pass turns the logits into their gradient in place
/// (softmax − one-hot, over n) and the backward pass is the two products that use it.
pub fn linear_cross_entropy(h: &Tensor, w: &Tensor, targets: &Tensor) -> Result<Tensor> {
    h.contiguous()?.apply_op3(
        &w.contiguous()?,
        &targets.contiguous()?,
        LinearCrossEntropy {
            dlogits: Mutex::new(None),
        },
    )
}

struct LinearCrossEntropy {
    /// d loss / d logits for an upstream gradient of 1, from the forward pass; taken (and
    /// freed) by the backward pass.
    dlogits: Mutex<Option<Vec<f32>>>,
}

fn all_threads() -> gemm::Parallelism {
    gemm::Parallelism::Rayon(rayon::current_num_threads())
}

impl CustomOp3 for LinearCrossEntropy {
    fn name(&self) -> &'static str {
        "synthscale-linear-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, d) = l1.shape().dims2()?;
        let (v, d2) = l2.shape().dims2()?;
        if d != d2 {
            candle_core::bail!("linear_cross_entropy: h is [{n}, {d}] but w is [{v}, {d2}]");
        }
        let h = f32_slice(s1, l1, "linear_cross_entropy")?;
        let w = f32_slice(s2, l2, "linear_cross_entropy")?;
        let t = u32_slice(s3, l3, "linear_cross_entropy")?;
        if t.len() != n {
            candle_core::bail!("linear_cross_entropy: {n} rows but {} targets", t.len());
        }
        if let Some(&bad) = t.iter().find(|&&ti| ti as usize >= v) {
            candle_core::bail!("linear_cross_entropy: target {bad} outside the vocabulary of {v}");
        }
        let mut logits = vec![0f32; n * v];
        gemm_f32(
            n,
            v,
            d,
            &mut logits,
            h,
            (d, 1),
            w,
            (1, d),
            1.0,
            all_threads(),
        );
        let inv_n = 1.0 / n as f32;
        let partial: Vec<f64> = logits
            .par_chunks_mut(v * ROWS_PER_TASK)
            .zip(t.par_chunks(ROWS_PER_TASK))
            .map(|(rows, ts)| {
                let mut loss = 0f64;
                for (row, &ti) in rows.chunks_exact_mut(v).zip(ts) {
                    let target = row[ti as usize];
                    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let mut sum = 0f32;
                    for x in row.iter_mut() {
                        *x = (*x - max).exp();
                        sum += *x;
                    }
                    loss += (max + sum.ln() - target) as f64;
                    let scale = inv_n / sum;
                    row.iter_mut().for_each(|x| *x *= scale);
                    row[ti as usize] -= inv_n;
                }
                loss
            })
            .collect();
        let loss = (partial.iter().sum::<f64>() / n as f64) as f32;
        *self.dlogits.lock().unwrap_or_else(|e| e.into_inner()) = Some(logits);
        Ok((CpuStorage::F32(vec![loss]), Shape::from(())))
    }

    fn bwd(
        &self,
        h: &Tensor,
        w: &Tensor,
        _targets: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(dlogits) = self
            .dlogits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            candle_core::bail!("linear_cross_entropy: a second backward pass through one loss")
        };
        let g = grad.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>()?;
        let (n, d) = h.dims2()?;
        let v = w.dim(0)?;
        let (hs, hl) = h.storage_and_layout();
        let (ws, wl) = w.storage_and_layout();
        let ha = cpu_f32(&hs, hl, "linear_cross_entropy backward")?;
        let wa = cpu_f32(&ws, wl, "linear_cross_entropy backward")?;
        // dh = g · dlogits · w, dw = g · dlogitsᵀ · h
        let mut dh = vec![0f32; n * d];
        gemm_f32(
            n,
            d,
            v,
            &mut dh,
            &dlogits,
            (v, 1),
            wa,
            (d, 1),
            g,
            all_threads(),
        );
        let mut dw = vec![0f32; v * d];
        gemm_f32(
            v,
            d,
            n,
            &mut dw,
            &dlogits,
            (1, v),
            ha,
            (d, 1),
            g,
            all_threads(),
        );
        drop((hs, ws));
        Ok((
            Some(Tensor::from_vec(dh, (n, d), h.device())?),
            Some(Tensor::from_vec(dw, (v, d), w.device())?),
            None,
        ))
    }
}

/// Causal self-attention: softmax(scale · q kᵀ, masked above the diagonal) · v, for `q`,
/// `k`, `v` `[b, h, t, hd]` (f32), returned as `[b, t, h·hd]` (heads side by side, ready
/// for the output projection).
///
/// One rayon task per (batch, head) pair: composed from candle ops, the per-head products
/// run one after the other with each small matmul split over threads, where it gains
/// little; here the pairs are spread over the threads, each doing its products single-
/// threaded. The probabilities (`[b, h, t, t]`) are kept for the backward pass.
pub fn causal_attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Result<Tensor> {
    q.contiguous()?.apply_op3(
        &k.contiguous()?,
        &v.contiguous()?,
        CausalAttention {
            scale: scale as f32,
            probs: Mutex::new(None),
        },
    )
}

struct CausalAttention {
    scale: f32,
    /// The forward pass's probabilities, for the backward pass.
    probs: Mutex<Option<Arc<Vec<f32>>>>,
}

/// `dst[m × n] = lhs[m × k] · rhs[k × n]` with explicit row and column strides, single-threaded
/// (the caller parallelises over heads).
#[allow(clippy::too_many_arguments)]
fn small_gemm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    lhs: &[f32],
    lhs_strides: (usize, usize),
    rhs: &[f32],
    rhs_strides: (usize, usize),
) {
    gemm_f32(
        m,
        n,
        k,
        dst,
        lhs,
        lhs_strides,
        rhs,
        rhs_strides,
        1.0,
        gemm::Parallelism::None,
    )
}

/// `dst[m × n] = alpha · lhs[m × k] · rhs[k × n]` with explicit row and column strides.
#[allow(clippy::too_many_arguments)]
fn gemm_f32(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
    alpha: f32,
    parallelism: gemm::Parallelism,
) {
    assert!(dst.len() >= m * n);
    assert!(m == 0 || k == 0 || lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs);
    assert!(n == 0 || k == 0 || rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs);
    // SAFETY: the asserts above bound every index gemm reads or writes; dst is exclusively
    // borrowed and does not alias the inputs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            0.0,
            alpha,
            false,
            false,
            false,
            parallelism,
        )
    }
}

fn cpu_f32<'a>(s: &'a candle_core::Storage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    match s {
        candle_core::Storage::Cpu(c) => f32_slice(c, l, what),
        _ => candle_core::bail!("{what}: CPU tensors only"),
    }
}

impl CustomOp3 for CausalAttention {
    fn name(&self) -> &'static str {
        "synthscale-causal-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, h, t, hd) = l1.shape().dims4()?;
        if l2.shape() != l1.shape() || l3.shape() != l1.shape() {
            candle_core::bail!(
                "causal_attention: q {:?}, k {:?}, v {:?} must have one shape",
                l1.shape(),
                l2.shape(),
                l3.shape()
            );
        }
        let q = f32_slice(s1, l1, "causal_attention")?;
        let k = f32_slice(s2, l2, "causal_attention")?;
        let v = f32_slice(s3, l3, "causal_attention")?;
        let mut probs = vec![0f32; b * h * t * t];
        let mut heads = vec![0f32; b * h * t * hd];
        let scale = self.scale;
        probs
            .par_chunks_mut(t * t)
            .zip(heads.par_chunks_mut(t * hd))
            .enumerate()
            .for_each(|(bh, (p, o))| {
                let (qh, kh, vh) = (
                    &q[bh * t * hd..][..t * hd],
                    &k[bh * t * hd..][..t * hd],
                    &v[bh * t * hd..][..t * hd],
                );
                // Scores q·kᵀ (the upper triangle is computed and then ignored: one
                // rectangular product beats t row-sized ones).
                small_gemm(t, t, hd, p, qh, (hd, 1), kh, (1, hd));
                for i in 0..t {
                    let row = &mut p[i * t..(i + 1) * t];
                    let (keep, masked) = row.split_at_mut(i + 1);
                    let max = keep.iter().copied().fold(f32::NEG_INFINITY, f32::max) * scale;
                    let mut sum = 0f32;
                    for x in keep.iter_mut() {
                        *x = (*x * scale - max).exp();
                        sum += *x;
                    }
                    let inv = 1.0 / sum;
                    keep.iter_mut().for_each(|x| *x *= inv);
                    masked.iter_mut().for_each(|x| *x = 0.0);
                }
                small_gemm(t, hd, t, o, p, (t, 1), vh, (hd, 1));
            });
        // [b, h, t, hd] → [b, t, h·hd].
        let mut out = vec![0f32; heads.len()];
        out.par_chunks_mut(t * h * hd)
            .enumerate()
            .for_each(|(bi, ob)| {
                for hi in 0..h {
                    let src = &heads[(bi * h + hi) * t * hd..][..t * hd];
                    for p in 0..t {
                        ob[(p * h + hi) * hd..][..hd].copy_from_slice(&src[p * hd..][..hd]);
                    }
                }
            });
        *self.probs.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(probs));
        Ok((CpuStorage::F32(out), Shape::from((b, t, h * hd))))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let probs = self.probs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(probs) = probs else {
            candle_core::bail!("causal_attention: backward without a forward pass")
        };
        let (b, h, t, hd) = q.dims4()?;
        let grad = grad.contiguous()?;
        let (gs, gl) = grad.storage_and_layout();
        let (qs, ql) = q.storage_and_layout();
        let (ks, kl) = k.storage_and_layout();
        let (vs, vl) = v.storage_and_layout();
        let g = cpu_f32(&gs, gl, "causal_attention backward")?;
        let (qa, ka, va) = (
            cpu_f32(&qs, ql, "causal_attention backward")?,
            cpu_f32(&ks, kl, "causal_attention backward")?,
            cpu_f32(&vs, vl, "causal_attention backward")?,
        );
        let d = h * hd;
        let n = b * h * t * hd;
        let (mut dq, mut dk, mut dv) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
        let scale = self.scale;
        dq.par_chunks_mut(t * hd)
            .zip(dk.par_chunks_mut(t * hd))
            .zip(dv.par_chunks_mut(t * hd))
            .enumerate()
            .for_each_init(
                || vec![0f32; t * t],
                |ds, (bh, ((dqh, dkh), dvh))| {
                    let (bi, hi) = (bh / h, bh % h);
                    let p = &probs[bh * t * t..][..t * t];
                    let (qh, kh, vh) = (
                        &qa[bh * t * hd..][..t * hd],
                        &ka[bh * t * hd..][..t * hd],
                        &va[bh * t * hd..][..t * hd],
                    );
                    // This head's output gradient: rows of `grad` [b, t, h·hd], stride d.
                    let go = &g[bi * t * d + hi * hd..];
                    // dP = dO · vᵀ
                    small_gemm(t, t, hd, ds, go, (d, 1), vh, (1, hd));
                    // dS = scale · P ⊙ (dP − Σ_j P·dP), zero above the diagonal.
                    for i in 0..t {
                        let pr = &p[i * t..][..i + 1];
                        let row = &mut ds[i * t..(i + 1) * t];
                        let (keep, masked) = row.split_at_mut(i + 1);
                        let dot: f32 = pr.iter().zip(keep.iter()).map(|(a, b)| a * b).sum();
                        for (x, &pj) in keep.iter_mut().zip(pr) {
                            *x = scale * pj * (*x - dot);
                        }
                        masked.iter_mut().for_each(|x| *x = 0.0);
                    }
                    // dV = Pᵀ · dO, dQ = dS · k, dK = dSᵀ · q
                    small_gemm(t, hd, t, dvh, p, (1, t), go, (d, 1));
                    small_gemm(t, hd, t, dqh, ds, (t, 1), kh, (hd, 1));
                    small_gemm(t, hd, t, dkh, ds, (1, t), qh, (hd, 1));
                },
            );
        drop((gs, qs, ks, vs));
        let shape = (b, h, t, hd);
        let dev = q.device();
        Ok((
            Some(Tensor::from_vec(dq, shape, dev)?),
            Some(Tensor::from_vec(dk, shape, dev)?),
            Some(Tensor::from_vec(dv, shape, dev)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var, D};

    fn rand(shape: &[usize], seed: u32) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n as u32)
            .map(|i| {
                (((i.wrapping_mul(2654435761) ^ seed.wrapping_mul(40503)) % 2000) as f32 / 1000.0
                    - 1.0)
                    * 2.0
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    // Oracle for every test here: the same function composed from candle's differentiable
    // ops, differentiated by candle's autograd.

    #[test]
    fn rms_norm_matches_the_composed_form_in_value_and_gradients() {
        let x = Var::from_tensor(&rand(&[3, 70, 24], 4)).unwrap();
        let w = Var::from_tensor(&(rand(&[24], 5) + 1.5).unwrap()).unwrap();
        let fused = rms_norm(x.as_tensor(), w.as_tensor(), 1e-5).unwrap();
        let ms = x
            .as_tensor()
            .sqr()
            .unwrap()
            .mean_keepdim(D::Minus1)
            .unwrap();
        let inv = (ms + 1e-5).unwrap().sqrt().unwrap().recip().unwrap();
        let reference = x
            .as_tensor()
            .broadcast_mul(&inv)
            .unwrap()
            .broadcast_mul(w.as_tensor())
            .unwrap();
        assert!(max_diff(&fused, &reference) < 1e-5);
        let k = rand(&[3, 70, 24], 6);
        let g1 = (fused * &k).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (reference * &k)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for v in [&x, &w] {
            let d = max_diff(
                g1.get(v.as_tensor()).unwrap(),
                g2.get(v.as_tensor()).unwrap(),
            );
            assert!(d < 1e-4, "{d}");
        }
    }

    #[test]
    fn swiglu_matches_silu_times_up() {
        let g = Var::from_tensor(&rand(&[7, 300], 7)).unwrap();
        let u = Var::from_tensor(&rand(&[7, 300], 8)).unwrap();
        let fused = swiglu(g.as_tensor(), u.as_tensor()).unwrap();
        let reference = (g.as_tensor().silu().unwrap() * u.as_tensor()).unwrap();
        assert!(max_diff(&fused, &reference) < 1e-6);
        let k = rand(&[7, 300], 9);
        let g1 = (fused * &k).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (reference * &k)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for v in [&g, &u] {
            assert!(
                max_diff(
                    g1.get(v.as_tensor()).unwrap(),
                    g2.get(v.as_tensor()).unwrap()
                ) < 1e-5
            );
        }
    }

    #[test]
    fn rope_to_heads_matches_transpose_then_rotate() {
        let (b, t, h, d) = (2, 9, 3, 8);
        let x = Var::from_tensor(&rand(&[b, t, h, d], 10)).unwrap();
        let ang: Vec<f32> = (0..t * d / 2)
            .map(|i| (i / (d / 2)) as f32 * 0.3 / (1 + i % (d / 2)) as f32)
            .collect();
        let cos = Tensor::from_vec(
            ang.iter().map(|a| a.cos()).collect::<Vec<_>>(),
            (t, d / 2),
            &Device::Cpu,
        )
        .unwrap();
        let sin = Tensor::from_vec(
            ang.iter().map(|a| a.sin()).collect::<Vec<_>>(),
            (t, d / 2),
            &Device::Cpu,
        )
        .unwrap();
        let fused = rope_to_heads(x.as_tensor(), &cos, &sin).unwrap();
        let xt = x.as_tensor().transpose(1, 2).unwrap().contiguous().unwrap();
        let x1 = xt.narrow(D::Minus1, 0, d / 2).unwrap();
        let x2 = xt.narrow(D::Minus1, d / 2, d / 2).unwrap();
        let a = (x1.broadcast_mul(&cos).unwrap() - x2.broadcast_mul(&sin).unwrap()).unwrap();
        let bb = (x2.broadcast_mul(&cos).unwrap() + x1.broadcast_mul(&sin).unwrap()).unwrap();
        let reference = Tensor::cat(&[a, bb], D::Minus1).unwrap();
        assert_eq!(fused.dims(), reference.dims());
        assert!(max_diff(&fused, &reference) < 1e-6);
        let k = rand(&[b, h, t, d], 11);
        let g1 = (fused * &k).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (reference * &k)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(
            max_diff(
                g1.get(x.as_tensor()).unwrap(),
                g2.get(x.as_tensor()).unwrap()
            ) < 1e-5
        );
    }

    #[test]
    fn causal_attention_matches_matmul_softmax_matmul() {
        let (b, h, t, hd) = (2, 3, 17, 8);
        let q = Var::from_tensor(&(rand(&[b, h, t, hd], 11) * 0.5).unwrap()).unwrap();
        let k = Var::from_tensor(&(rand(&[b, h, t, hd], 12) * 0.5).unwrap()).unwrap();
        let v = Var::from_tensor(&rand(&[b, h, t, hd], 13)).unwrap();
        let scale = 1.0 / (hd as f64).sqrt();
        let fused = causal_attention(q.as_tensor(), k.as_tensor(), v.as_tensor(), scale).unwrap();
        let scores = q.as_tensor().matmul(&k.as_tensor().t().unwrap()).unwrap();
        let mask: Vec<f32> = (0..t)
            .flat_map(|i| (0..t).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY }))
            .collect();
        let mask = Tensor::from_vec(mask, (t, t), &Device::Cpu).unwrap();
        let z = (scores * scale).unwrap().broadcast_add(&mask).unwrap();
        let reference = candle_nn::ops::softmax(&z, D::Minus1)
            .unwrap()
            .matmul(v.as_tensor())
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .reshape((b, t, h * hd))
            .unwrap();
        assert!(max_diff(&fused, &reference) < 1e-5);
        let w = rand(&[b, t, h * hd], 14);
        let g1 = (fused * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (reference * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for x in [&q, &k, &v] {
            let (a, r) = (
                g1.get(x.as_tensor()).unwrap(),
                g2.get(x.as_tensor()).unwrap(),
            );
            assert!(max_diff(a, r) < 1e-4, "{}", max_diff(a, r));
            assert!(max_diff(r, &r.zeros_like().unwrap()) > 1e-2);
        }
    }

    #[test]
    fn linear_cross_entropy_matches_matmul_then_log_softmax() {
        let (n, d, v) = (70, 12, 37);
        let h = Var::from_tensor(&rand(&[n, d], 21)).unwrap();
        let w = Var::from_tensor(&(rand(&[v, d], 22) * 0.3).unwrap()).unwrap();
        let t = Tensor::from_vec(
            (0..n as u32).map(|i| i * 11 % v as u32).collect::<Vec<_>>(),
            n,
            &Device::Cpu,
        )
        .unwrap();
        let fused = linear_cross_entropy(h.as_tensor(), w.as_tensor(), &t).unwrap();
        let logits = h.as_tensor().matmul(&w.as_tensor().t().unwrap()).unwrap();
        let reference = candle_nn::loss::cross_entropy(&logits, &t).unwrap();
        assert!(max_diff(&fused, &reference) < 1e-5);
        let g1 = (fused * 3.0).unwrap().backward().unwrap();
        let g2 = (reference * 3.0).unwrap().backward().unwrap();
        for x in [&h, &w] {
            let (a, r) = (
                g1.get(x.as_tensor()).unwrap(),
                g2.get(x.as_tensor()).unwrap(),
            );
            assert!(max_diff(a, r) < 1e-5, "{}", max_diff(a, r));
            assert!(max_diff(r, &r.zeros_like().unwrap()) > 1e-3);
        }
    }
}
