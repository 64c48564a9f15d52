//! AdamW with fp32 moments whose state saves and loads (candle-nn's keeps moments in the
//! parameter dtype and cannot be checkpointed), and global gradient-norm clipping.
//!
//! [`AdamW::clip_and_step`] is the trainer's step: the global norm, clipping and the update.
//! On the CPU it runs [`global_norm`], [`clip`] and [`AdamW::step`]; on CUDA, with f32
//! masters, the kernels of `kernels/src/adamw.cu`: the norm in two launches, one read of it
//! to the host (the step's only synchronisation), and one multi-tensor launch that clips
//! and updates every parameter and both moments in place.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Tensor, Var};
use rayon::prelude::*;
use synthscale_model::decoder::{is_embedding, is_norm};

use crate::config::OptimConfig;
use crate::error::{Result, TrainError};

/// AdamW as PyTorch's `torch.optim.AdamW` computes it: decoupled decay `p ← p·(1 − lr·wd)`,
/// then `p ← p − lr/(1 − β1ᵗ) · m / (sqrt(v)/sqrt(1 − β2ᵗ) + eps)`.
#[derive(Debug)]
pub struct AdamW {
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    /// Per parameter: whether weight decay applies.
    decay: Vec<bool>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Updates taken so far.
    t: u64,
    /// Whether f32 CPU parameters take the one-pass update (the default; tests turn it off
    /// to compare against the composed tensor ops).
    fused: bool,
    /// Per parameter: whether this process keeps its moments and updates it (all, except
    /// in a data-parallel run's ZeRO-1 partition, [`AdamW::shard`]).
    owned: Vec<bool>,
}

impl AdamW {
    pub fn new(params: &[(String, Var)], cfg: &OptimConfig) -> Result<Self> {
        let zeros = |v: &Var| v.as_tensor().zeros_like()?.to_dtype(DType::F32);
        Ok(AdamW {
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: cfg.eps,
            weight_decay: cfg.weight_decay,
            decay: params
                .iter()
                .map(|(n, _)| {
                    (cfg.decay_norms || !is_norm(n)) && (cfg.decay_embeddings || !is_embedding(n))
                })
                .collect(),
            m: params
                .iter()
                .map(|(_, v)| zeros(v))
                .collect::<candle_core::Result<_>>()?,
            v: params
                .iter()
                .map(|(_, v)| zeros(v))
                .collect::<candle_core::Result<_>>()?,
            t: 0,
            fused: true,
            owned: vec![true; params.len()],
        })
    }

    /// Keeps the moments of the parameters this rank owns (`owned[i]`) and frees the rest:
    /// ZeRO-1, where [`AdamW::step`] updates only those and their owners share the new
    /// values (the `zero` module).
    pub fn shard(&mut self, owned: &[bool]) -> Result<()> {
        for (i, &own) in owned.iter().enumerate() {
            if !own {
                let dev = self.m[i].device().clone();
                self.m[i] = Tensor::zeros(0, DType::F32, &dev)?;
                self.v[i] = Tensor::zeros(0, DType::F32, &dev)?;
            }
        }
        self.owned = owned.to_vec();
        Ok(())
    }

    /// Whether this process updates parameter `i`.
    pub fn owns(&self, i: usize) -> bool {
        self.owned[i]
    }

    /// Parameter `i`'s moments (empty where another rank owns it).
    pub fn moments(&self, i: usize) -> (&Tensor, &Tensor) {
        (&self.m[i], &self.v[i])
    }

    /// Uses the composed tensor ops on every device (for tests of the fused update).
    pub fn composed(mut self) -> Self {
        self.fused = false;
        self
    }

    /// Updates taken so far.
    pub fn t(&self) -> u64 {
        self.t
    }

    /// Whether parameter `i` is decayed.
    pub fn decays(&self, i: usize) -> bool {
        self.decay[i]
    }

