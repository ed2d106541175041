//! The attention wrapper's bindings (`attention_forward`,
//! `attention_backward`): a built cell (`Cell`), the call's arrays and the
//! mechanism's weights (a dict keyed by their TensorFlow 1.x names),
//! borrowed (no copy); the loop runs with the GIL released and Ctrl-C
//! polled. Errors name the public arguments (`inputs`, `sequence_length`,
//! `initial_state`, `initial_attention`, `memory`,
//! `memory_sequence_length`, the weights by name).

use super::cells::{self, borrow_parts, PyCell};
use super::{borrow, describe, PyFloat, Signals};
use crate::attention::{self, Config, Incoming, Inputs, Score, Tape, Weights};
use crate::step::Prepared;
use numpy::{
    IntoPyArray, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3, PyReadonlyArrayDyn,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use std::sync::Arc;

/// What `attention_forward` kept for `attention_backward` (opaque to
/// Python). It holds the cell it ran, so later changes of the Python cell's
/// weights do not affect it.
#[pyclass(frozen, module = "rnnrs._rnnrs")]
pub(crate) struct AttentionTape(AnyTape);

enum AnyTape {
    F32(Arc<Prepared<f32>>, Tape<f32>),
    F64(Arc<Prepared<f64>>, Tape<f64>),
}

/// `kind`, `normalize` and `scale` as a score function (also the decode bindings').
pub(crate) fn score(kind: &str, normalize: bool, scale: bool) -> PyResult<Score> {
    match kind {
        "bahdanau" if scale => Err(PyValueError::new_err(
            "scale: expected False for Bahdanau attention (LuongAttention's option), got True",
        )),
        "bahdanau" => Ok(Score::Bahdanau { normalize }),
        "luong" if normalize => Err(PyValueError::new_err(
            "normalize: expected False for Luong attention (BahdanauAttention's option), got True",
        )),
        "luong" => Ok(Score::Luong { scale }),
        other => Err(PyValueError::new_err(format!(
            "kind: expected 'bahdanau' or 'luong', got {other:?}"
        ))),
    }
}

/// Borrows optional int64 lengths named `arg`.
fn borrow_lengths<'py>(
    arg: &str,
    lengths: Option<&Bound<'py, PyAny>>,
) -> PyResult<Option<PyReadonlyArray1<'py, i64>>> {
    lengths
        .filter(|l| !l.is_none())
        .map(|l| borrow(l, arg, "int64", 1))
        .transpose()
}

/// The lengths' values (a contiguous array).
fn lengths_slice<'a>(
    arg: &str,
    l: &'a Option<PyReadonlyArray1<'_, i64>>,
) -> PyResult<Option<&'a [i64]>> {
    l.as_ref()
        .map(|l| {
            l.as_slice().map_err(|_| {
                PyValueError::new_err(format!(
                    "{arg}: expected a contiguous int64 array, got a strided one"
                ))
            })
        })
        .transpose()
}

/// The weights dict, borrowed (no copy) as arrays of `T` (also the decode bindings').
pub(crate) fn borrowed_weights<'py, T: PyFloat>(
    weights: &Bound<'py, PyAny>,
) -> PyResult<Vec<(String, PyReadonlyArrayDyn<'py, T>)>> {
    let dict = weights.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err(format!(
            "weights: expected a dict of arrays keyed by name, got {}",
            describe(weights, false)
        ))
    })?;
    cells::borrowed_weights(dict)
}

/// The arrays of a forward call, unconverted.
struct Args<'a, 'py> {
    x: &'a Bound<'py, PyAny>,
    lengths: Option<&'a Bound<'py, PyAny>>,
    state_parts: &'a Bound<'py, PyAny>,
    initial_attention: &'a Bound<'py, PyAny>,
    memory: &'a Bound<'py, PyAny>,
    memory_lengths: Option<&'a Bound<'py, PyAny>>,
    weights: &'a Bound<'py, PyAny>,
}

