//! Row-major buffers: slices viewed as matrices of whole rows, and arrays
//! assembled row by row with every element written exactly once (no zeroing
//! pass first) — the gathers and scatters between the caller's `[B, T, …]`
//! arrays and the time loop's slot layout. For the driver's large buffers a
//! zeroing pass cost as much as the copy itself.

use super::scalar::Scalar;
use crate::pool;
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut2};
use std::mem::MaybeUninit;

/// A `[rows, cols]` view of a slice of whole rows.
pub fn mat<T>(data: &[T], cols: usize) -> ArrayView2<'_, T> {
    ArrayView2::from_shape((data.len() / cols.max(1), cols), data).expect("whole rows")
}

/// A mutable `[rows, cols]` view of a slice of whole rows.
pub fn mat_mut<T>(data: &mut [T], cols: usize) -> ArrayViewMut2<'_, T> {
    ArrayViewMut2::from_shape((data.len() / cols.max(1), cols), data).expect("whole rows")
}

/// A `[rows, cols]` array whose row `i` is `source(i)`, or zeros where
/// `source(i)` is `None`. Rows are filled in chunks of `chunk` rows, on the
/// current pool's workers when called from one (`chunk == 0`: one chunk).
///
/// # Panics
/// When a source row does not have `cols` elements (a bug of the caller).
pub fn assemble<'a, T, F>(rows: usize, cols: usize, chunk: usize, source: F) -> Array2<T>
where
    T: Scalar,
    F: Fn(usize) -> Option<ArrayView1<'a, T>> + Sync,
{
    let mut out = Array2::<T>::uninit((rows, cols));
    if cols > 0 {
        let chunk = if chunk == 0 { rows.max(1) } else { chunk };
        let flat = out.as_slice_mut().expect("a new array is contiguous");
        let pieces: Vec<_> = flat.chunks_mut(chunk * cols).enumerate().collect();
        pool::for_each(pieces, |(p, piece)| {
            for (j, row) in piece.chunks_exact_mut(cols).enumerate() {
                write_row(row, source(p * chunk + j));
            }
        });
    }
    // SAFETY: the chunks tile all `rows * cols` elements, and every row of
    // every chunk was written above (by `write_row`, which writes all of its
    // row or panics); with `cols == 0` there is nothing to write.
    unsafe { out.assume_init() }
}

/// Like [`assemble`], on this thread, with the rows' sources given in order.
///
/// # Panics
/// When `sources` yields other than `rows` items, or a row of the wrong width.
pub fn assemble_in_order<'a, T, I>(rows: usize, cols: usize, sources: I) -> Array2<T>
where
    T: Scalar,
    I: IntoIterator<Item = Option<ArrayView1<'a, T>>>,
{
    let mut out = Array2::<T>::uninit((rows, cols));
    let mut sources = sources.into_iter();
    if cols > 0 {
        let flat = out.as_slice_mut().expect("a new array is contiguous");
        // `rows` rows of `cols` elements: one chunk per row
        for row in flat.chunks_exact_mut(cols) {
            write_row(row, sources.next().expect("a source for every row"));
        }
    } else {
        // nothing to write, but still exactly one source per row
        for _ in 0..rows {
            sources.next().expect("a source for every row");
        }
    }
    assert!(
        sources.next().is_none(),
        "assemble_in_order: more sources than rows"
    );
    // SAFETY: every one of the `rows` rows was written above (or there are
    // no elements); a panic leaves before this point.
    unsafe { out.assume_init() }
}

/// Writes every element of `row`: from `src`, or zeros.
#[inline]
fn write_row<T: Scalar>(row: &mut [MaybeUninit<T>], src: Option<ArrayView1<'_, T>>) {
    match src {
        Some(src) => {
            assert_eq!(
                src.len(),
                row.len(),
                "assemble: source row of the wrong width"
            );
            match src.as_slice() {
                Some(s) => {
                    for (d, &v) in row.iter_mut().zip(s) {
                        *d = MaybeUninit::new(v);
                    }
                }
                None => {
                    for (d, &v) in row.iter_mut().zip(src.iter()) {
                        *d = MaybeUninit::new(v);
                    }
                }
            }
        }
        None => row.fill(MaybeUninit::new(T::zero())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn rows_come_from_their_source_or_are_zero() {
        let src = array![[1.0f64, 2.0], [3.0, 4.0]];
        for chunk in [0, 1, 2, 5] {
            let out = assemble(3, 2, chunk, |i| (i < 2).then(|| src.row(1 - i)));
            assert_eq!(out, array![[3.0, 4.0], [1.0, 2.0], [0.0, 0.0]]);
        }
        let empty = assemble::<f32, _>(0, 4, 0, |_| None);
        assert_eq!(empty.dim(), (0, 4));
        let narrow = assemble::<f32, _>(3, 0, 2, |_| None);
        assert_eq!(narrow.dim(), (3, 0));
        let out = assemble_in_order(3, 2, [Some(src.row(1)), None, Some(src.row(0))]);
        assert_eq!(out, array![[3.0, 4.0], [0.0, 0.0], [1.0, 2.0]]);
        // a strided source row
        let t = src.t();
        let out = assemble_in_order(1, 2, [Some(t.row(0))]);
        assert_eq!(out, array![[1.0, 3.0]]);
    }
}
