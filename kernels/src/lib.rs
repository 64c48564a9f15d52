//! synthscale's CUDA C kernels: `src/*.cu`, one kernel family per file (bf16 activations,
//! f32 accumulation), compiled to PTX by `build.rs` under the `cuda` feature and exported
//! here as one constant per file, with [`KERNELS`], the table that names every
//! `extern "C"` function, its PTX module and the CPU function it must agree with.
//!
//! This crate owns the device code only. The CustomOps that launch it (`cpu_fwd`,
//! `cuda_fwd`, backward) live in `synthscale-model`'s ops, each beside its CPU oracle; a
//! launcher loads a function with `CudaDevice::get_or_load_custom_func(function, module,
//! ptx)`. Each `.cu` file documents, above every kernel, its argument order and types, its
//! grid and block shape and its dynamic shared memory.

/// One `extern "C"` kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kernel {
    /// The PTX module: the stem of its `.cu` file (its PTX is [`ptx`]`(module)`).
    pub module: &'static str,
    /// The `extern "C"` function name.
    pub function: &'static str,
    /// The Rust function it must agree with: `crate::module::item`, then in parentheses
    /// the method that computes it.
    pub cpu_reference: &'static str,
}

/// The PTX modules, one per `src/*.cu` file.
pub const MODULES: &[&str] = &[
    "adamw",
    "cross_entropy",
    "embedding",
    "rms_norm",
    "rope",
    "swiglu",
];

/// PTX of `src/adamw.cu`: the global gradient norm and the multi-tensor AdamW update.
#[cfg(feature = "cuda")]
pub const ADAMW: &str = include_str!(concat!(env!("OUT_DIR"), "/adamw.ptx"));
/// PTX of `src/cross_entropy.cu`: the fused classifier (loss and dlogits in place).
#[cfg(feature = "cuda")]
pub const CROSS_ENTROPY: &str = include_str!(concat!(env!("OUT_DIR"), "/cross_entropy.ptx"));
/// PTX of `src/embedding.cu`: embedding backward.
#[cfg(feature = "cuda")]
pub const EMBEDDING: &str = include_str!(concat!(env!("OUT_DIR"), "/embedding.ptx"));
/// PTX of `src/rms_norm.cu`: RMSNorm forward, backward, and with the residual add.
#[cfg(feature = "cuda")]
pub const RMS_NORM: &str = include_str!(concat!(env!("OUT_DIR"), "/rms_norm.ptx"));
/// PTX of `src/rope.cu`: rotary positions onto heads, and back.
#[cfg(feature = "cuda")]
pub const ROPE: &str = include_str!(concat!(env!("OUT_DIR"), "/rope.ptx"));
/// PTX of `src/swiglu.cu`: SwiGLU forward and backward.
#[cfg(feature = "cuda")]
pub const SWIGLU: &str = include_str!(concat!(env!("OUT_DIR"), "/swiglu.ptx"));

/// The PTX of a module named in [`MODULES`].
#[cfg(feature = "cuda")]
pub fn ptx(module: &str) -> Option<&'static str> {
    Some(match module {
        "adamw" => ADAMW,
        "cross_entropy" => CROSS_ENTROPY,
        "embedding" => EMBEDDING,
        "rms_norm" => RMS_NORM,
        "rope" => ROPE,
        "swiglu" => SWIGLU,
        _ => return None,
    })
}

const fn k(module: &'static str, function: &'static str, cpu_reference: &'static str) -> Kernel {
    Kernel {
        module,
        function,
        cpu_reference,
    }
}

/// Every `extern "C"` kernel, by module (a unit test checks this against the sources).
pub const KERNELS: &[Kernel] = &[
    k(
        "rms_norm",
        "rms_norm_fwd_bf16",
        "synthscale_model::ops::rms_norm (RmsNorm::cpu_fwd)",
    ),
    k(
        "rms_norm",
        "residual_rms_norm_fwd_bf16",
        "synthscale_model::ops::rms_norm (RmsNorm::cpu_fwd, on x + a)",
    ),
    k(
        "rms_norm",
        "rms_norm_bwd_bf16",
        "synthscale_model::ops::rms_norm (RmsNormGrad::cpu_fwd)",
    ),
    k(
        "rms_norm",
        "rms_norm_dw_reduce",
        "synthscale_model::ops::rms_norm (RmsNormGrad::cpu_fwd)",
    ),
    k(
        "swiglu",
        "swiglu_fwd_bf16",
        "synthscale_model::ops::swiglu (SwiGlu::cpu_fwd)",
    ),
    k(
        "swiglu",
        "swiglu_bwd_bf16",
        "synthscale_model::ops::swiglu (SwiGluGrad::cpu_fwd)",
    ),
    k(
        "rope",
        "rope_to_heads_fwd_bf16",
        "synthscale_model::ops::rope_to_heads (RopeToHeads::cpu_fwd)",
    ),
    k(
        "rope",
        "rope_from_heads_bwd_bf16",
        "synthscale_model::ops::rope_to_heads (RopeFromHeadsGrad::cpu_fwd)",
    ),
    k(
        "cross_entropy",
        "cross_entropy_fwd_bwd_bf16",
        "synthscale_model::ops::linear_cross_entropy (LinearCrossEntropy::cpu_fwd)",
    ),
    // ops has no embedding op: the oracle is the decoder's lookup, whose gradient candle
    // forms with index_add.
    k(
        "embedding",
        "embedding_bwd_bf16",
        "synthscale_model::decoder::Decoder::hidden (index_select, backward by index_add)",
    ),
    // The optimizer's oracle is the trainer's AdamW, not an op.
    k(
        "adamw",
        "global_norm_sq_partial",
        "synthscale_train::optim::global_norm",
    ),
    k(
        "adamw",
        "global_norm_finalize",
        "synthscale_train::optim::global_norm",
    ),
    k(
        "adamw",
        "adamw_multi_tensor",
        "synthscale_train::optim::AdamW::step (AdamW::step_cpu_f32)",
    ),
];

/// The table entry of an `extern "C"` function.
pub fn kernel(function: &str) -> Option<&'static Kernel> {
    KERNELS.iter().find(|k| k.function == function)
}

#[cfg(test)]
mod tests;
