//! Buffers written front to back, never zeroed first: the forward pass's
//! gates, states and kept values. A [`Filling`] is a slice whose first
//! [`Filling::filled`] elements are initialised; the time loop extends that
//! prefix as it goes, with the input projection written straight into the
//! fresh rows ([`Filling::product`]) and each step's new block zeroed just
//! before the step writes it ([`Filling::zero_to`], a block that is still in
//! cache). A zeroing pass over the whole `[R, 4H]` gate buffer before the
//! loop, by contrast, cost a quarter of a small LSTM forward pass.
//!
//! [`Unfilled`] owns such a buffer and cuts it into one [`Filling`] per
//! group. A `Filling` dropped before it is full zeroes the rest (a loop
//! stopped by an interrupt), and counts its elements as done; the owner
//! hands out its array ([`Unfilled::into_init`]) only when every element was
//! counted, and zeroes it all otherwise (a `Filling` leaked with
//! `mem::forget`), so no uninitialised element is ever read.

use super::gemm::product_into_uninit;
use super::rows::try_uninit;
use super::scalar::Scalar;
use crate::error::Result;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use std::mem::MaybeUninit;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A `[rows, cols]` array allocated uninitialised and filled part by part
/// through [`Unfilled::parts`].
pub struct Unfilled<T> {
    data: Array2<MaybeUninit<T>>,
    /// Elements of finished parts (each part counts itself when dropped).
    done: AtomicUsize,
    /// Whether [`Unfilled::parts`] was called (once only, so that the
    /// count covers each element once).
    cut: bool,
}

impl<T: Scalar> Unfilled<T> {
    /// Allocates `[rows, cols]` fallibly, without initialising it (the
    /// error names `arg` and `what`, as [`super::rows::try_zeros`]).
    pub fn new(rows: usize, cols: usize, arg: &str, what: &str) -> Result<Self> {
        Ok(Unfilled {
            data: try_uninit(rows, cols, arg, what)?,
            done: AtomicUsize::new(0),
            cut: false,
        })
    }

    /// One [`Filling`] per entry of `rows`, over consecutive whole rows from
    /// row 0; rows past their sum are zeroed here.
    ///
    /// # Panics
    /// When called a second time, or when the rows exceed the array's.
    pub fn parts(&mut self, rows: impl IntoIterator<Item = usize>) -> Vec<Filling<'_, T>> {
        assert!(!self.cut, "Unfilled::parts called twice");
        self.cut = true;
        let cols = self.data.ncols();
        let Unfilled { data, done, .. } = self;
        let mut rest = data.as_slice_mut().expect("standard layout");
        let mut out = Vec::new();
        for r in rows {
            let (head, tail) = rest.split_at_mut(r * cols);
            out.push(Filling {
                buf: head,
                filled: 0,
                done: Some(done),
            });
            rest = tail;
        }
        // Counted by its own Filling, dropped at once.
        drop(Filling {
            buf: rest,
            filled: 0,
            done: Some(done),
        });
        out
    }

    /// The array, every element initialised: as the parts left it when
    /// they were all dropped, else all zero.
    pub fn into_init(mut self) -> Array2<T> {
        if self.done.load(Ordering::Acquire) != self.data.len() {
            // A part was leaked: nothing says what it wrote.
            self.data.fill(MaybeUninit::new(T::zero()));
        }
        // SAFETY: every element is initialised: either the parts of the one
        // call of `parts`, which are disjoint, cover the whole array (`parts`
        // drops a part for the rows the others leave) and each counted its
        // whole length only after initialising it (`Filling::drop`), so the
        // count reaches the array's length only when all of them were
        // dropped; or the line above wrote every element (also when `parts`
        // was never called: the count is then 0, or the array empty).
        unsafe { self.data.assume_init() }
    }
}

/// A slice whose first [`Filling::filled`] elements are initialised, filled
/// front to back (see the module docs).
pub struct Filling<'a, T: Scalar> {
    buf: &'a mut [MaybeUninit<T>],
    filled: usize,
    /// The owner's count, when there is one.
    done: Option<&'a AtomicUsize>,
}

