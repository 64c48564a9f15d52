//! Which form of each op runs (the fused op or the composed candle ops), and the launch
//! geometry of every CUDA kernel the fused ops start.
//!
//! Both are pure functions of shapes, dtype and device kind, so they are tested on the CPU;
//! `ops::cuda` launches with exactly these grids, blocks and shared-memory sizes, which
//! `kernels/src/*.cu` documents above each kernel.

use candle_core::{DType, Device};
use synthscale_kernels::{
    flash_attn_bwd_shared_bytes, flash_attn_fwd_shared_bytes, ATTENTION_TILE,
};

/// Which decoder ops run fused (one `CustomOp` with its own backward) rather than
/// composed from candle's differentiable ops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FusedOps {
    /// The embedding lookup (its backward accumulates in f32).
    pub embedding: bool,
    pub rms_norm: bool,
    pub swiglu: bool,
    pub rope: bool,
    pub attention: bool,
    /// The output head with its cross-entropy.
    pub loss: bool,
}

impl FusedOps {
    /// Every op composed: the oracle form, and what runs where no fused op exists.
    pub const NONE: FusedOps = FusedOps {
        embedding: false,
        rms_norm: false,
        swiglu: false,
        rope: false,
        attention: false,
        loss: false,
    };

    /// The fused ops that exist for this device kind, compute dtype and head dimension:
    /// - CPU: every op but the embedding, in f32 (the CPU ops have no bf16 form);
    /// - CUDA: the embedding, RMSNorm, SwiGLU, RoPE and the classifier (output head and loss) in bf16,
    ///   and attention in bf16 at head dimensions 64 and 128 (the flash kernels' tiles).
    pub fn select(on_cuda: bool, dtype: DType, head_dim: usize) -> FusedOps {
        if !on_cuda {
            let f32 = dtype == DType::F32;
            return FusedOps {
                // candle's index_add is already a one-pass f32 scatter on the CPU.
                embedding: false,
                rms_norm: f32,
                swiglu: f32,
                rope: f32,
                attention: f32,
                loss: f32,
            };
        }
        // What a `cuda` build runs (only it can open a CUDA device); independent of this
        // build's features, so a CPU build plans GPU runs by the graph they will execute.
        let bf16 = dtype == DType::BF16;
        FusedOps {
            embedding: bf16,
            rms_norm: bf16,
            swiglu: bf16,
            rope: bf16,
            attention: bf16 && flash_attn_fwd_shared_bytes(head_dim).is_some(),
            loss: bf16,
        }
    }

    /// [`FusedOps::select`] for a candle device.
    pub fn for_device(device: &Device, dtype: DType, head_dim: usize) -> FusedOps {
        FusedOps::select(device.is_cuda(), dtype, head_dim)
    }
}

/// A kernel launch: grid and block in (x, y, z), dynamic shared memory in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launch {
    pub grid: (u32, u32, u32),
    pub block: (u32, u32, u32),
    pub shared_bytes: u32,
}

/// Threads per block of the grid-stride (elementwise) kernels.
pub const ELEMENTWISE_BLOCK: u32 = 256;
/// At most this many blocks for a grid-stride kernel: 16 per SM on a 132-SM H100 and
/// more than any current GPU keeps resident; larger tensors loop.
pub const GRID_STRIDE_MAX_BLOCKS: u32 = 2_112;
/// Blocks of `rms_norm_bwd_bf16` (each takes every `RMS_NORM_BWD_BLOCKS`-th row): fixed, not
/// the SM count, so dw's reduction order, and its bits, are the same on every GPU.
pub const RMS_NORM_BWD_BLOCKS: u32 = 256;
/// The most dynamic shared memory one block may ask for on sm_90 (227 KiB).
pub const MAX_SHARED_BYTES: u32 = 232_448;
/// CUDA's limit on grid dimensions y and z.
const MAX_GRID_YZ: usize = 65_535;

