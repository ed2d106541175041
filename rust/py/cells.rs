//! Every cell's bindings, written once: a built cell (`Cell`), whole
//! sequences (`forward`, `backward`) and single steps (`Cell.step`).
//!
//! A cell is built from its kind, a dtype, a dict of options and a dict of
//! weights keyed by their TensorFlow 1.x names; the weights are copied and
//! the recurrent ones packed once, so every later call on the same weights
//! costs only its arithmetic. Gradients come back as a dict with the same
//! keys. States cross as lists of arrays, one per part (`[h]`, or `[c, h]`
//! for an LSTM).

use super::{borrow, describe, PyFloat, Signals};
use crate::cell;
use crate::error::Result as CoreResult;
use crate::sequence::{self, time_major_view, Cache, Checkpoint};
use crate::step::params::{Options, Value, Weights};
use crate::step::{Cell, Prepared};
use crate::Scalar;
use numpy::{
    IntoPyArray, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3, PyReadonlyArrayDyn,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat as PyFloatObj, PyInt, PyList, PyString, PyTuple};
use std::sync::Arc;

/// Makes a cell of one kind from its options and weights.
type Build<T> = for<'a> fn(Options, Weights<'a, T>) -> CoreResult<Box<dyn Cell<T>>>;

/// The registry of cell kinds: one line per cell.
macro_rules! registry {
    ($($kind:literal => $build:path),* $(,)?) => {
        /// The kinds `Cell` accepts.
        const KINDS: &[&str] = &[$($kind),*];

        fn builder<T: Scalar>(kind: &str) -> Option<Build<T>> {
            match kind {
                $($kind => Some($build),)*
                _ => None,
            }
        }
    };
}

registry! {
    "basic_rnn" => cell::basic_rnn::build,
    "lstm" => cell::lstm::build,
    "gru" => cell::gru::build,
}

/// A built cell of either dtype.
enum AnyCell {
    F32(Arc<Prepared<f32>>),
    F64(Arc<Prepared<f64>>),
}

/// Evaluates `$body` with `$p` the `Arc<Prepared<$T>>` of `$cell` and
/// `$cache` the matching [`AnyCache`] variant.
macro_rules! with_cell {
    ($cell:expr, |$p:ident, $T:ident, $cache:ident| $body:expr) => {
        match $cell {
            AnyCell::F32($p) => {
                #[allow(dead_code)]
                type $T = f32;
                let $cache = AnyCache::F32;
                $body
            }
            AnyCell::F64($p) => {
                #[allow(dead_code)]
                type $T = f64;
                let $cache = AnyCache::F64;
                $body
            }
        }
    };
    ($cell:expr, |$p:ident, $T:ident| $body:expr) => {
        with_cell!($cell, |$p, $T, _cache| $body)
    };
}

/// A cell built from named weights, kept ready for calls (opaque; the Python
/// cells make one per set of weights).
#[pyclass(frozen, module = "rnnrs._rnnrs", name = "Cell")]
pub(crate) struct PyCell {
    kind: String,
    inner: AnyCell,
}

/// The options dict as core options.
fn options(dict: &Bound<'_, PyDict>) -> PyResult<Options> {
    let mut items = Vec::with_capacity(dict.len());
    for (k, v) in dict.iter() {
        let name: String = k
            .extract()
            .map_err(|_| PyTypeError::new_err("options: expected names (str) as keys"))?;
        let value = if v.is_none() {
            Value::None
        } else if v.is_instance_of::<PyBool>() {
            Value::Bool(v.extract()?)
        } else if v.is_instance_of::<PyInt>() {
            Value::Int(v.extract()?)
        } else if v.is_instance_of::<PyFloatObj>() {
            Value::Float(v.extract()?)
        } else if v.is_instance_of::<PyString>() {
            Value::Str(v.extract()?)
        } else {
            let ty = v.get_type().name()?.to_string();
            return Err(PyTypeError::new_err(format!(
                "{name}: expected None, a bool, a number or a str, got {ty}"
            )));
        };
        items.push((name, value));
    }
    Ok(Options::new(items))
}

