//! The PyO3 edge: array conversion, GIL release, error mapping. No maths.
//!
//! Inputs arrive as borrowed read-only NumPy views (no copy); results are
//! moved out as new NumPy arrays (no copy). Every heavy call runs inside
//! `py.detach`, with the GIL released. The Python package validates and
//! casts arguments first; the core re-checks shapes, and anything it rejects
//! becomes a `ValueError`. Every cell crosses the edge the same way
//! ([`cells`]): built once from a dict of options and a dict of weights keyed
//! by their TensorFlow 1.x names; gradients come back as such a dict.

mod cells;

use crate::error::Error;
use crate::pool;
use numpy::{Element, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::conversion::FromPyObjectOwned;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

/// The extension's allocator. The layer's buffers are large (tens of MB at
/// medium sizes) and short-lived; the system allocator returned them to the
/// OS after each call (mmap) and the next call paid a page fault per 4 KiB,
/// about a tenth of an f64 LSTM forward pass. mimalloc keeps freed segments
/// for reuse. Arrays handed to NumPy are freed through it as well.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        PyValueError::new_err(e.to_string())
    }
}

/// A float element type the bindings accept.
pub(crate) trait PyFloat: crate::Scalar + Element {}
impl PyFloat for f32 {}
impl PyFloat for f64 {}

/// Borrows `obj` as a NumPy array of the wanted element type and rank, or
/// fails with a `TypeError` naming the argument.
pub(crate) fn borrow<'py, A: FromPyObjectOwned<'py>>(
    obj: &Bound<'py, PyAny>,
    arg: &str,
    dtype: &str,
    rank: usize,
) -> PyResult<A> {
    obj.extract::<A>().map_err(|_| {
        let got = describe(obj, true);
        PyTypeError::new_err(format!(
            "{arg}: expected a {rank}-d numpy.{dtype} array, got {got}"
        ))
    })
}

/// What `obj` is, for a "got …" in an error: `a 2-d float64 array` (`a
/// float64 array` without `with_ndim`), or its type's name.
pub(crate) fn describe(obj: &Bound<'_, PyAny>, with_ndim: bool) -> String {
    match obj.cast::<PyUntypedArray>() {
        Ok(a) if with_ndim => format!("a {}-d {} array", a.ndim(), a.dtype()),
        Ok(a) => format!("a {} array", a.dtype()),
        Err(_) => obj
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default(),
    }
}

/// Sizes the thread pool (`n >= 1`).
#[pyfunction]
fn set_num_threads(n: i64) -> PyResult<()> {
    if n < 1 {
        return Err(PyValueError::new_err(format!(
            "num_threads: expected an integer >= 1, got {n}"
        )));
    }
    Ok(pool::set_num_threads(n as usize)?)
}

/// The thread pool's size.
#[pyfunction]
fn get_num_threads() -> usize {
    pool::num_threads()
}

/// Private: the work (multiply-adds) from which a call uses the thread pool,
/// `None` for the default. The thread-determinism tests set 0.
#[pyfunction]
#[pyo3(signature = (work=None))]
fn _set_parallel_work(work: Option<usize>) {
    pool::set_parallel_work(work)
}

#[pymodule]
fn _rnnrs(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(_set_parallel_work, m)?)?;
    cells::register(m)
}
