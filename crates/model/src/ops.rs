//! Fused CPU ops with their own backward passes: cross-entropy, causal softmax and RMSNorm.
//!
//! Composed from elementwise candle ops, each of these allocates several full-size
//! intermediates forward and backward; fused, each is one pass over its input, split over
//! rows on rayon's threads in fixed chunks (so results do not depend on scheduling). The
//! composed versions in `decoder.rs` are their oracles (tests below) and what runs on
//! devices these ops have no kernel for.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

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

/// Mean cross-entropy of logits `[n, v]` (f32) against targets `[n]` (u32).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    logits
        .contiguous()?
        .apply_op2(&targets.contiguous()?, CrossEntropy)
}

struct CrossEntropy;

/// Per row: max and log-sum-exp.
fn row_lse(row: &[f32]) -> (f32, f32) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = row.iter().map(|&x| (x - max).exp()).sum();
    (max, sum.ln())
}

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "synthscale-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, v) = l1.shape().dims2()?;
        let x = f32_slice(s1, l1, "cross_entropy")?;
        let t = u32_slice(s2, l2, "cross_entropy")?;
        if t.len() != n {
            candle_core::bail!("cross_entropy: {n} rows but {} targets", t.len());
        }
        let partial: Vec<f64> = x
            .par_chunks(v * ROWS_PER_TASK)
            .zip(t.par_chunks(ROWS_PER_TASK))
            .map(|(rows, ts)| {
                rows.chunks_exact(v)
                    .zip(ts)
                    .map(|(row, &ti)| {
                        let (max, lse) = row_lse(row);
                        (max + lse - row[ti as usize]) as f64
                    })
                    .sum::<f64>()
            })
            .collect();
        let loss = (partial.iter().sum::<f64>() / n as f64) as f32;
        Ok((CpuStorage::F32(vec![loss]), Shape::from(())))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = logits.apply_op3_no_bwd(targets, grad, &CrossEntropyGrad)?;
        Ok((Some(g), None))
    }
}

/// d loss / d logits = g/n · (softmax(row) − onehot(target)).
struct CrossEntropyGrad;

