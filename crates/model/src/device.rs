//! Opening a CUDA device: which of the visible GPUs a process takes, and the refusal of a
//! GPU this binary's kernels were not compiled for. The trainer and the synth generator
//! both open their GPU here.

use candle_core::Device;

use crate::error::{ModelError, Result};

/// The GPU a process with this local rank takes among the `visible` ones: its local rank,
/// or the one GPU it sees when the launcher gave each rank its own (Slurm's
/// `--gpus-per-task`).
pub fn gpu_ordinal(local_rank: usize, visible: usize) -> std::result::Result<usize, String> {
    match visible {
        0 => Err("no CUDA device is visible".into()),
        1 => Ok(0),
        n if local_rank < n => Ok(local_rank),
        n => Err(format!(
            "local rank {local_rank} but only {n} CUDA devices are visible: start at most \
             {n} ranks per machine, or give each rank its own GPU"
        )),
    }
}

/// Opens the CUDA device of the process with this local rank ([`gpu_ordinal`]; GPU 0 of
/// those visible for a single process, `CUDA_VISIBLE_DEVICES` selecting which as the
/// driver reads it) and checks that this binary's kernels run on it. Without the `cuda`
/// feature this is [`ModelError::CudaNotBuilt`]; a device that cannot be opened is
/// [`ModelError::Device`].
pub fn open_cuda(local_rank: usize) -> Result<Device> {
    #[cfg(feature = "cuda")]
    {
        let fail = |e: String| ModelError::Device {
            message: format!(
                "cannot open a CUDA device: {e} (this binary's CUDA 13 libraries need NVIDIA \
                 driver 580 or newer; `nvidia-smi` shows the driver's version)"
            ),
        };
        let visible = candle_core::cuda::cudarc::driver::CudaContext::device_count()
            .map_err(|e| fail(e.to_string()))?;
        let ordinal = gpu_ordinal(local_rank, visible.max(0) as usize)
            .map_err(|message| ModelError::Device { message })?;
        let dev = Device::new_cuda(ordinal).map_err(|e| fail(format!("device {ordinal}: {e}")))?;
        check_compute_capability(&dev).map_err(|message| ModelError::Device { message })?;
        Ok(dev)
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = local_rank;
        Err(ModelError::CudaNotBuilt)
    }
}

/// Refuses a GPU the binary's kernels were not compiled for. The PTX is built for the
/// compute capability in `CUDA_COMPUTE_CAP` at build time; from 9.0 up it is the
/// arch-specific variant (sm_90a), which runs on that capability only, and below it runs on
/// that capability and newer ones. Without the variable at build time nothing is checked.
#[cfg(feature = "cuda")]
fn check_compute_capability(dev: &Device) -> std::result::Result<(), String> {
    let (Device::Cuda(d), Some(built)) = (dev, option_env!("CUDA_COMPUTE_CAP")) else {
        return Ok(());
    };
    let Ok(built) = built.parse::<i32>() else {
        return Ok(());
    };
    let (major, minor) = d
        .cuda_stream()
        .context()
        .compute_capability()
        .map_err(|e| format!("cannot read the CUDA device's compute capability: {e}"))?;
    let have = major * 10 + minor;
    let fits = if built >= 90 {
        have == built
    } else {
        have >= built
    };
    if fits {
        return Ok(());
    }
    Err(format!(
        "the CUDA device has compute capability {major}.{minor}, but this binary's kernels are \
         compiled for {}.{}{} (CUDA_COMPUTE_CAP={built} at build time); rebuild it with \
         CUDA_COMPUTE_CAP={have} (scripts/setup-cuda.sh)",
        built / 10,
        built % 10,
        if built >= 90 { " only" } else { " and newer" }
    ))
}
