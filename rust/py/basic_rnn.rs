//! Bindings of `BasicRNNCell`'s forward and backward passes.

use super::{borrow, forward_result, with_cache, with_dtype, ForwardCache, PyFloat};
use crate::layer::time_major_view;
use crate::{basic_rnn_backward, basic_rnn_forward, Activation, RnnCache};
use numpy::{IntoPyArray, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

const WHAT: &str = "BasicRNNCell";

#[allow(clippy::too_many_arguments)]
fn forward_typed<'py, T: PyFloat>(
    py: Python<'py>,
    inputs: &Bound<'py, PyAny>,
    initial_state: &Bound<'py, PyAny>,
    kernel: &Bound<'py, PyAny>,
    bias: &Bound<'py, PyAny>,
    lengths: Option<&[i64]>,
    activation: Activation,
    time_major: bool,
) -> PyResult<Bound<'py, PyTuple>> {
    let x: PyReadonlyArray3<T> = borrow(inputs, "inputs", T::NAME, 3)?;
    let h0: PyReadonlyArray2<T> = borrow(initial_state, "initial_state", T::NAME, 2)?;
    let k: PyReadonlyArray2<T> = borrow(kernel, "kernel", T::NAME, 2)?;
    let b: PyReadonlyArray1<T> = borrow(bias, "bias", T::NAME, 1)?;
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
    forward_result(
        py,
        vec![out.outputs.into_dyn(), out.state.into_dyn()],
        out.cache,
    )
}

/// `basic_rnn_forward(inputs, initial_state, kernel, bias, sequence_length, activation, time_major)
/// -> (outputs, state, cache)`; all float arrays share one dtype (float32 or float64).
#[pyfunction]
#[pyo3(name = "basic_rnn_forward")]
#[pyo3(signature = (inputs, initial_state, kernel, bias, sequence_length, activation, time_major))]
#[allow(clippy::too_many_arguments)]
fn forward_py<'py>(
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
    let lengths = sequence_length.as_ref().map(|l| l.as_slice()).transpose()?;
    with_dtype!(py, inputs, |T| forward_typed::<T>(
        py,
        inputs,
        initial_state,
        kernel,
        bias,
        lengths,
        activation,
        time_major,
    ))
}

fn backward_typed<'py, T: PyFloat>(
    py: Python<'py>,
    cache: &RnnCache<T>,
    kernel: &Bound<'py, PyAny>,
    d_outputs: Option<&Bound<'py, PyAny>>,
    d_state: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let k: PyReadonlyArray2<T> = borrow(kernel, "kernel", T::NAME, 2)?;
    let dy: Option<PyReadonlyArray3<T>> = d_outputs
        .map(|d| borrow(d, "d_outputs", T::NAME, 3))
        .transpose()?;
    let ds: Option<PyReadonlyArray2<T>> = d_state
        .map(|d| borrow(d, "d_state", T::NAME, 2))
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
#[pyo3(name = "basic_rnn_backward")]
#[pyo3(signature = (cache, kernel, d_outputs, d_state))]
fn backward_py<'py>(
    py: Python<'py>,
    cache: &Bound<'py, ForwardCache>,
    kernel: &Bound<'py, PyAny>,
    d_outputs: Option<&Bound<'py, PyAny>>,
    d_state: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let cache = cache.get();
    with_cache!(cache, WHAT, RnnCache, |c, T| backward_typed::<T>(
        py, c, kernel, d_outputs, d_state
    ))
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(forward_py, m)?)?;
    m.add_function(wrap_pyfunction!(backward_py, m)?)?;
    Ok(())
}
