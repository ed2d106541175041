//! The decoding loops' bindings (`decode_greedy`, `decode_beam`): a stack of
//! built cells (`Cell` objects, bottom first), each layer's initial state as
//! a list of its parts, the embedding matrix and the output layer's kernel
//! and bias, borrowed (no copy); the loop runs with the GIL released.

use super::attention::{borrowed_weights, score};
use super::cells::{borrow_parts, PyCell};
use super::{borrow, describe, PyFloat, Signals};
use crate::attention::{Config, Weights};
use crate::decode::{
    self, AttentionInputs, AttentionState, BeamOptions, GreedyOptions, Projection, Sampling,
    Wrapper,
};
use crate::error::{Interrupt, Result as CoreResult};
use crate::step::Prepared;
use ndarray::ArrayView2;
use numpy::{IntoPyArray, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use std::sync::Arc;

/// The cells of `cells` (a list of `Cell`), all of dtype `T`.
pub(super) fn stack_cells<T: PyFloat>(
    cells: &Bound<'_, PyList>,
) -> PyResult<Vec<Arc<Prepared<T>>>> {
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

/// Each layer's state parts (`arg`): a list (one entry per layer) of lists
/// of `[rows, width]` arrays.
pub(super) fn borrow_states<'py, T: PyFloat>(
    arg: &str,
    state: &Bound<'py, PyAny>,
) -> PyResult<Vec<Vec<PyReadonlyArray2<'py, T>>>> {
    let layers = state.cast::<PyList>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{arg}: expected a list (one list of state parts per layer)"
        ))
    })?;
    layers
        .iter()
        .enumerate()
        .map(|(i, parts)| borrow_parts(&format!("{arg}[{i}]"), &parts))
        .collect()
}

/// Views of borrowed state parts (one list per layer), as the core takes them.
pub(super) fn state_views<'a, T: PyFloat>(
    states: &'a [Vec<PyReadonlyArray2<'_, T>>],
) -> Vec<Vec<ArrayView2<'a, T>>> {
    states
        .iter()
        .map(|parts| parts.iter().map(|p| p.as_array()).collect())
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
    /// The width the output layer reads when not the top cell's (an
    /// attention wrapper's output).
    hidden: Option<usize>,
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
            states: borrow_states("initial_state", initial_state)?,
            embedding: borrow(embedding, "embedding", T::NAME, 2)?,
            kernel: kernel
                .map(|k| borrow(k, "output_layer.kernel", T::NAME, 2))
                .transpose()?,
            bias: bias
                .map(|b| borrow(b, "output_layer.bias", T::NAME, 1))
                .transpose()?,
            hidden: None,
        })
    }

    /// [`Common::new`] with an attention wrapper around the top cell
    /// (borrowed from `args`): the output layer reads the wrapper's output.
    fn with_attention(
        cells: &Bound<'py, PyList>,
        initial_state: &Bound<'py, PyAny>,
        embedding: &Bound<'py, PyAny>,
        kernel: Option<&Bound<'py, PyAny>>,
        bias: Option<&Bound<'py, PyAny>>,
        args: AttentionArgs<'_, 'py>,
    ) -> PyResult<(Self, Attention<'py, T>)> {
        let mut common = Self::new(cells, initial_state, embedding, kernel, bias)?;
        let attention = Attention::new(args)?;
        let query = common
            .cells
            .last()
            .map_or(0, |p| p.cell().layout().output_width());
        common.hidden = Some(attention.output_width(query));
        Ok((common, attention))
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
        let views = state_views(&self.states);
        let embedding = self.embedding.as_array();
        Signals::new(py).detach(py, |hook| {
            decoder((&refs, &views, embedding, &projection), hook)
        })
    }

    fn projection(&self) -> PyResult<Projection<T>> {
        let top = self.cells.last().ok_or_else(|| {
            PyValueError::new_err("cells: expected at least one cell, got an empty list")
        })?;
        let hidden = self
            .hidden
            .unwrap_or_else(|| top.cell().layout().output_width());
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
    let beam_width = beam_width_arg(beam_width)?;
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

/// An attention wrapper's arguments, borrowed (the weights copied: they
/// are small).
struct Attention<'py, T: PyFloat> {
    initial_attention: PyReadonlyArray2<'py, T>,
    initial_alignments: PyReadonlyArray2<'py, T>,
    memory: PyReadonlyArray3<'py, T>,
    memory_lengths: Option<PyReadonlyArray1<'py, i64>>,
    weights: Weights<T>,
    config: Config,
}

