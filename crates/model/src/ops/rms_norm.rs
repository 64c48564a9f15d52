//! RMSNorm over the last dimension, fused forward and backward: CPU in f32, CUDA in bf16
//! (`kernels/src/rms_norm.cu`, statistics and dw in f32).

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::cpu::{f32_slice, ROWS_PER_TASK};

/// RMSNorm over the last dimension: x / sqrt(mean(x²) + eps) · w.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op2(
        &w.contiguous()?,
        RmsNorm {
            eps: eps as f32,
            #[cfg(feature = "cuda")]
            rstd: std::sync::Mutex::new(None),
        },
    )
}

struct RmsNorm {
    eps: f32,
    /// On CUDA, the forward pass's 1/rms of each row (f32), for the backward pass.
    #[cfg(feature = "cuda")]
    rstd: std::sync::Mutex<Option<candle_core::cuda::cudarc::driver::CudaSlice<f32>>>,
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

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use super::cuda::{launch, storage, view};
        let dev = &s1.device;
        let d = *l1.shape().dims().last().unwrap_or(&0);
        let x = view::<half::bf16>(s1, l1, "rms_norm")?;
        let w = view::<half::bf16>(s2, l2, "rms_norm")?;
        if w.len() != d {
            candle_core::bail!("rms_norm: gain of {} for rows of {d}", w.len());
        }
        let rows = x.len() / d.max(1);
        let l = super::dispatch::rms_norm_fwd(rows, d)?;
        // SAFETY: the kernel writes every row of y and every rstd.
        let mut y = unsafe { dev.alloc::<half::bf16>(x.len())? };
        let mut rstd = unsafe { dev.alloc::<f32>(rows)? };
        launch!(dev, "rms_norm_fwd_bf16", l;
            &x, &w, &mut y, &mut rstd, &(rows as i32), &(d as i32), &self.eps);
        *self.rstd.lock().unwrap_or_else(|e| e.into_inner()) = Some(rstd);
        Ok((storage(y, dev), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        #[cfg(feature = "cuda")]
        if x.device().is_cuda() {
            let rstd = self.rstd.lock().unwrap_or_else(|e| e.into_inner()).take();
            let Some(rstd) = rstd else {
                candle_core::bail!("rms_norm: CUDA backward without a CUDA forward pass")
            };
            let (dx, dw) = cuda_bwd(x, w, &grad.contiguous()?, &rstd)?;
            return Ok((Some(dx), Some(dw.to_dtype(w.dtype())?)));
        }
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

/// The CUDA backward pass: dx `[rows, d]` bf16 and dw `[d]` f32, reduced over rows in a
/// fixed order (one partial row per block, then a column sum).
#[cfg(feature = "cuda")]
fn cuda_bwd(
    x: &Tensor,
    w: &Tensor,
    g: &Tensor,
    rstd: &candle_core::cuda::cudarc::driver::CudaSlice<f32>,
) -> Result<(Tensor, Tensor)> {
    use super::cuda::{launch, tensor, view};
    let d = *x.dims().last().unwrap_or(&0);
    let rows = x.elem_count() / d.max(1);
    let (xs, xl) = x.storage_and_layout();
    let (ws, wl) = w.storage_and_layout();
    let (gs, gl) = g.storage_and_layout();
    let (
        candle_core::Storage::Cuda(xs),
        candle_core::Storage::Cuda(ws),
        candle_core::Storage::Cuda(gs),
    ) = (&*xs, &*ws, &*gs)
    else {
        candle_core::bail!("rms_norm backward: x, w and the gradient must be on one CUDA device")
    };
    let dev = &xs.device;
    let (xv, wv, gv) = (
        view::<half::bf16>(xs, xl, "rms_norm backward")?,
        view::<half::bf16>(ws, wl, "rms_norm backward")?,
        view::<half::bf16>(gs, gl, "rms_norm backward")?,
    );
    if rstd.len() != rows {
        candle_core::bail!(
            "rms_norm backward: {} saved statistics for {rows} rows",
            rstd.len()
        );
    }
    let l = super::dispatch::rms_norm_bwd(rows, d)?;
    let parts = l.grid.0 as usize;
    // SAFETY: the kernels write every element of dx, of each block's partial row and of dw.
    let mut dx = unsafe { dev.alloc::<half::bf16>(rows * d)? };
    let mut partial = unsafe { dev.alloc::<f32>(parts * d)? };
    let mut dw = unsafe { dev.alloc::<f32>(d)? };
    launch!(dev, "rms_norm_bwd_bf16", l;
        &xv, &wv, &gv, rstd, &mut dx, &mut partial, &(rows as i32), &(d as i32));
    launch!(dev, "rms_norm_dw_reduce", super::dispatch::rms_norm_dw_reduce(d);
        &partial, &(parts as i32), &(d as i32), &mut dw);
    Ok((tensor(dx, dev, x.shape()), tensor(dw, dev, w.shape())))
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
}
