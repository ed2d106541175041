//! `Stepper`: single steps of a stack of built cells (`Cell` objects, bottom
//! first) kept between calls, for streaming: the state and every buffer of a
//! step live in the object ([`crate::decode::Stack`] over steppers that hold
//! their cells), so a step costs its arithmetic and one borrow of the inputs.
//! The GIL is released only for steps worth it ([`DETACH_WORK`]).

use super::cells::PyCell;
use super::decode::{borrow_states, stack_cells, state_views};
use super::{borrow, describe, PyFloat};
use crate::decode::Stack;
use numpy::{PyArray2, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods, ToPyArray};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyList;

/// Multiply-adds of a step (all rows, every layer) from which the step
/// runs with the GIL released. Below it the step takes a few microseconds,
/// about what giving the GIL up and taking it back can cost when other
/// Python threads wait for it (up to the interpreter's switch interval).
pub(crate) const DETACH_WORK: usize = 1 << 16;

enum AnyStack {
    F32(Stack<'static, f32>),
    F64(Stack<'static, f64>),
}

macro_rules! with_stack {
    ($stack:expr, |$s:ident, $T:ident| $body:expr) => {
        match $stack {
            AnyStack::F32($s) => {
                #[allow(dead_code)]
                type $T = f32;
                $body
            }
            AnyStack::F64($s) => {
                #[allow(dead_code)]
                type $T = f64;
                $body
            }
        }
    };
}

/// Single steps of a stack of cells, with its state and buffers kept
/// between calls.
#[pyclass(module = "rnnrs._rnnrs", name = "Stepper")]
pub(crate) struct PyStepper {
    stack: AnyStack,
}

/// Whether `a`'s data and strides suit its element type (NumPy allows
/// misaligned arrays, views into byte buffers; borrowing one would not be
/// sound).
fn aligned<T: PyFloat>(a: &Bound<'_, PyArray2<T>>) -> bool {
    let align = std::mem::align_of::<T>() as isize;
    // as NumPy's flag: the strides of axes of length 0 or 1 are never used
    (a.data() as usize).is_multiple_of(align as usize)
        && a.shape()
            .iter()
            .zip(a.strides())
            .all(|(&n, s)| n <= 1 || s % align == 0)
}

/// A `TypeError` naming `arg` unless `a` is [`aligned`].
fn check_aligned<T: PyFloat>(arg: &str, a: &Bound<'_, PyArray2<T>>) -> PyResult<()> {
    if aligned(a) {
        return Ok(());
    }
    Err(PyTypeError::new_err(format!(
        "{arg}: expected an aligned numpy.{} array, got a misaligned view",
        T::NAME
    )))
}

/// `obj` borrowed as an aligned `[?, ?]` array of `T`, named `arg`.
fn borrow_aligned<'py, T: PyFloat>(
    obj: &Bound<'py, PyAny>,
    arg: &str,
) -> PyResult<PyReadonlyArray2<'py, T>> {
    let a: PyReadonlyArray2<T> = borrow(obj, arg, T::NAME, 2)?;
    check_aligned(arg, &a)?;
    Ok(a)
}

/// Whether `stack`'s steps run with the GIL released: their work (every
/// row, every layer) is at least [`DETACH_WORK`] multiply-adds.
fn detaches<T: PyFloat>(stack: &Stack<'_, T>) -> bool {
    stack.rows().saturating_mul(stack.work_per_row()) >= DETACH_WORK
}

/// The error of a call that finds the stepper in use by another thread.
fn in_use<E>(_: E) -> PyErr {
    PyRuntimeError::new_err(
        "Stepper: already stepping in another thread (a stepper runs one step at a time; make \
         one per thread)",
    )
}

/// `out` as a `[rows, width]` array of `T` to write a step's output into,
/// checked before the step runs (so that a rejected `out` leaves the state).
fn check_out<'a, 'py, T: PyFloat>(
    out: &'a Bound<'py, PyAny>,
    shape: [usize; 2],
) -> PyResult<&'a Bound<'py, PyArray2<T>>> {
    let array = out.cast::<PyArray2<T>>().map_err(|_| {
        PyTypeError::new_err(format!(
            "out: expected a 2-d numpy.{} array, got {}",
            T::NAME,
            describe(out, true)
        ))
    })?;
    check_aligned("out", array)?;
    if array.shape() != shape {
        return Err(PyValueError::new_err(format!(
            "out: expected shape {shape:?}, got {:?}",
            array.shape()
        )));
    }
    // a trial borrow: refused for a read-only array
    if array.try_readwrite().is_err() {
        return Err(PyValueError::new_err("out: expected a writeable array"));
    }
    Ok(array)
}

