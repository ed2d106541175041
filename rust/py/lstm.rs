//! Bindings of the LSTM's forward and backward passes (`BasicLSTMCell`,
//! `LSTMCell`).

use super::{borrow, forward_result, with_cache, with_dtype, ForwardCache, PyFloat};
use crate::cell::lstm::{backward, forward, LstmCache, LstmOptions, LstmWeights, Peepholes};
use crate::layer::time_major_view;
use crate::Activation;
use numpy::{IntoPyArray, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

const WHAT: &str = "LSTM";

/// The weights, borrowed from NumPy.
struct Borrowed<'py, T: PyFloat> {
    kernel: PyReadonlyArray2<'py, T>,
    bias: PyReadonlyArray1<'py, T>,
    peepholes: Option<[PyReadonlyArray1<'py, T>; 3]>,
    projection: Option<PyReadonlyArray2<'py, T>>,
}

impl<'py, T: PyFloat> Borrowed<'py, T> {
    fn new(
        kernel: &Bound<'py, PyAny>,
        bias: &Bound<'py, PyAny>,
        peepholes: [Option<&Bound<'py, PyAny>>; 3],
        projection: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Self> {
        let peepholes = match peepholes {
            [None, None, None] => None,
            [Some(i), Some(f), Some(o)] => Some([
                borrow(i, "w_i_diag", T::NAME, 1)?,
                borrow(f, "w_f_diag", T::NAME, 1)?,
                borrow(o, "w_o_diag", T::NAME, 1)?,
            ]),
            some => {
                let n = some.iter().filter(|w| w.is_some()).count();
                return Err(PyValueError::new_err(format!(
                    "w_i_diag, w_f_diag, w_o_diag: expected all three peephole weights or none, got {n}"
                )));
            }
        };
        Ok(Borrowed {
            kernel: borrow(kernel, "kernel", T::NAME, 2)?,
            bias: borrow(bias, "bias", T::NAME, 1)?,
            peepholes,
            projection: projection
                .map(|p| borrow(p, "projection/kernel", T::NAME, 2))
                .transpose()?,
        })
    }

    fn view(&self) -> LstmWeights<'_, T> {
        LstmWeights {
            kernel: self.kernel.as_array(),
            bias: self.bias.as_array(),
            peepholes: self.peepholes.as_ref().map(|[i, f, o]| Peepholes {
                w_i_diag: i.as_array(),
                w_f_diag: f.as_array(),
                w_o_diag: o.as_array(),
            }),
            projection: self.projection.as_ref().map(|p| p.as_array()),
        }
    }
}

/// `array` or `None`.
fn optional<'py>(py: Python<'py>, a: Option<Bound<'py, PyAny>>) -> Bound<'py, PyAny> {
    a.unwrap_or_else(|| py.None().into_bound(py))
}

#[allow(clippy::too_many_arguments)]
fn forward_typed<'py, T: PyFloat>(
    py: Python<'py>,
    inputs: &Bound<'py, PyAny>,
    initial_c: &Bound<'py, PyAny>,
    initial_h: &Bound<'py, PyAny>,
    weights: &Borrowed<'py, T>,
    lengths: Option<&[i64]>,
    options: LstmOptions<f64>,
    time_major: bool,
) -> PyResult<Bound<'py, PyTuple>> {
    let x: PyReadonlyArray3<T> = borrow(inputs, "inputs", T::NAME, 3)?;
    let c0: PyReadonlyArray2<T> = borrow(initial_c, "initial_state.c", T::NAME, 2)?;
    let m0: PyReadonlyArray2<T> = borrow(initial_h, "initial_state.h", T::NAME, 2)?;
    let (x, c0, m0) = (x.as_array(), c0.as_array(), m0.as_array());
    let w = weights.view();
    let options = LstmOptions {
        forget_bias: T::from_f64(options.forget_bias),
        activation: options.activation,
        cell_clip: options.cell_clip.map(T::from_f64),
        proj_clip: options.proj_clip.map(T::from_f64),
    };
    let out = py.detach(|| {
        forward(
            time_major_view(x, time_major),
            c0,
            m0,
            &w,
            lengths,
            options,
            time_major,
        )
    })?;
    forward_result(
        py,
        vec![out.outputs.into_dyn(), out.c.into_dyn(), out.m.into_dyn()],
        out.cache,
    )
}

