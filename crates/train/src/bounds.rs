//! The memory bound a run must fit before anything is allocated: one estimate and one
//! notion of the device's memory, which `train` applies to its run and `sweep plan` to
//! every run of a grid.

use std::path::Path;

use crate::config::{DeviceSpec, ResolvedConfig};
use crate::error::{Result, TrainError};
use crate::memory::{memory_model, Graph};

const GIB: f64 = (1u64 << 30) as f64;

/// Memory assumed for a CUDA device when none is given: an H100's 80 GiB.
pub const DEFAULT_CUDA_GIB: f64 = 80.0;

pub use crate::memory::memory_estimate;

/// The machine's memory in bytes (`/proc/meminfo`), if readable.
pub fn machine_memory() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}

/// Bytes one device offers a run: `gib` when given, else the machine's memory on CPU
/// (unbounded where it cannot be read) and [`DEFAULT_CUDA_GIB`] on CUDA.
pub fn device_memory(device: DeviceSpec, gib: Option<f64>) -> f64 {
    match (gib, device) {
        (Some(g), _) => g * GIB,
        (None, DeviceSpec::Cpu) => machine_memory().unwrap_or(f64::INFINITY),
        (None, DeviceSpec::Cuda) => DEFAULT_CUDA_GIB * GIB,
    }
}

/// Refuses a run whose estimated memory exceeds the device's (`gib` as in
/// [`device_memory`]), per rank of a data-parallel run of `ranks` (ZeRO-1 divides the
/// optimizer state); `file` names the run config in the message.
pub fn check_memory(
    cfg: &ResolvedConfig,
    gib: Option<f64>,
    ranks: usize,
    file: &Path,
) -> Result<()> {
    if let Some(g) = gib {
        if !(g.is_finite() && g > 0.0) {
            return Err(TrainError::Field {
                file: file.to_path_buf(),
                field: "device_memory_gib".into(),
                message: format!("{g} must be > 0"),
            });
        }
    }
    let need = memory_model(
        &cfg.model,
        cfg.seq_len,
        cfg.optim.micro_batch_size,
        cfg.accumulation(),
        Graph::for_run(&cfg.model, cfg.device),
        cfg.device,
    )
    .sharded(ranks)
    .total;
    let have = device_memory(cfg.device, gib);
    if need > have {
        return Err(TrainError::Field {
            file: file.to_path_buf(),
            field: "model".into(),
            message: format!(
                "{} parameters need about {:.1} GiB (weights, AdamW state, activations of a \
                 micro-batch of {}), but the device has {:.1} GiB ({}); lower \
                 optim.micro_batch_size or the model size",
                cfg.model.params(),
                need / GIB,
                cfg.optim.micro_batch_size,
                have / GIB,
                match (gib, cfg.device) {
                    (Some(_), _) => "device_memory_gib",
                    (None, DeviceSpec::Cpu) => "the machine's memory; device_memory_gib overrides",
                    (None, DeviceSpec::Cuda) => "an H100's; device_memory_gib overrides",
                }
            ),
        });
    }
    Ok(())
}