fn step_typed<'py, T: PyFloat>(
    py: Python<'py>,
    stack: &mut Stack<'static, T>,
    inputs: &Bound<'py, PyAny>,
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let rows = stack.rows();
    let target = out
        .map(|o| check_out::<T>(o, [rows, stack.output_size()]))
        .transpose()?;
    let detach = detaches(stack);
    {
        let x = borrow_aligned::<T>(inputs, "inputs")?;
        let x = x.as_array();
        if detach {
            py.detach(|| stack.step(rows, x).map(|_| ()))?;
        } else {
            stack.step(rows, x)?;
        }
    }
    // the inputs' borrow ends before `out`'s starts: `out` may be `inputs`
    let result = stack.output(rows);
    match (out, target) {
        (Some(o), Some(array)) => {
            let mut target = array.try_readwrite().map_err(|_| {
                PyValueError::new_err("out: expected an array not borrowed elsewhere")
            })?;
            target.as_array_mut().assign(&result);
            Ok(o.clone())
        }
        _ => Ok(result.to_pyarray(py).into_any()),
    }
}

fn new_typed<T: PyFloat>(
    cells: &Bound<'_, PyList>,
    state: &Bound<'_, PyAny>,
) -> PyResult<Stack<'static, T>> {
    let cells = stack_cells::<T>(cells)?;
    let states = borrow_states::<T>("initial_state", state)?;
    Ok(Stack::shared(&cells, &state_views(&states))?)
}

#[pymethods]
impl PyStepper {
    /// `Stepper(cells, initial_state)`: a stepper over `cells` (a list of
    /// `Cell`, bottom first, all of one dtype) from `initial_state` (one list
    /// of state parts per cell, each `[B, width]`); `B` stays for its life.
    #[new]
    fn new(cells: &Bound<'_, PyList>, initial_state: &Bound<'_, PyAny>) -> PyResult<Self> {
        let first = cells
            .iter()
            .next()
            .ok_or_else(|| PyValueError::new_err("cells: expected at least one cell, got none"))?;
        // the first cell's dtype (a list that is not all `Cell`s of one dtype
        // is reported by `stack_cells`, naming the entry)
        let dtype = first
            .cast::<PyCell>()
            .map_or("float32", |c| c.get().dtype());
        let stack = if dtype == "float32" {
            AnyStack::F32(new_typed(cells, initial_state)?)
        } else {
            AnyStack::F64(new_typed(cells, initial_state)?)
        };
        Ok(PyStepper { stack })
    }

    /// `step(inputs, out=None) -> output`: one step on `inputs` `[B, I]`
    /// (an aligned array of the cells' dtype); the state moves on. Returns
    /// the top cell's output `[B, O]`, in a new array, or written into `out`
    /// (then returned).
    #[pyo3(signature = (inputs, out=None))]
    fn step<'py>(
        slf: &Bound<'py, Self>,
        inputs: &Bound<'py, PyAny>,
        out: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut this = slf.try_borrow_mut().map_err(in_use)?;
        let py = slf.py();
        let out = out.filter(|o| !o.is_none());
        with_stack!(&mut this.stack, |s, T| step_typed::<T>(py, s, inputs, out))
    }

    /// The current state: one list of parts per cell (new arrays).
    fn state<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyList>> {
        let this = slf.try_borrow().map_err(in_use)?;
        let py = slf.py();
        with_stack!(&this.stack, |s, T| {
            let layers = s
                .state_parts()
                .into_iter()
                .map(|parts| PyList::new(py, parts.into_iter().map(|a| a.to_pyarray(py))));
            let layers: PyResult<Vec<_>> = layers.collect();
            PyList::new(py, layers?)
        })
    }

    /// `set_state(state)`: sets the state (one list of parts per cell, each
    /// `[B, width]`); nothing changes when it is rejected.
    fn set_state(slf: &Bound<'_, Self>, state: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut this = slf.try_borrow_mut().map_err(in_use)?;
        with_stack!(&mut this.stack, |s, T| {
            let states = borrow_states::<T>("state", state)?;
            Ok(s.set_state(&state_views(&states))?)
        })
    }

    /// `B`.
    #[getter]
    fn batch_size(&self) -> usize {
        with_stack!(&self.stack, |s, T| s.rows())
    }

    /// The bottom cell's input size `I`.
    #[getter]
    fn input_size(&self) -> usize {
        with_stack!(&self.stack, |s, T| s.input_size())
    }

    /// The top cell's output width `O`.
    #[getter]
    fn output_size(&self) -> usize {
        with_stack!(&self.stack, |s, T| s.output_size())
    }

    /// `"float32"` or `"float64"`.
    #[getter]
    fn dtype(&self) -> &'static str {
        with_stack!(&self.stack, |_s, T| <T as crate::Scalar>::NAME)
    }

    /// Whether a step runs with the GIL released (its work is at least
    /// `DETACH_WORK` multiply-adds).
    #[getter]
    fn releases_gil(&self) -> bool {
        with_stack!(&self.stack, |s, T| detaches(s))
    }

    fn __repr__(&self) -> String {
        format!(
            "Stepper(batch_size={}, dtype={:?})",
            self.batch_size(),
            self.dtype()
        )
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyStepper>()?;
    m.add("STEP_DETACH_WORK", DETACH_WORK)
}
