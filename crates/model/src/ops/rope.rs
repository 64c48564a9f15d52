//! Rotary positions applied while moving `[b, t, h, hd]` to heads `[b, h, t, hd]`, with
//! the inverse rotation as its backward: CPU in f32, CUDA in bf16 with f32 tables
//! (`kernels/src/rope.cu`).

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::cpu::f32_slice;

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
        let (b, t, h, d) = l1.shape().dims4()?;
        let out = cuda_rope(
            "rope_to_heads_fwd_bf16",
            [s1, s2, s3],
            [l1, l2, l3],
            (b, t, h, d),
        )?;
        Ok((out, Shape::from((b, h, t, d))))
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
        let (b, h, t, d) = l1.shape().dims4()?;
        let out = cuda_rope(
            "rope_from_heads_bwd_bf16",
            [s1, s2, s3],
            [l1, l2, l3],
            (b, t, h, d),
        )?;
        Ok((out, Shape::from(self.shape.clone())))
    }
}

/// Either rope kernel: bf16 `src` (`[b, t, h, d]` forward, `[b, h, t, d]` backward) and f32
/// `cos`, `sin` `[≥ t, d/2]`, into a new bf16 buffer of the other layout.
#[cfg(feature = "cuda")]
fn cuda_rope(
    kernel: &str,
    [s1, s2, s3]: [&candle_core::CudaStorage; 3],
    [l1, l2, l3]: [&Layout; 3],
    (b, t, h, d): (usize, usize, usize, usize),
) -> Result<candle_core::CudaStorage> {
    use super::cuda::{launch, storage, view};
    let dev = &s1.device;
    let src = view::<half::bf16>(s1, l1, "rope")?;
    let cos = view::<f32>(s2, l2, "rope")?;
    let sin = view::<f32>(s3, l3, "rope")?;
    if d % 2 != 0 {
        candle_core::bail!("rope: head dimension {d} is odd");
    }
    if cos.len() < t * d / 2 || sin.len() < t * d / 2 {
        candle_core::bail!("rope: tables shorter than {t} positions");
    }
    let ints = [b, t, h, d].map(|v| v as i32);
    if [b, t, h, d].iter().any(|&v| v > i32::MAX as usize) {
        candle_core::bail!("rope: shape {:?} exceeds the kernel's int", (b, t, h, d));
    }
    // SAFETY: the kernel writes every element (one thread per rotated pair).
    let mut out = unsafe { dev.alloc::<half::bf16>(src.len())? };
    if let Some(l) = super::dispatch::elementwise(b * t * h * d / 2) {
        launch!(dev, kernel, l; &src, &cos, &sin, &mut out, &ints[0], &ints[1], &ints[2], &ints[3]);
    }
    Ok(storage(out, dev))
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
