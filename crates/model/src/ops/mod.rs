//! Fused CPU ops with their own backward passes: the output head with its cross-entropy,
//! causal attention, RMSNorm, SwiGLU and rotary positions.
//!
//! Composed from elementwise candle ops, each of these allocates several full-size
//! intermediates forward and backward; fused, each is one pass over its input, split over
//! rows on rayon's threads in fixed chunks (so results do not depend on scheduling). The
//! composed versions in `decoder.rs` are their oracles (tests below) and what runs on
//! devices these ops have no kernel for.
//!
//! One op per file, each a candle `CustomOp` with its backward:
//! - [`rms_norm`]: RMSNorm; [`swiglu`]: silu(gate) · up; [`rope`]: rotary positions to heads;
//! - [`attention`]: causal attention; [`cross_entropy`]: the output head with its loss;
//! - `cpu`: the slices and GEMMs they share.

mod attention;
mod cpu;
mod cross_entropy;
mod rms_norm;
mod rope;
mod swiglu;
#[cfg(test)]
mod testing;

pub use attention::causal_attention;
pub use cross_entropy::linear_cross_entropy;
pub use rms_norm::rms_norm;
pub use rope::rope_to_heads;
pub use swiglu::swiglu;
