//! AdamW with fp32 moments whose state saves and loads (candle-nn's keeps moments in the
//! parameter dtype and cannot be checkpointed), and global gradient-norm clipping.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Tensor, Var};
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
        })
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
