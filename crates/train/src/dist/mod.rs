//! Data-parallel training: one process per rank, each running the same trainer on its share
//! of every optimizer step's micro-batches, the gradients summed across ranks before the
//! same AdamW step on every rank.
//!
//! Two engines, chosen by the run's device:
//! - on GPUs, NCCL (the `nccl` feature: cudarc's bindings over libnccl), the gradients summed
//!   on the device; the ranks find each other through a rendezvous file in the run
//!   directory ([`rendezvous()`]), so any launcher that sets the rank variables starts them
//!   (`srun`, `synthscale train --nproc N`, torchrun-style environments);
//! - on CPUs, MPI (the `mpi` feature: the `mpi` crate over the system's OpenMPI), which
//!   `mpirun`, `srun --mpi=pmix` or `synthscale train --nproc N` start.
//!
//! In a world of one, [`Single`] stands in and every collective is the identity.
//!
//! What makes a data-parallel run the same run as a single process with the same global
//! batch: micro-batch `a` of a step goes to rank `a mod world`, so the ranks' micro-batches
//! together are exactly the step's batch; each micro-batch's loss is divided by the global
//! number of micro-batches, so the all-reduced sum is the single process's accumulated
//! gradient; and the step's loss is summed the same way. With two ranks and one micro-batch
//! each the sums are bitwise the single process's (a two-term sum commutes exactly).
//!
//! - [`launch`]: what tells one launch of the ranks from another, and the rendezvous file
//!   through which they meet.

mod launch;
#[cfg(feature = "mpi")]
mod mpi_engine;
#[cfg(feature = "nccl")]
mod nccl_engine;
#[cfg(test)]
mod tests;

use std::path::Path;

use candle_core::{Device, Tensor};

use crate::config::DeviceSpec;
use crate::error::{Result, TrainError};
pub use launch::{launch_token, rendezvous, rendezvous_file, RENDEZVOUS_TIMEOUT};

/// This process's place among the ranks of a data-parallel run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct World {
    pub rank: usize,
    pub size: usize,
    /// The rank among those on this machine (which GPU it takes).
    pub local_rank: usize,
}

impl World {
    /// A run of one process.
    pub const SINGLE: World = World {
        rank: 0,
        size: 1,
        local_rank: 0,
    };

    /// Rank 0 logs, evaluates, writes checkpoints and owns the run directory.
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// The rank, world size and local rank the launcher gave this process in its
    /// environment: OpenMPI's `mpirun` (`OMPI_COMM_WORLD_RANK`/`_SIZE`/`_LOCAL_RANK`), a
    /// Slurm job step started by `srun` (`SLURM_PROCID`/`SLURM_STEP_NUM_TASKS`/
    /// `SLURM_LOCALID`; a batch script's own `SLURM_NTASKS` is not a step and counts as
    /// one process), or the torchrun convention (`RANK`/`WORLD_SIZE`/`LOCAL_RANK`). None of
    /// them: a world of one.
    pub fn from_env() -> std::result::Result<World, String> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`World::from_env`] over any variable lookup (tested without touching the process).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> std::result::Result<World, String> {
        const SCHEMES: [[&str; 3]; 3] = [
            [
                "OMPI_COMM_WORLD_RANK",
                "OMPI_COMM_WORLD_SIZE",
                "OMPI_COMM_WORLD_LOCAL_RANK",
            ],
            ["SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID"],
            ["RANK", "WORLD_SIZE", "LOCAL_RANK"],
        ];
        for [rank, size, local] in SCHEMES {
            let Some(size_text) = get(size) else {
                continue;
            };
            let num = |name: &str, text: Option<String>| -> std::result::Result<usize, String> {
                let text = text.ok_or_else(|| format!("{size} is set but {name} is not"))?;
                text.trim()
                    .parse::<usize>()
                    .map_err(|_| format!("{name}={text:?} is not a non-negative integer"))
            };
            let world = World {
                size: num(size, Some(size_text))?,
                rank: num(rank, get(rank))?,
                local_rank: match get(local) {
                    Some(t) => num(local, Some(t))?,
                    None => 0,
                },
            };
            if world.size == 0 || world.rank >= world.size {
                return Err(format!(
                    "{rank}={} is not below {size}={}",
                    world.rank, world.size
                ));
            }
            return Ok(world);
        }
        Ok(World::SINGLE)
    }
}

/// The collectives a data-parallel step needs. Every rank calls each one in the same order.
pub trait Collective {
    fn world(&self) -> World;
    /// Sums `buf` elementwise over the ranks; every rank gets the sum.
    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()>;
    /// The same for f64 (the step's loss and the stop flag).
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()>;
    /// Returns once every rank has called it.
    fn barrier(&self) -> Result<()>;
    /// Sums `buf` elementwise over the ranks into rank `root`'s `buf`; the other ranks'
    /// are left as they were.
    fn reduce_sum(&self, buf: &mut [f32], root: usize) -> Result<()>;
    /// Copies rank `root`'s `buf` into every rank's.
    fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<()>;
    /// [`Collective::reduce_sum`] of tensors, in place (through the host by default).
    fn reduce_tensors(&self, tensors: &mut [Tensor], root: usize) -> Result<()> {
        on_host(tensors, |buf| self.reduce_sum(buf, root))
    }
    /// [`Collective::broadcast`] of tensors, in place (through the host by default).
    fn broadcast_tensors(&self, tensors: &mut [Tensor], root: usize) -> Result<()> {
        on_host(tensors, |buf| self.broadcast(buf, root))
    }
    /// The device this rank computes on when the engine is bound to one (NCCL: the GPU its
    /// communicator runs on); None: the trainer opens the device itself.
    fn device(&self) -> Option<Device> {
        None
    }
    /// Sums each tensor elementwise over the ranks, in place. By default through one host
    /// buffer and [`Collective::all_reduce_sum`]; NCCL sums on the device.
    fn all_reduce_tensors(&self, tensors: &mut [Tensor]) -> Result<()> {
        all_reduce_on_host(self, tensors)
    }
}