/// The weights dict, borrowed (no copy) as arrays of `T` (also the attention bindings').
pub(crate) fn borrowed_weights<'py, T: PyFloat>(
    dict: &Bound<'py, PyDict>,
) -> PyResult<Vec<(String, PyReadonlyArrayDyn<'py, T>)>> {
    let mut out = Vec::with_capacity(dict.len());
    for (k, v) in dict.iter() {
        let name: String = k
            .extract()
            .map_err(|_| PyTypeError::new_err("weights: expected names (str) as keys"))?;
        let array: PyReadonlyArrayDyn<'py, T> = v.extract().map_err(|_| {
            let got = describe(&v, false);
            PyTypeError::new_err(format!(
                "{name}: expected a numpy.{} array, got {got}",
                T::NAME
            ))
        })?;
        out.push((name, array));
    }
    Ok(out)
}

fn build_typed<T: PyFloat>(
    py: Python<'_>,
    kind: &str,
    opts: Options,
    weights: &Bound<'_, PyDict>,
) -> PyResult<Arc<Prepared<T>>> {
    let build = builder::<T>(kind).ok_or_else(|| {
        PyValueError::new_err(format!("kind: expected one of {KINDS:?}, got {kind:?}"))
    })?;
    let borrowed = borrowed_weights::<T>(weights)?;
    let views: Vec<_> = borrowed
        .iter()
        .map(|(n, a)| (n.as_str(), a.as_array()))
        .collect();
    let cell = py.detach(|| build(opts, Weights::new(views)))?;
    Ok(Arc::new(Prepared::new(cell)))
}

impl PyCell {
    /// The built cell, when its dtype is `T` (the decoding loops' stacks).
    pub(super) fn prepared<T: PyFloat>(&self) -> Option<&Arc<Prepared<T>>> {
        let any: &dyn std::any::Any = match &self.inner {
            AnyCell::F32(p) => p,
            AnyCell::F64(p) => p,
        };
        any.downcast_ref()
    }
}

#[pymethods]
impl PyCell {
    /// `Cell(kind, dtype, options, weights)`: builds a cell of `kind` (one of
    /// `"basic_rnn"`, `"lstm"`, `"gru"`) for `dtype` (`"float32"` or
    /// `"float64"`) from its options and its weights (arrays of that dtype,
    /// keyed by their TensorFlow 1.x names).
    #[new]
    fn new(
        py: Python<'_>,
        kind: &str,
        dtype: &str,
        options: &Bound<'_, PyDict>,
        weights: &Bound<'_, PyDict>,
    ) -> PyResult<Self> {
        let opts = self::options(options)?;
        let inner = match dtype {
            "float32" => AnyCell::F32(build_typed::<f32>(py, kind, opts, weights)?),
            "float64" => AnyCell::F64(build_typed::<f64>(py, kind, opts, weights)?),
            other => {
                return Err(PyTypeError::new_err(format!(
                    "dtype: expected 'float32' or 'float64', got {other:?}"
                )))
            }
        };
        Ok(PyCell {
            kind: kind.to_string(),
            inner,
        })
    }

    /// The cell's kind.
    #[getter]
    fn kind(&self) -> &str {
        &self.kind
    }

    /// `"float32"` or `"float64"`.
    #[getter]
    pub(super) fn dtype(&self) -> &'static str {
        with_cell!(&self.inner, |_p, T| <T as Scalar>::NAME)
    }

    /// `I`.
    #[getter]
    fn input_size(&self) -> usize {
        with_cell!(&self.inner, |p, T| p.cell().layout().input)
    }

    /// The state's parts, as `(name, width)` pairs.
    #[getter]
    fn state_parts(&self) -> Vec<(&'static str, usize)> {
        with_cell!(&self.inner, |p, T| p
            .cell()
            .layout()
            .state
            .iter()
            .map(|s| (s.name, s.width))
            .collect())
    }

    /// The output's width.
    #[getter]
    fn output_size(&self) -> usize {
        with_cell!(&self.inner, |p, T| p.cell().layout().output_width())
    }

    /// `step(inputs, state) -> (output, new_state)`: one time step on
    /// `inputs` `[B, I]` from `state` (a list of its parts).
    fn step<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
        state: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        with_cell!(&self.inner, |p, T| step_typed::<T>(py, p, inputs, state))
    }

    fn __repr__(&self) -> String {
        format!("Cell(kind={:?}, dtype={:?})", self.kind, self.dtype())
    }
}