/// `lstm_forward(inputs, initial_c, initial_h, kernel, bias, w_i_diag, w_f_diag, w_o_diag,
/// projection, sequence_length, forget_bias, cell_clip, proj_clip, activation, time_major)
/// -> (outputs, c, h, cache)`; all float arrays share one dtype (float32 or float64). The
/// peepholes are all three or none; `projection` (`projection/kernel`) may be None.
#[pyfunction]
#[pyo3(name = "lstm_forward")]
#[pyo3(signature = (
    inputs, initial_c, initial_h, kernel, bias, w_i_diag, w_f_diag, w_o_diag, projection,
    sequence_length, forget_bias, cell_clip, proj_clip, activation, time_major
))]
#[allow(clippy::too_many_arguments)]
fn forward_py<'py>(
    py: Python<'py>,
    inputs: &Bound<'py, PyAny>,
    initial_c: &Bound<'py, PyAny>,
    initial_h: &Bound<'py, PyAny>,
    kernel: &Bound<'py, PyAny>,
    bias: &Bound<'py, PyAny>,
    w_i_diag: Option<&Bound<'py, PyAny>>,
    w_f_diag: Option<&Bound<'py, PyAny>>,
    w_o_diag: Option<&Bound<'py, PyAny>>,
    projection: Option<&Bound<'py, PyAny>>,
    sequence_length: Option<PyReadonlyArray1<'py, i64>>,
    forget_bias: f64,
    cell_clip: Option<f64>,
    proj_clip: Option<f64>,
    activation: &str,
    time_major: bool,
) -> PyResult<Bound<'py, PyTuple>> {
    let options = LstmOptions {
        forget_bias,
        activation: Activation::parse(activation)?,
        cell_clip,
        proj_clip,
    };
    let lengths = sequence_length.as_ref().map(|l| l.as_slice()).transpose()?;
    let peepholes = [w_i_diag, w_f_diag, w_o_diag];
    with_dtype!(py, inputs, |T| {
        let w = Borrowed::<T>::new(kernel, bias, peepholes, projection)?;
        forward_typed(
            py, inputs, initial_c, initial_h, &w, lengths, options, time_major,
        )
    })
}

fn backward_typed<'py, T: PyFloat>(
    py: Python<'py>,
    cache: &LstmCache<T>,
    weights: &Borrowed<'py, T>,
    d_outputs: Option<&Bound<'py, PyAny>>,
    d_c: Option<&Bound<'py, PyAny>>,
    d_h: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let dy: Option<PyReadonlyArray3<T>> = d_outputs
        .map(|d| borrow(d, "d_outputs", T::NAME, 3))
        .transpose()?;
    let dc: Option<PyReadonlyArray2<T>> = d_c
        .map(|d| borrow(d, "d_state.c", T::NAME, 2))
        .transpose()?;
    let dm: Option<PyReadonlyArray2<T>> = d_h
        .map(|d| borrow(d, "d_state.h", T::NAME, 2))
        .transpose()?;
    let dy = dy
        .as_ref()
        .map(|d| time_major_view(d.as_array(), cache.time_major));
    let dc = dc.as_ref().map(|d| d.as_array());
    let dm = dm.as_ref().map(|d| d.as_array());
    let w = weights.view();
    let g = py.detach(|| backward(cache, &w, dy, dc, dm))?;
    let (d_wi, d_wf, d_wo) = match g.peepholes {
        Some(p) => (
            Some(p.w_i_diag.into_pyarray(py).into_any()),
            Some(p.w_f_diag.into_pyarray(py).into_any()),
            Some(p.w_o_diag.into_pyarray(py).into_any()),
        ),
        None => (None, None, None),
    };
    let d_proj = g.projection.map(|p| p.into_pyarray(py).into_any());
    PyTuple::new(
        py,
        [
            g.inputs.into_pyarray(py).into_any(),
            g.initial_c.into_pyarray(py).into_any(),
            g.initial_m.into_pyarray(py).into_any(),
            g.kernel.into_pyarray(py).into_any(),
            g.bias.into_pyarray(py).into_any(),
            optional(py, d_wi),
            optional(py, d_wf),
            optional(py, d_wo),
            optional(py, d_proj),
        ],
    )
}

/// `lstm_backward(cache, kernel, bias, w_i_diag, w_f_diag, w_o_diag, projection, d_outputs,
/// d_c, d_h) -> (d_inputs, d_initial_c, d_initial_h, d_kernel, d_bias, d_w_i_diag,
/// d_w_f_diag, d_w_o_diag, d_projection)`; the weights must be the forward pass's; the
/// gradients of absent weights are None.
#[pyfunction]
#[pyo3(name = "lstm_backward")]
#[pyo3(signature = (
    cache, kernel, bias, w_i_diag, w_f_diag, w_o_diag, projection, d_outputs, d_c, d_h
))]
#[allow(clippy::too_many_arguments)]
fn backward_py<'py>(
    py: Python<'py>,
    cache: &Bound<'py, ForwardCache>,
    kernel: &Bound<'py, PyAny>,
    bias: &Bound<'py, PyAny>,
    w_i_diag: Option<&Bound<'py, PyAny>>,
    w_f_diag: Option<&Bound<'py, PyAny>>,
    w_o_diag: Option<&Bound<'py, PyAny>>,
    projection: Option<&Bound<'py, PyAny>>,
    d_outputs: Option<&Bound<'py, PyAny>>,
    d_c: Option<&Bound<'py, PyAny>>,
    d_h: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let cache = cache.get();
    let peepholes = [w_i_diag, w_f_diag, w_o_diag];
    with_cache!(cache, WHAT, LstmCache, |c, T| {
        let w = Borrowed::<T>::new(kernel, bias, peepholes, projection)?;
        backward_typed(py, c, &w, d_outputs, d_c, d_h)
    })
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(forward_py, m)?)?;
    m.add_function(wrap_pyfunction!(backward_py, m)?)?;
    Ok(())
}
