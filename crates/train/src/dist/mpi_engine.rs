//! MPI, the engine of a data-parallel run on CPUs (the `mpi` feature).

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
