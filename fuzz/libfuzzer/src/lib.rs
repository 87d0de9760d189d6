//! What every fuzz binary shares: an allocator that refuses any single
//! allocation over [`MAX_ALLOCATION_BYTES`] by aborting, which libFuzzer
//! reports as a crash and saves the input for. libFuzzer's own
//! `-malloc_limit_mb` needs a sanitizer's malloc hooks, which a build with
//! `--sanitizer none` does not have; its `-rss_limit_mb` still bounds the
//! total.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write as _;

/// The largest single allocation a target may make: 256 MiB.
pub const MAX_ALLOCATION_BYTES: usize = 256 * 1024 * 1024;

/// The system allocator, aborting on an allocation over
/// [`MAX_ALLOCATION_BYTES`].
pub struct Capped;

fn check(size: usize) {
    if size > MAX_ALLOCATION_BYTES {
        // Stderr is unbuffered: this writes without allocating.
        let _ = std::io::stderr()
            .write_all(b"==quarry-fuzz== allocation over 256 MiB (-malloc_limit_mb equivalent)\n");
        std::process::abort();
    }
}

// SAFETY: every call forwards to `System` with the caller's arguments
// unchanged, after a size check that only aborts.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// A fuzz binary for one `quarry_fuzz` target function, with the capped
/// allocator.
#[macro_export]
macro_rules! target {
    ($name:ident) => {
        #[global_allocator]
        static ALLOCATOR: $crate::Capped = $crate::Capped;

        libfuzzer_sys::fuzz_target!(|data: &[u8]| quarry_fuzz::$name(data));
    };
}
