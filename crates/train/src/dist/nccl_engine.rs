//! NCCL, the engine of a data-parallel run on GPUs: the gradients summed on the device
//! (the `nccl` feature).

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
        let device = crate::device::open_device_for_rank(DeviceSpec::Cuda, world.local_rank)
            .map_err(|message| TrainError::World { message })?;
        let Device::Cuda(cuda) = device else {
            return Err(err("device", "not a CUDA device"));
        };
        let token = launch_token(|k| std::env::var(k).ok()).ok_or_else(|| TrainError::World {
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

    /// A copy of `buf` as a tensor on this rank's GPU.
    fn tensor_of(&self, buf: &[f32]) -> Result<Tensor> {
        Ok(Tensor::from_slice(
            buf,
            buf.len(),
            &Device::Cuda(self.cuda.clone()),
        )?)
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
        let mut t = [self.tensor_of(buf)?];
        self.reduce_tensors(&mut t, root)?;
        if self.world.rank == root {
            buf.copy_from_slice(&t[0].to_vec1::<f32>()?);
        }
        Ok(())
    }
    fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<()> {
        let mut t = [self.tensor_of(buf)?];
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
