//! Fused ops with their own backward passes: the output head with its cross-entropy,
//! causal attention, RMSNorm, SwiGLU and rotary positions. Each is one candle `CustomOp`
//! with `cpu_fwd` (f32, below) and, in a `cuda` build, `cuda_fwd` (bf16, launching
//! `synthscale-kernels`; the classifier has no CUDA launcher yet), so the decoder calls the
//! same op on either device; [`FusedOps`] says which ops have a form for a device and dtype.
//!
//! Composed from elementwise candle ops, each of these allocates several full-size
//! intermediates forward and backward; fused, each is one pass over its input, split over
//! rows on rayon's threads in fixed chunks (so results do not depend on scheduling). The
//! composed versions in `decoder.rs` are their oracles (tests below) and what runs on
//! devices these ops have no kernel for.
//!
//! One op per file, each a candle `CustomOp` with its backward:
//! - [`embedding`]: the lookup, backward in f32 (CUDA); [`rms_norm`]: RMSNorm; [`swiglu`]: silu(gate) · up; [`rope`]: rotary positions to heads;
//! - [`attention`]: causal attention; [`cross_entropy`]: the output head with its loss;
//! - `cpu`: the slices and GEMMs they share; `cuda`: kernel loading and device buffers;
//! - [`dispatch`]: which form runs, and every kernel's launch geometry.

mod attention;
mod cpu;
mod cross_entropy;
#[cfg(feature = "cuda")]
mod cuda;
pub mod dispatch;
mod embedding;
mod rms_norm;
mod rope;
mod swiglu;
#[cfg(test)]
mod testing;

pub use attention::causal_attention;
pub use cross_entropy::linear_cross_entropy;
pub use dispatch::FusedOps;
pub use embedding::embedding;
pub use rms_norm::rms_norm;
pub use rope::rope_to_heads;
pub use swiglu::swiglu;
