//! ZeRO-1 (Rajbhandari et al., 2020, stage 1): in a data-parallel run each rank keeps the
//! AdamW moments of a share of the parameters only, so the optimizer state, 8 bytes a
//! parameter in f32, is divided by the world size (a 3B model's 24 GB becomes 3 GB on 8
//! GPUs).
//!
//! The partition is by whole tensors, as PyTorch's `ZeroRedundancyOptimizer` does:
//! [`owners`] gives each parameter to one rank, largest first to the least-loaded. A step:
//! 1. each tensor's gradient is summed over the ranks into its owner (one reduce per
//!    rank, of the tensors it owns: together the volume of a reduce-scatter);
//! 2. the global norm from the owners' partial sums of squares (one f64 all-reduce, the
//!    one that already carries the loss and the stop flag), clipping as one process does;
//! 3. each owner updates its parameters (the same AdamW arithmetic as one process);
//! 4. each owner broadcasts its new parameters (together an all-gather).
//!
//! Every parameter's update is computed from the same summed gradient, norm and moments as
//! without sharding, so the run trains the same model; only the norm's sum is taken in
//! another order (a difference in its last bits). Checkpoints hold the whole optimizer
//! state (rank 0 gathers it), so a run resumes from them at the world size it started with.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};

use crate::dist::Collective;
use crate::error::Result;
use crate::optim::AdamW;

/// Which rank owns each of tensors of `sizes` elements among `world`: largest first to
/// the rank with the fewest elements so far (ties: the lower rank; equal sizes: the earlier
/// tensor first), the same on every rank.
pub fn owners(sizes: &[usize], world: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(sizes[i]), i));
    let mut load = vec![0usize; world.max(1)];
    let mut owner = vec![0; sizes.len()];
    for i in order {
        let r = (0..load.len())
            .min_by_key(|&r| (load[r], r))
            .expect("at least one rank");
        owner[i] = r;
        load[r] += sizes[i];
    }
    owner
}

/// This rank's view of the partition.
#[derive(Debug, Clone)]
pub struct Zero {
    owner: Vec<usize>,
    rank: usize,
    world: usize,
}

impl Zero {
    pub fn new(params: &[(String, Var)], rank: usize, world: usize) -> Zero {
        let sizes: Vec<usize> = params.iter().map(|(_, v)| v.elem_count()).collect();
        Zero {
            owner: owners(&sizes, world),
            rank,
            world,
        }
    }

    /// Per parameter: whether this rank owns it.
    pub fn owned(&self) -> Vec<bool> {
        self.owner.iter().map(|&r| r == self.rank).collect()
    }

    fn of(&self, r: usize) -> Vec<usize> {
        (0..self.owner.len())
            .filter(|&i| self.owner[i] == r)
            .collect()
    }

    /// Sums each gradient over the ranks into its owner; the others' copies of it are
    /// left as they were (and unused).
    pub fn reduce_grads(&self, comm: &dyn Collective, grads: &mut [Tensor]) -> Result<()> {
        for r in 0..self.world {
            let idx = self.of(r);
            let mut mine: Vec<Tensor> = idx.iter().map(|&i| grads[i].clone()).collect();
            comm.reduce_tensors(&mut mine, r)?;
            if r == self.rank {
                for (&i, g) in idx.iter().zip(mine) {
                    grads[i] = g;
                }
            }
        }
        Ok(())
    }

    /// The sum of squares of the gradients this rank owns, in f64 (each tensor's in f32,
    /// as [`crate::optim::global_norm`] takes it).
    pub fn norm_sq(&self, grads: &[Tensor]) -> Result<f64> {
        let mut sum = 0.0f64;
        for i in self.of(self.rank) {
            sum += grads[i]
                .to_dtype(DType::F32)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f32>()? as f64;
        }
        Ok(sum)
    }

    /// Scales the gradients this rank owns as [`crate::optim::clip`] scales all of them.
    pub fn clip(&self, grads: &mut [Tensor], norm: f64, max_norm: f64) -> Result<()> {
        for i in self.of(self.rank) {
            crate::optim::clip(std::slice::from_mut(&mut grads[i]), norm, max_norm)?;
        }
        Ok(())
    }

    /// Every rank gets each parameter's value from its owner.
    pub fn broadcast_params(&self, comm: &dyn Collective, params: &[(String, Var)]) -> Result<()> {
        for r in 0..self.world {
            let idx = self.of(r);
            let mut values: Vec<Tensor> = idx
                .iter()
                .map(|&i| params[i].1.as_tensor().clone())
                .collect();
            comm.broadcast_tensors(&mut values, r)?;
            if r != self.rank {
                for (&i, v) in idx.iter().zip(values) {
                    params[i].1.set(&v)?;
                }
            }
        }
        Ok(())
    }

    /// The whole optimizer state as [`AdamW::state`] names it, on rank 0 (None elsewhere):
    /// each rank's moments sent to rank 0 by one broadcast per rank; the others' moments
    /// arrive in host memory, so rank 0's GPU never holds the whole state.
    pub fn gather_state(
        &self,
        comm: &dyn Collective,
        opt: &AdamW,
        params: &[(String, Var)],
    ) -> Result<Option<HashMap<String, Tensor>>> {
        let mut out = (self.rank == 0).then(|| opt.state(params));
        for r in 1..self.world {
            let idx = self.of(r);
            let total: usize = idx.iter().map(|&i| 2 * params[i].1.elem_count()).sum();
            let mut buf = vec![0f32; total];
            if r == self.rank {
                let mut at = 0;
                for &i in &idx {
                    let (m, v) = opt.moments(i);
                    for t in [m, v] {
                        let x = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
                        buf[at..at + x.len()].copy_from_slice(&x);
                        at += x.len();
                    }
                }
            }
            comm.broadcast(&mut buf, r)?;
            if let Some(out) = out.as_mut() {
                let mut at = 0;
                for &i in &idx {
                    let (name, p) = &params[i];
                    let n = p.elem_count();
                    for key in ["m", "v"] {
                        let t = Tensor::from_slice(&buf[at..at + n], p.dims(), &Device::Cpu)?;
                        out.insert(format!("{key}.{name}"), t);
                        at += n;
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Oracle: the greedy partition by hand. Sizes 10, 7, 7, 3, 1 over 2 ranks: 10 → 0,
    /// 7 → 1, 7 → 1 (7 < 10), 3 → 0 (10 < 14), 1 → 0 (13 < 14): loads 14 and 14.
    #[test]
    fn the_partition_is_largest_first_to_the_least_loaded_rank() {
        assert_eq!(owners(&[3, 7, 10, 1, 7], 2), vec![0, 1, 0, 0, 1]);
        assert_eq!(owners(&[5, 5, 5], 1), vec![0, 0, 0]);
        // More ranks than tensors: some ranks own nothing.
        assert_eq!(owners(&[4, 2], 3), vec![0, 1]);
    }
}
