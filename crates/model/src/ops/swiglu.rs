//! SwiGLU, silu(gate) · up, fused forward and backward: CPU in f32, CUDA in bf16
//! (`kernels/src/swiglu.cu`).

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::cpu::f32_slice;

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
        let g = view::<half::bf16>(s1, l1, "swiglu")?;
        let u = view::<half::bf16>(s2, l2, "swiglu")?;
        if g.len() != u.len() {
            candle_core::bail!("swiglu: gate and up differ in size");
        }
        let n = g.len();
        // SAFETY: every element is written by the kernel below.
        let mut out = unsafe { dev.alloc::<half::bf16>(n)? };
        if let Some(l) = super::dispatch::elementwise(n) {
            launch!(dev, "swiglu_fwd_bf16", l; &g, &u, &mut out, &(n as u64));
        }
        Ok((storage(out, dev), l1.shape().clone()))
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
        use super::cuda::{launch, storage, view};
        let dev = &s1.device;
        let x = view::<half::bf16>(s1, l1, "swiglu backward")?;
        let u = view::<half::bf16>(s2, l2, "swiglu backward")?;
        let g = view::<half::bf16>(s3, l3, "swiglu backward")?;
        let n = x.len();
        // SAFETY: both halves are written by the kernel below.
        let mut out = unsafe { dev.alloc::<half::bf16>(2 * n)? };
        if let Some(l) = super::dispatch::elementwise(n) {
            let (mut dx, mut du) = out.split_at_mut(n);
            launch!(dev, "swiglu_bwd_bf16", l; &x, &u, &g, &mut dx, &mut du, &(n as u64));
        }
        Ok((storage(out, dev), Shape::from(2 * n)))
    }
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
}
