//! The PyO3 edge: array conversion, GIL release, error mapping. No maths.
//!
//! Inputs arrive as borrowed read-only NumPy views (no copy); results are
//! moved out as new NumPy arrays (no copy). Every heavy call runs inside
//! `py.detach`, with the GIL released. The Python package validates and
//! casts arguments first; the core re-checks shapes, and anything it rejects
//! becomes a `ValueError`. One file per cell registers that cell's calls.

mod basic_rnn;
mod gru;
mod lstm;

use crate::error::Error;
use crate::pool;
use numpy::{
    dtype, Element, IntoPyArray, PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::conversion::FromPyObjectOwned;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::any::Any;

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

/// What a forward pass cached for `backprop` (any cell, either dtype);
/// opaque to Python, dropped with the backprop object.
#[pyclass(frozen, module = "rnnrs._rnnrs")]
pub(crate) struct ForwardCache(Box<dyn Any + Send + Sync>);

impl ForwardCache {
    pub(crate) fn new<C: Any + Send + Sync>(cache: C) -> Self {
        ForwardCache(Box::new(cache))
    }

    /// The cache as the type a backward call needs.
    pub(crate) fn get<C: Any>(&self, what: &str) -> PyResult<&C> {
        self.0.downcast_ref::<C>().ok_or_else(|| {
            PyTypeError::new_err(format!(
                "cache: expected the cache of a {what} forward pass, got another"
            ))
        })
    }
}

/// Evaluates `$body` with the type `$T` standing for `f64` when `$probe` is a
/// float64 array, else for `f32` (the Python side has cast the other arrays
/// to the same dtype; `borrow` names any that is not).
macro_rules! with_dtype {
    ($py:expr, $probe:expr, |$T:ident| $body:expr) => {
        if $crate::py::is_f64($py, $probe) {
            type $T = f64;
            $body
        } else {
            type $T = f32;
            $body
        }
    };
}
pub(crate) use with_dtype;

/// Evaluates `$body` with `$c` the `$Cache<$T>` in `$cache` (`$T` = `f64`
/// or `f32`, whichever the forward pass ran in), or fails with the cache's
/// `TypeError` when it is another cell's.
macro_rules! with_cache {
    ($cache:expr, $what:expr, $Cache:ident, |$c:ident, $T:ident| $body:expr) => {
        if let Ok($c) = $cache.get::<$Cache<f64>>($what) {
            type $T = f64;
            $body
        } else {
            let $c = $cache.get::<$Cache<f32>>($what)?;
            type $T = f32;
            $body
        }
    };
}
pub(crate) use with_cache;

/// A forward binding's result: its arrays (moved out to NumPy, no copy) and
/// then the cache, as one tuple.
pub(crate) fn forward_result<'py, T: PyFloat, C: Any + Send + Sync>(
    py: Python<'py>,
    arrays: Vec<ndarray::ArrayD<T>>,
    cache: C,
) -> PyResult<Bound<'py, PyTuple>> {
    let cache = Bound::new(py, ForwardCache::new(cache))?.into_any();
    let mut items: Vec<_> = arrays
        .into_iter()
        .map(|a| a.into_pyarray(py).into_any())
        .collect();
    items.push(cache);
    PyTuple::new(py, items)
}

/// A float element type the bindings accept.
pub(crate) trait PyFloat: crate::Scalar + Element {}
impl PyFloat for f32 {}
impl PyFloat for f64 {}

/// Whether `obj` is a float64 array (else the call runs in float32).
pub(crate) fn is_f64(py: Python<'_>, obj: &Bound<'_, PyAny>) -> bool {
    obj.cast::<PyUntypedArray>()
        .map(|a| a.dtype().is_equiv_to(&dtype::<f64>(py)))
        .unwrap_or(false)
}

/// Borrows `obj` as a NumPy array of the wanted element type and rank, or
/// fails with a `TypeError` naming the argument.
pub(crate) fn borrow<'py, A: FromPyObjectOwned<'py>>(
    obj: &Bound<'py, PyAny>,
    arg: &str,
    dtype: &str,
    rank: usize,
) -> PyResult<A> {
    obj.extract::<A>().map_err(|_| {
        let got = match obj.cast::<PyUntypedArray>() {
            Ok(a) => format!("a {}-d {} array", a.ndim(), a.dtype()),
            Err(_) => obj
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default(),
        };
        PyTypeError::new_err(format!(
            "{arg}: expected a {rank}-d numpy.{dtype} array, got {got}"
        ))
    })
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
    crate::layer::set_parallel_work(work)
}

#[pymodule]
fn _rnnrs(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ForwardCache>()?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(_set_parallel_work, m)?)?;
    basic_rnn::register(m)?;
    lstm::register(m)?;
    gru::register(m)?;
    Ok(())
}