/// A world of one: every collective is the identity.
pub struct Single;

impl Collective for Single {
    fn world(&self) -> World {
        World::SINGLE
    }
    fn all_reduce_sum(&self, _: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn all_reduce_sum_f64(&self, _: &mut [f64]) -> Result<()> {
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
    fn reduce_sum(&self, _: &mut [f32], _: usize) -> Result<()> {
        Ok(())
    }
    fn broadcast(&self, _: &mut [f32], _: usize) -> Result<()> {
        Ok(())
    }
}

/// Which engine a data-parallel run on `device` uses in this binary, if it has one.
pub fn engine_for(device: DeviceSpec) -> Option<&'static str> {
    match device {
        DeviceSpec::Cuda if cfg!(feature = "nccl") => Some("nccl"),
        _ if cfg!(feature = "mpi") => Some("mpi"),
        _ => None,
    }
}

/// The collective for `world` (from [`World::from_env`]) on `device`: [`Single`] for a
/// world of one, NCCL for a CUDA run of a binary built with `nccl`, MPI otherwise.
/// `run_dir` holds NCCL's rendezvous file. MPI is initialised here, once per process, and
/// checks that the launcher started as many processes as the environment says.
pub fn connect(world: World, device: DeviceSpec, run_dir: &Path) -> Result<Box<dyn Collective>> {
    if world.size == 1 {
        return Ok(Box::new(Single));
    }
    let _ = run_dir;
    match engine_for(device) {
        #[cfg(feature = "nccl")]
        Some("nccl") => Ok(Box::new(nccl_engine::Nccl::init(world, run_dir)?)),
        #[cfg(feature = "mpi")]
        Some("mpi") => Ok(Box::new(mpi_engine::Mpi::init(world)?)),
        _ => Err(TrainError::World {
            message: format!(
                "started as rank {} of {} on {}, but this binary has no data-parallel engine \
                 for it; build it with --features {} ({})",
                world.rank,
                world.size,
                match device {
                    DeviceSpec::Cuda => "cuda",
                    DeviceSpec::Cpu => "the cpu",
                },
                match device {
                    DeviceSpec::Cuda => "cuda,nccl",
                    DeviceSpec::Cpu => "mpi",
                },
                match device {
                    DeviceSpec::Cuda => "libnccl from scripts/setup-cuda.sh",
                    DeviceSpec::Cpu =>
                        "OpenMPI: apt-get install libopenmpi-dev openmpi-bin libclang-dev",
                }
            ),
        }),
    }
}

/// Sums every gradient over the ranks, in place (one collective over all of them).
pub fn all_reduce_grads(c: &dyn Collective, grads: &mut [Tensor]) -> Result<()> {
    if c.world().size == 1 || grads.is_empty() {
        return Ok(());
    }
    c.all_reduce_tensors(grads)
}

/// [`Collective::all_reduce_tensors`] through the host: the tensors flattened into one f32
/// buffer in order, summed by [`Collective::all_reduce_sum`], and put back.
pub fn all_reduce_on_host<C: Collective + ?Sized>(c: &C, grads: &mut [Tensor]) -> Result<()> {
    on_host(grads, |buf| c.all_reduce_sum(buf))
}

/// Runs `op` on the tensors flattened into one f32 host buffer in order, and puts the
/// buffer back into tensors of their shapes, dtypes and device.
fn on_host(grads: &mut [Tensor], op: impl FnOnce(&mut [f32]) -> Result<()>) -> Result<()> {
    if grads.is_empty() {
        return Ok(());
    }
    let total: usize = grads.iter().map(Tensor::elem_count).sum();
    let mut flat: Vec<f32> = Vec::with_capacity(total);
    for g in grads.iter() {
        flat.extend(
            g.flatten_all()?
                .to_dtype(candle_core::DType::F32)?
                .to_vec1::<f32>()?,
        );
    }
    op(&mut flat)?;
    let mut at = 0;
    for g in grads.iter_mut() {
        let n = g.elem_count();
        *g = Tensor::from_slice(&flat[at..at + n], g.shape(), g.device())?.to_dtype(g.dtype())?;
        at += n;
    }
    Ok(())
}

/// Which of a step's `accum` micro-batches this rank runs: `rank, rank + size, …`. The
/// step's micro-batches must split evenly, so that every rank runs as many.
pub fn my_micro_batches(world: World, accum: usize) -> Result<Vec<usize>> {
    if accum % world.size != 0 {
        return Err(TrainError::World {
            message: format!(
                "a step's {accum} micro-batches (optim.batch_tokens / (micro_batch_size × \
                 seq_len)) do not split evenly over {} ranks; choose a world size that \
                 divides {accum}, or a micro_batch_size that makes it a multiple of {}",
                world.size, world.size
            ),
        });
    }
    Ok((world.rank..accum).step_by(world.size).collect())
}
