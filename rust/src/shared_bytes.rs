//! Immutable, reference-counted bytes behind a one-word pointer.
//!
//! A cached object is one allocation shared by every snapshot of the index, and the index's
//! tree holds a pointer to it in every slot. `Arc<[u8]>` would cost a two-word (fat) pointer
//! per slot and two 8-byte counts per allocation (the weak count, never used here); at tens of
//! thousands of objects per resource both are paid over and over. [`SharedBytes`] keeps a
//! 32-bit count and the 32-bit length in the allocation itself, so a tree slot is one word and
//! the per-object prefix 8 bytes.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, Ordering};

/// Bytes before the data: the count and the length, one `u32` each.
const PREFIX: usize = 8;

/// A count past this aborts (as `std::sync::Arc` does past `isize::MAX`): it cannot be reached
/// by clones that are also dropped, only by leaking them.
const MAX_COUNT: u32 = i32::MAX as u32;

/// Shared immutable bytes; cloning bumps a count, the last drop frees them.
pub struct SharedBytes {
    ptr: NonNull<u8>,
}

// SAFETY: the bytes are never written after construction, and the count is atomic.
unsafe impl Send for SharedBytes {}
// SAFETY: as above: `&SharedBytes` only reads.
unsafe impl Sync for SharedBytes {}

impl SharedBytes {
    /// The maximum number of bytes one can hold.
    pub const MAX_LEN: usize = (u32::MAX as usize) - PREFIX;

    fn layout(len: usize) -> Layout {
        // The size is checked by the callers against `MAX_LEN`, so this cannot fail.
        Layout::from_size_align(PREFIX + len, 4).expect("SharedBytes layout")
    }

    /// The concatenation of `parts`, in one allocation.
    ///
    /// # Panics
    /// When the parts hold more than [`MAX_LEN`](Self::MAX_LEN) bytes (callers check first).
    pub fn concat(parts: &[&[u8]]) -> SharedBytes {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        assert!(len <= Self::MAX_LEN, "SharedBytes: too large");
        let layout = Self::layout(len);
        // SAFETY: the layout has a non-zero size (PREFIX > 0).
        let raw = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            handle_alloc_error(layout)
        };
        // SAFETY: `raw` is a fresh allocation of PREFIX + len bytes, aligned for `AtomicU32`;
        // the count and length are written before any read, each part within bounds.
        unsafe {
            raw.cast::<AtomicU32>().write(AtomicU32::new(1));
            raw.add(4).cast::<u32>().write(len as u32);
            let mut at = raw.add(PREFIX);
            for part in parts {
                std::ptr::copy_nonoverlapping(part.as_ptr(), at, part.len());
                at = at.add(part.len());
            }
        }
        SharedBytes { ptr }
    }

    fn count(&self) -> &AtomicU32 {
        // SAFETY: the allocation starts with the count, alive as long as `self`.
        unsafe { &*self.ptr.as_ptr().cast::<AtomicU32>() }
    }

    #[inline(always)]
    fn len(&self) -> usize {
        // SAFETY: the length follows the count, written once at construction.
        unsafe { self.ptr.as_ptr().add(4).cast::<u32>().read() as usize }
    }

    /// Do `a` and `b` share one allocation?
    pub fn ptr_eq(a: &SharedBytes, b: &SharedBytes) -> bool {
        a.ptr == b.ptr
    }
}

impl Deref for SharedBytes {
    type Target = [u8];

    #[inline(always)]
    fn deref(&self) -> &[u8] {
        // SAFETY: `len` initialised bytes follow the prefix, immutable while any handle lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(PREFIX), self.len()) }
    }
}

impl Clone for SharedBytes {
    fn clone(&self) -> SharedBytes {
        // Relaxed, as `Arc`: a new handle is made from one that keeps the bytes alive.
        if self.count().fetch_add(1, Ordering::Relaxed) >= MAX_COUNT {
            std::process::abort();
        }
        SharedBytes { ptr: self.ptr }
    }
}

impl Drop for SharedBytes {
    fn drop(&mut self) {
        if self.count().fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Every other handle's use of the bytes happens before they are freed (as `Arc`).
        fence(Ordering::Acquire);
        let layout = Self::layout(self.len());
        // SAFETY: this was the last handle; the allocation was made with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), layout) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_and_shares() {
        let a = SharedBytes::concat(&[b"ab", b"", b"cde"]);
        assert_eq!(&*a, b"abcde");
        let b = a.clone();
        assert!(SharedBytes::ptr_eq(&a, &b));
        drop(a);
        assert_eq!(&*b, b"abcde");
        let empty = SharedBytes::concat(&[]);
        assert!(empty.is_empty());
        assert_eq!(std::mem::size_of::<SharedBytes>(), 8);
        assert_eq!(std::mem::size_of::<Option<SharedBytes>>(), 8);
    }

    #[test]
    fn shared_across_threads() {
        let a = SharedBytes::concat(&[&[7u8; 1000]]);
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let mine = a.clone();
                std::thread::spawn(move || {
                    let copies: Vec<_> = (0..1000).map(|_| mine.clone()).collect();
                    copies.iter().map(|c| c[999] as usize).sum::<usize>()
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), 7000);
        }
        assert_eq!(a.count().load(Ordering::Relaxed), 1);
    }
}