    /// One update with learning rate `lr`; `grads[i]` belongs to `params[i]`.
    pub fn step(&mut self, params: &[(String, Var)], grads: &[Tensor], lr: f64) -> Result<()> {
        self.t += 1;
        let bc1 = 1.0 - self.beta1.powi(self.t as i32);
        let bc2 = 1.0 - self.beta2.powi(self.t as i32);
        for (i, ((_, p), g)) in params.iter().zip(grads).enumerate() {
            if !self.owned[i] {
                continue;
            }
            if self.fused && self.step_cpu_f32(i, p, g, lr, (bc1, bc2))? {
                continue;
            }
            let g = g.to_dtype(DType::F32)?;
            let m = ((&self.m[i] * self.beta1)? + (&g * (1.0 - self.beta1))?)?;
            let v = ((&self.v[i] * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let mut w = p.as_tensor().to_dtype(DType::F32)?;
            if self.decay[i] && self.weight_decay > 0.0 {
                w = (w * (1.0 - lr * self.weight_decay))?;
            }
            let denom = ((v.sqrt()? / bc2.sqrt())? + self.eps)?;
            let w = (w - (m.div(&denom)? * (lr / bc1))?)?;
            p.set(&w.to_dtype(p.dtype())?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// The global norm of `grads`, handed to `check` (which may refuse it, before anything is
    /// updated), then the update with the gradients clipped to `max_norm` (≤ 0: no clipping).
    /// Returns the norm before clipping.
    pub fn clip_and_step(
        &mut self,
        params: &[(String, Var)],
        grads: &mut [Tensor],
        lr: f64,
        max_norm: f64,
        check: impl FnOnce(f64) -> Result<()>,
    ) -> Result<f64> {
        #[cfg(feature = "cuda")]
        if self.fused && on_cuda_f32(params) && self.owned.iter().all(|&o| o) {
            return self.clip_and_step_cuda(params, grads, (lr, max_norm), check);
        }
        let norm = global_norm(grads)?;
        check(norm)?;
        clip(grads, norm, max_norm)?;
        self.step(params, grads, lr)?;
        Ok(norm)
    }

    /// [`AdamW::clip_and_step`] on CUDA: `global_norm_sq_partial` and `global_norm_finalize`,
    /// the norm read once, then `adamw_multi_tensor` over every tensor, clipping with the
    /// device's norm as `clip` does.
    #[cfg(feature = "cuda")]
    fn clip_and_step_cuda(
        &mut self,
        params: &[(String, Var)],
        grads: &mut [Tensor],
        (lr, max_norm): (f64, f64),
        check: impl FnOnce(f64) -> Result<()>,
    ) -> Result<f64> {
        use candle_core::cuda::cudarc::driver::{DevicePtr, LaunchConfig, PushKernelArg};
        use candle_core::cuda::{CudaStorageSlice, WrapErr};
        use candle_core::Storage;

        let n = params.len();
        let Storage::Cuda(first) = &*params[0].1.as_tensor().storage_and_layout().0 else {
            unreachable!("on_cuda_f32 checked the device")
        };
        let dev = first.device.clone();
        let stream = dev.cuda_stream();
        for g in grads.iter_mut() {
            if !g.is_contiguous() {
                *g = g.contiguous()?;
            }
        }
        // Device addresses: start of each tensor's elements, by its layout's offset.
        let address = |t: &Tensor| -> Result<(u64, u32)> {
            let (s, l) = t.storage_and_layout();
            let Storage::Cuda(c) = &*s else {
                return Err(
                    candle_core::Error::Msg("AdamW: a tensor is not on CUDA".into()).into(),
                );
            };
            let o = l.start_offset() as u64;
            Ok(match &c.slice {
                CudaStorageSlice::F32(x) => (x.device_ptr(&stream).0 + 4 * o, 1),
                CudaStorageSlice::BF16(x) => (x.device_ptr(&stream).0 + 2 * o, 0),
                _ => {
                    return Err(candle_core::Error::Msg(
                        "AdamW: gradients and state are f32 or bf16".into(),
                    )
                    .into())
                }
            })
        };
        let (mut p_ptr, mut g_ptr, mut m_ptr, mut v_ptr) = (vec![], vec![], vec![], vec![]);
        let (mut sizes, mut flags) = (vec![], vec![]);
        for (i, ((_, p), g)) in params.iter().zip(grads.iter()).enumerate() {
            if g.dims() != p.dims() {
                return Err(candle_core::Error::Msg(format!(
                    "AdamW: gradient {:?} for parameter {:?}",
                    g.dims(),
                    p.dims()
                ))
                .into());
            }
            let (gp, g_f32) = address(g)?;
            p_ptr.push(address(p.as_tensor())?.0);
            m_ptr.push(address(&self.m[i])?.0);
            v_ptr.push(address(&self.v[i])?.0);
            g_ptr.push(gp);
            sizes.push(p.elem_count() as u64);
            flags.push(u32::from(self.decay[i]) | (g_f32 << 1));
        }
        let largest = sizes.iter().copied().max().unwrap_or(0) as usize;
        let grids = device_step_grids(n, largest)?;
        let up = |v: &Vec<u64>| dev.clone_htod(v);
        let (p_d, g_d, m_d, v_d, s_d) = (
            up(&p_ptr)?,
            up(&g_ptr)?,
            up(&m_ptr)?,
            up(&v_ptr)?,
            up(&sizes)?,
        );
        let f_d = dev.clone_htod(&flags)?;
        // A null pointer per tensor: no bf16 copies are written (the decoder casts its own).
        let none_d = dev.alloc_zeros::<u64>(n)?;
        let func = |name: &str| {
            dev.get_or_load_custom_func(name, "synthscale_adamw", synthscale_kernels::ADAMW)
                .map(|f| f.into_cuda_function())
        };
        let cfg = |(x, y): (u32, u32), block: u32| LaunchConfig {
            grid_dim: (x, y, 1),
            block_dim: (block, 1, 1),
            shared_mem_bytes: 0,
        };
        let n_partials = grids.norm.0 as usize * n;
        // SAFETY: every partial is written by stage 1 and the norm by stage 2.
        let mut partials = unsafe { dev.alloc::<f32>(n_partials)? };
        let mut norm_d = unsafe { dev.alloc::<f32>(1)? };
        let n_i32 = n as i32;
        let f = func("global_norm_sq_partial")?;
        let mut b = stream.launch_builder(&f);
        b.arg(&g_d)
            .arg(&s_d)
            .arg(&f_d)
            .arg(&n_i32)
            .arg(&mut partials);
        // SAFETY: arguments as adamw.cu documents them; pointers into live tensors.
        unsafe { b.launch(cfg(grids.norm, DEVICE_STEP_BLOCK)) }.w()?;
        let f = func("global_norm_finalize")?;
        let np_i32 = n_partials as i32;
        let mut b = stream.launch_builder(&f);
        b.arg(&partials).arg(&np_i32).arg(&mut norm_d);
        unsafe { b.launch(cfg((1, 1), 1024)) }.w()?;
        let norm = dev.clone_dtoh(&norm_d)?[0] as f64;
        check(norm)?;
        self.t += 1;
        let step = i32::try_from(self.t)
            .map_err(|_| candle_core::Error::Msg(format!("AdamW: step {} too large", self.t)))?;
        let f = func("adamw_multi_tensor")?;
        let mut b = stream.launch_builder(&f);
        b.arg(&p_d)
            .arg(&g_d)
            .arg(&m_d)
            .arg(&v_d)
            .arg(&none_d)
            .arg(&s_d)
            .arg(&f_d)
            .arg(&n_i32)
            .arg(&norm_d)
            .arg(&max_norm)
            .arg(&lr)
            .arg(&self.beta1)
            .arg(&self.beta2)
            .arg(&self.eps)
            .arg(&self.weight_decay)
            .arg(&step);
        // SAFETY: as above; params, m and v are updated in place, each by its own threads.
        unsafe { b.launch(cfg(grids.update, DEVICE_STEP_BLOCK)) }.w()?;
        Ok(norm)
    }

    /// The same update as [`AdamW::step`]'s tensor ops for one f32 parameter on the CPU,
    /// in one pass over its values (the composed form makes about ten passes, each with a
    /// fresh buffer). Returns false, doing nothing, for any other dtype or device.
    fn step_cpu_f32(
        &mut self,
        i: usize,
        p: &Var,
        g: &Tensor,
        lr: f64,
        (bc1, bc2): (f64, f64),
    ) -> Result<bool> {
        let (pt, mt, vt) = (p.as_tensor(), &self.m[i], &self.v[i]);
        if !pt.device().is_cpu() || [pt.dtype(), g.dtype()] != [DType::F32, DType::F32] {
            return Ok(false);
        }
        let (ps, pl) = pt.storage_and_layout();
        let (gs, gl) = g.storage_and_layout();
        let (ms, ml) = mt.storage_and_layout();
        let (vs, vl) = vt.storage_and_layout();
        let (Some(w), Some(g0), Some(m0), Some(v0)) = (
            f32_values(&ps, pl),
            f32_values(&gs, gl),
            f32_values(&ms, ml),
            f32_values(&vs, vl),
        ) else {
            return Ok(false);
        };
        let n = w.len();
        let (mut m, mut v, mut w_new) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
        // The constants as the tensor path rounds them (f64 scalars applied in f32).
        let (b1, b2) = (self.beta1 as f32, self.beta2 as f32);
        let (c1, c2) = ((1.0 - self.beta1) as f32, (1.0 - self.beta2) as f32);
        let decay = (self.decay[i] && self.weight_decay > 0.0)
            .then_some((1.0 - lr * self.weight_decay) as f32);
        // `x / c` on a tensor is `x · (1/c)` in candle; the same here, so both paths agree
        // to the bit.
        let (inv_sbc2, eps, step) = (
            (1.0 / bc2.sqrt()) as f32,
            self.eps as f32,
            (lr / bc1) as f32,
        );
        const CHUNK: usize = 1 << 14;
        m.par_chunks_mut(CHUNK)
            .zip(v.par_chunks_mut(CHUNK))
            .zip(w_new.par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(|(c, ((mc, vc), wc))| {
                let o = c * CHUNK;
                for j in 0..mc.len() {
                    let gj = g0[o + j];
                    let mj = m0[o + j] * b1 + gj * c1;
                    let vj = v0[o + j] * b2 + (gj * gj) * c2;
                    let wj = match decay {
                        Some(f) => w[o + j] * f,
                        None => w[o + j],
                    };
                    let denom = vj.sqrt() * inv_sbc2 + eps;
                    mc[j] = mj;
                    vc[j] = vj;
                    wc[j] = wj - (mj / denom) * step;
                }
            });
        let dims = pt.dims().to_vec();
        let dev = pt.device().clone();
        drop((ps, gs, ms, vs));
        p.set(&Tensor::from_vec(w_new, dims.as_slice(), &dev)?)?;
        self.m[i] = Tensor::from_vec(m, dims.as_slice(), &dev)?;
        self.v[i] = Tensor::from_vec(v, dims.as_slice(), &dev)?;
        Ok(true)
    }

    /// The state as named tensors: `m.<param>`, `v.<param>` (of the parameters this
    /// process owns).
    pub fn state(&self, params: &[(String, Var)]) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, (name, _)) in params.iter().enumerate() {
            if !self.owned[i] {
                continue;
            }
            out.insert(format!("m.{name}"), self.m[i].clone());
            out.insert(format!("v.{name}"), self.v[i].clone());
        }
        out
    }

    /// Restores moments and the update count saved by [`AdamW::state`].
    pub fn load(
        params: &[(String, Var)],
        cfg: &OptimConfig,
        mut state: HashMap<String, Tensor>,
        t: u64,
        origin: &Path,
    ) -> Result<Self> {
        let mut opt = AdamW::new(params, cfg)?;
        for (i, (name, p)) in params.iter().enumerate() {
            for (key, slot) in [("m", &mut opt.m[i]), ("v", &mut opt.v[i])] {
                let t = state.remove(&format!("{key}.{name}")).ok_or_else(|| {
                    TrainError::Checkpoint {
                        path: origin.to_path_buf(),
                        message: format!("optimizer state has no {key}.{name}"),
                    }
                })?;
                if t.dims() != p.dims() || t.dtype() != DType::F32 {
                    return Err(TrainError::Checkpoint {
                        path: origin.to_path_buf(),
                        message: format!("{key}.{name} has shape {:?} {:?}", t.dims(), t.dtype()),
                    });
                }
                *slot = t;
            }
        }
        opt.t = t;
        Ok(opt)
    }
}

/// Threads per block of the optimizer's kernels.
pub const DEVICE_STEP_BLOCK: u32 = 256;
/// Stage-1 blocks per tensor of the norm (each sums a strided share).
pub const NORM_BLOCKS_PER_TENSOR: u32 = 64;
/// At most this many blocks per tensor in the update (larger tensors loop).
pub const UPDATE_MAX_BLOCKS_PER_TENSOR: u32 = 4096;

/// Grids (x, y) of the CUDA step's kernels: the norm's first stage and the update, one
/// row of blocks per tensor (y).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceStepGrids {
    pub norm: (u32, u32),
    pub update: (u32, u32),
}

/// The grids of `global_norm_sq_partial` and `adamw_multi_tensor` for `n_tensors` tensors
/// whose largest holds `largest` values (kernels/src/adamw.cu documents both).
pub fn device_step_grids(n_tensors: usize, largest: usize) -> Result<DeviceStepGrids> {
    if n_tensors == 0 || n_tensors > 65_535 {
        return Err(candle_core::Error::Msg(format!(
            "AdamW: {n_tensors} parameter tensors; the update takes 1 to 65,535"
        ))
        .into());
    }
    let y = n_tensors as u32;
    let x = largest
        .div_ceil(DEVICE_STEP_BLOCK as usize)
        .clamp(1, UPDATE_MAX_BLOCKS_PER_TENSOR as usize) as u32;
    Ok(DeviceStepGrids {
        norm: (NORM_BLOCKS_PER_TENSOR, y),
        update: (x, y),
    })
}

/// Whether every parameter is an f32 tensor on a CUDA device (the device step's input).
#[cfg(feature = "cuda")]
fn on_cuda_f32(params: &[(String, Var)]) -> bool {
    !params.is_empty()
        && params
            .iter()
            .all(|(_, p)| p.device().is_cuda() && p.dtype() == DType::F32)
}

/// The values of a contiguous f32 CPU storage.
fn f32_values<'a>(s: &'a candle_core::Storage, l: &candle_core::Layout) -> Option<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (candle_core::Storage::Cpu(candle_core::CpuStorage::F32(v)), Some((a, b))) => {
            Some(&v[a..b])
        }
        _ => None,
    }
}

