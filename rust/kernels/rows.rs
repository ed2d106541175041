//! Row-major buffers: slices viewed as matrices of whole rows, and arrays
//! assembled row by row with every element written exactly once (no zeroing
//! pass first) — the gathers and scatters between the caller's `[B, T, …]`
//! arrays and the time loop's slot layout. For the driver's large buffers a
//! zeroing pass cost as much as the copy itself.

use super::scalar::Scalar;
use crate::error::{bytes_of, Error, Result};
use crate::pool;
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut2};
use std::alloc::Layout;
use std::mem::MaybeUninit;

/// The layout of `n` elements of `T`, or [`Error::OutOfMemory`] naming
/// `arg` and `what` (a `[rows, cols]` buffer) when it exceeds the address
/// space.
fn layout_of<T>(n: Option<usize>, dims: [usize; 2], arg: &str, what: &str) -> Result<Layout> {
    n.and_then(|n| Layout::array::<T>(n).ok()).ok_or_else(|| {
        let bytes = bytes_of(&dims, std::mem::size_of::<T>());
        Error::out_of_memory(arg, format!("{} {dims:?}", what), bytes)
    })
}

/// The error for an allocation of `layout` the allocator refused.
fn refused(layout: Layout, dims: [usize; 2], arg: &str, what: &str) -> Error {
    Error::out_of_memory(
        arg,
        format!("{} {dims:?}", what),
        Some(layout.size() as u128),
    )
}

/// A zeroed `[rows, cols]` array, allocated fallibly: when the allocator
/// refuses (or the size overflows), [`Error::OutOfMemory`] naming `arg` and
/// `what` instead of aborting the process. Zeroed by the allocator (as
/// `Array2::zeros` is: fresh pages cost no pass).
pub fn try_zeros<T: Scalar>(rows: usize, cols: usize, arg: &str, what: &str) -> Result<Array2<T>> {
    let n = rows.checked_mul(cols);
    let layout = layout_of::<T>(n, [rows, cols], arg, what)?;
    let n = n.unwrap_or_default();
    let data = if layout.size() == 0 {
        Vec::new()
    } else {
        // SAFETY: `layout` has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<T>();
        if ptr.is_null() {
            return Err(refused(layout, [rows, cols], arg, what));
        }
        // SAFETY: `ptr` comes from the global allocator with the layout of
        // `n` elements of `T` (`Layout::array`), so capacity `n` matches it;
        // all `n` elements are initialised: zero bytes are `0.0` for both
        // `Scalar` types (`f32`, `f64`; the trait is sealed).
        unsafe { Vec::from_raw_parts(ptr, n, n) }
    };
    Ok(Array2::from_shape_vec((rows, cols), data).expect("rows * cols elements"))
}

/// An uninitialised `[rows, cols]` array, allocated fallibly (see
/// [`try_zeros`]).
pub fn try_uninit<T: Scalar>(
    rows: usize,
    cols: usize,
    arg: &str,
    what: &str,
) -> Result<Array2<MaybeUninit<T>>> {
    let n = rows.checked_mul(cols);
    let layout = layout_of::<T>(n, [rows, cols], arg, what)?;
    let n = n.unwrap_or_default();
    let mut data = Vec::<MaybeUninit<T>>::new();
    data.try_reserve_exact(n)
        .map_err(|_| refused(layout, [rows, cols], arg, what))?;
    // SAFETY: the capacity is at least `n`, and `MaybeUninit` elements need
    // no initialisation.
    unsafe { data.set_len(n) };
    Ok(Array2::from_shape_vec((rows, cols), data).expect("rows * cols elements"))
}

/// A `Vec` with room for `n` elements, allocated fallibly (see
/// [`try_zeros`]; `what` names it).
pub fn try_vec<T>(n: usize, arg: &str, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        let bytes = bytes_of(&[n], std::mem::size_of::<T>());
        Error::out_of_memory(arg, format!("{} [{n}]", what), bytes)
    })?;
    Ok(v)
}

/// `out[ids[i]] += src[i]` for every `i` in order, into a zeroed
/// `[rows, src.ncols()]` array: the gradient of a row lookup (an embedding
/// matrix's). Each output row sums its sources in index order, as
/// `numpy.add.at` does, so the two agree bit for bit. Ids outside
/// `[0, rows)` fail naming `ids_arg`; the array is allocated fallibly
/// (naming `arg` and `what`).
pub fn try_scatter_add_rows<T: Scalar>(
    ids: ArrayView1<i64>,
    src: ArrayView2<T>,
    rows: usize,
    ids_arg: &str,
    arg: &str,
    what: &str,
) -> Result<Array2<T>> {
    if ids.len() != src.nrows() {
        return Err(Error::invalid(
            ids_arg,
            format!("{} ids (one per row of the gradients)", src.nrows()),
            format!("{}", ids.len()),
        ));
    }
    if let Some((i, &id)) = ids
        .iter()
        .enumerate()
        .find(|(_, &id)| id < 0 || id as u64 >= rows as u64)
    {
        return Err(Error::invalid(
            ids_arg,
            format!("ids in [0, {rows})"),
            format!("{id} at index {i}"),
        ));
    }
    let mut out = try_zeros::<T>(rows, src.ncols(), arg, what)?;
    for (&id, row) in ids.iter().zip(src.rows()) {
        let mut dst = out.row_mut(id as usize);
        dst.iter_mut().zip(row.iter()).for_each(|(d, &v)| *d += v);
    }
    Ok(out)
}

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
/// The array is allocated fallibly: [`Error::OutOfMemory`] naming `arg`
/// and `what` when it cannot be (see [`try_zeros`]).
///
/// # Panics
/// When a source row does not have `cols` elements (a bug of the caller).
pub fn assemble<'a, T, F>(
    rows: usize,
    cols: usize,
    chunk: usize,
    (arg, what): (&str, &str),
    source: F,
) -> Result<Array2<T>>
where
    T: Scalar,
    F: Fn(usize) -> Option<ArrayView1<'a, T>> + Sync,
{
    let mut out = try_uninit::<T>(rows, cols, arg, what)?;
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
    Ok(unsafe { out.assume_init() })
}

