//! Data-parallel training: one process per rank, each running the same trainer on its share
//! of every optimizer step's micro-batches, the gradients summed across ranks before the
//! same AdamW step on every rank.
//!
//! The engine is MPI (the `mpi` feature: the `mpi` crate over the system's OpenMPI), which
//! `mpirun`, `srun --mpi=pmix` or `synthscale train --nproc N` start; without it, or in a
//! world of one, [`Single`] stands in and every collective is the identity.
//!
//! What makes a data-parallel run the same run as a single process with the same global
//! batch: micro-batch `a` of a step goes to rank `a mod world`, so the ranks' micro-batches
//! together are exactly the step's batch; each micro-batch's loss is divided by the global
//! number of micro-batches, so the all-reduced sum is the single process's accumulated
//! gradient; and the step's loss is summed the same way. With two ranks and one micro-batch
//! each the sums are bitwise the single process's (a two-term sum commutes exactly).

use candle_core::Tensor;

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
}

/// The collective for `world` (from [`World::from_env`]): [`Single`] for a world of one,
/// MPI otherwise. MPI is initialised here, once per process; it checks that the launcher
/// started as many processes as the environment says.
pub fn connect(world: World) -> Result<Box<dyn Collective>> {
    if world.size == 1 {
        return Ok(Box::new(Single));
    }
    #[cfg(feature = "mpi")]
    {
        Ok(Box::new(mpi_engine::Mpi::init(world)?))
    }
    #[cfg(not(feature = "mpi"))]
    Err(TrainError::World {
        message: format!(
            "started as rank {} of {}, but this binary has no data-parallel engine; build \
             it with --features mpi (OpenMPI: apt-get install libopenmpi-dev openmpi-bin \
             libclang-dev)",
            world.rank, world.size
        ),
    })
}

/// Sums every gradient over the ranks in one all-reduce (flattened into one f32 buffer in
/// parameter order), in place.
pub fn all_reduce_grads(c: &dyn Collective, grads: &mut [Tensor]) -> Result<()> {
    if c.world().size == 1 || grads.is_empty() {
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
    c.all_reduce_sum(&mut flat)?;
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

#[cfg(feature = "mpi")]
mod mpi_engine {
    use mpi::collective::SystemOperation;
    use mpi::topology::SimpleCommunicator;
    use mpi::traits::{Communicator, CommunicatorCollectives};

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