/// The global L2 norm of all gradients, in f64.
pub fn global_norm(grads: &[Tensor]) -> Result<f64> {
    let mut sum = 0.0f64;
    for g in grads {
        sum += g
            .to_dtype(DType::F32)?
            .sqr()?
            .sum_all()?
            .to_scalar::<f32>()? as f64;
    }
    Ok(sum.sqrt())
}

/// Scales gradients so that their global norm is at most `max_norm`, as
/// `torch.nn.utils.clip_grad_norm_` does (factor `max_norm / (norm + 1e-6)`, capped at 1).
pub fn clip(grads: &mut [Tensor], norm: f64, max_norm: f64) -> Result<()> {
    if max_norm <= 0.0 {
        return Ok(());
    }
    let f = max_norm / (norm + 1e-6);
    if f < 1.0 {
        for g in grads.iter_mut() {
            *g = (&*g * f)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn values(v: &Var) -> Vec<f32> {
        v.as_tensor().to_vec1().unwrap()
    }

    // Oracle: the norm of (3, 4, 0) is 5 (closed form); the accepted step equals clip then
    // step by hand.
    #[test]
    fn clip_and_step_hands_the_norm_to_check_and_updates_nothing_when_refused() {
        let p = Var::new(&[1f32, 2., 3.], &Device::Cpu).unwrap();
        let params = vec![("w".to_string(), p.clone())];
        let cfg = OptimConfig::default();
        let mut opt = AdamW::new(&params, &cfg).unwrap();
        let grad = || vec![Tensor::new(&[3f32, 4., 0.], &Device::Cpu).unwrap()];
        let refused = opt.clip_and_step(&params, &mut grad(), 0.1, 1.0, |norm| {
            assert!((norm - 5.0).abs() < 1e-12, "{norm}");
            Err(TrainError::NonFinite {
                what: "gradient norm",
                value: norm,
                step: 1,
                last_checkpoint: 0,
            })
        });
        assert!(refused.is_err());
        assert_eq!(values(&p), [1., 2., 3.]);
        assert_eq!(opt.t(), 0);

        let norm = opt
            .clip_and_step(&params, &mut grad(), 0.1, 1.0, |_| Ok(()))
            .unwrap();
        assert_eq!(norm, 5.0);
        let q = Var::new(&[1f32, 2., 3.], &Device::Cpu).unwrap();
        let by_hand = vec![("w".to_string(), q.clone())];
        let mut reference = AdamW::new(&by_hand, &cfg).unwrap();
        let mut g = grad();
        clip(&mut g, 5.0, 1.0).unwrap();
        reference.step(&by_hand, &g, 0.1).unwrap();
        assert_eq!(values(&p), values(&q));
        assert_ne!(values(&p), [1., 2., 3.]);
    }

    // Oracle: the launch contract above each kernel in kernels/src/adamw.cu.
    #[test]
    fn device_step_grids_give_each_tensor_a_row_of_blocks() {
        // 124M: 111 tensors, the largest the 50,257 × 768 embedding.
        let g = device_step_grids(111, 50_257 * 768).unwrap();
        assert_eq!(g.norm, (64, 111));
        assert_eq!(g.update, (4096, 111));
        assert_eq!(device_step_grids(3, 100).unwrap().update, (1, 3));
        assert_eq!(device_step_grids(3, 257).unwrap().update, (2, 3));
        assert!(device_step_grids(0, 10).is_err());
        assert!(device_step_grids(70_000, 10).is_err());
    }
}
