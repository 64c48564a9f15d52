//! The global allocator: mimalloc, with a count of the bytes held in tensor-like
//! allocations and their peak, which `synthscale bench memory` compares with the memory
//! model, and of the number of them made, which `bench train` counts operations with.
//!
//! Only allocations of at least [`TRACKED`] bytes are counted in bytes and only those of at
//! least [`OP_BUFFER`] in number, so the cost is one to three relaxed atomic operations per
//! tensor-sized allocation and nothing on the small ones that tokenization and parsing make
//! by the million. The number is what `bench train` counts operations with on the CPU.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// The smallest allocation counted: 64 KiB.
pub const TRACKED: usize = 1 << 16;

/// The smallest allocation counted as a tensor's buffer in [`allocations`]: 1 KiB (every
/// candle op on the CPU writes its output into one fresh buffer; shapes, strides and the
/// graph's own nodes are smaller).
pub const OP_BUFFER: usize = 1 << 10;

static LIVE: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

/// mimalloc (candle allocates a fresh buffer per op and glibc maps and unmaps the large
/// ones every time; mimalloc reuses them: REFERENCE.md §4 measured 1.8× on training), with
/// the count above.
pub struct Counting;

/// Whether an allocation can be a tensor's buffer: tensors are plain Vecs of their element
/// type (alignment ≤ 8), while the GEMM library's packing workspaces (a few MB per thread,
/// kept for the process's life) are cache-line aligned and are neither tensors nor
/// operations.
fn tensor_like(layout: &Layout) -> bool {
    layout.align() <= 16
}

fn counted(layout: &Layout) {
    if layout.size() >= OP_BUFFER && tensor_like(layout) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

fn grew(bytes: usize) {
    let now = LIVE.fetch_add(bytes as i64, Ordering::Relaxed) + bytes as i64;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    LIVE.fetch_sub(bytes as i64, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to mimalloc; the counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { mimalloc::MiMalloc.alloc(layout) };
        counted(&layout);
        if !p.is_null() && layout.size() >= TRACKED && tensor_like(&layout) {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) };
        counted(&layout);
        if !p.is_null() && layout.size() >= TRACKED && tensor_like(&layout) {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) };
        if layout.size() >= TRACKED && tensor_like(&layout) {
            shrank(layout.size());
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if layout.size() >= TRACKED && tensor_like(&layout) {
                shrank(layout.size());
            }
            if new_size >= TRACKED && tensor_like(&layout) {
                grew(new_size);
            }
        }
        p
    }
}

/// Allocations of at least [`OP_BUFFER`] bytes so far (reallocations not included).
pub fn allocations() -> u64 {
    ALLOCS.load(Ordering::Relaxed)
}

/// Bytes held now in counted allocations.
pub fn live() -> i64 {
    LIVE.load(Ordering::Relaxed)
}

/// Starts a new peak at what is held now; returns that.
pub fn reset_peak() -> i64 {
    let now = live();
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// The most bytes held in counted allocations since the last [`reset_peak`].
pub fn peak() -> i64 {
    PEAK.load(Ordering::Relaxed)
}
