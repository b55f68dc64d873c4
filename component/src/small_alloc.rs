//! A free-list front for small allocations, in front of the system allocator.
//!
//! Why: the component allocates and frees the same few dozen small blocks on every request
//! (header names and values lifted from the host, map entries, ids, line pieces). wasi-libc's
//! dlmalloc with Rust's allocation shims costs several hundred wasm instructions per
//! allocation and free, about a quarter of the middleware's own instructions per request
//! (bench/README.md). Freed small blocks are kept on one list per size class and handed out
//! again by the next allocation of that class: a pop or a push, a few instructions.
//!
//! Only blocks of up to [`MAX_SMALL`] bytes with an alignment of at most [`ALIGN`] are kept;
//! everything else goes straight to the system allocator. Each class keeps at most
//! [`KEEP_PER_CLASS`] free blocks (beyond that they are given back), so what the lists hold
//! is bounded (at most about 140 KB). The state is not synchronised: the component's wasm
//! target has no threads, and the global allocator is only installed there.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::ptr;

/// Granularity of the size classes, in bytes.
const GRANULE: usize = 16;
/// Largest block served from the lists.
pub(crate) const MAX_SMALL: usize = 256;
/// Largest alignment served from the lists (what the system allocator gives every block on
/// wasm32 without asking for more).
pub(crate) const ALIGN: usize = 8;
/// Free blocks kept per class.
pub(crate) const KEEP_PER_CLASS: usize = 64;
const CLASSES: usize = MAX_SMALL / GRANULE;

/// The lists: the head of each class's list of free blocks (the first word of a free block
/// points to the next) and how many blocks each holds.
struct Lists {
    heads: [*mut u8; CLASSES],
    counts: [usize; CLASSES],
}

/// A small-block front over the allocator `A`.
pub(crate) struct SmallFront<A> {
    inner: A,
    lists: UnsafeCell<Lists>,
}

// SAFETY: installed as the global allocator only on wasm targets without threads
// (`target_feature = "atomics"` off), where no two calls can overlap.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
unsafe impl<A: Sync> Sync for SmallFront<A> {}

impl<A> SmallFront<A> {
    /// A front with empty lists.
    pub(crate) const fn new(inner: A) -> Self {
        SmallFront {
            inner,
            lists: UnsafeCell::new(Lists {
                heads: [ptr::null_mut(); CLASSES],
                counts: [0; CLASSES],
            }),
        }
    }
}

/// The class of a layout served from the lists, if it is one.
#[inline]
fn class_of(layout: Layout) -> Option<usize> {
    let size = layout.size();
    (size != 0 && size <= MAX_SMALL && layout.align() <= ALIGN).then(|| (size - 1) / GRANULE)
}

/// The layout a block of `class` is allocated with from the inner allocator.
#[inline]
fn class_layout(class: usize) -> Layout {
    // SAFETY: the size is a non-zero multiple of 16 below isize::MAX, the alignment a power
    // of two.
    unsafe { Layout::from_size_align_unchecked((class + 1) * GRANULE, ALIGN) }
}

impl<A: GlobalAlloc> SmallFront<A> {
    /// Everything [`GlobalAlloc::alloc`] does not do inline: blocks not served from the
    /// lists and empty lists. Out of line, so that the inlined fast path stays small.
    #[cold]
    #[inline(never)]
    unsafe fn alloc_slow(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the layout of the block the caller asked for.
        unsafe {
            match class_of(layout) {
                Some(class) => self.inner.alloc(class_layout(class)),
                None => self.inner.alloc(layout),
            }
        }
    }

    /// Everything [`GlobalAlloc::dealloc`] does not do inline: blocks not served from the
    /// lists and full lists.
    #[cold]
    #[inline(never)]
    unsafe fn dealloc_slow(&self, block: *mut u8, layout: Layout) {
        // SAFETY: the block was allocated by the inner allocator with this layout.
        unsafe {
            match class_of(layout) {
                Some(class) => self.inner.dealloc(block, class_layout(class)),
                None => self.inner.dealloc(block, layout),
            }
        }
    }
}

