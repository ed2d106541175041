//! The PyO3 edge: array conversion, GIL release, error mapping. No maths.
//!
//! Inputs arrive as borrowed read-only NumPy views (no copy); results are
//! moved out as new NumPy arrays (no copy). Every heavy call runs inside
//! `py.detach`, with the GIL released. The Python package validates and
//! casts arguments first; the core re-checks shapes, and anything it rejects
//! becomes a `ValueError`.

use crate::error::Error;
use crate::layer::{basic_rnn_forward, time_major_view, RnnCache};
use crate::scalar::Scalar;
use crate::{basic_rnn_backward, pool, Activation};
use numpy::{Element, IntoPyArray, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        PyValueError::new_err(e.to_string())
    }
}

/// What a forward pass cached for `backprop`, in its dtype.
enum Cache {
    F32(RnnCache<f32>),
    F64(RnnCache<f64>),
}

/// The forward pass's cache; opaque to Python, dropped with the backprop object.
#[pyclass(frozen, module = "rnnrs._rnnrs")]
struct ForwardCache(Cache);

/// A float element type the bindings accept.
trait PyFloat: Scalar + Element {
    fn wrap(cache: RnnCache<Self>) -> Cache;
    fn unwrap(cache: &Cache) -> Option<&RnnCache<Self>>;
}

impl PyFloat for f32 {
    fn wrap(cache: RnnCache<f32>) -> Cache {
        Cache::F32(cache)
    }
    fn unwrap(cache: &Cache) -> Option<&RnnCache<f32>> {
        match cache {
            Cache::F32(c) => Some(c),
            Cache::F64(_) => None,
        }
    }
}

impl PyFloat for f64 {
    fn wrap(cache: RnnCache<f64>) -> Cache {
        Cache::F64(cache)
    }
    fn unwrap(cache: &Cache) -> Option<&RnnCache<f64>> {
        match cache {
            Cache::F64(c) => Some(c),
            Cache::F32(_) => None,
        }
    }
}

fn extract<'py, A: FromPyObjectOwned<'py>>(
    obj: &Bound<'py, PyAny>,
    arg: &str,
    dtype: &str,
    rank: usize,
) -> PyResult<A> {
    obj.extract::<A>().map_err(|_| {
        let got = obj
            .getattr("dtype")
            .and_then(|d| d.str().map(|s| s.to_string()))
            .unwrap_or_else(|_| {
                obj.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            });
        let ndim = obj.getattr("ndim").and_then(|n| n.extract::<usize>()).ok();
        PyTypeError::new_err(format!(
            "{arg}: expected a {rank}-d numpy.{dtype} array, got {got}{}",
            ndim.map(|n| format!(" with {n} dimension(s)"))
                .unwrap_or_default()
        ))
    })
}

use pyo3::conversion::FromPyObjectOwned;

#[allow(clippy::too_many_arguments)]
fn forward_typed<'py, T: PyFloat>(
    py: Python<'py>,
    inputs: &Bound<'py, PyAny>,
    initial_state: &Bound<'py, PyAny>,
    kernel: &Bound<'py, PyAny>,
    bias: &Bound<'py, PyAny>,
    lengths: Option<PyReadonlyArray1<'py, i64>>,
    activation: Activation,
    time_major: bool,
) -> PyResult<Bound<'py, PyTuple>> {
    let x: PyReadonlyArray3<T> = extract(inputs, "inputs", T::NAME, 3)?;
    let h0: PyReadonlyArray2<T> = extract(initial_state, "initial_state", T::NAME, 2)?;
    let k: PyReadonlyArray2<T> = extract(kernel, "kernel", T::NAME, 2)?;
    let b: PyReadonlyArray1<T> = extract(bias, "bias", T::NAME, 1)?;
    let lengths = lengths.as_ref().map(|l| l.as_array());
    let lengths = match &lengths {
        Some(l) => Some(l.as_slice().ok_or_else(|| {
            PyValueError::new_err("sequence_length: expected a contiguous array")
        })?),
        None => None,
    };
    let (x, h0, k, b) = (x.as_array(), h0.as_array(), k.as_array(), b.as_array());
    let out = py.detach(|| {
        basic_rnn_forward(
            time_major_view(x, time_major),
            h0,
            k,
            b,
            lengths,
            activation,
            time_major,
        )
    })?;
    let cache = Bound::new(py, ForwardCache(T::wrap(out.cache)))?;
    PyTuple::new(
        py,
        [
            out.outputs.into_pyarray(py).into_any(),
            out.state.into_pyarray(py).into_any(),
            cache.into_any(),
        ],
    )
}

