//! Tests only: the test binary's allocator, the system's with a count of
//! the allocations each thread made, so that tests can check that a loop
//! allocates nothing ([`allocations`]). Not built with the Python edge,
//! which has its own allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    /// Allocations made by this thread (a constant-initialised cell without
    /// a destructor: reading it never allocates).
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    // after the thread's locals are gone (never, for this one) nothing is counted
    let _ = COUNT.try_with(|c| c.set(c.get() + 1));
}

/// Allocations (including reallocations) made by the calling thread so far.
pub fn allocations() -> usize {
    COUNT.with(|c| c.get())
}

struct Counting;

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are this allocator's; counting touches
// only a thread-local cell and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract for `alloc_zeroed`, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: the caller's contract for `realloc` (`ptr` from this
        // allocator, that is from `System`), passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc`, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn allocations_are_counted_per_thread() {
    let before = allocations();
    let v: Vec<u64> = Vec::with_capacity(8);
    assert_eq!(allocations(), before + 1);
    drop(v);
    assert_eq!(allocations(), before + 1, "a free is not an allocation");
}
