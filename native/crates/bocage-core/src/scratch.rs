//! Working buffers kept by a thread between calls. Codecs run once per column, and most
//! columns are short: allocating and freeing a handful of buffers each time would cost about
//! as much as filling them. A buffer is taken out of its thread-local cell while in use (so a
//! nested use, e.g. a column inside a column, gets an empty one of its own) and put back when
//! dropped, unless an unusually long column grew it: that memory is freed rather than kept for
//! the thread's life.
use std::cell::Cell;
use std::thread::LocalKey;

/// Largest buffer (in elements) a thread keeps between columns: 1 MiB of 64-bit values.
pub(crate) const REUSED_MAX: usize = 1 << 17;

/// What a thread may keep between calls.
pub(crate) trait Scratch: Default + 'static {
    /// Readies it for a new use (its memory kept).
    fn reset(&mut self);
    /// Too large to keep for the thread's life.
    fn oversized(&self) -> bool;
}

impl<T: 'static> Scratch for Vec<T> {
    fn reset(&mut self) {
        self.clear();
    }

    fn oversized(&self) -> bool {
        self.capacity() > REUSED_MAX
    }
}

/// A `Scratch` out of its cell, put back when dropped (see the module).
pub(crate) struct Reused<T: Scratch> {
    cell: &'static LocalKey<Cell<T>>,
    buf: T,
}

impl<T: Scratch> Reused<T> {
    /// The thread's buffer from `cell`, reset (or a new one if it is in use).
    pub(crate) fn take(cell: &'static LocalKey<Cell<T>>) -> Self {
        let mut buf = cell.take();
        buf.reset();
        Reused { cell, buf }
    }
}

impl<T: Scratch> Drop for Reused<T> {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        // (during thread teardown the cell may be gone: the buffer is then freed too)
        if !buf.oversized() {
            let _ = self.cell.try_with(|c| c.set(buf));
        }
    }
}

impl<T: Scratch> std::ops::Deref for Reused<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.buf
    }
}

impl<T: Scratch> std::ops::DerefMut for Reused<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static BUF: Cell<Vec<i64>> = const { Cell::new(Vec::new()) };
    }

    /// A thread keeps its working buffers between uses, empty, but not one grown beyond
    /// `REUSED_MAX`; a nested use gets a buffer of its own (each test runs on a thread of
    /// its own: the cell starts empty).
    #[test]
    fn reused_buffers_are_kept_up_to_the_cap() {
        {
            let mut d = Reused::take(&BUF);
            d.resize(1000, 7);
            let inner = Reused::take(&BUF);
            assert_eq!(inner.capacity(), 0);
        }
        let kept = Reused::take(&BUF);
        assert!(kept.is_empty() && kept.capacity() >= 1000);
        drop(kept);
        {
            let mut d = Reused::take(&BUF);
            d.resize(REUSED_MAX + 1, 0);
        }
        assert_eq!(BUF.take().capacity(), 0);
    }
}
