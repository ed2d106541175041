//! Bindings of `GRUCell`'s forward and backward passes (both forms).
//!
//! Weights travel as a dict keyed by their TensorFlow 1.x names (the
//! Python cell's own weight dict); the form decides which names are read.

use super::{borrow, forward_result, with_cache, with_dtype, ForwardCache, PyFloat};
use crate::layer::time_major_view;
use crate::{gru_backward, gru_forward, Activation, GruCache, GruWeightGrads, GruWeights};
use numpy::{IntoPyArray, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

const WHAT: &str = "GRUCell";

/// The weights of one form, borrowed from the dict.
enum Borrowed<'py, T: PyFloat> {
    ResetBefore([PyReadonlyArray2<'py, T>; 2], [PyReadonlyArray1<'py, T>; 2]),
    ResetAfter([PyReadonlyArray2<'py, T>; 3], [PyReadonlyArray1<'py, T>; 3]),
}

fn item<'py>(weights: &Bound<'py, PyDict>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    weights.get_item(name)?.ok_or_else(|| {
        PyValueError::new_err(format!(
            "weights: expected an entry {name:?}, got none (keys: {})",
            weights.keys()
        ))
    })
}

fn kernel<'py, T: PyFloat>(
    w: &Bound<'py, PyDict>,
    name: &str,
) -> PyResult<PyReadonlyArray2<'py, T>> {
    borrow(&item(w, name)?, name, T::NAME, 2)
}

fn bias<'py, T: PyFloat>(w: &Bound<'py, PyDict>, name: &str) -> PyResult<PyReadonlyArray1<'py, T>> {
    borrow(&item(w, name)?, name, T::NAME, 1)
}

impl<'py, T: PyFloat> Borrowed<'py, T> {
    fn new(w: &Bound<'py, PyDict>, reset_after: bool) -> PyResult<Self> {
        Ok(if reset_after {
            Borrowed::ResetAfter(
                [
                    kernel(w, "gates/kernel")?,
                    kernel(w, "candidate/input_kernel")?,
                    kernel(w, "candidate/hidden_kernel")?,
                ],
                [
                    bias(w, "gates/bias")?,
                    bias(w, "candidate/input_bias")?,
                    bias(w, "candidate/hidden_bias")?,
                ],
            )
        } else {
            Borrowed::ResetBefore(
                [kernel(w, "gates/kernel")?, kernel(w, "candidate/kernel")?],
                [bias(w, "gates/bias")?, bias(w, "candidate/bias")?],
            )
        })
    }