fn forward_typed<'py, T: PyFloat>(
    py: Python<'py>,
    cell: &Arc<Prepared<T>>,
    args: Args<'_, 'py>,
    config: Config,
    wrap: fn(Arc<Prepared<T>>, Tape<T>) -> AnyTape,
) -> PyResult<Bound<'py, PyTuple>> {
    let x: PyReadonlyArray3<T> = borrow(args.x, "inputs", T::NAME, 3)?;
    let lengths = borrow_lengths("sequence_length", args.lengths.filter(|l| !l.is_none()))?;
    let parts = borrow_parts::<T>("initial_state", args.state_parts)?;
    let a0: PyReadonlyArray2<T> = borrow(args.initial_attention, "initial_attention", T::NAME, 2)?;
    let memory: PyReadonlyArray3<T> = borrow(args.memory, "memory", T::NAME, 3)?;
    let memory_lengths = borrow_lengths("memory_sequence_length", args.memory_lengths)?;
    let borrowed = borrowed_weights::<T>(args.weights)?;
    let items: Vec<_> = borrowed
        .iter()
        .map(|(n, a)| (n.as_str(), a.as_array()))
        .collect();
    let weights = Weights::from_named(config.score, &items)?;
    let lengths = lengths_slice("sequence_length", &lengths)?;
    let memory_lengths = lengths_slice("memory_sequence_length", &memory_lengths)?;
    let views: Vec<_> = parts.iter().map(|p| p.as_array()).collect();
    let inputs = Inputs {
        x: x.as_array(),
        lengths,
        initial_state: &views,
        initial_attention: a0.as_array(),
        memory: memory.as_array(),
        memory_lengths,
    };
    let signals = Signals::new(py);
    let out = signals.detach(py, |hook| {
        attention::forward(cell, inputs, weights, config, hook)
    })?;
    let history = match out.history {
        Some(h) => h.into_pyarray(py).into_any(),
        None => py.None().into_bound(py),
    };
    let state = PyList::new(py, out.state.into_iter().map(|a| a.into_pyarray(py)))?;
    let tape = AttentionTape(wrap(Arc::clone(cell), out.tape));
    PyTuple::new(
        py,
        [
            out.outputs.into_pyarray(py).into_any(),
            state.into_any(),
            out.attention.into_pyarray(py).into_any(),
            out.alignments.into_pyarray(py).into_any(),
            history,
            Bound::new(py, tape)?.into_any(),
        ],
    )
}

/// `attention_forward(core, x, lengths, state_parts, initial_attention,
/// memory, memory_lengths, weights, kind, normalize, scale,
/// output_attention, alignment_history) -> (outputs, state_parts,
/// attention, alignments, history, tape)`: runs TF 1.15's `AttentionWrapper`
/// around `core` (a `Cell` of input size `I + A`) over `x` `[B, T, I]`
/// (batch-major) under `dynamic_rnn`'s masking (`lengths` int64 `[B]` or
/// None). `memory` is `[B, Tm, Dm]`, `memory_lengths` int64 `[B]` (each in
/// `[1, Tm]`) or None; `weights` holds `memory_layer/kernel`, and
/// `query_layer/kernel`, `attention_v` (`kind='bahdanau'`),
/// `attention_g` (0-d; `normalize` or `scale`), `attention_b`
/// (`normalize`), `attention_layer/kernel` (optional). `history` is
/// `[T, B, Tm]` or None.
#[pyfunction]
#[pyo3(signature = (core, x, lengths, state_parts, initial_attention, memory, memory_lengths, weights, kind, normalize, scale, output_attention, alignment_history))]
#[allow(clippy::too_many_arguments)]
fn attention_forward<'py>(
    py: Python<'py>,
    core: &Bound<'py, PyAny>,
    x: &Bound<'py, PyAny>,
    lengths: Option<&Bound<'py, PyAny>>,
    state_parts: &Bound<'py, PyAny>,
    initial_attention: &Bound<'py, PyAny>,
    memory: &Bound<'py, PyAny>,
    memory_lengths: Option<&Bound<'py, PyAny>>,
    weights: &Bound<'py, PyAny>,
    kind: &str,
    normalize: bool,
    scale: bool,
    output_attention: bool,
    alignment_history: bool,
) -> PyResult<Bound<'py, PyTuple>> {
    let cell = core.cast::<PyCell>().map_err(|_| {
        PyTypeError::new_err(format!(
            "core: expected a rnnrs._rnnrs.Cell, got {}",
            describe(core, false)
        ))
    })?;
    let config = Config {
        score: score(kind, normalize, scale)?,
        output_attention,
        alignment_history,
    };
    let args = Args {
        x,
        lengths,
        state_parts,
        initial_attention,
        memory,
        memory_lengths,
        weights,
    };
    let cell = cell.get();
    if let Some(p) = cell.prepared::<f32>() {
        forward_typed(py, p, args, config, AnyTape::F32)
    } else if let Some(p) = cell.prepared::<f64>() {
        forward_typed(py, p, args, config, AnyTape::F64)
    } else {
        unreachable!("a Cell is float32 or float64")
    }
}

