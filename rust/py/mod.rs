//! The PyO3 edge: array conversion, GIL release, error mapping. No maths.
//!
//! Inputs arrive as borrowed read-only NumPy views (no copy); results are
//! moved out as new NumPy arrays (no copy). Every heavy call runs inside
//! `py.detach`, with the GIL released. The Python package validates and
//! casts arguments first; the core re-checks shapes, and anything it rejects
//! becomes a `ValueError` (`MemoryError` when its buffers cannot be
//! allocated). Long calls stop on Ctrl-C ([`Signals`]). Every cell crosses the edge the same way
//! ([`cells`]): built once from a dict of options and a dict of weights keyed
//! by their TensorFlow 1.x names; gradients come back as such a dict.

mod attention;
mod cells;
mod checksum;
mod decode;
mod dense;
mod loss;
mod stepper;

use crate::error::{Error, Interrupt, Result as CoreResult};
use crate::pool::{self, MAX_THREADS};
use numpy::{Element, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::conversion::FromPyObjectOwned;
use pyo3::exceptions::{
    PyKeyboardInterrupt, PyMemoryError, PyRuntimeError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt};
use std::cell::Cell;
use std::sync::Mutex;

/// The extension's allocator. The layer's buffers are large (tens of MB at
/// medium sizes) and short-lived; the system allocator returned them to the
/// OS after each call (mmap) and the next call paid a page fault per 4 KiB,
/// about a tenth of an f64 LSTM forward pass. mimalloc keeps freed segments
/// for reuse. Arrays handed to NumPy are freed through it as well.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        match e {
            Error::Invalid { .. } => PyValueError::new_err(e.to_string()),
            Error::OutOfMemory { .. } => PyMemoryError::new_err(e.to_string()),
            Error::ThreadPool(_) => PyRuntimeError::new_err(e.to_string()),
            // Only when no hook kept the exception (see `Signals`).
            Error::Interrupted => PyKeyboardInterrupt::new_err(e.to_string()),
        }
    }
}

thread_local! {
    /// Whether this thread is Python's main thread (the only one on which
    /// Python runs signal handlers), once asked.
    static MAIN_THREAD: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Ctrl-C (any Python signal handler) for long calls: the driver polls this
/// hook between time steps, on the calling thread, at most every
/// `INTERRUPT_PERIOD`; it re-attaches to the interpreter for a moment and
/// runs `check_signals()`. The exception a handler raises (a
/// `KeyboardInterrupt` for Ctrl-C) is kept, the call stops, and
/// [`Signals::detach`] raises it. Off Python's main thread, where handlers
/// never run, it does nothing.
pub(crate) struct Signals {
    main_thread: bool,
    raised: Mutex<Option<PyErr>>,
}

impl Signals {
    /// The hook for a call made on this thread.
    pub(crate) fn new(py: Python<'_>) -> Self {
        let main_thread = MAIN_THREAD.with(|m| {
            if let Some(known) = m.get() {
                return known;
            }
            let is_main = (|| -> PyResult<bool> {
                let threading = py.import("threading")?;
                let current = threading.call_method0("current_thread")?;
                Ok(current.is(&threading.call_method0("main_thread")?))
            })()
            .unwrap_or(false);
            m.set(Some(is_main));
            is_main
        });
        Signals {
            main_thread,
            raised: Mutex::new(None),
        }
    }

    /// Runs `f` with the GIL released and this hook: the exception a
    /// signal handler raised, or `f`'s error.
    pub(crate) fn detach<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&dyn Interrupt) -> CoreResult<R> + Send,
    ) -> PyResult<R> {
        py.detach(|| f(self)).map_err(|e| {
            let raised = self.raised.lock().unwrap_or_else(|p| p.into_inner()).take();
            match (e, raised) {
                (Error::Interrupted, Some(raised)) => raised,
                (e, _) => e.into(),
            }
        })
    }
}

impl Interrupt for Signals {
    fn check(&self) -> CoreResult<()> {
        if !self.main_thread {
            return Ok(());
        }
        Python::attach(|py| py.check_signals()).map_err(|raised| {
            *self.raised.lock().unwrap_or_else(|p| p.into_inner()) = Some(raised);
            Error::Interrupted
        })
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

/// The element type of `obj` when it is a float32 or float64 array.
pub(crate) fn float_dtype(obj: &Bound<'_, PyAny>, arg: &str, rank: usize) -> PyResult<String> {
    let dtype = obj
        .cast::<PyUntypedArray>()
        .map(|a| a.dtype().to_string())
        .unwrap_or_default();
    match dtype.as_str() {
        "float32" | "float64" => Ok(dtype),
        _ => Err(PyTypeError::new_err(format!(
            "{arg}: expected a {rank}-d numpy.float32 or numpy.float64 array, got {}",
            describe(obj, true)
        ))),
    }
}

/// Sizes the thread pool: `n` threads, an integer in `[1, MAX_THREADS]`
/// (256). Other integers (of any size) raise `ValueError` naming
/// `num_threads` before any thread starts; when the OS refuses the threads,
/// `RuntimeError` naming `num_threads`, and the old pool stays.
#[pyfunction]
fn set_num_threads(n: &Bound<'_, PyAny>) -> PyResult<()> {
    let expected = format!("an integer in [1, {MAX_THREADS}]");
    if n.is_instance_of::<PyBool>() || !n.is_instance_of::<PyInt>() {
        let got = describe(n, false);
        return Err(PyTypeError::new_err(format!(
            "num_threads: expected {expected}, got {got}"
        )));
    }
    match n.extract::<i64>() {
        Ok(v) if (1..=MAX_THREADS as i64).contains(&v) => Ok(pool::set_num_threads(v as usize)?),
        Ok(v) => Err(PyValueError::new_err(format!(
            "num_threads: expected {expected}, got {v}"
        ))),
        Err(_) => {
            let bits = n.call_method0("bit_length")?;
            Err(PyValueError::new_err(format!(
                "num_threads: expected {expected}, got an integer of {bits} bits"
            )))
        }
    }
}

/// `RNNRS_NUM_THREADS` as the pool reads it: `(value, valid, threads)` —
/// the raw value (`None` when unset), whether it is an integer in
/// `[1, MAX_THREADS]`, and the size the default pool has (the value, or
/// the machine's cores when it is unset or invalid).
#[pyfunction]
fn _num_threads_env() -> (Option<String>, bool, usize) {
    let threads = pool::default_threads();
    match pool::env_threads() {
        None => (None, false, threads),
        Some(Ok(n)) => (Some(n.to_string()), true, threads),
        Some(Err(raw)) => (Some(raw), false, threads),
    }
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
    m.add_function(wrap_pyfunction!(_num_threads_env, m)?)?;
    m.add("MAX_THREADS", MAX_THREADS)?;
    checksum::register(m)?;
    attention::register(m)?;
    decode::register(m)?;
    dense::register(m)?;
    loss::register(m)?;
    stepper::register(m)?;
    cells::register(m)
}
