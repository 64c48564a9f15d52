//! The output head fused with its cross-entropy: logits turned into their gradient in
//! place, never entering the autograd graph: CPU in f32; CUDA in bf16 with cuBLAS for the
//! products and `kernels/src/cross_entropy.cu` for the loss (llm.c's fused classifier).

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::cpu::{all_threads, cpu_f32, f32_slice, gemm_f32, u32_slice, ROWS_PER_TASK};

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
            #[cfg(feature = "cuda")]
            dlogits_cuda: Mutex::new(None),
        },
    )
}

struct LinearCrossEntropy {
    /// d loss / d logits for an upstream gradient of 1, from the forward pass; taken (and
    /// freed) by the backward pass.
    dlogits: Mutex<Option<Vec<f32>>>,
    /// On CUDA: the same, bf16 `[n, v_padded]` (pad columns zero), and `v_padded`.
    #[cfg(feature = "cuda")]
    dlogits_cuda: Mutex<
        Option<(
            candle_core::cuda::cudarc::driver::CudaSlice<half::bf16>,
            usize,
        )>,
    >,
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

    /// Logits `h · wᵀ` by cuBLAS (bf16, f32 accumulation) into rows padded to a multiple
    /// of 128, then one kernel per row turns them into the loss and, in place, dlogits.
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
        use super::cuda::{aligned_bf16_view, launch, storage, view, WrapErr};
        use candle_core::backend::BackendStorage;
        use candle_core::cuda::cudarc::cublas::{sys::cublasOperation_t as Op, Gemm, GemmConfig};
        let (n, d) = l1.shape().dims2()?;
        let (v, d2) = l2.shape().dims2()?;
        if d != d2 {
            candle_core::bail!("linear_cross_entropy: h is [{n}, {d}] but w is [{v}, {d2}]");
        }
        let dev = &s1.device;
        let h = aligned_bf16_view(s1, l1, "linear_cross_entropy")?;
        let w = view::<half::bf16>(s2, l2, "linear_cross_entropy")?;
        let t = view::<u32>(s3, l3, "linear_cross_entropy")?;
        if t.len() != n {
            candle_core::bail!("linear_cross_entropy: {n} rows but {} targets", t.len());
        }
        // Targets are checked on the host: the kernel indexes the row with them.
        let ts = dev.clone_dtoh(&t)?;
        if let Some(&bad) = ts.iter().find(|&&ti| ti as usize >= v) {
            candle_core::bail!("linear_cross_entropy: target {bad} outside the vocabulary of {v}");
        }
        let (vp, plan) = super::dispatch::classifier(n, v)?;
        let mut logits = dev.alloc_zeros::<half::bf16>(n * vp)?;
        let cfg = GemmConfig {
            transa: Op::CUBLAS_OP_T,
            transb: Op::CUBLAS_OP_N,
            m: v as i32,
            n: n as i32,
            k: d as i32,
            alpha: half::bf16::ONE,
            lda: d as i32,
            ldb: d as i32,
            beta: half::bf16::ZERO,
            ldc: vp as i32,
        };
        // SAFETY: w is [v, d], h is [n, d] and logits [n, vp] (vp ≥ v), as cfg says.
        unsafe { dev.cublas_handle().gemm(cfg, &w, &h, &mut logits) }.w()?;
        // SAFETY: the kernel writes every row's loss.
        let mut losses = unsafe { dev.alloc::<f32>(n)? };
        launch!(dev, "cross_entropy_fwd_bwd_bf16", plan;
            &mut logits, &t, &mut losses, &(n as i32), &(v as i32), &(vp as i32), &0i32,
            &(n as i32));
        let sum = storage(losses, dev).reduce_op(
            candle_core::op::ReduceOp::Sum,
            &Layout::contiguous(n),
            &[0],
        )?;
        let mean = sum.affine(&Layout::contiguous(()), 1.0 / n as f64, 0.0)?;
        *self.dlogits_cuda.lock().unwrap_or_else(|e| e.into_inner()) = Some((logits, vp));
        Ok((mean, Shape::from(())))
    }

    fn bwd(
        &self,
        h: &Tensor,
        w: &Tensor,
        _targets: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        #[cfg(feature = "cuda")]
        if h.device().is_cuda() {
            let saved = self
                .dlogits_cuda
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            let Some((dlogits, vp)) = saved else {
                candle_core::bail!("linear_cross_entropy: a second backward pass through one loss")
            };
            let (dh, dw) = cuda_bwd(h, w, &dlogits, vp)?;
            let g = grad.to_dtype(dh.dtype())?;
            return Ok((
                Some(dh.broadcast_mul(&g)?),
                Some(dw.broadcast_mul(&g)?),
                None,
            ));
        }
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

/// The CUDA backward pass for an upstream gradient of 1: dh = dlogits · w `[n, d]` and
/// dw = dlogitsᵀ · h `[v, d]`, by cuBLAS over the first `v` of each row's `vp` columns.
#[cfg(feature = "cuda")]
fn cuda_bwd(
    h: &Tensor,
    w: &Tensor,
    dlogits: &candle_core::cuda::cudarc::driver::CudaSlice<half::bf16>,
    vp: usize,
) -> Result<(Tensor, Tensor)> {
    use super::cuda::{tensor, view, WrapErr};
    use candle_core::cuda::cudarc::cublas::{sys::cublasOperation_t as Op, Gemm, GemmConfig};
    use candle_core::Storage;
    let (n, d) = h.dims2()?;
    let v = w.dim(0)?;
    let (hs, hl) = h.storage_and_layout();
    let (ws, wl) = w.storage_and_layout();
    let (Storage::Cuda(hs), Storage::Cuda(ws)) = (&*hs, &*ws) else {
        candle_core::bail!("linear_cross_entropy backward: h and w must be on one CUDA device")
    };
    let dev = &hs.device;
    let hv = view::<half::bf16>(hs, hl, "linear_cross_entropy backward")?;
    let wv = view::<half::bf16>(ws, wl, "linear_cross_entropy backward")?;
    if dlogits.len() != n * vp {
        candle_core::bail!("linear_cross_entropy backward: saved dlogits do not match h");
    }
    let blas = dev.cublas_handle();
    // SAFETY: cuBLAS writes all of dh and dw (beta = 0).
    let mut dh = unsafe { dev.alloc::<half::bf16>(n * d)? };
    let mut dw = unsafe { dev.alloc::<half::bf16>(v * d)? };
    let gemm = |transb, m: usize, nn: usize, k: usize, ldb: usize| GemmConfig {
        transa: Op::CUBLAS_OP_N,
        transb,
        m: m as i32,
        n: nn as i32,
        k: k as i32,
        alpha: half::bf16::ONE,
        lda: d as i32,
        ldb: ldb as i32,
        beta: half::bf16::ZERO,
        ldc: d as i32,
    };
    // Column-major: dhᵀ [d, n] = wᵀ [d, v] · dlogitsᵀ [v, n].
    unsafe { blas.gemm(gemm(Op::CUBLAS_OP_N, d, n, v, vp), &wv, dlogits, &mut dh) }.w()?;
    // dwᵀ [d, v] = hᵀ [d, n] · dlogits [n, v].
    unsafe { blas.gemm(gemm(Op::CUBLAS_OP_T, d, v, n, vp), &hv, dlogits, &mut dw) }.w()?;
    Ok((tensor(dh, dev, (n, d)), tensor(dw, dev, (v, d))))
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