/// Like [`assemble`], on this thread, with the rows' sources given in order.
///
/// # Panics
/// When `sources` yields other than `rows` items, or a row of the wrong width.
pub fn assemble_in_order<'a, T, I>(
    rows: usize,
    cols: usize,
    (arg, what): (&str, &str),
    sources: I,
) -> Result<Array2<T>>
where
    T: Scalar,
    I: IntoIterator<Item = Option<ArrayView1<'a, T>>>,
{
    let mut out = try_uninit::<T>(rows, cols, arg, what)?;
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
    Ok(unsafe { out.assume_init() })
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

    const N: (&str, &str) = ("inputs", "a test buffer");

    #[test]
    fn rows_come_from_their_source_or_are_zero() {
        let src = array![[1.0f64, 2.0], [3.0, 4.0]];
        for chunk in [0, 1, 2, 5] {
            let out = assemble(3, 2, chunk, N, |i| (i < 2).then(|| src.row(1 - i))).unwrap();
            assert_eq!(out, array![[3.0, 4.0], [1.0, 2.0], [0.0, 0.0]]);
        }
        let empty = assemble::<f32, _>(0, 4, 0, N, |_| None).unwrap();
        assert_eq!(empty.dim(), (0, 4));
        let narrow = assemble::<f32, _>(3, 0, 2, N, |_| None).unwrap();
        assert_eq!(narrow.dim(), (3, 0));
        let out = assemble_in_order(3, 2, N, [Some(src.row(1)), None, Some(src.row(0))]).unwrap();
        assert_eq!(out, array![[3.0, 4.0], [0.0, 0.0], [1.0, 2.0]]);
        // a strided source row
        let t = src.t();
        let out = assemble_in_order(1, 2, N, [Some(t.row(0))]).unwrap();
        assert_eq!(out, array![[1.0, 3.0]]);
    }

    #[test]
    fn buffers_too_large_are_errors_not_aborts() {
        let z = try_zeros::<f32>(3, 2, "inputs", "z").unwrap();
        assert_eq!(z, Array2::<f32>::zeros((3, 2)));
        assert_eq!(try_zeros::<f64>(0, 5, "inputs", "z").unwrap().dim(), (0, 5));
        // past the address space: refused before the allocator is asked
        let e = try_zeros::<f32>(1 << 40, 1 << 40, "inputs", "states").unwrap_err();
        let e = e.to_string();
        assert!(
            e.starts_with("inputs: the call needs")
                && e.contains("states [1099511627776, 1099511627776]"),
            "{e}"
        );
        assert!(try_uninit::<f64>(usize::MAX, 2, "inputs", "x").is_err());
        assert!(try_vec::<u64>(usize::MAX / 2, "inputs", "lengths").is_err());
        // within the address space, but more than any allocator gives
        let e = try_zeros::<f32>(1 << 61, 1, "inputs", "gates").unwrap_err();
        assert!(e.to_string().contains("8.00 EiB for gates"), "{e}");
        let e = assemble::<f32, _>(1 << 60, 2, 0, N, |_| None).unwrap_err();
        assert!(matches!(e, Error::OutOfMemory { .. }));
    }

    #[test]
    fn scatter_add_rows_sums_in_index_order_and_checks_ids() {
        let src = array![[1.0f32, 2.0], [3.0, 4.0], [1e8, -1e8], [5.0, 6.0]];
        let out = try_scatter_add_rows(
            array![2i64, 0, 2, 2].view(),
            src.view(),
            3,
            "ids",
            "src",
            "g",
        )
        .expect("valid ids");
        // row 2: ((0 + 1) + 1e8) + 5 in f32, as numpy.add.at sums it
        let r2 = ((0.0f32 + 1.0) + 1e8) + 5.0;
        assert_eq!(
            out,
            array![
                [3.0f32, 4.0],
                [0.0, 0.0],
                [r2, ((0.0f32 + 2.0) - 1e8) + 6.0]
            ]
        );
        for (ids, want) in [
            (array![0i64, 3, 0, 0], "ids in [0, 3)"),
            (array![0i64, 0, -1, 0], "-1 at index 2"),
            (array![0i64, 0, 0], "4 ids"),
        ] {
            let err = try_scatter_add_rows(ids.view(), src.view(), 3, "ids", "src", "g")
                .expect_err("bad ids");
            assert!(err.to_string().contains(want), "{err}");
        }
    }
}