/// Borrows a list of state parts (`[B, width]` arrays of `T`), named `arg`
/// (also the attention bindings').
pub(crate) fn borrow_parts<'py, T: PyFloat>(
    arg: &str,
    parts: &Bound<'py, PyAny>,
) -> PyResult<Vec<PyReadonlyArray2<'py, T>>> {
    let list = parts.cast::<PyList>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{arg}: expected a list of state parts, got {}",
            describe(parts, true)
        ))
    })?;
    list.iter()
        .enumerate()
        .map(|(i, a)| borrow(&a, &format!("{arg}[{i}]"), T::NAME, 2))
        .collect()
}

/// A list of new arrays (moved to NumPy, no copy).
fn array_list<'py, T: PyFloat>(
    py: Python<'py>,
    arrays: Vec<ndarray::Array2<T>>,
) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, arrays.into_iter().map(|a| a.into_pyarray(py)))
}

fn step_typed<'py, T: PyFloat>(
    py: Python<'py>,
    cell: &Arc<Prepared<T>>,
    inputs: &Bound<'py, PyAny>,
    state: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    let x: PyReadonlyArray2<T> = borrow(inputs, "inputs", T::NAME, 2)?;
    let parts = borrow_parts::<T>("state", state)?;
    let x = x.as_array();
    let views: Vec<_> = parts.iter().map(|p| p.as_array()).collect();
    let out = py.detach(|| cell.step(x, &views))?;
    PyTuple::new(
        py,
        [
            out.output.into_pyarray(py).into_any(),
            array_list(py, out.state)?.into_any(),
        ],
    )
}

/// What a forward pass cached for `backward` (opaque to Python; dropped with
/// the backprop object). It holds the cell it ran, so later changes of the
/// Python cell's weights do not affect it.
#[pyclass(frozen, module = "rnnrs._rnnrs")]
pub(crate) struct ForwardCache(AnyCache);

enum AnyCache {
    F32(Arc<Prepared<f32>>, Cache<f32>),
    F64(Arc<Prepared<f64>>, Cache<f64>),
}

/// `checkpoint_every`: None, a positive int or `"auto"`.
fn checkpoint_arg(value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Checkpoint>> {
    let Some(v) = value.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    if let Ok(s) = v.cast::<PyString>() {
        if s.to_cow()? == "auto" {
            return Ok(Some(Checkpoint::Auto));
        }
        return Err(PyValueError::new_err(format!(
            "checkpoint_every: expected a positive int, \"auto\" or None, got {}",
            v.repr()?
        )));
    }
    if v.is_instance_of::<PyBool>() || !v.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "checkpoint_every: expected a positive int, \"auto\" or None, got {}",
            describe(v, false)
        )));
    }
    match v.extract::<i64>() {
        Ok(n) if n >= 1 => Ok(Some(Checkpoint::Every(
            usize::try_from(n).unwrap_or(usize::MAX),
        ))),
        // past i64: as good as "never"
        Err(_) if v.gt(0)? => Ok(Some(Checkpoint::Every(usize::MAX))),
        _ => Err(PyValueError::new_err(format!(
            "checkpoint_every: expected a positive int, \"auto\" or None, got {}",
            v.repr()?
        ))),
    }
}

