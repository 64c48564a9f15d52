//! Data-parallel training: one process per rank, each running the same trainer on its share
//! of every optimizer step's micro-batches, the gradients summed across ranks before the
//! same AdamW step on every rank.
//!
//! Two engines, chosen by the run's device:
//! - on GPUs, NCCL (the `nccl` feature: cudarc's bindings over libnccl), the gradients summed
//!   on the device; the ranks find each other through a rendezvous file in the run
//!   directory ([`rendezvous`]), so any launcher that sets the rank variables starts them
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

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};

use crate::config::DeviceSpec;
use crate::error::{Result, TrainError};

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

/// What makes this launch of the ranks different from any other, from the launcher's
/// environment: `SYNTHSCALE_LAUNCH_ID` (set by `synthscale train --nproc`), a Slurm job
/// step (`SLURM_JOB_ID`.`SLURM_STEP_ID`), torchrun's `TORCHELASTIC_RUN_ID`, PMIx's
/// namespace (OpenMPI 5), OpenMPI 4's job id, or `MASTER_ADDR`:`MASTER_PORT`. Every rank of
/// one launch sees the same token, and a relaunch a new one, so a rendezvous file left by
/// a killed launch is never read by the next.
pub fn launch_token(get: impl Fn(&str) -> Option<String>) -> Option<String> {
    let clean = |s: String| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    if let Some(t) = get("SYNTHSCALE_LAUNCH_ID") {
        return Some(clean(t));
    }
    if let (Some(job), Some(step)) = (get("SLURM_JOB_ID"), get("SLURM_STEP_ID")) {
        return Some(clean(format!("slurm-{job}.{step}")));
    }
    for var in [
        "TORCHELASTIC_RUN_ID",
        "PMIX_NAMESPACE",
        "OMPI_MCA_ess_base_jobid",
    ] {
        if let Some(t) = get(var) {
            return Some(clean(t));
        }
    }
    match (get("MASTER_ADDR"), get("MASTER_PORT")) {
        (Some(a), Some(p)) => Some(clean(format!("{a}-{p}"))),
        _ => None,
    }
}

/// The file through which the ranks of launch `token` share rank 0's bytes.
pub fn rendezvous_file(dir: &Path, token: &str) -> PathBuf {
    dir.join(format!(".rendezvous.{token}"))
}

/// How long a rank waits for rank 0's rendezvous file (ranks of one `srun` step start
/// within seconds; a node's slow file system may take longer).
pub const RENDEZVOUS_TIMEOUT: Duration = Duration::from_secs(300);

