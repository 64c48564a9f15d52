//! AdamW with fp32 moments whose state saves and loads (candle-nn's keeps moments in the
//! parameter dtype and cannot be checkpointed), and global gradient-norm clipping.

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
        })
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

    /// The state as named tensors: `m.<param>`, `v.<param>`.
    pub fn state(&self, params: &[(String, Var)]) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, (name, _)) in params.iter().enumerate() {
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
