//! What the fused CPU ops share: contiguous f32/u32 views of storages and strided GEMMs.

use candle_core::{CpuStorage, Layout, Result};

/// Rows per rayon task: large enough to amortise scheduling, fixed for determinism.
pub(super) const ROWS_PER_TASK: usize = 64;

/// The f32 values of a contiguous storage; `what` names the op in errors.
pub(super) fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("{what}: expected f32 input")
    };
    contiguous(v, l, what, "input")
}

/// The u32 values (token ids) of a contiguous storage; `what` names the op in errors.
pub(super) fn u32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [u32]> {
    let CpuStorage::U32(v) = s else {
        candle_core::bail!("{what}: expected u32 targets")
    };
    contiguous(v, l, what, "targets")
}

/// The part of `values` that `l` lays out, which must be contiguous.
fn contiguous<'a, T>(values: &'a [T], l: &Layout, what: &str, operand: &str) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&values[a..b]),
        None => candle_core::bail!("{what}: {operand} must be contiguous"),
    }
}

pub(super) fn all_threads() -> gemm::Parallelism {
    gemm::Parallelism::Rayon(rayon::current_num_threads())
}

/// `dst[m × n] = lhs[m × k] · rhs[k × n]` with explicit row and column strides, single-threaded
/// (the caller parallelises over heads).
#[allow(clippy::too_many_arguments)]
pub(super) fn small_gemm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    lhs: &[f32],
    lhs_strides: (usize, usize),
    rhs: &[f32],
    rhs_strides: (usize, usize),
) {
    gemm_f32(
        m,
        n,
        k,
        dst,
        lhs,
        lhs_strides,
        rhs,
        rhs_strides,
        1.0,
        gemm::Parallelism::None,
    )
}

/// `dst[m × n] = alpha · lhs[m × k] · rhs[k × n]` with explicit row and column strides.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm_f32(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
    alpha: f32,
    parallelism: gemm::Parallelism,
) {
    assert!(dst.len() >= m * n);
    assert!(m == 0 || k == 0 || lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs);
    assert!(n == 0 || k == 0 || rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs);
    // SAFETY: the asserts above bound every index gemm reads or writes; dst is exclusively
    // borrowed and does not alias the inputs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            0.0,
            alpha,
            false,
            false,
            false,
            parallelism,
        )
    }
}

pub(super) fn cpu_f32<'a>(
    s: &'a candle_core::Storage,
    l: &Layout,
    what: &str,
) -> Result<&'a [f32]> {
    match s {
        candle_core::Storage::Cpu(c) => f32_slice(c, l, what),
        _ => candle_core::bail!("{what}: CPU tensors only"),
    }
}