impl CustomOp3 for CrossEntropyGrad {
    fn name(&self) -> &'static str {
        "synthscale-cross-entropy-grad"
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
        let (n, v) = l1.shape().dims2()?;
        let x = f32_slice(s1, l1, "cross_entropy backward")?;
        let t = u32_slice(s2, l2, "cross_entropy backward")?;
        let g = f32_slice(s3, l3, "cross_entropy backward")?[0] / n as f32;
        let mut out = vec![0f32; n * v];
        out.par_chunks_mut(v * ROWS_PER_TASK)
            .zip(x.par_chunks(v * ROWS_PER_TASK))
            .zip(t.par_chunks(ROWS_PER_TASK))
            .for_each(|((o, rows), ts)| {
                for ((orow, row), &ti) in o.chunks_exact_mut(v).zip(rows.chunks_exact(v)).zip(ts) {
                    let (max, lse) = row_lse(row);
                    let shift = max + lse;
                    for (oj, &xj) in orow.iter_mut().zip(row) {
                        *oj = (xj - shift).exp() * g;
                    }
                    orow[ti as usize] -= g;
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// softmax(scale · s) over the last dimension of `[.., t, t]` scores, with position j > i
/// of row i masked out (causal attention).
pub fn causal_softmax(scores: &Tensor, scale: f64) -> Result<Tensor> {
    scores.contiguous()?.apply_op1(CausalSoftmax {
        scale: scale as f32,
    })
}

struct CausalSoftmax {
    scale: f32,
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "synthscale-causal-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let dims = l.shape().dims();
        let t = *dims.last().unwrap_or(&0);
        if dims.len() < 2 || dims[dims.len() - 2] != t {
            candle_core::bail!("causal_softmax: scores must be [.., t, t], got {dims:?}");
        }
        let x = f32_slice(s, l, "causal_softmax")?;
        let mut out = vec![0f32; x.len()];
        let scale = self.scale;
        out.par_chunks_mut(t * t)
            .zip(x.par_chunks(t * t))
            .for_each(|(o, m)| {
                for i in 0..t {
                    let row = &m[i * t..i * t + i + 1];
                    let orow = &mut o[i * t..i * t + i + 1];
                    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) * scale;
                    let mut sum = 0f32;
                    for (oj, &xj) in orow.iter_mut().zip(row) {
                        *oj = (xj * scale - max).exp();
                        sum += *oj;
                    }
                    let inv = 1.0 / sum;
                    orow.iter_mut().for_each(|v| *v *= inv);
                }
            });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let g = res.apply_op2_no_bwd(
            &grad.contiguous()?,
            &CausalSoftmaxGrad { scale: self.scale },
        )?;
        Ok(Some(g))
    }
}

/// d/ds = scale · y ⊙ (g − Σ_j g_j·y_j), zero above the diagonal.
struct CausalSoftmaxGrad {
    scale: f32,
}

impl CustomOp2 for CausalSoftmaxGrad {
    fn name(&self) -> &'static str {
        "synthscale-causal-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let t = *l1.shape().dims().last().unwrap_or(&0);
        let y = f32_slice(s1, l1, "causal_softmax backward")?;
        let g = f32_slice(s2, l2, "causal_softmax backward")?;
        let mut out = vec![0f32; y.len()];
        let scale = self.scale;
        out.par_chunks_mut(t * t)
            .zip(y.par_chunks(t * t).zip(g.par_chunks(t * t)))
            .for_each(|(o, (ym, gm))| {
                for i in 0..t {
                    let yr = &ym[i * t..i * t + i + 1];
                    let gr = &gm[i * t..i * t + i + 1];
                    let dot: f32 = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
                    for ((oj, &yj), &gj) in o[i * t..i * t + i + 1].iter_mut().zip(yr).zip(gr) {
                        *oj = scale * yj * (gj - dot);
                    }
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
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
    fn cross_entropy_matches_log_softmax_and_gather() {
        let x = Var::from_tensor(&rand(&[130, 37], 1)).unwrap();
        let t = Tensor::from_vec(
            (0..130u32).map(|i| i * 7 % 37).collect::<Vec<_>>(),
            130,
            &Device::Cpu,
        )
        .unwrap();
        let fused = cross_entropy(x.as_tensor(), &t).unwrap();
        let reference = candle_nn::loss::cross_entropy(x.as_tensor(), &t).unwrap();
        assert!(max_diff(&fused, &reference) < 1e-5);
        let g1 = (fused * 3.0).unwrap().backward().unwrap();
        let g2 = (reference * 3.0).unwrap().backward().unwrap();
        assert!(
            max_diff(
                g1.get(x.as_tensor()).unwrap(),
                g2.get(x.as_tensor()).unwrap()
            ) < 1e-6
        );
    }

    #[test]
    fn causal_softmax_matches_masked_softmax() {
        let t = 19;
        let s = Var::from_tensor(&rand(&[2, 3, t, t], 2)).unwrap();
        let scale = 0.37;
        let fused = causal_softmax(s.as_tensor(), scale).unwrap();
        let mask: Vec<f32> = (0..t)
            .flat_map(|i| (0..t).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY }))
            .collect();
        let mask = Tensor::from_vec(mask, (t, t), &Device::Cpu).unwrap();
        let z = (s.as_tensor() * scale)
            .unwrap()
            .broadcast_add(&mask)
            .unwrap();
        let reference = candle_nn::ops::softmax(&z, D::Minus1).unwrap();
        assert!(max_diff(&fused, &reference) < 1e-6);
        let w = rand(&[2, 3, t, t], 3);
        let g1 = (fused * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (reference * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(
            max_diff(
                g1.get(s.as_tensor()).unwrap(),
                g2.get(s.as_tensor()).unwrap()
            ) < 1e-5
        );
    }

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
}