/// `forward(cell, inputs, initial_state, sequence_length, time_major,
/// checkpoint_every=None) -> (outputs, final_state, cache)`: runs `cell`
/// over `inputs` (`[B, T, I]`, or `[T, B, I]` when `time_major`) from
/// `initial_state` (a list of its parts, each `[B, width]`);
/// `sequence_length` is int64 `[B]` or None. With `checkpoint_every` (a
/// positive int or `"auto"`) the cache keeps checkpoints only (see
/// [`Checkpoint`]); results and gradients are the same.
#[pyfunction]
#[pyo3(signature = (cell, inputs, initial_state, sequence_length, time_major, checkpoint_every=None))]
fn forward<'py>(
    py: Python<'py>,
    cell: &Bound<'py, PyCell>,
    inputs: &Bound<'py, PyAny>,
    initial_state: &Bound<'py, PyAny>,
    sequence_length: Option<PyReadonlyArray1<'py, i64>>,
    time_major: bool,
    checkpoint_every: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let checkpoint = checkpoint_arg(checkpoint_every)?;
    let lengths = sequence_length.as_ref().map(|l| l.as_slice()).transpose()?;
    with_cell!(&cell.get().inner, |p, T, cached| {
        let x: PyReadonlyArray3<T> = borrow(inputs, "inputs", T::NAME, 3)?;
        let parts = borrow_parts::<T>("initial_state", initial_state)?;
        let x = time_major_view(x.as_array(), time_major);
        let views: Vec<_> = parts.iter().map(|s| s.as_array()).collect();
        let signals = Signals::new(py);
        let out = signals.detach(py, |hook| {
            sequence::forward_prepared(p, x, &views, lengths, time_major, checkpoint, hook)
        })?;
        let cache = ForwardCache(cached(Arc::clone(p), out.cache));
        PyTuple::new(
            py,
            [
                out.outputs.into_pyarray(py).into_any(),
                array_list(py, out.state)?.into_any(),
                Bound::new(py, cache)?.into_any(),
            ],
        )
    })
}

fn backward_typed<'py, T: PyFloat>(
    py: Python<'py>,
    cell: &Prepared<T>,
    cache: &Cache<T>,
    d_outputs: Option<&Bound<'py, PyAny>>,
    d_state: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let dy: Option<PyReadonlyArray3<T>> = d_outputs
        .map(|d| borrow(d, "d_outputs", T::NAME, 3))
        .transpose()?;
    let ds = d_state
        .map(|d| borrow_parts::<T>("d_state", d))
        .transpose()?;
    let dy = dy
        .as_ref()
        .map(|d| time_major_view(d.as_array(), cache.time_major));
    let ds: Option<Vec<_>> = ds
        .as_ref()
        .map(|parts| parts.iter().map(|p| p.as_array()).collect());
    let signals = Signals::new(py);
    let g = signals.detach(py, |hook| {
        sequence::backward_interruptible(cell.cell(), cache, dy, ds.as_deref(), hook)
    })?;
    let weights = PyDict::new(py);
    for (name, grad) in g.weights {
        weights.set_item(name, grad.into_pyarray(py))?;
    }
    PyTuple::new(
        py,
        [
            g.inputs.into_pyarray(py).into_any(),
            array_list(py, g.initial_state)?.into_any(),
            weights.into_any(),
        ],
    )
}

/// `backward(cache, d_outputs, d_state) -> (d_inputs, d_initial_state,
/// d_weights)`: backpropagates through the forward pass that made `cache`.
/// `d_outputs` is shaped like its outputs, `d_state` a list of the final
/// state's parts; either may be None (zeros). `d_initial_state` is a list of
/// parts; `d_weights` a dict with the keys of the cell's weights.
#[pyfunction]
#[pyo3(signature = (cache, d_outputs, d_state))]
fn backward<'py>(
    py: Python<'py>,
    cache: &Bound<'py, ForwardCache>,
    d_outputs: Option<&Bound<'py, PyAny>>,
    d_state: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    match &cache.get().0 {
        AnyCache::F32(cell, c) => backward_typed::<f32>(py, cell, c, d_outputs, d_state),
        AnyCache::F64(cell, c) => backward_typed::<f64>(py, cell, c, d_outputs, d_state),
    }
}

/// The kinds `Cell` accepts.
#[pyfunction]
fn cell_kinds() -> Vec<&'static str> {
    KINDS.to_vec()
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyCell>()?;
    m.add_class::<ForwardCache>()?;
    m.add_function(wrap_pyfunction!(forward, m)?)?;
    m.add_function(wrap_pyfunction!(backward, m)?)?;
    m.add_function(wrap_pyfunction!(cell_kinds, m)?)?;
    Ok(())
}
