//! Losses over the outputs of a network: the softmax cross-entropy of
//! integer class ids, fused into one call that returns each row's loss and
//! the gradient of the logits.
//!
//! A layer above [`crate::kernels`] (it uses the element types and the
//! vectorisable `exp`); it knows nothing of cells or sequences.
//!
//! ## Numerics
//!
//! For each row `z` (`C` logits) with label `y`:
//!
//! * `m = max(z)` (NaN when the row holds a NaN);
//! * the gap `z - m` and its `exp` are computed in the logits' dtype, as
//!   NumPy's `exp(z - z.max())` is (for `f32` a gap beyond the float range
//!   is `-inf`, whose `exp` is 0), with a vectorised `exp` ([`exp_f32`],
//!   relative error below 3e-7; [`exp_f64`], below 5e-16), and summed in
//!   `f64` over eight fixed lanes (NumPy sums in the logits' dtype);
//! * `loss = ln(sum) + (m - z[y])`, both terms in `f64` (`m - z[y]` is
//!   exact for `f32` logits and finite for every finite `f32` row);
//! * `grad = exp(z - m) * T(scale / sum)` in the logits' dtype `T` (one
//!   rounding more than NumPy's division), and at the label
//!   `T((exp(z[y] - m) / sum - 1) * scale)` in `f64`.
//!
//! Non-finite logits propagate as NumPy's formula does: a row with a NaN,
//! or whose maximum is `+inf` or `-inf` (every entry `-inf`), has a NaN
//! loss and an all-NaN gradient row; `-inf` entries of an otherwise finite
//! row have probability 0 (and the loss is `inf` when the label's logit is
//! `-inf`).
//!
//! Rows are independent and each is computed in a fixed order, so results
//! are bitwise identical for any thread count (and for the AVX-512, AVX2
//! and baseline builds of the row loops: no fused multiply-adds, fixed
//! reduction lanes).

use crate::error::{Error, Result};
use crate::kernels::rows::try_zeros;
use crate::kernels::scalar::exp_f64;
use crate::kernels::softmax::exp_f32;
use crate::pool;
use crate::Scalar;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

/// Lanes of the max and sum reductions (fixed: results never depend on
/// the vector width the machine has).
const LANES: usize = 8;

/// Rows per piece of work handed to the pool: cut by the shapes alone.
const MAX_PIECES: usize = 64;

/// Work per logit for the parallel threshold ([`pool::worth_parallel`]
/// counts multiply-adds; an `exp` is a few dozen flops).
const WORK_PER_LOGIT: usize = 16;

/// The per-row loss and the gradient of [`softmax_cross_entropy`].
#[derive(Debug)]
pub struct CrossEntropy<T> {
    /// `-log softmax(z)[y]` per row, `[N]`.
    pub loss: Array1<f64>,
    /// `scale * (softmax(z) - onehot(y))`, `[N, C]`.
    pub grad: Array2<T>,
}

/// The softmax cross-entropy of each row of `logits` (`[N, C]`, `C >= 1`)
/// against the class id `ids[i]` in `[0, C)`, and its gradient
/// `softmax(z) - onehot(y)` multiplied row by row by `scale` (`[N]`; 1
/// when `None`). See the module's documentation for the numerics.
///
/// Errors name `ids_arg` (an id out of range, or a length other than `N`),
/// `logits` (no classes) or `scale`; the gradient is allocated fallibly
/// (`OutOfMemory` naming `logits`).
pub fn softmax_cross_entropy<T: LossFloat>(
    logits: ArrayView2<'_, T>,
    ids: ArrayView1<'_, i64>,
    scale: Option<ArrayView1<'_, f64>>,
    ids_arg: &str,
) -> Result<CrossEntropy<T>> {
    let (rows, classes) = logits.dim();
    if classes == 0 {
        return Err(Error::invalid(
            "logits",
            "an array [N, num_classes] with num_classes >= 1",
            format!("shape [{rows}, 0]"),
        ));
    }
    if ids.len() != rows {
        return Err(Error::invalid(
            ids_arg,
            format!("{rows} class ids (one per row of the logits)"),
            format!("{}", ids.len()),
        ));
    }
    if let Some((i, &id)) = ids
        .iter()
        .enumerate()
        .find(|(_, &id)| id < 0 || id as u64 >= classes as u64)
    {
        return Err(Error::invalid(
            ids_arg,
            format!("class ids in [0, {classes})"),
            format!("{id} at index {i}"),
        ));
    }
    if let Some(s) = &scale {
        if s.len() != rows {
            return Err(Error::invalid(
                "scale",
                format!("{rows} row scales"),
                format!("{}", s.len()),
            ));
        }
    }
    let mut grad = try_zeros::<T>(rows, classes, "logits", "the gradient")?;
    let mut loss = vec![0.0f64; rows];
    let chunk = rows.div_ceil(MAX_PIECES).max(1);
    let parallel = pool::worth_parallel(rows.saturating_mul(classes) * WORK_PER_LOGIT);
    {
        let flat = grad.as_slice_mut().expect("a new array is contiguous");
        let pieces: Vec<_> = flat
            .chunks_mut(chunk * classes)
            .zip(loss.chunks_mut(chunk))
            .enumerate()
            .collect();
        pool::run(parallel, || {
            pool::for_each(pieces, |(p, (g, l))| {
                let mut copy: Vec<T> = Vec::new();
                for (j, (g_row, l_row)) in g.chunks_exact_mut(classes).zip(l).enumerate() {
                    let i = p * chunk + j;
                    let z = logits.row(i);
                    let z = match z.as_slice() {
                        Some(s) => s,
                        None => {
                            copy.clear();
                            copy.extend(z.iter().copied());
                            &copy
                        }
                    };
                    let s = scale.as_ref().map_or(1.0, |s| s[i]);
                    *l_row = row(z, ids[i] as usize, s, g_row);
                }
            });
        });
    }
    Ok(CrossEntropy {
        loss: Array1::from(loss),
        grad,
    })
}

