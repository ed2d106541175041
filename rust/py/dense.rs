//! The dense layers' bindings: `affine(x [N, I], kernel [I, U], bias=None)
//! -> x @ kernel (+ bias)` (any strides: pass `x.T` for a transpose) and
//! `scatter_add_rows(ids [N], src [N, D], rows) -> [rows, D]` (an embedding
//! matrix's gradient). Operands are borrowed (no copy); the products run
//! with the GIL released on the thread pool, bitwise identical for any
//! thread count.

use super::{borrow, float_dtype, PyFloat};
use crate::kernels::gemm::try_affine;
use crate::kernels::rows::try_scatter_add_rows;
use crate::pool;
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

fn run_affine<'py, T: PyFloat>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    kernel: &Bound<'py, PyAny>,
    bias: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyArray2<T>>> {
    let xa: PyReadonlyArray2<'py, T> = borrow(x, "x", T::NAME, 2)?;
    let ka: PyReadonlyArray2<'py, T> = borrow(kernel, "kernel", T::NAME, 2)?;
    let ba: Option<PyReadonlyArray1<'py, T>> = match bias {
        Some(b) => Some(borrow(b, "bias", T::NAME, 1)?),
        None => None,
    };
    let (xv, kv) = (xa.as_array(), ka.as_array());
    let bv = ba.as_ref().map(|b| b.as_array());
    if xv.ncols() != kv.nrows() {
        return Err(PyValueError::new_err(format!(
            "kernel: expected {} rows (x's columns), got shape [{}, {}]",
            xv.ncols(),
            kv.nrows(),
            kv.ncols()
        )));
    }
    if let Some(b) = &bv {
        if b.len() != kv.ncols() {
            return Err(PyValueError::new_err(format!(
                "bias: expected shape [{}] (kernel's columns), got [{}]",
                kv.ncols(),
                b.len()
            )));
        }
    }
    let work = xv
        .nrows()
        .saturating_mul(xv.ncols())
        .saturating_mul(kv.ncols());
    let out = py.detach(|| {
        pool::run(pool::worth_parallel(work), || {
            try_affine(xv, kv, bv, "x", "the product")
        })
    })?;
    Ok(out.into_pyarray(py))
}

/// `affine(x, kernel, bias=None) -> x @ kernel (+ bias)`: `x` `[N, I]` and
/// `kernel` `[I, U]` float32 or float64 arrays of one dtype, any strides
/// (a transposed view is read in place), `bias` `[U]` of that dtype or
/// None; a new `[N, U]` array. `TypeError` / `ValueError` name the
/// argument. Runs on the thread pool with the GIL released; the result does
/// not depend on the thread count.
#[pyfunction]
#[pyo3(signature = (x, kernel, bias=None))]
fn affine<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    kernel: &Bound<'py, PyAny>,
    bias: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    match float_dtype(x, "x", 2)?.as_str() {
        "float32" => Ok(run_affine::<f32>(py, x, kernel, bias)?.into_any()),
        _ => Ok(run_affine::<f64>(py, x, kernel, bias)?.into_any()),
    }
}

fn run_scatter<'py, T: PyFloat>(
    py: Python<'py>,
    ids: &PyReadonlyArray1<'py, i64>,
    src: &Bound<'py, PyAny>,
    rows: usize,
) -> PyResult<Bound<'py, PyArray2<T>>> {
    let sa: PyReadonlyArray2<'py, T> = borrow(src, "src", T::NAME, 2)?;
    let (iv, sv) = (ids.as_array(), sa.as_array());
    let out = py.detach(|| try_scatter_add_rows(iv, sv, rows, "ids", "src", "the gradient"))?;
    Ok(out.into_pyarray(py))
}

/// `scatter_add_rows(ids, src, rows) -> out`: a zeroed `[rows, D]` array
/// with `out[ids[i]] += src[i]` for every `i` in order (`numpy.add.at`'s
/// order: the same bits); `ids` int64 `[N]` in `[0, rows)` (`ValueError`
/// naming `ids` otherwise), `src` float32 or float64 `[N, D]`.
#[pyfunction]
fn scatter_add_rows<'py>(
    py: Python<'py>,
    ids: PyReadonlyArray1<'py, i64>,
    src: &Bound<'py, PyAny>,
    rows: usize,
) -> PyResult<Bound<'py, PyAny>> {
    match float_dtype(src, "src", 2)?.as_str() {
        "float32" => Ok(run_scatter::<f32>(py, &ids, src, rows)?.into_any()),
        _ => Ok(run_scatter::<f64>(py, &ids, src, rows)?.into_any()),
    }
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(affine, m)?)?;
    m.add_function(wrap_pyfunction!(scatter_add_rows, m)?)
}
