//! The global allocator of Runnel's binaries: mimalloc, called through its
//! plain API whenever that already gives the alignment asked for.
//!
//! The `mimalloc` crate's allocator passes every request to
//! `mi_malloc_aligned`. In mimalloc 3 that only takes the small-object fast
//! path when a free block of the size class happens to be aligned, and
//! otherwise over-allocates through the generic path: a 192-byte row of
//! SQL values paid ~100 instructions per allocation instead of ~30
//! (upstream: purpleprotocol/mimalloc_rust#170). Every size class of
//! mimalloc is a multiple of 8 bytes (of 16 from 16 up) and pages start
//! 16-byte aligned, so a request aligned to at most 8, or to 16 with a size
//! that is a multiple of 16, is served aligned by `mi_malloc`; anything
//! else keeps the aligned API.
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: runnel_alloc::MiMalloc = runnel_alloc::MiMalloc;
//! ```

// The one crate that implements GlobalAlloc over a C allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// mimalloc as the global allocator (see the crate docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct MiMalloc;

/// Whether a plain (unaligned-API) block of `size` bytes is aligned to
/// `align`.
#[inline]
fn natural(size: usize, align: usize) -> bool {
    align <= 8 || (align <= 16 && size.is_multiple_of(16))
}

// SAFETY: every method forwards to mimalloc, which returns blocks of at
// least the size asked for, aligned as `natural` above states for the
// plain API and as asked for by the aligned one, and frees any block of
// its own with `mi_free`.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain FFI calls; mimalloc accepts any size and alignment.
        unsafe {
            if natural(layout.size(), layout.align()) {
                mi::mi_malloc(layout.size()) as *mut u8
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()) as *mut u8
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        unsafe {
            if natural(layout.size(), layout.align()) {
                mi::mi_zalloc(layout.size()) as *mut u8
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (GlobalAlloc's contract).
        unsafe { mi::mi_free(ptr as *mut c_void) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`; the new
        // block keeps `layout.align()` as the branches above do.
        unsafe {
            if natural(new_size, layout.align()) {
                mi::mi_realloc(ptr as *mut c_void, new_size) as *mut u8
            } else {
                mi::mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_have_the_alignment_asked_for() {
        let a = MiMalloc;
        for align in [1usize, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [
                1usize, 3, 8, 12, 16, 24, 40, 48, 100, 192, 1000, 5000, 100_000,
            ] {
                let Ok(layout) = Layout::from_size_align(size, align) else {
                    continue;
                };
                let mut blocks = Vec::new();
                for _ in 0..40 {
                    // SAFETY: a non-zero size; freed below with its layout.
                    let p = unsafe { a.alloc(layout) };
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size}, align {align}");
                    // SAFETY: `p` holds `size` bytes.
                    unsafe { p.write_bytes(0xab, size) };
                    blocks.push(p);
                }
                for p in blocks {
                    // SAFETY: allocated above with `layout`.
                    unsafe { a.dealloc(p, layout) };
                }
            }
        }
    }

    #[test]
    fn zeroed_and_grown_blocks_keep_their_promises() {
        let a = MiMalloc;
        for align in [1usize, 8, 16, 64] {
            let layout = Layout::from_size_align(48, align).unwrap();
            // SAFETY: a non-zero size; every access stays inside the block
            // and the block is freed once with its current layout.
            unsafe {
                let p = a.alloc_zeroed(layout);
                assert!(std::slice::from_raw_parts(p, 48).iter().all(|b| *b == 0));
                for i in 0..48 {
                    *p.add(i) = i as u8;
                }
                let q = a.realloc(p, layout, 4000);
                assert_eq!(q as usize % align, 0);
                assert!((0..48).all(|i| *q.add(i) == i as u8));
                a.dealloc(q, Layout::from_size_align(4000, align).unwrap());
            }
        }
    }
}