unsafe impl<A: GlobalAlloc> GlobalAlloc for SmallFront<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: no other call runs at the same time (see the `Sync` impl); a non-null head
        // is a free block of this class whose first word holds the next one.
        unsafe {
            if let Some(class) = class_of(layout) {
                let lists = &mut *self.lists.get();
                let head = lists.heads[class];
                if !head.is_null() {
                    lists.heads[class] = head.cast::<*mut u8>().read();
                    lists.counts[class] -= 1;
                    return head;
                }
            }
            self.alloc_slow(layout)
        }
    }

    #[inline]
    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: `block` is a block of this class (at least 16 bytes, aligned to 8) that
        // the caller no longer uses, so its first word may hold the list's link.
        unsafe {
            if let Some(class) = class_of(layout) {
                let lists = &mut *self.lists.get();
                if lists.counts[class] < KEEP_PER_CLASS {
                    block.cast::<*mut u8>().write(lists.heads[class]);
                    lists.heads[class] = block;
                    lists.counts[class] += 1;
                    return;
                }
            }
            self.dealloc_slow(block, layout)
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees a valid new size for this alignment.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class_of(layout), class_of(new_layout)) {
            // The block already has room for the new size.
            (Some(old), Some(new)) if old == new => block,
            // Both large: the inner allocator may grow in place.
            // SAFETY: forwarded as the caller gave it.
            (None, None) => unsafe { self.inner.realloc(block, layout, new_size) },
            _ => {
                // SAFETY: a fresh block for the new layout, the smaller size copied, then the
                // old block released through this allocator (which knows its class).
                unsafe {
                    let moved = self.alloc(new_layout);
                    if !moved.is_null() {
                        ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                    moved
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;
    use std::cell::Cell;

    /// Counts what reaches the system allocator.
    #[derive(Default)]
    struct Counting {
        allocs: Cell<usize>,
        deallocs: Cell<usize>,
    }

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            self.allocs.set(self.allocs.get() + 1);
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
            self.deallocs.set(self.deallocs.get() + 1);
            unsafe { System.dealloc(block, layout) }
        }
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn freed_small_blocks_are_reused_without_the_system_allocator() {
        let front = SmallFront::new(Counting::default());
        unsafe {
            let a = front.alloc(layout(24, 8));
            front.dealloc(a, layout(24, 8));
            // Same class (17..=32 bytes): the same block comes back.
            let b = front.alloc(layout(30, 4));
            assert_eq!(a, b);
            assert_eq!(front.inner.allocs.get(), 1);
            assert_eq!(front.inner.deallocs.get(), 0);
            front.dealloc(b, layout(30, 4));
        }
    }

    #[test]
    fn large_or_overaligned_blocks_go_to_the_system_allocator() {
        let front = SmallFront::new(Counting::default());
        unsafe {
            for l in [layout(MAX_SMALL + 1, 8), layout(64, 16)] {
                let a = front.alloc(l);
                assert_eq!(a as usize % l.align(), 0);
                front.dealloc(a, l);
            }
            assert_eq!(front.inner.allocs.get(), 2);
            assert_eq!(front.inner.deallocs.get(), 2);
        }
    }

    #[test]
    fn each_class_keeps_a_bounded_number_of_blocks() {
        let front = SmallFront::new(Counting::default());
        let l = layout(100, 8);
        unsafe {
            let blocks: Vec<_> = (0..KEEP_PER_CLASS + 10).map(|_| front.alloc(l)).collect();
            for &b in &blocks {
                front.dealloc(b, l);
            }
            assert_eq!(front.inner.deallocs.get(), 10);
            // All kept blocks are handed out again before the system allocator is asked.
            let again: Vec<_> = (0..KEEP_PER_CLASS).map(|_| front.alloc(l)).collect();
            assert_eq!(front.inner.allocs.get(), KEEP_PER_CLASS + 10);
            for b in again {
                front.dealloc(b, l);
            }
        }
    }

    #[test]
    fn realloc_keeps_the_contents_across_classes_and_sizes() {
        let front = SmallFront::new(Counting::default());
        unsafe {
            let mut size = 5;
            let mut block = front.alloc(layout(size, 1));
            for i in 0..size {
                *block.add(i) = i as u8;
            }
            // Within a class, across classes, from small to large and back.
            for new_size in [12, 16, 17, 200, 256, 257, 5000, 300, 40, 3] {
                block = front.realloc(block, layout(size, 1), new_size);
                assert!(!block.is_null());
                for i in 0..size.min(new_size).min(5) {
                    assert_eq!(*block.add(i), i as u8, "after realloc to {new_size}");
                }
                size = new_size;
            }
            front.dealloc(block, layout(size, 1));
        }
    }

    #[test]
    fn blocks_are_distinct_and_writable_to_their_full_size() {
        let front = SmallFront::new(Counting::default());
        unsafe {
            let mut blocks = Vec::new();
            for round in 0..3u8 {
                for size in (1..=MAX_SMALL).step_by(7) {
                    let b = front.alloc(layout(size, 8));
                    ptr::write_bytes(b, round, size);
                    blocks.push((b, size));
                }
                for &(b, size) in &blocks {
                    assert!((0..size).all(|i| *b.add(i) == round));
                }
                for (b, size) in blocks.drain(..) {
                    front.dealloc(b, layout(size, 8));
                }
            }
        }
    }
}
