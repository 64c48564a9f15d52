//! Causal attention. CPU (f32): one rayon task per (batch, head), probabilities kept for
//! the backward pass. CUDA (bf16): FlashAttention-2-style kernels (`kernels/src/attention.cu`)
//! that keep each row's log-sum-exp instead, never a `[t, t]` tensor.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::cpu::{cpu_f32, f32_slice, small_gemm};

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
            #[cfg(feature = "cuda")]
            lse: Mutex::new(None),
        },
    )
}

struct CausalAttention {
    scale: f32,
    /// The forward pass's probabilities, for the backward pass.
    probs: Mutex<Option<Arc<Vec<f32>>>>,
    /// On CUDA, the forward pass's log-sum-exp of each query row, `[b, h, t]` f32.
    #[cfg(feature = "cuda")]
    lse: Mutex<Option<candle_core::cuda::cudarc::driver::CudaSlice<f32>>>,
}

/// `[b, h, t, hd]` of `q`, whose shape `k` and `v` must share.
fn qkv_dims(q: &Layout, k: &Layout, v: &Layout) -> Result<(usize, usize, usize, usize)> {
    let dims = q.shape().dims4()?;
    if k.shape() != q.shape() || v.shape() != q.shape() {
        candle_core::bail!(
            "causal_attention: q {:?}, k {:?}, v {:?} must have one shape",
            q.shape(),
            k.shape(),
            v.shape()
        );
    }
    Ok(dims)
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
        let (b, h, t, hd) = qkv_dims(l1, l2, l3)?;
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

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use super::cuda::{aligned_bf16_view, launch, storage};
        let (b, h, t, hd) = qkv_dims(l1, l2, l3)?;
        let plan = super::dispatch::attention(b, h, t, hd)?;
        let dev = &s1.device;
        let q = aligned_bf16_view(s1, l1, "causal_attention")?;
        let k = aligned_bf16_view(s2, l2, "causal_attention")?;
        let v = aligned_bf16_view(s3, l3, "causal_attention")?;
        // SAFETY: the kernel writes every output row and every row's log-sum-exp.
        let mut o = unsafe { dev.alloc::<half::bf16>(b * h * t * hd)? };
        let mut lse = unsafe { dev.alloc::<f32>(b * h * t)? };
        launch!(dev, plan.forward, plan.fwd;
            &q, &k, &v, &mut o, &mut lse, &(h as i32), &(t as i32), &self.scale);
        *self.lse.lock().unwrap_or_else(|e| e.into_inner()) = Some(lse);
        Ok((storage(o, dev), Shape::from((b, t, h * hd))))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        #[cfg(feature = "cuda")]
        if q.device().is_cuda() {
            let lse = self.lse.lock().unwrap_or_else(|e| e.into_inner()).take();
            let Some(lse) = lse else {
                candle_core::bail!("causal_attention: CUDA backward without a CUDA forward pass")
            };
            let (dq, dk, dv) = cuda_bwd([q, k, v, _res, &grad.contiguous()?], &lse, self.scale)?;
            return Ok((Some(dq), Some(dk), Some(dv)));
        }
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

/// The CUDA backward pass of [`causal_attention`] for `q`, `k`, `v` `[b, h, t, hd]`, the
/// forward output `o` and its gradient `[b, t, h·hd]`, and the saved log-sum-exp: the
/// row terms D = rowsum(dO ⊙ O), then dK and dV per key block with dQ accumulated in f32,
/// then dQ rounded to bf16.
#[cfg(feature = "cuda")]
fn cuda_bwd(
    [q, k, v, o, g]: [&Tensor; 5],
    lse: &candle_core::cuda::cudarc::driver::CudaSlice<f32>,
    scale: f32,
) -> Result<(Tensor, Tensor, Tensor)> {
    use super::cuda::{aligned_bf16_view, launch, tensor};
    use candle_core::Storage;
    let (b, h, t, hd) = q.dims4()?;
    let plan = super::dispatch::attention(b, h, t, hd)?;
    let n = b * h * t * hd;
    let guards = [q, k, v, o, g].map(|x| x.storage_and_layout());
    let mut views = Vec::with_capacity(5);
    let mut dev = None;
    for (s, l) in &guards {
        let Storage::Cuda(c) = &**s else {
            candle_core::bail!("causal_attention backward: every input must be on the CUDA device")
        };
        views.push(aligned_bf16_view(c, l, "causal_attention backward")?);
        dev.get_or_insert_with(|| c.device.clone());
    }
    let dev = dev.expect("five storages");
    let [qv, kv, vv, ov, gv]: [_; 5] = views
        .try_into()
        .map_err(|_| candle_core::Error::Msg("causal_attention backward: five inputs".into()))?;
    if lse.len() != b * h * t {
        candle_core::bail!(
            "causal_attention backward: {} saved log-sum-exps for {} rows",
            lse.len(),
            b * h * t
        );
    }
    // SAFETY: preprocess writes every D and zeroes dq_accum; the backward kernel writes
    // every element of dk and dv; the conversion writes every element of dq.
    let mut d_rows = unsafe { dev.alloc::<f32>(b * h * t)? };
    let mut dq_accum = unsafe { dev.alloc::<f32>(n)? };
    let mut dk = unsafe { dev.alloc::<half::bf16>(n)? };
    let mut dv = unsafe { dev.alloc::<half::bf16>(n)? };
    let mut dq = unsafe { dev.alloc::<half::bf16>(n)? };
    let ints = [b, h, t, hd].map(|x| x as i32);
    launch!(&dev, "flash_attn_bwd_preprocess_bf16", plan.preprocess;
        &ov, &gv, &mut d_rows, &mut dq_accum, &ints[0], &ints[1], &ints[2], &ints[3]);
    launch!(&dev, plan.backward, plan.bwd;
        &qv, &kv, &vv, &gv, lse, &d_rows, &mut dq_accum, &mut dk, &mut dv,
        &ints[1], &ints[2], &scale);
    if let Some(l) = super::dispatch::elementwise(n) {
        launch!(&dev, "flash_attn_bwd_dq_convert", l; &dq_accum, &mut dq, &(n as u64));
    }
    let shape = q.shape();
    Ok((
        tensor(dq, &dev, shape),
        tensor(dk, &dev, shape),
        tensor(dv, &dev, shape),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{max_diff, rand};
    #[allow(unused_imports)]
    use candle_core::{Device, Var, D};

    // Oracle: the same function composed from candle's differentiable ops,
    // differentiated by candle's autograd.

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
}