/// The element types of the losses: a [`Scalar`] with an `exp` that
/// vectorises.
pub trait LossFloat: Scalar + Into<f64> {
    /// `exp(x)`, NaN-preserving, 0 for `-inf`: [`exp_f32`] (relative error
    /// below 3e-7) for `f32`, [`exp_f64`] (below 5e-16) for `f64`.
    fn exp_fast(self) -> Self;
}

impl LossFloat for f32 {
    #[inline(always)]
    fn exp_fast(self) -> Self {
        exp_f32(self)
    }
}

impl LossFloat for f64 {
    #[inline(always)]
    fn exp_fast(self) -> Self {
        exp_f64(self)
    }
}

/// One row: writes `grad` and returns the loss.
#[inline]
fn row<T: LossFloat>(z: &[T], label: usize, scale: f64, grad: &mut [T]) -> f64 {
    let top = row_max(z);
    let total = exp_gaps(z, top, grad);
    let top64: f64 = top.into();
    let z_label: f64 = z[label].into();
    let loss = total.ln() + (top64 - z_label);
    let e_label: f64 = grad[label].into();
    scale_row(grad, T::from_f64(scale / total));
    grad[label] = T::from_f64((e_label / total - 1.0) * scale);
    loss
}

/// The row's maximum; NaN when it holds a NaN (as NumPy's `max`).
// `v != v` is the NaN test (`Scalar` has no `is_nan`), and it vectorises.
#[allow(clippy::eq_op)]
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
fn row_max<T: Scalar>(z: &[T]) -> T {
    let mut lanes = [z[0]; LANES];
    let mut nan = [false; LANES];
    let mut blocks = z.chunks_exact(LANES);
    for block in &mut blocks {
        for k in 0..LANES {
            let v = block[k];
            lanes[k] = if v > lanes[k] { v } else { lanes[k] };
            nan[k] |= v != v;
        }
    }
    let mut top = lanes[0];
    let mut any_nan = nan.iter().any(|&n| n);
    for &v in lanes[1..].iter().chain(blocks.remainder()) {
        top = if v > top { v } else { top };
        any_nan |= v != v;
    }
    if any_nan {
        T::from_f64(f64::NAN)
    } else {
        top
    }
}

/// `e[j] = exp(z[j] - top)` (the gap and its `exp` in `T`, as NumPy's
/// `exp(z - max)`); returns their sum, added in `f64` over [`LANES`]
/// fixed lanes.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
fn exp_gaps<T: LossFloat>(z: &[T], top: T, e: &mut [T]) -> f64 {
    // Two simple loops (the exponentials, then the sum) vectorise; one
    // fused loop did not.
    for (ev, &zv) in e.iter_mut().zip(z) {
        *ev = (zv - top).exp_fast();
    }
    let mut lanes = [0.0f64; LANES];
    let mut blocks = e.chunks_exact(LANES);
    for block in &mut blocks {
        for k in 0..LANES {
            lanes[k] += block[k].into();
        }
    }
    for &v in blocks.remainder() {
        lanes[0] += v.into();
    }
    let mut total = 0.0;
    for v in lanes {
        total += v;
    }
    total
}

