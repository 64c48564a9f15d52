//! The device a run computes on: opening it (CUDA through [`synthscale_model::device`]),
//! the dtype its forward pass computes in, and the peak FLOP/s its MFU is measured against.

use std::path::Path;

use candle_core::{DType, Device};
pub use synthscale_model::device::gpu_ordinal;
use synthscale_model::device::open_cuda;

use crate::config::DeviceSpec;
use crate::error::{Result, TrainError};

/// Nominal peak FLOP/s of the device MFU is measured against.
///
/// CPU: cores × 2.5 GHz × FP32 FLOP per cycle — 64 where the CPU has AVX-512F (two 16-lane
/// FMA units; the matmuls then run gemm's AVX-512 kernels), else 32 (two 8-lane FMA units,
/// AVX2). A nominal figure for the x86 cores this runs on, stated so MFU numbers can be
/// compared; a core that splits 512-bit FMAs into two 256-bit halves reads low against it.
pub fn peak_flops(device: DeviceSpec) -> f64 {
    match device {
        DeviceSpec::Cpu => {
            let cores = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1);
            cores as f64 * 2.5e9 * cpu_flops_per_cycle()
        }
        // H100/H200 SXM dense BF16 (NVIDIA datasheets), assumed when the GPU is not named.
        DeviceSpec::Cuda => 989e12,
    }
}

/// FP32 FLOP per cycle and core of [`peak_flops`]'s CPU yardstick.
pub fn cpu_flops_per_cycle() -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return 64.0;
        }
    }
    32.0
}

/// Dense peak FLOP/s in the compute dtype for a GPU, looked up by its name (as the driver
/// reports it, e.g. "NVIDIA H100 80GB HBM3"); `None` for a GPU not in the table.
/// NVIDIA datasheet figures without sparsity: BF16 tensor cores for the data-centre parts.
pub fn gpu_peak_flops(name: &str) -> Option<f64> {
    let n = name.to_ascii_uppercase();
    let table: &[(&str, f64)] = &[
        ("H100 PCIE", 756e12),
        ("H100 NVL", 835e12),
        ("H800 PCIE", 756e12),
        ("H200", 989e12), // also GH200
        ("H100", 989e12), // SXM
        ("H800", 989e12),
        ("H20", 148e12),
        ("B200", 2250e12),
        ("A100", 312e12),
        ("A800", 312e12),
        ("A10G", 70e12),
        ("L40S", 362e12),
        ("L40", 181e12),
        ("L4", 121e12),
    ];
    table
        .iter()
        .find(|(k, _)| n.contains(k))
        .map(|&(_, peak)| peak)
}

/// The name of the device and the peak FLOP/s MFU is measured against: for a CUDA device
/// the GPU's table entry ([`gpu_peak_flops`]), else the H100/H200 figure of [`peak_flops`].
pub fn device_peak(device: &Device) -> (String, f64) {
    match device {
        #[cfg(feature = "cuda")]
        Device::Cuda(d) => {
            let name = d
                .cuda_stream()
                .context()
                .name()
                .unwrap_or_else(|_| "unknown GPU".into());
            let peak = gpu_peak_flops(&name).unwrap_or_else(|| peak_flops(DeviceSpec::Cuda));
            (name, peak)
        }
        Device::Cpu => ("cpu".into(), peak_flops(DeviceSpec::Cpu)),
        _ => ("gpu".into(), peak_flops(DeviceSpec::Cuda)),
    }
}

/// The dtype the forward pass computes in: f32 on CPU (exact, resumable, the reference),
/// bf16 on CUDA (tensor cores), where the parameters and AdamW state stay f32.
pub fn compute_dtype(spec: DeviceSpec) -> DType {
    match spec {
        DeviceSpec::Cpu => DType::F32,
        DeviceSpec::Cuda => DType::BF16,
    }
}

/// Opens the device a run computes on. CUDA is GPU 0 of those visible
/// (`CUDA_VISIBLE_DEVICES` selects which, as the driver reads it); it needs a binary built
/// with `--features cuda`.
pub fn open_device(spec: DeviceSpec) -> std::result::Result<Device, String> {
    open_device_for_rank(spec, 0)
}

/// [`open_device`] for the rank of a data-parallel run with this local rank
/// ([`gpu_ordinal`]).
pub fn open_device_for_rank(
    spec: DeviceSpec,
    local_rank: usize,
) -> std::result::Result<Device, String> {
    match spec {
        DeviceSpec::Cpu => Ok(Device::Cpu),
        DeviceSpec::Cuda => open_cuda(local_rank).map_err(|e| e.to_string()),
    }
}

/// [`open_device_for_rank`] for a run, a failure reported against the run config's
/// `device` field.
pub(crate) fn open_for_run(spec: DeviceSpec, local_rank: usize, file: &Path) -> Result<Device> {
    open_device_for_rank(spec, local_rank).map_err(|message| TrainError::Field {
        file: file.to_path_buf(),
        field: "device".into(),
        message,
    })
}
