//! synthscale's decoder: a Llama-style language model in candle.
//!
//! - [`config`]: the shape, presets, the size rule, parameter and FLOP counts;
//! - [`decoder`]: weights and the differentiable forward pass;
//! - [`device`]: opening a CUDA device, the GPU of a rank, the compute capability check;
//! - [`export`]: Hugging Face Llama layout;
//! - [`ops`]: fused CPU ops with their own backward passes, one op per file.

pub mod config;
pub mod decoder;
pub mod device;
pub mod error;
pub mod export;
pub mod ops;

pub use config::{ModelConfig, PRESETS};
pub use decoder::{Decoder, Mode};
pub use error::{ModelError, Result};
pub use export::{export_hf, hf_config};
