//! The decoding loops' bindings (`decode_greedy`, `decode_beam`): a stack of
//! built cells (`Cell` objects, bottom first), each layer's initial state as
//! a list of its parts, the embedding matrix and the output layer's kernel
//! and bias, borrowed (no copy); the loop runs with the GIL released.

use super::cells::PyCell;
use super::{borrow, describe, PyFloat, Signals};
use crate::decode::{self, BeamOptions, GreedyOptions, Projection, Sampling};
use crate::error::{Interrupt, Result as CoreResult};
use crate::step::Prepared;
use ndarray::ArrayView2;
use numpy::{IntoPyArray, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use std::sync::Arc;

/// The cells of `cells` (a list of `Cell`), all of dtype `T`.
fn stack_cells<T: PyFloat>(cells: &Bound<'_, PyList>) -> PyResult<Vec<Arc<Prepared<T>>>> {
    cells
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let cell = c.cast::<PyCell>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "cells[{i}]: expected a rnnrs._rnnrs.Cell, got {}",
                    describe(&c, false)
                ))
            })?;
            cell.get().prepared::<T>().cloned().ok_or_else(|| {
                PyTypeError::new_err(format!(
                    "cells[{i}]: expected a {} cell (every layer of one dtype), got a {} cell",
                    T::NAME,
                    cell.get().dtype()
                ))
            })
        })
        .collect()
}

/// Each layer's initial state parts: a list (one entry per layer) of lists
/// of `[rows, width]` arrays.
fn borrow_states<'py, T: PyFloat>(
    state: &Bound<'py, PyAny>,
) -> PyResult<Vec<Vec<PyReadonlyArray2<'py, T>>>> {
    let layers = state.cast::<PyList>().map_err(|_| {
        PyTypeError::new_err("initial_state: expected a list (one list of state parts per layer)")
    })?;
    layers
        .iter()
        .enumerate()
        .map(|(i, parts)| {
            let parts = parts.cast::<PyList>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "initial_state[{i}]: expected a list of state parts"
                ))
            })?;
            parts
                .iter()
                .enumerate()
                .map(|(j, a)| borrow(&a, &format!("initial_state[{i}][{j}]"), T::NAME, 2))
                .collect()
        })
        .collect()
}

/// What a decoding loop runs on: the cells, each layer's initial state
/// parts, the embedding and the output projection.
type Decoder<'a, T> = (
    &'a [&'a Prepared<T>],
    &'a [Vec<ArrayView2<'a, T>>],
    ArrayView2<'a, T>,
    &'a Projection<T>,
);

/// The borrowed arguments every decoder takes.
struct Common<'py, T: PyFloat> {
    cells: Vec<Arc<Prepared<T>>>,
    states: Vec<Vec<PyReadonlyArray2<'py, T>>>,
    embedding: PyReadonlyArray2<'py, T>,
    kernel: Option<PyReadonlyArray2<'py, T>>,
    bias: Option<PyReadonlyArray1<'py, T>>,
}

impl<'py, T: PyFloat> Common<'py, T> {
    fn new(
        cells: &Bound<'py, PyList>,
        initial_state: &Bound<'py, PyAny>,
        embedding: &Bound<'py, PyAny>,
        kernel: Option<&Bound<'py, PyAny>>,
        bias: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Self> {
        Ok(Common {
            cells: stack_cells(cells)?,
            states: borrow_states(initial_state)?,
            embedding: borrow(embedding, "embedding", T::NAME, 2)?,
            kernel: kernel
                .map(|k| borrow(k, "output_layer.kernel", T::NAME, 2))
                .transpose()?,
            bias: bias
                .map(|b| borrow(b, "output_layer.bias", T::NAME, 1))
                .transpose()?,
        })
    }

    /// Runs `decoder` on the borrowed arrays with the GIL released and
    /// Ctrl-C polled.
    fn run<R: Send>(
        &self,
        py: Python<'_>,
        decoder: impl FnOnce(Decoder<'_, T>, &dyn Interrupt) -> CoreResult<R> + Send,
    ) -> PyResult<R> {
        let projection = self.projection()?;
        let refs: Vec<&Prepared<T>> = self.cells.iter().map(|p| p.as_ref()).collect();
        let views: Vec<Vec<_>> = self
            .states
            .iter()
            .map(|parts| parts.iter().map(|p| p.as_array()).collect())
            .collect();
        let embedding = self.embedding.as_array();
        Signals::new(py).detach(py, |hook| {
            decoder((&refs, &views, embedding, &projection), hook)
        })
    }

    fn projection(&self) -> PyResult<Projection<T>> {
        let top = self.cells.last().ok_or_else(|| {
            PyValueError::new_err("cells: expected at least one cell, got an empty list")
        })?;
        let hidden = top.cell().layout().output_width();
        Ok(Projection::new(
            hidden,
            self.kernel.as_ref().map(|k| k.as_array()),
            self.bias.as_ref().map(|b| b.as_array()),
        )?)
    }
}

/// `maximum_iterations` as a count.
fn max_iters(value: i64) -> PyResult<usize> {
    usize::try_from(value).map_err(|_| {
        PyValueError::new_err(format!(
            "maximum_iterations: expected an integer >= 0, got {value}"
        ))
    })
}

/// A list (per layer) of lists of state parts, moved to NumPy.
fn state_list<'py, T: PyFloat>(
    py: Python<'py>,
    state: Vec<Vec<ndarray::Array2<T>>>,
) -> PyResult<Bound<'py, PyList>> {
    let layers = state
        .into_iter()
        .map(|parts| PyList::new(py, parts.into_iter().map(|p| p.into_pyarray(py))))
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, layers)
}