/// `g[j] *= factor`.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
fn scale_row<T: Scalar>(g: &mut [T], factor: T) {
    for v in g {
        *v = *v * factor;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr1, arr2, Array2};

    /// The NumPy formula, in f64 with libm's exp.
    fn reference(z: &Array2<f64>, ids: &[i64]) -> (Vec<f64>, Array2<f64>) {
        let mut loss = Vec::new();
        let mut grad = z.clone();
        for (i, row) in z.rows().into_iter().enumerate() {
            let top = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = row.iter().map(|v| (v - top).exp()).sum();
            loss.push(total.ln() + top - row[ids[i] as usize]);
            for (j, v) in row.iter().enumerate() {
                grad[[i, j]] = (v - top).exp() / total - f64::from(j == ids[i] as usize);
            }
        }
        (loss, grad)
    }

    fn logits(rows: usize, classes: usize) -> Array2<f64> {
        Array2::from_shape_fn((rows, classes), |(i, j)| {
            ((i * 31 + j * 17) % 23) as f64 * 0.7 - 8.0
        })
    }

    #[test]
    fn matches_the_formula() {
        for classes in [1, 3, 8, 19, 64] {
            let z = logits(5, classes);
            let ids: Vec<i64> = (0..5).map(|i| (i * 7 % classes) as i64).collect();
            let (want_loss, want_grad) = reference(&z, &ids);
            let got = softmax_cross_entropy(z.view(), arr1(&ids).view(), None, "labels").unwrap();
            for (g, w) in got.loss.iter().zip(&want_loss) {
                assert!((g - w).abs() <= 1e-13 * w.abs().max(1.0), "{g} vs {w}");
            }
            for (g, w) in got.grad.iter().zip(&want_grad) {
                assert!((g - w).abs() <= 1e-15, "{g} vs {w}");
            }
            let z32 = z.mapv(|v| v as f32);
            let got = softmax_cross_entropy(z32.view(), arr1(&ids).view(), None, "labels").unwrap();
            for (g, w) in got.loss.iter().zip(&want_loss) {
                assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "{g} vs {w}");
            }
            for (g, w) in got.grad.iter().zip(&want_grad) {
                assert!((*g as f64 - w).abs() <= 1e-7, "{g} vs {w}");
            }
        }
    }

    #[test]
    fn scale_multiplies_the_gradient_only() {
        let z = logits(3, 10);
        let ids = arr1(&[1i64, 0, 9]);
        let one = softmax_cross_entropy(z.view(), ids.view(), None, "labels").unwrap();
        let s = arr1(&[0.5, 0.0, 2.0]);
        let got = softmax_cross_entropy(z.view(), ids.view(), Some(s.view()), "labels").unwrap();
        assert_eq!(got.loss, one.loss);
        for i in 0..3 {
            for j in 0..10 {
                let want = one.grad[[i, j]] * s[i];
                assert!((got.grad[[i, j]] - want).abs() <= 1e-16, "{i} {j}");
            }
        }
    }

    #[test]
    fn bad_ids_name_their_argument() {
        let z = logits(2, 4);
        for ids in [arr1(&[0i64, 4]), arr1(&[-1i64, 0])] {
            let e = softmax_cross_entropy(z.view(), ids.view(), None, "targets")
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("targets: expected class ids in [0, 4)"),
                "{e}"
            );
        }
        let e = softmax_cross_entropy(z.view(), arr1(&[0i64]).view(), None, "labels")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("labels: expected 2 class ids"), "{e}");
        let empty = Array2::<f64>::zeros((2, 0));
        let e = softmax_cross_entropy(empty.view(), arr1(&[0i64, 0]).view(), None, "labels")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("logits: expected"), "{e}");
    }

    #[test]
    fn non_finite_rows_propagate_like_numpy() {
        let inf = f64::INFINITY;
        let z = arr2(&[
            [1.0, f64::NAN, 0.0],
            [inf, 0.0, 1.0],
            [-inf, -inf, -inf],
            [-inf, 0.0, 1.0],
            [-inf, 0.0, 1.0],
        ]);
        let ids = arr1(&[0i64, 1, 0, 0, 1]);
        let got = softmax_cross_entropy(z.view(), ids.view(), None, "labels").unwrap();
        for i in 0..3 {
            assert!(got.loss[i].is_nan());
            assert!(got.grad.row(i).iter().all(|v| v.is_nan()), "row {i}");
        }
        assert_eq!(got.loss[3], inf);
        assert_eq!(got.grad[[3, 0]], -1.0);
        assert!(got.loss[4].is_finite());
        assert_eq!(got.grad[[4, 0]], 0.0);
    }

    #[test]
    fn huge_f32_gaps_stay_finite() {
        let z = arr2(&[[3e38f32, -3e38]]);
        let got = softmax_cross_entropy(z.view(), arr1(&[1i64]).view(), None, "labels").unwrap();
        assert_eq!(got.loss[0], 2.0 * (3e38f32 as f64));
        assert_eq!(got.grad, arr2(&[[1.0f32, -1.0]]));
    }

    #[test]
    fn bitwise_identical_for_any_thread_count() {
        let z = logits(300, 37).mapv(|v| (v * 1.3).sin() as f32);
        let ids: Vec<i64> = (0..300).map(|i| (i * 5 % 37) as i64).collect();
        let ids = arr1(&ids);
        pool::set_parallel_work(Some(0));
        let mut runs = Vec::new();
        for threads in [1, 2, 3] {
            pool::set_num_threads(threads).unwrap();
            runs.push(softmax_cross_entropy(z.view(), ids.view(), None, "labels").unwrap());
        }
        pool::set_parallel_work(None);
        for r in &runs[1..] {
            assert_eq!(r.loss.mapv(f64::to_bits), runs[0].loss.mapv(f64::to_bits));
            assert_eq!(r.grad.mapv(f32::to_bits), runs[0].grad.mapv(f32::to_bits));
        }
    }
}