fn check_i32(what: &str, v: usize) -> candle_core::Result<i32> {
    i32::try_from(v)
        .map_err(|_| candle_core::Error::Msg(format!("{what}: {v} exceeds the kernel's int")))
}

fn ceil_div(a: usize, b: usize) -> usize {
    a.div_ceil(b)
}

/// A grid-stride kernel over `n` elements (`swiglu_*`, `rope_*`, `flash_attn_bwd_dq_convert`);
/// `None` when there is nothing to do (a zero-size grid is not a valid launch).
pub fn elementwise(n: usize) -> Option<Launch> {
    if n == 0 {
        return None;
    }
    let blocks = ceil_div(n, ELEMENTWISE_BLOCK as usize).min(GRID_STRIDE_MAX_BLOCKS as usize);
    Some(Launch {
        grid: (blocks as u32, 1, 1),
        block: (ELEMENTWISE_BLOCK, 1, 1),
        shared_bytes: 0,
    })
}

/// Threads per row of the row kernels: a multiple of 32, 256 for rows of 256 or more.
fn row_block(d: usize) -> u32 {
    (ceil_div(d.max(1), 32) * 32).min(256) as u32
}

/// `rms_norm_fwd_bf16` / `residual_rms_norm_fwd_bf16`: one block per row.
pub fn rms_norm_fwd(rows: usize, d: usize) -> candle_core::Result<Launch> {
    check_i32("rms_norm rows", rows)?;
    check_i32("rms_norm width", d)?;
    if rows == 0 || d == 0 {
        candle_core::bail!("rms_norm: empty input ({rows} rows of {d})");
    }
    Ok(Launch {
        grid: (rows as u32, 1, 1),
        block: (row_block(d), 1, 1),
        shared_bytes: 0,
    })
}

/// `rms_norm_bwd_bf16`: at most [`RMS_NORM_BWD_BLOCKS`] blocks, each with a `[d]` f32
/// accumulator for dw in shared memory.
pub fn rms_norm_bwd(rows: usize, d: usize) -> candle_core::Result<Launch> {
    rms_norm_fwd(rows, d)?;
    let shared = d * 4;
    if shared > MAX_SHARED_BYTES as usize {
        candle_core::bail!(
            "rms_norm backward: width {d} needs {shared} bytes of shared memory, over the \
             {MAX_SHARED_BYTES} a block may have"
        );
    }
    Ok(Launch {
        grid: (rows.min(RMS_NORM_BWD_BLOCKS as usize) as u32, 1, 1),
        block: (row_block(d), 1, 1),
        shared_bytes: shared as u32,
    })
}

/// `rms_norm_dw_reduce`: one thread per column.
pub fn rms_norm_dw_reduce(d: usize) -> Launch {
    Launch {
        grid: (ceil_div(d.max(1), 256) as u32, 1, 1),
        block: (256, 1, 1),
        shared_bytes: 0,
    }
}

/// The classifier pads the vocabulary to a multiple of this (llm.c's 128: aligned rows
/// for the kernel's 16-byte loads and well-shaped GEMMs).
pub const VOCAB_PAD: usize = 128;
/// Threads per row of `cross_entropy_fwd_bwd_bf16`.
pub const CLASSIFIER_BLOCK: u32 = 512;

/// `cross_entropy_fwd_bwd_bf16` over `n` rows of a vocabulary of `v`: the padded row
/// length and the launch (one block per row).
pub fn classifier(n: usize, v: usize) -> candle_core::Result<(usize, Launch)> {
    if n == 0 || v == 0 {
        candle_core::bail!("linear_cross_entropy: empty input ({n} rows, vocabulary {v})");
    }
    let v_padded = v.div_ceil(VOCAB_PAD) * VOCAB_PAD;
    check_i32("linear_cross_entropy rows", n)?;
    check_i32("linear_cross_entropy padded vocabulary", v_padded)?;
    Ok((
        v_padded,
        Launch {
            grid: (n as u32, 1, 1),
            block: (CLASSIFIER_BLOCK, 1, 1),
            shared_bytes: 0,
        },
    ))
}

