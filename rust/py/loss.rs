//! The losses' bindings: `softmax_cross_entropy(logits [N, C], ids [N],
//! scale=None, name="labels") -> (loss [N] float64, grad [N, C])`, the
//! logits borrowed (no copy), computed with the GIL released.

use super::{borrow, float_dtype, PyFloat};
use crate::loss::{self, LossFloat};
use numpy::{IntoPyArray, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// Runs the core on `logits` of element type `T`.
fn run<'py, T: PyFloat + LossFloat>(
    py: Python<'py>,
    logits: &Bound<'py, PyAny>,
    ids: &PyReadonlyArray1<'py, i64>,
    scale: Option<&PyReadonlyArray1<'py, f64>>,
    name: &str,
) -> PyResult<Bound<'py, PyTuple>> {
    let z: PyReadonlyArray2<'py, T> = borrow(logits, "logits", T::NAME, 2)?;
    let (z, ids, scale) = (z.as_array(), ids.as_array(), scale.map(|s| s.as_array()));
    let out = py.detach(|| loss::softmax_cross_entropy(z, ids, scale, name))?;
    PyTuple::new(
        py,
        [
            out.loss.into_pyarray(py).into_any(),
            out.grad.into_pyarray(py).into_any(),
        ],
    )
}

/// `softmax_cross_entropy(logits, ids, scale=None, name="labels") ->
/// (loss, grad)`: per row of the float32/float64 `logits` `[N, C]` and its
/// int64 class id, `loss = -log softmax(z)[id]` (float64 `[N]`) and
/// `grad = scale * (softmax(z) - onehot(id))` (the logits' dtype, `[N, C]`;
/// `scale` a float64 `[N]`, 1 when None). Ids out of range raise
/// `ValueError` naming `name`. Rows run on the thread pool; results do not
/// depend on the thread count.
#[pyfunction]
#[pyo3(signature = (logits, ids, scale=None, name="labels"))]
fn softmax_cross_entropy<'py>(
    py: Python<'py>,
    logits: &Bound<'py, PyAny>,
    ids: PyReadonlyArray1<'py, i64>,
    scale: Option<PyReadonlyArray1<'py, f64>>,
    name: &str,
) -> PyResult<Bound<'py, PyTuple>> {
    match float_dtype(logits, "logits", 2)?.as_str() {
        "float32" => run::<f32>(py, logits, &ids, scale.as_ref(), name),
        _ => run::<f64>(py, logits, &ids, scale.as_ref(), name),
    }
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(softmax_cross_entropy, m)?)
}