/// The unconverted arguments of an attention wrapper.
struct AttentionArgs<'a, 'py> {
    initial_attention: &'a Bound<'py, PyAny>,
    initial_alignments: &'a Bound<'py, PyAny>,
    memory: &'a Bound<'py, PyAny>,
    memory_sequence_length: Option<&'a Bound<'py, PyAny>>,
    weights: &'a Bound<'py, PyAny>,
    kind: &'a str,
    normalize: bool,
    scale: bool,
    output_attention: bool,
}

impl<'py, T: PyFloat> Attention<'py, T> {
    fn new(a: AttentionArgs<'_, 'py>) -> PyResult<Self> {
        let score = score(a.kind, a.normalize, a.scale)?;
        let arrays = borrowed_weights::<T>(a.weights)?;
        let items: Vec<(&str, _)> = arrays
            .iter()
            .map(|(n, a)| (n.as_str(), a.as_array()))
            .collect();
        let weights = Weights::from_named(score, &items)?;
        Ok(Attention {
            initial_attention: borrow(a.initial_attention, "initial_attention", T::NAME, 2)?,
            initial_alignments: borrow(a.initial_alignments, "initial_alignments", T::NAME, 2)?,
            memory: borrow(a.memory, "memory", T::NAME, 3)?,
            memory_lengths: a
                .memory_sequence_length
                .filter(|l| !l.is_none())
                .map(|l| borrow(l, "memory_sequence_length", "int64", 1))
                .transpose()?,
            weights,
            config: Config {
                score,
                output_attention: a.output_attention,
                alignment_history: false,
            },
        })
    }

    /// The width of each step's output (what the output layer reads).
    fn output_width(&self, query: usize) -> usize {
        if !self.config.output_attention {
            query
        } else if let Some(k) = &self.weights.attention_kernel {
            k.ncols()
        } else {
            self.memory.as_array().dim().2
        }
    }

    fn wrapper(&self) -> PyResult<Wrapper<'_, T>> {
        let memory_lengths = self
            .memory_lengths
            .as_ref()
            .map(|l| {
                l.as_slice().map_err(|_| {
                    PyValueError::new_err(
                        "memory_sequence_length: expected a contiguous int64 array, got a strided one",
                    )
                })
            })
            .transpose()?;
        Ok(Wrapper {
            inputs: AttentionInputs {
                memory: self.memory.as_array(),
                memory_lengths,
                attention: self.initial_attention.as_array(),
                alignments: self.initial_alignments.as_array(),
            },
            weights: &self.weights,
            config: self.config,
        })
    }
}

/// The wrapper's final attention and alignments, moved to NumPy.
fn attention_pair<'py, T: PyFloat>(
    py: Python<'py>,
    state: Option<AttentionState<T>>,
) -> PyResult<[Bound<'py, PyAny>; 2]> {
    let state =
        state.ok_or_else(|| PyValueError::new_err("attention: the loop returned no attention"))?;
    Ok([
        state.attention.into_pyarray(py).into_any(),
        state.alignments.into_pyarray(py).into_any(),
    ])
}

/// `decode_greedy_attention(cells, initial_state, embedding, kernel, bias,
/// start_tokens, end_token, maximum_iterations, impute_finished, uniforms,
/// temperature, initial_attention, initial_alignments, memory,
/// memory_sequence_length, weights, kind, normalize, scale,
/// output_attention) -> (rnn_output, sample_id, lengths, final_state,
/// attention, alignments)`: `decode_greedy` with an attention wrapper
/// (TF 1.15's `AttentionWrapper`, one `kind` `"bahdanau"` or `"luong"`
/// mechanism) around the stack `cells`: `memory` `[M, Tm, Dm]` (`M`
/// dividing `B`; row `b` attends to memory row `b / (B / M)`), its int64
/// lengths (or None), the initial attention `[B, A]` and alignments `[B,
/// Tm]`, and the mechanism's and attention layer's weights keyed by their
/// TF names; returns the final attention and alignments too.
#[pyfunction]
#[pyo3(signature = (cells, initial_state, embedding, kernel, bias, start_tokens, end_token, maximum_iterations, impute_finished, uniforms, temperature, initial_attention, initial_alignments, memory, memory_sequence_length, weights, kind, normalize, scale, output_attention))]
#[allow(clippy::too_many_arguments)]
fn decode_greedy_attention<'py>(
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
    initial_attention: &Bound<'py, PyAny>,
    initial_alignments: &Bound<'py, PyAny>,
    memory: &Bound<'py, PyAny>,
    memory_sequence_length: Option<&Bound<'py, PyAny>>,
    weights: &Bound<'py, PyAny>,
    kind: &str,
    normalize: bool,
    scale: bool,
    output_attention: bool,
) -> PyResult<Bound<'py, PyTuple>> {
    let max_iters = max_iters(maximum_iterations)?;
    let start = start_tokens.as_slice()?;
    let args = AttentionArgs {
        initial_attention,
        initial_alignments,
        memory,
        memory_sequence_length,
        weights,
        kind,
        normalize,
        scale,
        output_attention,
    };
    by_dtype!(cells, |T| {
        let (c, attention) =
            Common::<T>::with_attention(cells, initial_state, embedding, kernel, bias, args)?;
        let wrapper = attention.wrapper()?;
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
            decode::greedy_attention(
                cells, initial, wrapper, emb, projection, start, options, hook,
            )
        })?;
        let [att, al] = attention_pair(py, out.attention)?;
        PyTuple::new(
            py,
            [
                out.rnn_output.into_pyarray(py).into_any(),
                out.sample_id.into_pyarray(py).into_any(),
                ndarray::Array1::from(out.lengths)
                    .into_pyarray(py)
                    .into_any(),
                state_list(py, out.state)?.into_any(),
                att,
                al,
            ],
        )
    })
}