    fn view(&self) -> GruWeights<'_, T> {
        match self {
            Borrowed::ResetBefore([gk, ck], [gb, cb]) => GruWeights::ResetBefore {
                gates_kernel: gk.as_array(),
                gates_bias: gb.as_array(),
                candidate_kernel: ck.as_array(),
                candidate_bias: cb.as_array(),
            },
            Borrowed::ResetAfter([gk, ik, hk], [gb, ib, hb]) => GruWeights::ResetAfter {
                gates_kernel: gk.as_array(),
                gates_bias: gb.as_array(),
                input_kernel: ik.as_array(),
                hidden_kernel: hk.as_array(),
                input_bias: ib.as_array(),
                hidden_bias: hb.as_array(),
            },
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn forward_typed<'py, T: PyFloat>(
    py: Python<'py>,
    inputs: &Bound<'py, PyAny>,
    initial_state: &Bound<'py, PyAny>,
    weights: &Bound<'py, PyDict>,
    lengths: Option<&[i64]>,
    activation: Activation,
    reset_after: bool,
    time_major: bool,
) -> PyResult<Bound<'py, PyTuple>> {
    let x: PyReadonlyArray3<T> = borrow(inputs, "inputs", T::NAME, 3)?;
    let h0: PyReadonlyArray2<T> = borrow(initial_state, "initial_state", T::NAME, 2)?;
    let w = Borrowed::<T>::new(weights, reset_after)?;
    let (x, h0, w) = (x.as_array(), h0.as_array(), w.view());
    let out = py.detach(|| {
        gru_forward(
            time_major_view(x, time_major),
            h0,
            w,
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

/// `gru_forward(inputs, initial_state, weights, sequence_length, activation, reset_after, time_major)
/// -> (outputs, state, cache)`; `weights` maps the form's TF1 names to arrays; all
/// float arrays share one dtype (float32 or float64).
#[pyfunction]
#[pyo3(name = "gru_forward")]
#[pyo3(signature = (inputs, initial_state, weights, sequence_length, activation, reset_after, time_major))]
#[allow(clippy::too_many_arguments)]
fn forward_py<'py>(
    py: Python<'py>,
    inputs: &Bound<'py, PyAny>,
    initial_state: &Bound<'py, PyAny>,
    weights: &Bound<'py, PyDict>,
    sequence_length: Option<PyReadonlyArray1<'py, i64>>,
    activation: &str,
    reset_after: bool,
    time_major: bool,
) -> PyResult<Bound<'py, PyTuple>> {
    let activation = Activation::parse(activation)?;
    let lengths = sequence_length.as_ref().map(|l| l.as_slice()).transpose()?;
    with_dtype!(py, inputs, |T| forward_typed::<T>(
        py,
        inputs,
        initial_state,
        weights,
        lengths,
        activation,
        reset_after,
        time_major,
    ))
}

fn grads_dict<'py, T: PyFloat>(
    py: Python<'py>,
    g: GruWeightGrads<T>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    match g {
        GruWeightGrads::ResetBefore {
            gates_kernel,
            gates_bias,
            candidate_kernel,
            candidate_bias,
        } => {
            d.set_item("gates/kernel", gates_kernel.into_pyarray(py))?;
            d.set_item("gates/bias", gates_bias.into_pyarray(py))?;
            d.set_item("candidate/kernel", candidate_kernel.into_pyarray(py))?;
            d.set_item("candidate/bias", candidate_bias.into_pyarray(py))?;
        }
        GruWeightGrads::ResetAfter {
            gates_kernel,
            gates_bias,
            input_kernel,
            hidden_kernel,
            input_bias,
            hidden_bias,
        } => {
            d.set_item("gates/kernel", gates_kernel.into_pyarray(py))?;
            d.set_item("gates/bias", gates_bias.into_pyarray(py))?;
            d.set_item("candidate/input_kernel", input_kernel.into_pyarray(py))?;
            d.set_item("candidate/hidden_kernel", hidden_kernel.into_pyarray(py))?;
            d.set_item("candidate/input_bias", input_bias.into_pyarray(py))?;
            d.set_item("candidate/hidden_bias", hidden_bias.into_pyarray(py))?;
        }
    }
    Ok(d)
}

fn backward_typed<'py, T: PyFloat>(
    py: Python<'py>,
    cache: &GruCache<T>,
    weights: &Bound<'py, PyDict>,
    d_outputs: Option<&Bound<'py, PyAny>>,
    d_state: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let w = Borrowed::<T>::new(weights, cache.reset_after)?;
    let dy: Option<PyReadonlyArray3<T>> = d_outputs
        .map(|d| borrow(d, "d_outputs", T::NAME, 3))
        .transpose()?;
    let ds: Option<PyReadonlyArray2<T>> = d_state
        .map(|d| borrow(d, "d_state", T::NAME, 2))
        .transpose()?;
    let w = w.view();
    let dy = dy
        .as_ref()
        .map(|d| time_major_view(d.as_array(), cache.time_major));
    let ds = ds.as_ref().map(|d| d.as_array());
    let g = py.detach(|| gru_backward(cache, w, dy, ds))?;
    PyTuple::new(
        py,
        [
            g.inputs.into_pyarray(py).into_any(),
            g.initial_state.into_pyarray(py).into_any(),
            grads_dict(py, g.weights)?.into_any(),
        ],
    )
}

/// `gru_backward(cache, weights, d_outputs, d_state) -> (d_inputs, d_initial_state, d_weights)`;
/// `weights` as for `gru_forward` (the forward pass's), `d_weights` keyed like it.
#[pyfunction]
#[pyo3(name = "gru_backward")]
#[pyo3(signature = (cache, weights, d_outputs, d_state))]
fn backward_py<'py>(
    py: Python<'py>,
    cache: &Bound<'py, ForwardCache>,
    weights: &Bound<'py, PyDict>,
    d_outputs: Option<&Bound<'py, PyAny>>,
    d_state: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let cache = cache.get();
    with_cache!(cache, WHAT, GruCache, |c, T| backward_typed::<T>(
        py, c, weights, d_outputs, d_state
    ))
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(forward_py, m)?)?;
    m.add_function(wrap_pyfunction!(backward_py, m)?)?;
    Ok(())
}