/// Calls `$f::<T>(...)` for the dtype of the first cell of `$cells`.
macro_rules! by_dtype {
    ($cells:expr, |$T:ident| $body:expr) => {{
        let first = $cells.get_item(0).map_err(|_| {
            PyValueError::new_err("cells: expected at least one cell, got an empty list")
        })?;
        let first = first.cast::<PyCell>().map_err(|_| {
            PyTypeError::new_err(format!(
                "cells[0]: expected a rnnrs._rnnrs.Cell, got {}",
                describe(&first, false)
            ))
        })?;
        if first.get().dtype() == "float32" {
            type $T = f32;
            $body
        } else {
            type $T = f64;
            $body
        }
    }};
}

/// `decode_greedy(cells, initial_state, embedding, kernel, bias,
/// start_tokens, end_token, maximum_iterations, impute_finished, uniforms,
/// temperature) -> (rnn_output [B, T, V], sample_id [B, T] int32, lengths
/// [B] int32, final_state)`: greedy decoding (argmax, or sampling with the
/// float64 `uniforms` `[maximum_iterations, B]` when given) with the stack
/// `cells` (bottom first, one dtype); `initial_state` and `final_state` are
/// lists (one per layer) of lists of state parts; `kernel` `[H, V]` and
/// `bias` `[V]` (each optional) the output layer.
#[pyfunction]
#[pyo3(signature = (cells, initial_state, embedding, kernel, bias, start_tokens, end_token, maximum_iterations, impute_finished, uniforms, temperature))]
#[allow(clippy::too_many_arguments)]
fn decode_greedy<'py>(
    py: Python<'py>,
    cells: &Bound<'py, PyList>,
    initial_state: &Bound<'py, PyAny>,
    embedding: &Bound<'py, PyAny>,
    kernel: Option<&Bound<'py, PyAny>>,
    bias: Option<&Bound<'py, PyAny>>,
    start_tokens: PyReadonlyArray1<'py, i64>,
    end_token: i64,
    maximum_iterations: i64,
    impute_finished: bool,
    uniforms: Option<PyReadonlyArray2<'py, f64>>,
    temperature: f64,
) -> PyResult<Bound<'py, PyTuple>> {
    let max_iters = max_iters(maximum_iterations)?;
    let start = start_tokens.as_slice()?;
    by_dtype!(cells, |T| {
        let c = Common::<T>::new(cells, initial_state, embedding, kernel, bias)?;
        let options = GreedyOptions {
            end_token,
            max_iters,
            impute_finished,
            sampling: uniforms.as_ref().map(|u| Sampling {
                uniforms: u.as_array(),
                temperature,
            }),
        };
        let out = c.run(py, |(cells, initial, emb, projection), hook| {
            decode::greedy(cells, initial, emb, projection, start, options, hook)
        })?;
        PyTuple::new(
            py,
            [
                out.rnn_output.into_pyarray(py).into_any(),
                out.sample_id.into_pyarray(py).into_any(),
                ndarray::Array1::from(out.lengths)
                    .into_pyarray(py)
                    .into_any(),
                state_list(py, out.state)?.into_any(),
            ],
        )
    })
}

/// `decode_beam(cells, initial_state, embedding, kernel, bias, start_tokens,
/// end_token, maximum_iterations, beam_width, length_penalty_weight) ->
/// (step_ids [B, T, K] int32, parent_ids [B, T, K] int32, scores [B, T, K],
/// final_state, log_probs [B, K], finished [B, K] bool, lengths [B, K]
/// int32)`: beam search (TensorFlow 1.15 semantics) with the stack `cells`
/// from `initial_state` given for `B` rows (tiled to `B * K` here, row
/// `b * K + k`); `final_state` has `B * K` rows.
#[pyfunction]
#[pyo3(signature = (cells, initial_state, embedding, kernel, bias, start_tokens, end_token, maximum_iterations, beam_width, length_penalty_weight))]
#[allow(clippy::too_many_arguments)]
fn decode_beam<'py>(
    py: Python<'py>,
    cells: &Bound<'py, PyList>,
    initial_state: &Bound<'py, PyAny>,
    embedding: &Bound<'py, PyAny>,
    kernel: Option<&Bound<'py, PyAny>>,
    bias: Option<&Bound<'py, PyAny>>,
    start_tokens: PyReadonlyArray1<'py, i64>,
    end_token: i64,
    maximum_iterations: i64,
    beam_width: i64,
    length_penalty_weight: f64,
) -> PyResult<Bound<'py, PyTuple>> {
    let max_iters = max_iters(maximum_iterations)?;
    let beam_width = usize::try_from(beam_width)
        .ok()
        .filter(|&k| k >= 1)
        .ok_or_else(|| {
            PyValueError::new_err(format!(
                "beam_width: expected an integer >= 1, got {beam_width}"
            ))
        })?;
    let start = start_tokens.as_slice()?;
    by_dtype!(cells, |T| {
        let c = Common::<T>::new(cells, initial_state, embedding, kernel, bias)?;
        let options = BeamOptions {
            end_token,
            max_iters,
            beam_width,
            length_penalty_weight,
        };
        let out = c.run(py, |(cells, initial, emb, projection), hook| {
            decode::beam(cells, initial, emb, projection, start, options, hook)
        })?;
        PyTuple::new(
            py,
            [
                out.step_ids.into_pyarray(py).into_any(),
                out.parent_ids.into_pyarray(py).into_any(),
                out.scores.into_pyarray(py).into_any(),
                state_list(py, out.state)?.into_any(),
                out.log_probs.into_pyarray(py).into_any(),
                out.finished.into_pyarray(py).into_any(),
                out.lengths.into_pyarray(py).into_any(),
            ],
        )
    })
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(decode_greedy, m)?)?;
    m.add_function(wrap_pyfunction!(decode_beam, m)?)?;
    Ok(())
}