/// `decode_beam_attention(cells, initial_state, embedding, kernel, bias,
/// start_tokens, end_token, maximum_iterations, beam_width,
/// length_penalty_weight, initial_attention, initial_alignments, memory,
/// memory_sequence_length, weights, kind, normalize, scale,
/// output_attention) -> (step_ids, parent_ids, scores, final_state,
/// log_probs, finished, lengths, attention, alignments)`: `decode_beam`
/// with an attention wrapper (see `decode_greedy_attention`): the initial
/// state, attention `[B, A]` and alignments `[B, Tm]` are given for `B`
/// rows (tiled to `B * K`); hypothesis row `r` attends to memory row `r /
/// (B * K / M)` (no copy of the memory per beam); the final attention and
/// alignments have `B * K` rows.
#[pyfunction]
#[pyo3(signature = (cells, initial_state, embedding, kernel, bias, start_tokens, end_token, maximum_iterations, beam_width, length_penalty_weight, initial_attention, initial_alignments, memory, memory_sequence_length, weights, kind, normalize, scale, output_attention))]
#[allow(clippy::too_many_arguments)]
fn decode_beam_attention<'py>(
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
    initial_attention: &Bound<'py, PyAny>,
    initial_alignments: &Bound<'py, PyAny>,
    memory: &Bound<'py, PyAny>,
    memory_sequence_length: Option<&Bound<'py, PyAny>>,
    weights: &Bound<'py, PyAny>,
    kind: &str,
    normalize: bool,
    scale: bool,
    output_attention: bool,
) -> PyResult<Bound<'py, PyTuple>> {
    let max_iters = max_iters(maximum_iterations)?;
    let beam_width = beam_width_arg(beam_width)?;
    let start = start_tokens.as_slice()?;
    let args = AttentionArgs {
        initial_attention,
        initial_alignments,
        memory,
        memory_sequence_length,
        weights,
        kind,
        normalize,
        scale,
        output_attention,
    };
    by_dtype!(cells, |T| {
        let (c, attention) =
            Common::<T>::with_attention(cells, initial_state, embedding, kernel, bias, args)?;
        let wrapper = attention.wrapper()?;
        let options = BeamOptions {
            end_token,
            max_iters,
            beam_width,
            length_penalty_weight,
        };
        let out = c.run(py, |(cells, initial, emb, projection), hook| {
            decode::beam_attention(
                cells, initial, wrapper, emb, projection, start, options, hook,
            )
        })?;
        let [att, al] = attention_pair(py, out.attention)?;
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
                att,
                al,
            ],
        )
    })
}

/// `beam_width` as a count `>= 1`.
fn beam_width_arg(beam_width: i64) -> PyResult<usize> {
    usize::try_from(beam_width)
        .ok()
        .filter(|&k| k >= 1)
        .ok_or_else(|| {
            PyValueError::new_err(format!(
                "beam_width: expected an integer >= 1, got {beam_width}"
            ))
        })
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(decode_greedy, m)?)?;
    m.add_function(wrap_pyfunction!(decode_beam, m)?)?;
    m.add_function(wrap_pyfunction!(decode_greedy_attention, m)?)?;
    m.add_function(wrap_pyfunction!(decode_beam_attention, m)?)?;
    Ok(())
}
