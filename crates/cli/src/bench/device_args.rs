//! The device and compute dtype a bench runs on (`--device`, `--dtype`), shared by the
//! benches that build a model.

use candle_core::{DType, Device};
use clap::Args;
use synthscale_train::config::DeviceSpec;
use synthscale_train::trainer::{compute_dtype, open_device};

use crate::util::BadInput;

/// The device and compute dtype a bench runs on.
#[derive(Args, Debug, Clone)]
pub struct DeviceArgs {
    /// Device: cpu, or cuda (GPU 0 of CUDA_VISIBLE_DEVICES; needs a binary built with
    /// `--features cuda`).
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub device: DeviceSpec,
    /// Compute dtype of the forward pass (parameters and AdamW state stay f32)
    /// [default: f32 on cpu, bf16 on cuda, as training uses].
    #[arg(long, value_parser = parse_dtype)]
    pub dtype: Option<DType>,
}

impl DeviceArgs {
    pub(crate) fn open(&self) -> anyhow::Result<(Device, DType)> {
        let dev = open_device(self.device).map_err(|m| BadInput(format!("--device: {m}")))?;
        let dtype = self.dtype.unwrap_or(compute_dtype(self.device));
        Ok((dev, dtype))
    }
}

fn parse_device(s: &str) -> Result<DeviceSpec, String> {
    match s {
        "cpu" => Ok(DeviceSpec::Cpu),
        "cuda" => Ok(DeviceSpec::Cuda),
        _ => Err(format!("unknown device {s:?}: cpu or cuda")),
    }
}

fn parse_dtype(s: &str) -> Result<DType, String> {
    match s {
        "f32" => Ok(DType::F32),
        "bf16" => Ok(DType::BF16),
        _ => Err(format!("unknown dtype {s:?}: f32 or bf16")),
    }
}

pub(crate) fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::BF16 => "bf16",
        _ => "f32",
    }
}