fn backward_typed<'py, T: PyFloat>(
    py: Python<'py>,
    cell: &Prepared<T>,
    tape: &Tape<T>,
    d_outputs: Option<&Bound<'py, PyAny>>,
    d_state: Option<&Bound<'py, PyAny>>,
    d_attention: Option<&Bound<'py, PyAny>>,
    d_alignments: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let present = |d: Option<&Bound<'py, PyAny>>| d.filter(|d| !d.is_none()).cloned();
    let dy: Option<PyReadonlyArray3<T>> = present(d_outputs)
        .map(|d| borrow(&d, "d_outputs", T::NAME, 3))
        .transpose()?;
    let ds = present(d_state)
        .map(|d| borrow_parts::<T>("d_state", &d))
        .transpose()?;
    let da: Option<PyReadonlyArray2<T>> = present(d_attention)
        .map(|d| borrow(&d, "d_attention", T::NAME, 2))
        .transpose()?;
    let dal: Option<PyReadonlyArray2<T>> = present(d_alignments)
        .map(|d| borrow(&d, "d_alignments", T::NAME, 2))
        .transpose()?;
    let ds_views: Option<Vec<_>> = ds
        .as_ref()
        .map(|parts| parts.iter().map(|p| p.as_array()).collect());
    let incoming = Incoming {
        outputs: dy.as_ref().map(|d| d.as_array()),
        state: ds_views.as_deref(),
        attention: da.as_ref().map(|d| d.as_array()),
        alignments: dal.as_ref().map(|d| d.as_array()),
    };
    let signals = Signals::new(py);
    let g = signals.detach(py, |hook| attention::backward(cell, tape, incoming, hook))?;
    let weights = PyDict::new(py);
    for (name, grad) in g.weights {
        weights.set_item(name, grad.into_pyarray(py))?;
    }
    let state = PyList::new(py, g.initial_state.into_iter().map(|a| a.into_pyarray(py)))?;
    PyTuple::new(
        py,
        [
            g.inputs.into_pyarray(py).into_any(),
            state.into_any(),
            g.initial_attention.into_pyarray(py).into_any(),
            g.memory.into_pyarray(py).into_any(),
            weights.into_any(),
        ],
    )
}

/// `attention_backward(tape, d_outputs, d_state_parts, d_attention,
/// d_alignments) -> (d_x, d_state_parts, d_attention, d_memory,
/// d_weights)`: backpropagates through the `attention_forward` call that
/// made `tape`. The gradients arrive at its outputs `[B, T, out]`, final
/// state parts (a list), final attention `[B, A]` and final alignments
/// `[B, Tm]`; any may be None (zeros). `d_weights` holds the cell's weights'
/// gradients under its own names and the mechanism's under theirs.
#[pyfunction]
#[pyo3(signature = (tape, d_outputs, d_state_parts, d_attention, d_alignments))]
fn attention_backward<'py>(
    py: Python<'py>,
    tape: &Bound<'py, PyAny>,
    d_outputs: Option<&Bound<'py, PyAny>>,
    d_state_parts: Option<&Bound<'py, PyAny>>,
    d_attention: Option<&Bound<'py, PyAny>>,
    d_alignments: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let tape = tape.cast::<AttentionTape>().map_err(|_| {
        PyTypeError::new_err(format!(
            "tape: expected a rnnrs._rnnrs.AttentionTape, got {}",
            describe(tape, false)
        ))
    })?;
    let d = (d_outputs, d_state_parts, d_attention, d_alignments);
    match &tape.get().0 {
        AnyTape::F32(cell, t) => backward_typed::<f32>(py, cell, t, d.0, d.1, d.2, d.3),
        AnyTape::F64(cell, t) => backward_typed::<f64>(py, cell, t, d.0, d.1, d.2, d.3),
    }
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<AttentionTape>()?;
    m.add_function(wrap_pyfunction!(attention_forward, m)?)?;
    m.add_function(wrap_pyfunction!(attention_backward, m)?)?;
    Ok(())
}