/// `embedding_bwd_bf16`: one block per token row; `None` when there are no tokens.
pub fn embedding_bwd(n: usize, d: usize) -> candle_core::Result<Option<Launch>> {
    check_i32("embedding tokens", n)?;
    check_i32("embedding width", d)?;
    Ok((n > 0).then(|| Launch {
        grid: (n as u32, 1, 1),
        block: (row_block(d), 1, 1),
        shared_bytes: 0,
    }))
}

/// Which flash-attention kernels serve a head dimension, with the block geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attention {
    pub forward: &'static str,
    pub backward: &'static str,
    pub fwd: Launch,
    pub bwd: Launch,
    /// `flash_attn_bwd_preprocess_bf16`: one warp per query row, 4 rows per block.
    pub preprocess: Launch,
}

/// The flash-attention launches for `[b, h, t, head_dim]` inputs; an error naming the
/// head dimension when no kernel has that tile (64 and 128 do).
pub fn attention(b: usize, h: usize, t: usize, head_dim: usize) -> candle_core::Result<Attention> {
    let (Some(fs), Some(bs)) = (
        flash_attn_fwd_shared_bytes(head_dim),
        flash_attn_bwd_shared_bytes(head_dim),
    ) else {
        candle_core::bail!(
            "causal_attention: no CUDA kernel for head dimension {head_dim} (64 or 128)"
        )
    };
    if b * h == 0 || t == 0 {
        candle_core::bail!("causal_attention: empty input (b·h = {}, t = {t})", b * h);
    }
    if b * h > MAX_GRID_YZ {
        candle_core::bail!(
            "causal_attention: batch × heads = {} exceeds the grid's {MAX_GRID_YZ}",
            b * h
        );
    }
    check_i32("causal_attention sequence length", t)?;
    check_i32("causal_attention heads", h)?;
    let tiles = ceil_div(t, ATTENTION_TILE as usize) as u32;
    let grid = (tiles, (b * h) as u32, 1);
    let (forward, backward) = match head_dim {
        64 => ("flash_attn_fwd_bf16_hd64", "flash_attn_bwd_bf16_hd64"),
        _ => ("flash_attn_fwd_bf16_hd128", "flash_attn_bwd_bf16_hd128"),
    };
    Ok(Attention {
        forward,
        backward,
        fwd: Launch {
            grid,
            block: (128, 1, 1),
            shared_bytes: fs,
        },
        bwd: Launch {
            grid,
            block: (128, 1, 1),
            shared_bytes: bs,
        },
        preprocess: Launch {
            grid: (ceil_div(b * h * t, 4) as u32, 1, 1),
            block: (128, 1, 1),
            shared_bytes: 0,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Oracle: the launch contracts written above each kernel in kernels/src/*.cu.

    #[test]
    fn cpu_runs_every_op_fused_in_f32_and_none_in_bf16() {
        let all = FusedOps::select(false, DType::F32, 48);
        assert!(!all.embedding);
        assert!(all.rms_norm && all.swiglu && all.rope && all.attention && all.loss);
        assert_eq!(FusedOps::select(false, DType::BF16, 64), FusedOps::NONE);
        assert_eq!(
            FusedOps::for_device(&Device::Cpu, DType::F32, 64),
            FusedOps::select(false, DType::F32, 64)
        );
    }

    #[test]
    fn cuda_fuses_bf16_ops_and_attention_only_at_its_tiles() {
        let on = true;
        for hd in [64, 128] {
            let f = FusedOps::select(true, DType::BF16, hd);
            assert_eq!(
                (f.rms_norm, f.swiglu, f.rope, f.attention),
                (on, on, on, on)
            );
            assert!(f.embedding);
            assert!(f.loss);
        }
        let f = FusedOps::select(true, DType::BF16, 32);
        assert_eq!((f.rope, f.attention), (on, false));
        assert_eq!(FusedOps::select(true, DType::F32, 64), FusedOps::NONE);
    }

    #[test]
    fn elementwise_grids_cover_n_and_stop_at_the_cap() {
        assert_eq!(elementwise(0), None);
        let l = elementwise(1).unwrap();
        assert_eq!(
            (l.grid, l.block, l.shared_bytes),
            ((1, 1, 1), (256, 1, 1), 0)
        );
        assert_eq!(elementwise(257).unwrap().grid.0, 2);
        // 124M SwiGLU at micro-batch 8, seq 1024: 8·1024·2048 elements, grid-stride.
        assert_eq!(
            elementwise(8 * 1024 * 2048).unwrap().grid.0,
            GRID_STRIDE_MAX_BLOCKS
        );
    }

    #[test]
    fn rms_norm_launches_one_block_per_row_and_bounds_the_backward() {
        let f = rms_norm_fwd(8192, 768).unwrap();
        assert_eq!((f.grid.0, f.block.0, f.shared_bytes), (8192, 256, 0));
        assert_eq!(rms_norm_fwd(3, 40).unwrap().block.0, 64);
        let b = rms_norm_bwd(8192, 768).unwrap();
        assert_eq!((b.grid.0, b.shared_bytes), (RMS_NORM_BWD_BLOCKS, 768 * 4));
        assert_eq!(rms_norm_bwd(10, 768).unwrap().grid.0, 10);
        let e = rms_norm_bwd(4, 60_000).unwrap_err().to_string();
        assert!(e.contains("width 60000") && e.contains("232448"), "{e}");
        assert!(rms_norm_fwd(0, 768).is_err());
        assert_eq!(rms_norm_dw_reduce(768).grid.0, 3);
    }

    #[test]
    fn embedding_backward_takes_a_block_per_token() {
        let l = embedding_bwd(8192, 768).unwrap().unwrap();
        assert_eq!((l.grid.0, l.block.0), (8192, 256));
        assert_eq!(embedding_bwd(0, 768).unwrap(), None);
    }

    #[test]
    fn classifier_pads_the_vocabulary_to_128() {
        // GPT-2's 50,257 words → 50,304 (llm.c's padded vocabulary).
        let (vp, l) = classifier(8192, 50_257).unwrap();
        assert_eq!((vp, l.grid.0, l.block.0), (50_304, 8192, 512));
        assert_eq!(classifier(3, 128).unwrap().0, 128);
        assert_eq!(classifier(3, 129).unwrap().0, 256);
        assert!(classifier(0, 10).is_err());
    }

    #[test]
    fn attention_picks_the_tile_of_the_head_dim() {
        // 124M: b 8, 12 heads of 64, seq 1024.
        let a = attention(8, 12, 1024, 64).unwrap();
        assert_eq!(a.forward, "flash_attn_fwd_bf16_hd64");
        assert_eq!(a.backward, "flash_attn_bwd_bf16_hd64");
        assert_eq!(a.fwd.grid, (16, 96, 1));
        assert_eq!((a.fwd.block.0, a.fwd.shared_bytes), (128, 72_192));
        assert_eq!(a.bwd.shared_bytes, 90_624);
        assert_eq!(a.preprocess.grid.0, 8 * 12 * 1024 / 4);
        let a = attention(1, 2, 65, 128).unwrap();
        assert_eq!((a.fwd.grid.0, a.fwd.shared_bytes), (2, 113_152));
        assert_eq!(a.forward, "flash_attn_fwd_bf16_hd128");
        for kernel in [a.forward, a.backward] {
            assert!(synthscale_kernels::kernel(kernel).is_some(), "{kernel}");
        }
        let e = attention(1, 2, 16, 48).unwrap_err().to_string();
        assert!(e.contains("head dimension 48"), "{e}");
        assert!(attention(70_000, 1, 16, 64).is_err());
    }
}