/// Shares `make()`'s bytes (NCCL's unique id) from rank 0 with every rank of this launch
/// through a file in `dir`, which every rank sees (the run directory: the ranks of a run
/// read its checkpoints, so it is on storage they share). Rank 0 writes the file whole
/// (a temporary, then a rename); the others wait for it up to `timeout`. The caller removes
/// it once every rank has joined ([`std::fs::remove_file`] on [`rendezvous_file`]).
pub fn rendezvous<const N: usize>(
    world: World,
    dir: &Path,
    token: &str,
    timeout: Duration,
    make: impl FnOnce() -> Result<[u8; N]>,
) -> Result<[u8; N]> {
    let file = rendezvous_file(dir, token);
    let io = |what: &str, e: std::io::Error| TrainError::World {
        message: format!("rendezvous: {what} {}: {e}", file.display()),
    };
    if world.is_root() {
        let bytes = make()?;
        std::fs::create_dir_all(dir).map_err(|e| io("creating the directory of", e))?;
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes).map_err(|e| io("writing", e))?;
        std::fs::rename(&tmp, &file).map_err(|e| io("renaming into", e))?;
        return Ok(bytes);
    }
    let start = Instant::now();
    loop {
        match std::fs::read(&file) {
            Ok(b) if b.len() == N => {
                let mut out = [0u8; N];
                out.copy_from_slice(&b);
                return Ok(out);
            }
            Ok(b) => {
                return Err(TrainError::World {
                    message: format!(
                        "rendezvous: {} holds {} bytes, not {N}",
                        file.display(),
                        b.len()
                    ),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("reading", e)),
        }
        if start.elapsed() > timeout {
            return Err(TrainError::World {
                message: format!(
                    "rank {} of {} waited {} s for rank 0's rendezvous file {}: is rank 0 \
                     running, and does this node see the run directory rank 0 writes?",
                    world.rank,
                    world.size,
                    timeout.as_secs(),
                    file.display()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(feature = "nccl")]
mod nccl_engine {
    use std::path::{Path, PathBuf};

    use candle_core::cuda::cudarc::driver::{CudaSlice, CudaView};
    use candle_core::cuda::cudarc::nccl::safe::{Comm, Id, ReduceOp};
    use candle_core::op::BackpropOp;
    use candle_core::{CudaDevice, CudaStorage, DType, Device, Storage, Tensor};

    use super::{launch_token, rendezvous, rendezvous_file, Collective, World, RENDEZVOUS_TIMEOUT};
    use crate::config::DeviceSpec;
    use crate::error::{Result, TrainError};

    /// One NCCL communicator over every rank, on the stream of this rank's GPU (the one
    /// candle computes on, so a collective is ordered after the backward that made its
    /// input).
    pub struct Nccl {
        comm: Comm,
        cuda: CudaDevice,
        world: World,
    }

    fn err(what: &str, e: impl std::fmt::Debug) -> TrainError {
        TrainError::World {
            message: format!("NCCL: {what}: {e:?}"),
        }
    }

    impl Nccl {
        pub fn init(world: World, run_dir: &Path) -> Result<Nccl> {
            let device = crate::trainer::open_device_for_rank(DeviceSpec::Cuda, world.local_rank)
                .map_err(|message| TrainError::World { message })?;
            let Device::Cuda(cuda) = device else {
                return Err(err("device", "not a CUDA device"));
            };
            let token =
                launch_token(|k| std::env::var(k).ok()).ok_or_else(|| TrainError::World {
                    message: "NCCL ranks need a launch id to meet: start them with `synthscale \
                          train --nproc N`, srun, or set SYNTHSCALE_LAUNCH_ID to one value \
                          for all ranks of this launch"
                        .into(),
                })?;
            let bytes = rendezvous::<128>(world, run_dir, &token, RENDEZVOUS_TIMEOUT, || {
                let id = Id::new().map_err(|e| err("ncclGetUniqueId", e))?;
                Ok(id.internal().map(|c| c as u8))
            })?;
            let id = Id::uninit(bytes.map(|b| b as _));
            let comm = Comm::from_rank(cuda.cuda_stream(), world.rank, world.size, id)
                .map_err(|e| err("ncclCommInitRank", e))?;
            let nccl = Nccl { comm, cuda, world };
            // Every rank has joined: the file has served.
            nccl.barrier()?;
            if world.is_root() {
                let file: PathBuf = rendezvous_file(run_dir, &token);
                let _ = std::fs::remove_file(file);
            }
            Ok(nccl)
        }

        fn sum_on_host<T>(&self, buf: &mut [T]) -> Result<()>
        where
            T: candle_core::cuda::cudarc::driver::DeviceRepr
                + candle_core::cuda::cudarc::nccl::safe::NcclType
                + candle_core::cuda::cudarc::driver::ValidAsZeroBits
                + Copy,
        {
            let stream = self.comm.stream();
            let mut dev = stream
                .clone_htod(buf)
                .map_err(|e| err("copy to the GPU", e))?;
            self.comm
                .all_reduce_in_place(&mut dev, &ReduceOp::Sum)
                .map_err(|e| err("ncclAllReduce", e))?;
            stream
                .memcpy_dtoh(&dev, buf)
                .map_err(|e| err("copy from the GPU", e))?;
            stream.synchronize().map_err(|e| err("synchronize", e))?;
            Ok(())
        }
    }

    impl Collective for Nccl {
        fn world(&self) -> World {
            self.world
        }
        fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
            self.sum_on_host(buf)
        }
        fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
            self.sum_on_host(buf)
        }
        fn barrier(&self) -> Result<()> {
            self.sum_on_host(&mut [0f32])
        }
        fn reduce_sum(&self, buf: &mut [f32], root: usize) -> Result<()> {
            let mut t = [Tensor::from_slice(
                &buf[..],
                buf.len(),
                &Device::Cuda(self.cuda.clone()),
            )?];
            self.reduce_tensors(&mut t, root)?;
            if self.world.rank == root {
                buf.copy_from_slice(&t[0].to_vec1::<f32>()?);
            }
            Ok(())
        }
        fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<()> {
            let mut t = [Tensor::from_slice(
                &buf[..],
                buf.len(),
                &Device::Cuda(self.cuda.clone()),
            )?];
            self.broadcast_tensors(&mut t, root)?;
            buf.copy_from_slice(&t[0].to_vec1::<f32>()?);
            Ok(())
        }
        fn device(&self) -> Option<Device> {
            Some(Device::Cuda(self.cuda.clone()))
        }
        fn all_reduce_tensors(&self, grads: &mut [Tensor]) -> Result<()> {
            self.on_device(grads, |src, dst| {
                self.comm
                    .all_reduce(src, dst, &ReduceOp::Sum)
                    .map(|_| ())
                    .map_err(|e| err("ncclAllReduce", e))
            })
        }
        fn reduce_tensors(&self, grads: &mut [Tensor], root: usize) -> Result<()> {
            self.on_device(grads, |src, dst| {
                self.comm
                    .reduce(src, Some(dst), &ReduceOp::Sum, root as i32)
                    .map(|_| ())
                    .map_err(|e| err("ncclReduce", e))
            })
        }
        fn broadcast_tensors(&self, tensors: &mut [Tensor], root: usize) -> Result<()> {
            self.on_device(tensors, |src, dst| {
                self.comm
                    .broadcast(Some(src), dst, root as i32)
                    .map(|_| ())
                    .map_err(|e| err("ncclBroadcast", e))
            })
        }
    }

    impl Nccl {
        /// The tensors concatenated into one f32 buffer on the GPU, `op` from it into a
        /// second, and that one cut back into tensors of their shapes and dtypes.
        fn on_device(
            &self,
            grads: &mut [Tensor],
            op: impl FnOnce(&CudaView<'_, f32>, &mut CudaSlice<f32>) -> Result<()>,
        ) -> Result<()> {
            if grads.is_empty() {
                return Ok(());
            }
            let flat: Vec<Tensor> = grads
                .iter()
                .map(|g| g.flatten_all()?.to_dtype(DType::F32))
                .collect::<candle_core::Result<_>>()?;
            let flat = Tensor::cat(&flat, 0)?;
            let n = flat.elem_count();
            let summed = {
                let (storage, layout) = flat.storage_and_layout();
                let Storage::Cuda(cs) = &*storage else {
                    return Err(err("gradients", "not on the GPU"));
                };
                let src = cs.as_cuda_slice::<f32>()?;
                let src = src.slice(layout.start_offset()..layout.start_offset() + n);
                let mut dst = self
                    .comm
                    .stream()
                    .alloc_zeros::<f32>(n)
                    .map_err(|e| err("allocating the collective's buffer", e))?;
                op(&src, &mut dst)?;
                dst
            };
            let summed = Tensor::from_storage(
                Storage::Cuda(CudaStorage::wrap_cuda_slice(summed, self.cuda.clone())),
                n,
                BackpropOp::none(),
                false,
            );
            let mut at = 0;
            for g in grads.iter_mut() {
                let k = g.elem_count();
                *g = summed
                    .narrow(0, at, k)?
                    .reshape(g.shape())?
                    .to_dtype(g.dtype())?;
                at += k;
            }
            Ok(())
        }
    }
}

#[cfg(feature = "mpi")]
mod mpi_engine {
    use mpi::collective::SystemOperation;
    use mpi::topology::SimpleCommunicator;
    use mpi::traits::{Communicator, CommunicatorCollectives, Root};

    use super::{Collective, World};
    use crate::error::{Result, TrainError};

    /// MPI_COMM_WORLD; MPI is finalised when this is dropped.
    pub struct Mpi {
        _universe: mpi::environment::Universe,
        comm: SimpleCommunicator,
        world: World,
    }

    impl Mpi {
        pub fn init(expected: World) -> Result<Mpi> {
            let universe = mpi::initialize().ok_or_else(|| TrainError::World {
                message: "MPI is already initialised in this process".into(),
            })?;
            let comm = universe.world();
            let (rank, size) = (comm.rank() as usize, comm.size() as usize);
            if (rank, size) != (expected.rank, expected.size) {
                return Err(TrainError::World {
                    message: format!(
                        "the environment says rank {} of {}, but MPI sees rank {rank} of \
                         {size}: start the ranks with mpirun, srun --mpi=pmix or \
                         `synthscale train --nproc N`",
                        expected.rank, expected.size
                    ),
                });
            }
            Ok(Mpi {
                _universe: universe,
                comm,
                world: expected,
            })
        }
    }

    impl Collective for Mpi {
        fn world(&self) -> World {
            self.world
        }
        fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
            let send = buf.to_vec();
            self.comm
                .all_reduce_into(&send[..], buf, SystemOperation::sum());
            Ok(())
        }
        fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
            let send = buf.to_vec();
            self.comm
                .all_reduce_into(&send[..], buf, SystemOperation::sum());
            Ok(())
        }
        fn barrier(&self) -> Result<()> {
            self.comm.barrier();
            Ok(())
        }
        fn reduce_sum(&self, buf: &mut [f32], root: usize) -> Result<()> {
            let at = self.comm.process_at_rank(root as i32);
            if self.world.rank == root {
                let send = buf.to_vec();
                at.reduce_into_root(&send[..], buf, SystemOperation::sum());
            } else {
                at.reduce_into(&buf[..], SystemOperation::sum());
            }
            Ok(())
        }
        fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<()> {
            self.comm.process_at_rank(root as i32).broadcast_into(buf);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn world(vars: &[(&str, &str)]) -> std::result::Result<World, String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        World::from_vars(|k| m.get(k).cloned())
    }

    #[test]
    fn world_from_each_launcher_and_none() {
        assert_eq!(world(&[]).unwrap(), World::SINGLE);
        let w = world(&[
            ("OMPI_COMM_WORLD_RANK", "1"),
            ("OMPI_COMM_WORLD_SIZE", "4"),
            ("OMPI_COMM_WORLD_LOCAL_RANK", "1"),
            // mpirun inside a Slurm allocation: OpenMPI's own variables win.
            ("SLURM_PROCID", "0"),
            ("SLURM_STEP_NUM_TASKS", "1"),
        ])
        .unwrap();
        assert_eq!((w.rank, w.size, w.local_rank), (1, 4, 1));
        let w = world(&[
            ("SLURM_PROCID", "3"),
            ("SLURM_STEP_NUM_TASKS", "8"),
            ("SLURM_LOCALID", "3"),
        ])
        .unwrap();
        assert_eq!((w.rank, w.size, w.local_rank), (3, 8, 3));
        // A batch script of a 2-task job is not a job step: one process.
        assert_eq!(
            world(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "2")]).unwrap(),
            World::SINGLE
        );
        let w = world(&[("RANK", "1"), ("WORLD_SIZE", "2")]).unwrap();
        assert_eq!((w.rank, w.size, w.local_rank), (1, 2, 0));
        let e = world(&[("RANK", "2"), ("WORLD_SIZE", "2")]).unwrap_err();
        assert!(e.contains("RANK=2 is not below WORLD_SIZE=2"), "{e}");
        let e = world(&[("WORLD_SIZE", "2")]).unwrap_err();
        assert!(e.contains("WORLD_SIZE is set but RANK is not"), "{e}");
        let e = world(&[("RANK", "x"), ("WORLD_SIZE", "2")]).unwrap_err();
        assert!(e.contains("RANK=\"x\""), "{e}");
    }

    #[test]
    fn each_rank_takes_its_own_gpu_or_the_one_it_sees() {
        use crate::trainer::gpu_ordinal;
        assert_eq!(gpu_ordinal(3, 8), Ok(3));
        assert_eq!(gpu_ordinal(3, 1), Ok(0)); // Slurm: --gpus-per-task=1
        assert_eq!(gpu_ordinal(0, 4), Ok(0));
        let e = gpu_ordinal(2, 2).unwrap_err();
        assert!(e.contains("local rank 2 but only 2 CUDA devices"), "{e}");
        assert!(gpu_ordinal(0, 0).is_err());
    }

    #[test]
    fn micro_batches_split_round_robin_and_refuse_an_uneven_split() {
        let w = |rank, size| World {
            rank,
            size,
            local_rank: rank,
        };
        assert_eq!(my_micro_batches(w(0, 1), 3).unwrap(), vec![0, 1, 2]);
        assert_eq!(my_micro_batches(w(0, 2), 4).unwrap(), vec![0, 2]);
        assert_eq!(my_micro_batches(w(1, 2), 4).unwrap(), vec![1, 3]);
        let e = my_micro_batches(w(1, 2), 3).unwrap_err().to_string();
        assert!(
            e.contains("3 micro-batches") && e.contains("2 ranks"),
            "{e}"
        );
    }

    #[test]
    fn a_launch_token_comes_from_the_launcher_and_differs_between_launches() {
        let tok = |vars: &[(&str, &str)]| {
            let m: HashMap<String, String> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            launch_token(|k| m.get(k).cloned())
        };
        assert_eq!(tok(&[]), None);
        assert_eq!(
            tok(&[("SLURM_JOB_ID", "77"), ("SLURM_STEP_ID", "3")]).as_deref(),
            Some("slurm-77.3")
        );
        // Our own launcher's id wins over the Slurm job it runs in.
        assert_eq!(
            tok(&[
                ("SYNTHSCALE_LAUNCH_ID", "n-1"),
                ("SLURM_JOB_ID", "77"),
                ("SLURM_STEP_ID", "3")
            ])
            .as_deref(),
            Some("n-1")
        );
        // Nothing in a token can leave the directory.
        assert_eq!(
            tok(&[("MASTER_ADDR", "10.0.0.1"), ("MASTER_PORT", "29500")]).as_deref(),
            Some("10.0.0.1-29500")
        );
        assert_eq!(
            tok(&[("PMIX_NAMESPACE", "../x/y")]).as_deref(),
            Some(".._x_y")
        );
    }

    /// Four ranks as threads meet through one file: all get rank 0's bytes, whichever
    /// starts first; a stale file of another launch is never read; a rank whose rank 0
    /// never comes gives up with a message naming the file.
    #[test]
    fn ranks_meet_through_the_rendezvous_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(rendezvous_file(dir.path(), "old"), [9u8; 16]).unwrap();
        let got: Vec<[u8; 16]> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .rev()
                .map(|rank| {
                    let dir = dir.path();
                    s.spawn(move || {
                        let w = World {
                            rank,
                            size: 4,
                            local_rank: rank,
                        };
                        if rank == 0 {
                            std::thread::sleep(Duration::from_millis(200));
                        }
                        rendezvous::<16>(w, dir, "new", Duration::from_secs(20), || {
                            Ok(core::array::from_fn(|i| i as u8))
                        })
                        .unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let want: [u8; 16] = core::array::from_fn(|i| i as u8);
        assert!(got.iter().all(|g| *g == want), "{got:?}");
        let w1 = World {
            rank: 1,
            size: 2,
            local_rank: 1,
        };
        let e = rendezvous::<16>(
            w1,
            dir.path(),
            "none",
            Duration::from_millis(100),
            || unreachable!(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(".rendezvous.none") && e.contains("rank 1 of 2"),
            "{e}"
        );
    }

    /// A second rank simulated in-process: its gradients, flattened in parameter order.
    struct TwoRanks(Vec<f32>);

    impl Collective for TwoRanks {
        fn world(&self) -> World {
            World {
                rank: 0,
                size: 2,
                local_rank: 0,
            }
        }
        fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
            assert_eq!(buf.len(), self.0.len());
            buf.iter_mut().zip(&self.0).for_each(|(a, b)| *a += b);
            Ok(())
        }
        fn all_reduce_sum_f64(&self, _: &mut [f64]) -> Result<()> {
            unreachable!()
        }
        fn barrier(&self) -> Result<()> {
            Ok(())
        }
        fn reduce_sum(&self, _: &mut [f32], _: usize) -> Result<()> {
            unreachable!()
        }
        fn broadcast(&self, _: &mut [f32], _: usize) -> Result<()> {
            unreachable!()
        }
    }

    /// The sum of two ranks' gradients, tensor by tensor, against the elementwise sum
    /// (the oracle), through the one flattened buffer: shapes and order survive.
    #[test]
    fn gradients_sum_over_ranks_tensor_by_tensor() -> Result<()> {
        let dev = candle_core::Device::Cpu;
        let mine = vec![
            Tensor::new(&[[1f32, 2.], [3., 4.]], &dev)?,
            Tensor::new(&[5f32, 6., 7.], &dev)?,
        ];
        let theirs = [
            Tensor::new(&[[10f32, 20.], [30., 40.]], &dev)?,
            Tensor::new(&[50f32, 60., 70.], &dev)?,
        ];
        let flat: Vec<f32> = theirs
            .iter()
            .flat_map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .collect();
        let mut grads = mine.clone();
        all_reduce_grads(&TwoRanks(flat), &mut grads)?;
        for ((g, a), b) in grads.iter().zip(&mine).zip(&theirs) {
            assert_eq!(g.dims(), a.dims());
            let want = (a + b)?.flatten_all()?.to_vec1::<f32>()?;
            assert_eq!(g.flatten_all()?.to_vec1::<f32>()?, want);
        }
        Ok(())
    }
}
