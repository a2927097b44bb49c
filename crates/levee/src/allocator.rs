//! The global allocator: mimalloc, asked the way Rust's `System` asks glibc's malloc.
//!
//! Why not the `mimalloc` crate's `MiMalloc`: it calls `mi_malloc_aligned` for every
//! allocation, and mimalloc serves an aligned request of more than 1 KiB (hyper's read
//! buffers, its header-timeout timer) by its slow over-allocating path even when the alignment
//! asked for is 1: about 200 instructions more, four times per proxied request
//! (docs/benchmarks.md). Every mimalloc block is aligned to 8 bytes, so plain `mi_malloc` serves
//! every layout aligned to 8 or less, and the aligned calls only the rest.

// The allocator is the one place Levee's own code needs `unsafe`: `GlobalAlloc` is an unsafe
// trait and mimalloc's API is C.
#![allow(unsafe_code)]

use libmimalloc_sys as mi;
use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

/// The alignment of every block mimalloc hands out (its smallest size class is one word).
const GUARANTEED_ALIGN: usize = std::mem::size_of::<usize>();

/// mimalloc as the global allocator.
pub struct Mimalloc;

fn guaranteed(align: usize) -> bool {
    align <= GUARANTEED_ALIGN
}

// SAFETY: every path hands the layout to the mimalloc function that honours its alignment
// (plain calls only where mimalloc's own alignment suffices); frees go to `mi_free`, which takes
// any block mimalloc made.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if guaranteed(layout.align()) {
            mi::mi_malloc(layout.size()).cast()
        } else {
            mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if guaranteed(layout.align()) {
            mi::mi_zalloc(layout.size()).cast()
        } else {
            mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        mi::mi_free(ptr.cast::<c_void>());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if guaranteed(layout.align()) {
            mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
        } else {
            mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every alignment up to a page, small and large sizes, through all four entry points.
    #[test]
    fn blocks_have_the_asked_alignment_and_keep_their_contents() {
        let heap = Mimalloc;
        for align in [1, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for size in [1, 7, 8, 24, 100, 1_000, 1_025, 8_192, 70_000] {
                let layout = Layout::from_size_align(size.max(align), align).expect("layout");
                unsafe {
                    let p = heap.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "alloc {size} aligned {align}");
                    std::ptr::write_bytes(p, 0xab, layout.size());
                    let grown = heap.realloc(p, layout, layout.size() * 3);
                    assert_eq!(grown as usize % align, 0, "realloc {size} aligned {align}");
                    assert!((0..layout.size()).all(|i| *grown.add(i) == 0xab));
                    heap.dealloc(grown, layout);
                    let z = heap.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0, "alloc_zeroed {size} aligned {align}");
                    assert!((0..layout.size()).all(|i| *z.add(i) == 0));
                    heap.dealloc(z, layout);
                }
            }
        }
    }
}