impl<'a, T: Scalar> Filling<'a, T> {
    /// A buffer that is initialised already, whole.
    pub fn init(buf: &'a mut [T]) -> Self {
        let filled = buf.len();
        // SAFETY: `MaybeUninit<T>` has `T`'s layout; the slice starts
        // initialised and a `Filling` only ever writes initialised values
        // into it, so it stays valid as `[T]` for its owner.
        let buf = unsafe {
            std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<MaybeUninit<T>>(), filled)
        };
        Filling {
            buf,
            filled,
            done: None,
        }
    }

    /// Elements initialised (a prefix).
    pub fn filled(&self) -> usize {
        self.filled
    }

    /// The initialised prefix.
    pub fn init_mut(&mut self) -> &mut [T] {
        // SAFETY: the first `filled` elements are initialised (every method
        // that raises `filled` writes the elements below it first).
        unsafe { std::slice::from_raw_parts_mut(self.buf.as_mut_ptr().cast::<T>(), self.filled) }
    }

    /// Zeroes the elements from [`Filling::filled`] up to `end` (none when
    /// `end` is below it).
    pub fn zero_to(&mut self, end: usize) {
        if end > self.filled {
            self.buf[self.filled..end].fill(MaybeUninit::new(T::zero()));
            self.filled = end;
        }
    }

    /// Writes `a @ b` into the elements `range` (a standard-layout
    /// `[a.nrows(), b.ncols()]` block), bitwise as
    /// [`super::gemm::gemm_on`]`(parallel, false, …)` would: over
    /// initialised elements, or over fresh ones starting at
    /// [`Filling::filled`] without zeroing them first.
    pub fn product(
        &mut self,
        range: Range<usize>,
        parallel: bool,
        a: ArrayView2<T>,
        b: ArrayView2<T>,
    ) {
        let shape = (a.nrows(), b.ncols());
        assert_eq!(range.len(), shape.0 * shape.1, "product: range length");
        if range.end <= self.filled {
            let c =
                ArrayViewMut2::from_shape(shape, &mut self.init_mut()[range]).expect("whole rows");
            super::gemm::gemm_on(parallel, false, a, b, c);
            return;
        }
        assert_eq!(range.start, self.filled, "product: rows out of order");
        product_into_uninit(parallel, a, b, &mut self.buf[range.clone()]);
        self.filled = range.end;
    }
}

impl<T: Scalar> Drop for Filling<'_, T> {
    fn drop(&mut self) {
        if let Some(done) = self.done {
            let len = self.buf.len();
            self.zero_to(len);
            done.fetch_add(len, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::gemm::gemm_on;

    fn matrix(m: usize, n: usize, seed: usize) -> Array2<f64> {
        Array2::from_shape_fn((m, n), |(i, j)| {
            (((i * 31 + j * 17 + seed * 7) % 23) as f64 - 11.0) / 7.0
        })
    }

    #[test]
    fn parts_fill_front_to_back_and_the_rest_is_zero() {
        let mut u = Unfilled::<f64>::new(7, 3, "x", "buffer").unwrap();
        {
            let mut parts = u.parts([2, 3]);
            let p = &mut parts[0];
            p.zero_to(3);
            p.init_mut()[..3].copy_from_slice(&[1.0, 2.0, 3.0]);
            p.zero_to(6);
            p.init_mut()[5] = 4.0;
            // parts[1] is left empty: zeroed when dropped
        }
        let a = u.into_init();
        let mut want = Array2::zeros((7, 3));
        want.as_slice_mut().unwrap()[..6].copy_from_slice(&[1.0, 2.0, 3.0, 0.0, 0.0, 4.0]);
        assert_eq!(a, want);
    }

    #[test]
    fn a_leaked_part_leaves_all_zero() {
        let mut u = Unfilled::<f32>::new(4, 2, "x", "buffer").unwrap();
        {
            let mut parts = u.parts([2, 2]);
            parts[0].zero_to(4);
            parts[0].init_mut().fill(5.0);
            std::mem::forget(parts.pop());
        }
        assert_eq!(u.into_init(), Array2::<f32>::zeros((4, 2)));
    }

    #[test]
    fn products_into_fresh_rows_equal_gemm_on() {
        // tiny, k = 0 and gemm-crate sizes, serial and parallel
        for (m, k, n) in [(2, 3, 4), (3, 0, 5), (40, 33, 70), (130, 64, 96)] {
            for parallel in [false, true] {
                let (a, b) = (matrix(m, k, 1), matrix(k, n, 2));
                let mut want = Array2::from_elem((m + 1, n), 9.0);
                gemm_on(
                    parallel,
                    false,
                    a.view(),
                    b.view(),
                    want.slice_mut(ndarray::s![1.., ..]),
                );
                let mut u = Unfilled::<f64>::new(m + 1, n, "x", "buffer").unwrap();
                {
                    let mut parts = u.parts([m + 1]);
                    let p = &mut parts[0];
                    p.zero_to(n);
                    p.init_mut().fill(9.0);
                    p.product(n..(m + 1) * n, parallel, a.view(), b.view());
                    assert_eq!(p.filled(), (m + 1) * n);
                    // and again over initialised rows
                    p.product(n..(m + 1) * n, parallel, a.view(), b.view());
                }
                let got = u.into_init();
                assert_eq!(got, want, "m {m} k {k} n {n} parallel {parallel}");
            }
        }
    }

    #[test]
    #[should_panic(expected = "twice")]
    fn parts_are_cut_once() {
        let mut u = Unfilled::<f32>::new(2, 2, "x", "buffer").unwrap();
        drop(u.parts([1, 1]));
        drop(u.parts([2]));
    }

    #[test]
    fn init_buffers_are_full() {
        let mut v = vec![1.0f32, 2.0, 3.0];
        let mut f = Filling::init(&mut v);
        assert_eq!(f.filled(), 3);
        f.zero_to(2);
        f.init_mut()[1] = 7.0;
        drop(f);
        assert_eq!(v, [1.0, 7.0, 3.0]);
    }
}
