//! The global allocator: mimalloc, with a count of the bytes held in large allocations
//! (tensors) and their peak, which `synthscale bench memory` compares with the memory model.
//!
//! Only allocations of at least [`TRACKED`] bytes are counted, so the cost is two relaxed
//! atomic operations per tensor-sized allocation and nothing on the small ones that
//! tokenization and parsing make by the million.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicI64, Ordering};

/// The smallest allocation counted: 64 KiB.
pub const TRACKED: usize = 1 << 16;

static LIVE: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);

/// mimalloc (candle allocates a fresh buffer per op and glibc maps and unmaps the large
/// ones every time; mimalloc reuses them: REFERENCE.md §4 measured 1.8× on training), with
/// the count above.
pub struct Counting;

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
        if !p.is_null() && layout.size() >= TRACKED {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) };
        if !p.is_null() && layout.size() >= TRACKED {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) };
        if layout.size() >= TRACKED {
            shrank(layout.size());
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if layout.size() >= TRACKED {
                shrank(layout.size());
            }
            if new_size >= TRACKED {
                grew(new_size);
            }
        }
        p
    }
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
