//! The memory bound a run must fit before anything is allocated: one estimate and one
//! notion of the device's memory, which `train` applies to its run and `sweep plan` to
//! every run of a grid.

use std::path::Path;

use synthscale_model::ModelConfig;

use crate::config::{DeviceSpec, ResolvedConfig};
use crate::error::{Result, TrainError};

const GIB: f64 = (1u64 << 30) as f64;

/// Memory assumed for a CUDA device when none is given: an H100's 80 GiB.
pub const DEFAULT_CUDA_GIB: f64 = 80.0;

/// Estimated peak memory of training one model: f32 weights, gradients and two AdamW
/// moments (16 bytes per parameter; a bf16 copy on CUDA adds 2), the activations kept for
/// the backward pass of one micro-batch (Korthikanti et al. 2022, eq. 1: s·b·h·(34 +
/// 5·a·s/h) bytes per layer at 2 bytes a value, scaled to the compute width), and the
/// logits with their gradient (3 · s·b·V values).
pub fn memory_estimate(m: &ModelConfig, seq_len: usize, micro: usize, device: DeviceSpec) -> f64 {
    let p = m.params() as f64;
    let (state, width) = match device {
        DeviceSpec::Cpu => (16.0, 4.0),
        DeviceSpec::Cuda => (18.0, 2.0),
    };
    let (s, b, h, a) = (
        seq_len as f64,
        micro as f64,
        m.d_model as f64,
        m.n_heads as f64,
    );
    let per_layer = s * b * h * (34.0 + 5.0 * a * s / h) / 2.0 * width;
    let logits = 3.0 * s * b * m.vocab_size as f64 * 4.0;
    p * state + m.n_layers as f64 * per_layer + logits
}

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
/// [`device_memory`]); `file` names the run config in the message.
pub fn check_memory(cfg: &ResolvedConfig, gib: Option<f64>, file: &Path) -> Result<()> {
    if let Some(g) = gib {
        if !(g.is_finite() && g > 0.0) {
            return Err(TrainError::Field {
                file: file.to_path_buf(),
                field: "device_memory_gib".into(),
                message: format!("{g} must be > 0"),
            });
        }
    }
    let need = memory_estimate(
        &cfg.model,
        cfg.seq_len,
        cfg.optim.micro_batch_size,
        cfg.device,
    );
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