/// `basic_rnn_forward(inputs, initial_state, kernel, bias, sequence_length, activation, time_major)
/// -> (outputs, state, cache)`; all float arrays share one dtype (float32 or float64).
#[pyfunction]
#[pyo3(signature = (inputs, initial_state, kernel, bias, sequence_length, activation, time_major))]
#[allow(clippy::too_many_arguments)]
#[pyo3(name = "basic_rnn_forward")]
fn basic_rnn_forward_py<'py>(
    py: Python<'py>,
    inputs: &Bound<'py, PyAny>,
    initial_state: &Bound<'py, PyAny>,
    kernel: &Bound<'py, PyAny>,
    bias: &Bound<'py, PyAny>,
    sequence_length: Option<PyReadonlyArray1<'py, i64>>,
    activation: &str,
    time_major: bool,
) -> PyResult<Bound<'py, PyTuple>> {
    let activation = Activation::parse(activation)?;
    if inputs.extract::<PyReadonlyArray3<f64>>().is_ok() {
        forward_typed::<f64>(
            py,
            inputs,
            initial_state,
            kernel,
            bias,
            sequence_length,
            activation,
            time_major,
        )
    } else {
        forward_typed::<f32>(
            py,
            inputs,
            initial_state,
            kernel,
            bias,
            sequence_length,
            activation,
            time_major,
        )
    }
}

fn backward_typed<'py, T: PyFloat>(
    py: Python<'py>,
    cache: &RnnCache<T>,
    kernel: &Bound<'py, PyAny>,
    d_outputs: Option<&Bound<'py, PyAny>>,
    d_state: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let k: PyReadonlyArray2<T> = extract(kernel, "kernel", T::NAME, 2)?;
    let dy: Option<PyReadonlyArray3<T>> = d_outputs
        .map(|d| extract(d, "d_outputs", T::NAME, 3))
        .transpose()?;
    let ds: Option<PyReadonlyArray2<T>> = d_state
        .map(|d| extract(d, "d_state", T::NAME, 2))
        .transpose()?;
    let k = k.as_array();
    let dy = dy
        .as_ref()
        .map(|d| time_major_view(d.as_array(), cache.time_major));
    let ds = ds.as_ref().map(|d| d.as_array());
    let g = py.detach(|| basic_rnn_backward(cache, k, dy, ds))?;
    PyTuple::new(
        py,
        [
            g.inputs.into_pyarray(py).into_any(),
            g.initial_state.into_pyarray(py).into_any(),
            g.kernel.into_pyarray(py).into_any(),
            g.bias.into_pyarray(py).into_any(),
        ],
    )
}

/// `basic_rnn_backward(cache, kernel, d_outputs, d_state) -> (d_inputs, d_initial_state, d_kernel, d_bias)`.
#[pyfunction]
#[pyo3(signature = (cache, kernel, d_outputs, d_state))]
#[pyo3(name = "basic_rnn_backward")]
fn basic_rnn_backward_py<'py>(
    py: Python<'py>,
    cache: &Bound<'py, ForwardCache>,
    kernel: &Bound<'py, PyAny>,
    d_outputs: Option<&Bound<'py, PyAny>>,
    d_state: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let cache = &cache.get().0;
    if let Some(c) = f32::unwrap(cache) {
        backward_typed(py, c, kernel, d_outputs, d_state)
    } else if let Some(c) = f64::unwrap(cache) {
        backward_typed(py, c, kernel, d_outputs, d_state)
    } else {
        unreachable!("a cache holds f32 or f64")
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

#[pymodule]
fn _rnnrs(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ForwardCache>()?;
    m.add_function(wrap_pyfunction!(basic_rnn_forward_py, m)?)?;
    m.add_function(wrap_pyfunction!(basic_rnn_backward_py, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    Ok(())
}
