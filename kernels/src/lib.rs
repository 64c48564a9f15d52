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
    /// The PTX module: the stem of its `.cu` file (with `cuda`, its PTX is `ptx(module)`).
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
    "attention",
    "cross_entropy",
    "embedding",
    "rms_norm",
    "rope",
    "swiglu",
];

/// PTX of `src/adamw.cu`: the global gradient norm and the multi-tensor AdamW update.
#[cfg(feature = "cuda")]
pub const ADAMW: &str = include_str!(concat!(env!("OUT_DIR"), "/adamw.ptx"));
/// PTX of `src/attention.cu`: FlashAttention-2-style causal attention, forward and backward.
#[cfg(feature = "cuda")]
pub const ATTENTION: &str = include_str!(concat!(env!("OUT_DIR"), "/attention.ptx"));
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
        "attention" => ATTENTION,
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
        "attention",
        "flash_attn_fwd_bf16_hd64",
        "synthscale_model::ops::causal_attention (CausalAttention::cpu_fwd)",
    ),
    k(
        "attention",
        "flash_attn_fwd_bf16_hd128",
        "synthscale_model::ops::causal_attention (CausalAttention::cpu_fwd)",
    ),
    k(
        "attention",
        "flash_attn_bwd_preprocess_bf16",
        "synthscale_model::ops::causal_attention (CausalAttention::bwd)",
    ),
    k(
        "attention",
        "flash_attn_bwd_bf16_hd64",
        "synthscale_model::ops::causal_attention (CausalAttention::bwd)",
    ),
    k(
        "attention",
        "flash_attn_bwd_bf16_hd128",
        "synthscale_model::ops::causal_attention (CausalAttention::bwd)",
    ),
    k(
        "attention",
        "flash_attn_bwd_dq_convert",
        "synthscale_model::ops::causal_attention (CausalAttention::bwd)",
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

/// Query rows (forward) or keys (backward) per attention block: grids are
/// `(ceil(t / ATTENTION_TILE), b·h)` with 128 threads per block.
pub const ATTENTION_TILE: u32 = 64;

/// Dynamic shared memory of `flash_attn_fwd_bf16_hd{64,128}`, in bytes (pinned by
/// `static_assert`s in `attention.cu`); `None` for a head dim with no kernel. Above 48 KiB,
/// so the launcher raises the function's `MAX_DYNAMIC_SHARED_SIZE_BYTES` to it.
pub const fn flash_attn_fwd_shared_bytes(head_dim: usize) -> Option<u32> {
    match head_dim {
        64 => Some(72_192),
        128 => Some(113_152),
        _ => None,
    }
}

/// Dynamic shared memory of `flash_attn_bwd_bf16_hd{64,128}`, in bytes (as above).
pub const fn flash_attn_bwd_shared_bytes(head_dim: usize) -> Option<u32> {
    match head_dim {
        64 => Some(90_624),
        128 => Some(123_392),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
