//! The allocator a plugin gets by default (feature `one-shot-alloc`).
//!
//! The router gives every event a fresh plugin instance and throws its whole linear memory
//! away afterwards, so a general-purpose allocator's bookkeeping (size classes, free lists,
//! coalescing, and every `free` while values drop at the end of `handle`) is work nobody
//! benefits from. This allocator bumps a pointer through chunks it takes from the C
//! allocator (16 KiB first, each next one twice the last, up to 256 KiB). It gives back the
//! most recent block when that is freed, and grows or shrinks the most recent block in
//! place, so the common patterns (a `Vec` or `String` growing while it is built, a temporary
//! freed right after use) reuse memory. Blocks of 32 KiB and more (a large event body, a big
//! output) go straight to the C allocator and are really freed. Memory abandoned inside a
//! chunk counts against the plugin's `memory` limit like any other use.
//!
//! Measured in `cargo bench -p hookyard --bench pipeline` (docs/benchmarks.md): 1.4 us less
//! per event for a small filter and 8 us less for a 7.8 KB GitHub push turned into a chat
//! message, against Rust's default allocator.
//!
//! A plugin that allocates and frees many long-lived small values while handling one event
//! (an interpreter, a cache) may prefer the default allocator: depend on the SDK with
//! `default-features = false`.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;

/// Blocks at least this large bypass the chunks.
const LARGE: usize = 32 * 1024;
/// The first chunk; each next one is twice the last, up to [`MAX_CHUNK`].
const FIRST_CHUNK: usize = 16 * 1024;
const MAX_CHUNK: usize = 256 * 1024;
/// The alignment `malloc` guarantees.
const C_ALIGN: usize = 16;

unsafe extern "C" {
    fn malloc(size: usize) -> *mut u8;
    fn aligned_alloc(align: usize, size: usize) -> *mut u8;
    fn realloc(ptr: *mut u8, size: usize) -> *mut u8;
    fn free(ptr: *mut u8);
}

/// A bump allocator for one-shot instances; see the module documentation.
pub struct OneShot {
    /// Next free byte of the current chunk (0 before the first chunk).
    next: Cell<usize>,
    /// End of the current chunk.
    end: Cell<usize>,
    /// Size of the next chunk to take.
    chunk: Cell<usize>,
}

// SAFETY: a wasm32 plugin instance is single-threaded; nothing is shared across threads.
unsafe impl Sync for OneShot {}

impl OneShot {
    /// An allocator with no chunk yet.
    pub const fn new() -> Self {
        OneShot {
            next: Cell::new(0),
            end: Cell::new(0),
            chunk: Cell::new(FIRST_CHUNK),
        }
    }

    /// A block from the current chunk, taking a new chunk if it does not fit there.
    fn bump(&self, size: usize, align: usize) -> *mut u8 {
        if let Some(p) = self.fit(size, align) {
            return p;
        }
        let want = self.chunk.get().max(size + align);
        // SAFETY: a plain C allocation; null is handled.
        let base = unsafe { malloc(want) };
        if base.is_null() {
            return base;
        }
        self.chunk.set((self.chunk.get() * 2).min(MAX_CHUNK));
        self.next.set(base as usize);
        self.end.set(base as usize + want);
        self.fit(size, align).unwrap_or(core::ptr::null_mut())
    }

    /// Carves `size` bytes aligned to `align` out of the current chunk, if they fit.
    fn fit(&self, size: usize, align: usize) -> Option<*mut u8> {
        let start = self.next.get().checked_add(align - 1)? & !(align - 1);
        let end = start.checked_add(size)?;
        if self.next.get() == 0 || end > self.end.get() {
            return None;
        }
        self.next.set(end);
        Some(start as *mut u8)
    }

    /// Whether `ptr..ptr + size` is the most recent block of the current chunk.
    fn is_last(&self, ptr: *mut u8, size: usize) -> bool {
        ptr as usize + size == self.next.get()
    }
}

impl Default for OneShot {
    fn default() -> Self {
        Self::new()
    }
}

/// A large block from the C allocator.
fn c_alloc(layout: Layout) -> *mut u8 {
    // SAFETY: plain C allocations; `Layout` guarantees a power-of-two alignment, and
    // `aligned_alloc` wants a size that is a multiple of it.
    unsafe {
        if layout.align() <= C_ALIGN {
            malloc(layout.size())
        } else {
            aligned_alloc(
                layout.align(),
                layout.size().next_multiple_of(layout.align()),
            )
        }
    }
}

// SAFETY: every block handed out is valid for its layout and distinct from every other live
// block: chunk blocks are carved from fresh `malloc` memory past `next`, large blocks come
// from the C allocator, and a block is only reused after its owner freed it.
unsafe impl GlobalAlloc for OneShot {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= LARGE {
            return c_alloc(layout);
        }
        self.bump(layout.size(), layout.align())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() >= LARGE {
            // SAFETY: blocks this large came from the C allocator.
            unsafe { free(ptr) };
        } else if self.is_last(ptr, layout.size()) {
            self.next.set(ptr as usize);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (old, align) = (layout.size(), layout.align());
        if old >= LARGE && new_size >= LARGE && align <= C_ALIGN {
            // SAFETY: the block came from `malloc`, which keeps 16-byte alignment on realloc.
            return unsafe { realloc(ptr, new_size) };
        }
        if old < LARGE && new_size < LARGE {
            if new_size <= old {
                if self.is_last(ptr, old) {
                    self.next.set(ptr as usize + new_size);
                }
                return ptr;
            }
            if self.is_last(ptr, old) && ptr as usize + new_size <= self.end.get() {
                self.next.set(ptr as usize + new_size);
                return ptr;
            }
        }
        // SAFETY: the caller guarantees `new_size` and `align` form a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, align) };
        // SAFETY: forwarded from the caller.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the smaller size and distinct; the old one is
            // freed with the layout it was allocated with.
            unsafe {
                core::ptr::copy_nonoverlapping(ptr, new, old.min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(feature = "one-shot-alloc")]
#[global_allocator]
static ALLOCATOR: OneShot = OneShot::new();
