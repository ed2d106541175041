//! One batch row's attention at one step, forward and backward: scores,
//! the masked softmax, the context, and their gradients. Slices hold the
//! row's first `m = mlen[b]` memory positions only (the masked ones never
//! enter: their alignments are exactly 0 and their gradients 0). Every
//! reduction runs in a fixed order that depends on the sizes alone. The
//! row functions are compiled for AVX-512 and AVX2 as well as the baseline
//! and pick one at run time (the `multiversion` attributes, as the cells'
//! element-wise passes do); no version fuses a multiply and an add the
//! others do not, so they agree bitwise.

use crate::kernels::scalar::Scalar;
use crate::kernels::softmax;

/// Accumulators of [`dot`] (element `i` into `i % LANES`,
/// combined in a fixed order), so that the loops vectorise.
const LANES: usize = 8;

/// Adds the accumulators in a fixed order.
#[inline(always)]
fn combine<T: Scalar>(acc: [T; LANES]) -> T {
    let a = (acc[0] + acc[4]) + (acc[2] + acc[6]);
    let b = (acc[1] + acc[5]) + (acc[3] + acc[7]);
    a + b
}

/// `a · b`.
#[inline(always)]
pub fn dot<T: Scalar>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::zero(); LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: T = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .fold(T::zero(), |s, (&x, &y)| s + x * y);
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    combine(acc) + tail
}

/// `y += alpha * x`.
#[inline(always)]
pub fn axpy<T: Scalar>(alpha: T, x: &[T], y: &mut [T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += alpha * x;
    }
}

/// Luong scores: `s[j] = g · (h · keys[j])`; `keys` is `[m, U]`, `h` `[U]`.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn luong<T: Scalar>(h: &[T], keys: &[T], g: T, s: &mut [T]) {
    for (s, k) in s.iter_mut().zip(keys.chunks_exact(h.len())) {
        *s = g * dot(h, k);
    }
}

/// Bahdanau scores: `s[j] = Σ_u v[u] tanh(keys[j, u] + q[u])`, `q` the
/// processed query (with `attention_b` added when normalised), `v` the
/// effective `v`; `e` (`[U]`) is scratch. The `tanh` terms go through `e`
/// so that their loop vectorises (with the reduction beside them it did
/// not, and cost three times as much).
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn bahdanau<T: Scalar>(q: &[T], keys: &[T], v: &[T], s: &mut [T], e: &mut [T]) {
    for (s, k) in s.iter_mut().zip(keys.chunks_exact(q.len())) {
        for ((e, &k), &q) in e.iter_mut().zip(k).zip(q) {
            *e = (k + q).tanh();
        }
        *s = dot(v, e);
    }
}

/// `s ← softmax(s)` in place: `exp(s - max) / Σ exp(s - max)`.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn softmax_in_place<T: Scalar>(s: &mut [T]) {
    let shift = softmax::max(s);
    let sum = softmax::sum_exp(s, shift);
    for x in s.iter_mut() {
        *x = softmax::exp(*x - shift) / sum;
    }
}

/// `c = Σ_j alpha[j] values[j]`; `values` is `[m, Dm]`, `c` `[Dm]`.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn context<T: Scalar>(alpha: &[T], values: &[T], c: &mut [T]) {
    c.fill(T::zero());
    for (&a, v) in alpha.iter().zip(values.chunks_exact(c.len())) {
        axpy(a, v, c);
    }
}

/// Through the context and the softmax: given `d_c` (`[Dm]`) and the
/// gradient arriving at the alignments themselves (`extra`, the final
/// alignments' for a row's last step), adds `alpha[j] d_c` to
/// `d_values[j]` and leaves the scores' gradient in `ds` (`[m]`).
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn through_softmax<T: Scalar>(
    alpha: &[T],
    values: &[T],
    d_c: &[T],
    extra: Option<&[T]>,
    d_values: &mut [T],
    ds: &mut [T],
) {
    let dm = d_c.len();
    for (j, ((d, v), dv)) in ds
        .iter_mut()
        .zip(values.chunks_exact(dm))
        .zip(d_values.chunks_exact_mut(dm))
        .enumerate()
    {
        *d = dot(d_c, v) + extra.map_or(T::zero(), |e| e[j]);
        axpy(alpha[j], d_c, dv);
    }
    let mean = alpha
        .iter()
        .zip(ds.iter())
        .fold(T::zero(), |acc, (&a, &d)| acc + a * d);
    for (d, &a) in ds.iter_mut().zip(alpha) {
        *d = a * (*d - mean);
    }
}

/// Luong backward: with `ds` the scores' gradient, adds to `d_h` (`[U]`),
/// `d_keys` (`[m, U]`) and, when `d_g` is given (scale), to `attention_g`'s
/// gradient.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn luong_backward<T: Scalar>(
    h: &[T],
    keys: &[T],
    g: T,
    ds: &[T],
    d_keys: &mut [T],
    d_h: &mut [T],
    mut d_g: Option<&mut T>,
) {
    let u = h.len();
    for ((&d, k), dk) in ds
        .iter()
        .zip(keys.chunks_exact(u))
        .zip(d_keys.chunks_exact_mut(u))
    {
        if let Some(d_g) = d_g.as_deref_mut() {
            *d_g += d * dot(h, k);
        }
        let w = g * d;
        axpy(w, k, d_h);
        axpy(w, h, dk);
    }
}

/// Bahdanau backward: with `ds` the scores' gradient, adds to `d_keys`
/// (`[m, U]`), `d_q` (`[U]`, the processed query's gradient) and `d_v` (the
/// effective `v`'s gradient).
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn bahdanau_backward<T: Scalar>(
    q: &[T],
    keys: &[T],
    v: &[T],
    ds: &[T],
    d_keys: &mut [T],
    d_q: &mut [T],
    d_v: &mut [T],
) {
    let u = q.len();
    for ((&d, k), dk) in ds
        .iter()
        .zip(keys.chunks_exact(u))
        .zip(d_keys.chunks_exact_mut(u))
    {
        let rows = k.iter().zip(q).zip(v).zip(dk.iter_mut());
        for ((((&k, &q), &v), dk), (dq, dv)) in rows.zip(d_q.iter_mut().zip(d_v.iter_mut())) {
            let e = (k + q).tanh();
            *dv += d * e;
            let dp = d * v * (T::one() - e * e);
            *dk += dp;
            *dq += dp;
        }
    }
}
