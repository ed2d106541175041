//! `BasicLSTMCell` and `LSTMCell` (TensorFlow 1.x), one implementation.
//!
//! Weights: `kernel [I+P, 4H]` (rows `[x; h]`, column blocks of width `H` in
//! gate order `i, j, f, o`), `bias [4H]`; optional peepholes `w_i_diag,
//! w_f_diag, w_o_diag [H]`; optional `projection/kernel [H, P]`. `P` is the
//! projection width, or `H` without a projection. One step:
//!
//! ```text
//! z = [x, h_prev] @ kernel + bias                      i, j, f, o = split(z, 4)
//! peepholes:  i += w_i_diag * c_prev,  f += w_f_diag * c_prev
//! c = σ(f + forget_bias) * c_prev + σ(i) * act(j)
//! cell_clip:  c = clip(c, -cell_clip, cell_clip)
//! peepholes:  o += w_o_diag * c                        (the new c)
//! h = σ(o) * act(c)
//! projection: h = h @ projection/kernel,  proj_clip: h = clip(h, -proj_clip, proj_clip)
//! state LSTMStateTuple(c, h), output h
//! ```
//!
//! (TensorFlow's source calls the output `m`; rnnrs calls it `h` throughout,
//! as `LSTMStateTuple` does.) `forget_bias` is added at run time (it is never
//! part of `bias`). A clip passes the gradient where the clipped value lies
//! in `[lo, hi]` (inclusive) and stops it outside, like TensorFlow's
//! `clip_by_value`.
//!
//! # The step
//!
//! State rows are `[c (H) | h (P)]`. Forward: one recurrent product
//! `gates += h_prev @ W_h` (`[a, 4H]`), one fused element-wise pass that
//! overwrites the gates with their activations `σ(i), act(j),
//! σ(f+forget_bias), σ(o)` (kept for backward) and writes `c` and the
//! unprojected `h` (into the state, or with a projection into `aux`,
//! followed by the step's `[a, H] @ [H, P]` product and the clip; the
//! unclipped projection is kept in `aux` only when `proj_clip` is set).
//!
//! Backward: (projection only) `dh_raw = dH_t @ projᵀ` with `dH_t` the
//! output's gradient through the clip (kept in `d_aux`), one fused
//! element-wise pass (→ `d_gates`, `dc_prev`, bias and peephole sums) and one
//! recurrent product `dh_prev = d_gates @ W_hᵀ`. Deferred: `dW_x = Xᵀ dZ`,
//! `dW_h = Hᵀ dZ`, `d proj = H_rawᵀ dH`, `dX = dZ @ W_xᵀ`. The unclipped
//! `c` that the clip's gradient needs is recomputed from the kept gates
//! (bitwise the forward's value).

use super::activation_option;
use crate::error::{check_shape, Error, Result};
use crate::kernels::activation::{with_activation, Activation};
use crate::kernels::gemm::gemm_on;
use crate::kernels::packed::StepWeights;
use crate::kernels::rows::{mat, mat_mut};
use crate::kernels::scalar::Scalar;
use crate::step::params::{Named, Options, Weights};
use crate::step::{
    deferred_in_one_chunk, Backward, Cell, Deferred, Forward, Layout, StatePart, Tokens, UnitBack,
    UnitSplit, UnitStep, WeightGrads,
};
use ndarray::{s, Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis};

/// Peephole weights, each `[H]`.
#[derive(Debug, Clone, Copy)]
pub struct Peepholes<'a, T> {
    /// Input-gate peephole `w_i_diag`.
    pub w_i_diag: ArrayView1<'a, T>,
    /// Forget-gate peephole `w_f_diag`.
    pub w_f_diag: ArrayView1<'a, T>,
    /// Output-gate peephole `w_o_diag`.
    pub w_o_diag: ArrayView1<'a, T>,
}

/// An LSTM's weights, by their TensorFlow 1.x names.
#[derive(Debug, Clone, Copy)]
pub struct LstmWeights<'a, T> {
    /// `kernel [I+P, 4H]`: rows `[x; h]`, column blocks `i, j, f, o`.
    pub kernel: ArrayView2<'a, T>,
    /// `bias [4H]`.
    pub bias: ArrayView1<'a, T>,
    /// `w_i_diag, w_f_diag, w_o_diag`, when the cell uses peepholes.
    pub peepholes: Option<Peepholes<'a, T>>,
    /// `projection/kernel [H, P]`, when the cell projects its output.
    pub projection: Option<ArrayView2<'a, T>>,
}

/// Everything but the weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LstmOptions<T> {
    /// Added to the forget gate's pre-activation at run time (TF default 1.0).
    pub forget_bias: T,
    /// `act` of `j` and of `c` (TF default tanh).
    pub activation: Activation,
    /// Clips `c` to `±cell_clip` (must be > 0).
    pub cell_clip: Option<T>,
    /// Clips the projected output to `±proj_clip` (must be > 0); ignored
    /// without a projection, as in TensorFlow.
    pub proj_clip: Option<T>,
}

impl<T: Scalar> Default for LstmOptions<T> {
    /// TensorFlow's defaults: `forget_bias = 1`, tanh, no clipping.
    fn default() -> Self {
        LstmOptions {
            forget_bias: T::one(),
            activation: Activation::Tanh,
            cell_clip: None,
            proj_clip: None,
        }
    }
}

/// Sizes and structure of an LSTM, read off its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LstmDims {
    /// Input size `I`.
    pub input: usize,
    /// Units `H`.
    pub units: usize,
    /// Output (and `h` state) width `P`: the projection's, or `H`.
    pub output: usize,
    /// Whether there are peephole weights.
    pub peepholes: bool,
    /// Whether there is a projection.
    pub projection: bool,
}

/// Checks the weights' shapes against each other and the input size.
fn check_weights<T>(w: &LstmWeights<T>) -> Result<LstmDims> {
    let cols = w.kernel.ncols();
    if cols == 0 || !cols.is_multiple_of(4) {
        return Err(Error::invalid(
            "kernel",
            "shape [I+P, 4H] with H >= 1 (a positive multiple of 4 columns)",
            format!("shape {:?}", w.kernel.shape()),
        ));
    }
    let units = cols / 4;
    let output = match &w.projection {
        None => units,
        Some(p) => {
            if p.nrows() != units || p.ncols() == 0 {
                return Err(Error::invalid(
                    "projection/kernel",
                    format!("shape [{units}, P] with P >= 1 (H = {units} from the kernel)"),
                    format!("shape {:?}", p.shape()),
                ));
            }
            p.ncols()
        }
    };
    if w.kernel.nrows() < output {
        return Err(Error::invalid(
            "kernel",
            format!("shape [I + {output}, {cols}] (I >= 0, P = {output})"),
            format!("shape {:?}", w.kernel.shape()),
        ));
    }
    let input = w.kernel.nrows() - output;
    check_shape("bias", w.bias.shape(), &[cols])?;
    if let Some(p) = &w.peepholes {
        check_shape("w_i_diag", p.w_i_diag.shape(), &[units])?;
        check_shape("w_f_diag", p.w_f_diag.shape(), &[units])?;
        check_shape("w_o_diag", p.w_o_diag.shape(), &[units])?;
    }
    Ok(LstmDims {
        input,
        units,
        output,
        peepholes: w.peepholes.is_some(),
        projection: w.projection.is_some(),
    })
}

fn check_options<T: Scalar>(o: &LstmOptions<T>) -> Result<()> {
    for (arg, clip) in [("cell_clip", o.cell_clip), ("proj_clip", o.proj_clip)] {
        if let Some(v) = clip {
            // NaN compares as None and is rejected too.
            if v.partial_cmp(&T::zero()) != Some(std::cmp::Ordering::Greater) {
                return Err(Error::invalid(arg, "a number > 0", format!("{v:?}")));
            }
        }
    }
    Ok(())
}

/// `clip(v, -limit, limit)`; NaN passes through.
#[inline(always)]
fn clip<T: Scalar>(v: T, limit: T) -> T {
    if v > limit {
        limit
    } else if v < -limit {
        -limit
    } else {
        v
    }
}

/// Whether the clip's gradient passes at `v`: `-limit <= v <= limit`.
#[inline(always)]
fn clip_passes<T: Scalar>(v: T, limit: T) -> bool {
    v >= -limit && v <= limit
}

/// The constants of the fused element-wise passes.
#[derive(Debug, Clone, Copy)]
pub struct StepParams<'a, T> {
    /// `bias [4H]`.
    pub bias: &'a [T],
    /// `w_i_diag, w_f_diag, w_o_diag` (each `[H]`), or None.
    pub peepholes: Option<[&'a [T]; 3]>,
    /// Added to `f` before its sigmoid.
    pub forget_bias: T,
    /// The cell clip, or None.
    pub cell_clip: Option<T>,
    /// `act` of `j` and `c`.
    pub activation: Activation,
}

impl<T: Scalar> StepParams<'_, T> {
    fn units(&self) -> usize {
        self.bias.len() / 4
    }
}

/// Calls `$f::<T, PEEP, CLIP>($args)` with the two flags as constants, so
/// each combination is its own specialised (branch-free) loop.
macro_rules! with_flags {
    ($p:expr, $f:ident($($arg:expr),*)) => {
        match ($p.peepholes.is_some(), $p.cell_clip.is_some()) {
            (false, false) => $f::<T, false, false>($($arg),*),
            (false, true) => $f::<T, false, true>($($arg),*),
            (true, false) => $f::<T, true, false>($($arg),*),
            (true, true) => $f::<T, true, true>($($arg),*),
        }
    };
}

/// Forward element-wise pass of one step for `rows` rows of `H` units.
///
/// `gates [rows, 4H]` holds `x @ W_x + h_prev @ W_h` on entry and the gate
/// activations `σ(i), act(j), σ(f + forget_bias), σ(o)` on exit. State rows
/// (`prev`, `next`: `[rows, W]`) are `[c | h]`; reads `c_prev`, writes `c`
/// (clipped) and the unprojected output: into the state's `h` when `raw` is
/// empty, else into the first `H` columns of `raw` (`[rows, raw_width]`).
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn step_forward<T: Scalar>(
    p: &StepParams<T>,
    gates: &mut [T],
    prev: &[T],
    next: &mut [T],
    raw: &mut [T],
    raw_width: usize,
) {
    with_flags!(p, step_forward_impl(p, gates, prev, next, raw, raw_width))
}

#[inline(always)]
fn step_forward_impl<T: Scalar, const PEEP: bool, const CLIP: bool>(
    p: &StepParams<T>,
    gates: &mut [T],
    prev: &[T],
    next: &mut [T],
    raw: &mut [T],
    raw_width: usize,
) {
    let n = p.units();
    let rows = gates.len() / (4 * n);
    let width = prev.len().checked_div(rows).unwrap_or(0);
    let (b_i, rest) = p.bias.split_at(n);
    let (b_j, rest) = rest.split_at(n);
    let (b_f, b_o) = rest.split_at(n);
    // Without peepholes the three are never read; any [H] slices do.
    let [w_i, w_f, w_o] = p.peepholes.unwrap_or([b_i, b_j, b_f]);
    let limit = p.cell_clip.unwrap_or(T::zero());
    with_activation!(p.activation, |act| {
        for r in 0..rows {
            let g = &mut gates[r * 4 * n..(r + 1) * 4 * n];
            let cp = &prev[r * width..r * width + n];
            let (c, h_state) = next[r * width..(r + 1) * width].split_at_mut(n);
            let h = if raw_width > 0 {
                &mut raw[r * raw_width..r * raw_width + n]
            } else {
                h_state
            };
            let (gi, rest) = g.split_at_mut(n);
            let (gj, rest) = rest.split_at_mut(n);
            let (gf, go) = rest.split_at_mut(n);
            row_forward::<T, PEEP, CLIP>(
                act,
                p.forget_bias,
                limit,
                [b_i, b_j, b_f, b_o],
                [w_i, w_f, w_o],
                gi,
                gj,
                gf,
                go,
                cp,
                c,
                h,
            );
        }
    })
}

/// [`step_forward`] for one slice of units (a step split by units,
/// [`crate::kernels::split`]): the same operations on the same values in
/// those units. Without a projection only: the state rows are `[c | h]`, two
/// segments of `H`.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn step_forward_units<'s, T: Scalar>(p: &StepParams<'_, T>, step: &mut UnitStep<'s, T>) {
    with_flags!(p, step_forward_units_impl(p, step))
}

#[inline(always)]
fn step_forward_units_impl<T: Scalar, const PEEP: bool, const CLIP: bool>(
    p: &StepParams<'_, T>,
    step: &mut UnitStep<'_, T>,
) {
    let n = p.units();
    let u = step.units.clone();
    let seg = |k: usize| &p.bias[k * n + u.start..k * n + u.end];
    let bias = [seg(0), seg(1), seg(2), seg(3)];
    let [b_i, b_j, b_f, _] = bias;
    let peep = p
        .peepholes
        .map(|w| w.map(|w| &w[u.clone()]))
        .unwrap_or([b_i, b_j, b_f]);
    let limit = p.cell_clip.unwrap_or(T::zero());
    let width = 2 * n;
    with_activation!(p.activation, |act| {
        for r in 0..step.rows {
            let [gi, gj, gf, go] = step.gates.row::<4>(r);
            let [c, h] = step.next.row::<2>(r);
            let cp = &step.prev[r * width + u.start..r * width + u.end];
            row_forward::<T, PEEP, CLIP>(
                act,
                p.forget_bias,
                limit,
                bias,
                peep,
                gi,
                gj,
                gf,
                go,
                cp,
                c,
                h,
            );
        }
    })
}

/// One row of [`step_forward`]. Every slice is its own parameter, so the
/// compiler knows they do not overlap and vectorises the loop without
/// run-time overlap checks (which it gives up on for this many streams);
/// each is cut to `[..n]` so the bounds checks go too.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn row_forward<T: Scalar, const PEEP: bool, const CLIP: bool>(
    act: Activation,
    fb: T,
    limit: T,
    [b_i, b_j, b_f, b_o]: [&[T]; 4],
    [w_i, w_f, w_o]: [&[T]; 3],
    gi: &mut [T],
    gj: &mut [T],
    gf: &mut [T],
    go: &mut [T],
    cp: &[T],
    c: &mut [T],
    h: &mut [T],
) {
    let n = cp.len();
    let (b_i, b_j, b_f, b_o) = (&b_i[..n], &b_j[..n], &b_f[..n], &b_o[..n]);
    let (w_i, w_f, w_o) = (&w_i[..n], &w_f[..n], &w_o[..n]);
    let (gi, gj, gf, go) = (&mut gi[..n], &mut gj[..n], &mut gf[..n], &mut go[..n]);
    let (c, h) = (&mut c[..n], &mut h[..n]);
    for u in 0..n {
        let cp_u = cp[u];
        let mut zi = gi[u] + b_i[u];
        let zj = gj[u] + b_j[u];
        let mut zf = gf[u] + b_f[u];
        let mut zo = go[u] + b_o[u];
        if PEEP {
            zi += w_i[u] * cp_u;
            zf += w_f[u] * cp_u;
        }
        let si = zi.sigmoid();
        let aj = act.apply(zj);
        let sf = (zf + fb).sigmoid();
        // The backward pass recomputes this exact expression.
        let mut cc = sf * cp_u + si * aj;
        if CLIP {
            cc = clip(cc, limit);
        }
        if PEEP {
            zo += w_o[u] * cc;
        }
        let so = zo.sigmoid();
        gi[u] = si;
        gj[u] = aj;
        gf[u] = sf;
        go[u] = so;
        c[u] = cc;
        h[u] = so * act.apply(cc);
    }
}

/// Backward element-wise pass of one step for `rows` rows.
///
/// Reads the step's kept `gates [rows, 4H]`, `c_prev` and `c` (from the state
/// rows `prev`, `next`: `[rows, W]`, `[c | h]`) and the gradient of the
/// unprojected output: the `h` columns of `d_state` when `dh_raw` is empty,
/// else `dh_raw [rows, H]`. The `c` columns of `d_state` hold the gradient of
/// `c` from later steps on entry and that of `c_prev` on exit. Writes
/// `dz [rows, 4H]` (pre-activation gradients, gate order `i, j, f, o`) and
/// adds its rows into `d_bias [4H]` and, with peepholes, into `d_peep [3H]`
/// (`w_i, w_f, w_o`).
#[allow(clippy::too_many_arguments)]
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn step_backward<T: Scalar>(
    p: &StepParams<T>,
    gates: &[T],
    prev: &[T],
    next: &[T],
    d_state: &mut [T],
    dh_raw: &[T],
    dz: &mut [T],
    d_bias: &mut [T],
    d_peep: &mut [T],
) {
    with_flags!(
        p,
        step_backward_impl(p, gates, prev, next, d_state, dh_raw, dz, d_bias, d_peep)
    )
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn step_backward_impl<T: Scalar, const PEEP: bool, const CLIP: bool>(
    p: &StepParams<T>,
    gates: &[T],
    prev: &[T],
    next: &[T],
    d_state: &mut [T],
    dh_raw: &[T],
    dz: &mut [T],
    d_bias: &mut [T],
    d_peep: &mut [T],
) {
    let n = p.units();
    let rows = gates.len() / (4 * n);
    let width = prev.len().checked_div(rows).unwrap_or(0);
    let w = p.peepholes.unwrap_or([&p.bias[..n]; 3]);
    let limit = p.cell_clip.unwrap_or(T::zero());
    let (db_i, rest) = d_bias.split_at_mut(n);
    let (db_j, rest) = rest.split_at_mut(n);
    let (db_f, db_o) = rest.split_at_mut(n);
    // Without peepholes `d_peep` is empty and never touched.
    let k = if PEEP { n } else { 0 };
    let (dw_i, rest) = d_peep.split_at_mut(k);
    let (dw_f, dw_o) = rest.split_at_mut(k);
    with_activation!(p.activation, |act| {
        for r in 0..rows {
            let g = &gates[r * 4 * n..(r + 1) * 4 * n];
            let cp = &prev[r * width..r * width + n];
            let cc = &next[r * width..r * width + n];
            let (dc, dh_state) = d_state[r * width..(r + 1) * width].split_at_mut(n);
            let dh: &[T] = if dh_raw.is_empty() {
                dh_state
            } else {
                &dh_raw[r * n..(r + 1) * n]
            };
            let (gi, rest) = g.split_at(n);
            let (gj, rest) = rest.split_at(n);
            let (gf, go) = rest.split_at(n);
            let dz = &mut dz[r * 4 * n..(r + 1) * 4 * n];
            let (dzi, rest) = dz.split_at_mut(n);
            let (dzj, rest) = rest.split_at_mut(n);
            let (dzf, dzo) = rest.split_at_mut(n);
            row_backward::<T, PEEP, CLIP>(
                act,
                limit,
                [gi, gj, gf, go],
                [cp, cc, dh],
                w,
                dc,
                dzi,
                dzj,
                dzf,
                dzo,
                db_i,
                db_j,
                db_f,
                db_o,
                dw_i,
                dw_f,
                dw_o,
            );
        }
    })
}

/// [`step_backward`] for one slice of units of a backward step split by
/// units ([`crate::kernels::split::run_back`], phase 0): the same operations
/// on the same values in those units. Without a projection only: the state
/// rows are `[c | h]`, and `dh` is the `h` columns of `d_state`.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn step_backward_units<'s, T: Scalar>(p: &StepParams<'_, T>, step: &mut UnitBack<'s, T>) {
    with_flags!(p, step_backward_units_impl(p, step))
}

#[inline(always)]
fn step_backward_units_impl<T: Scalar, const PEEP: bool, const CLIP: bool>(
    p: &StepParams<'_, T>,
    step: &mut UnitBack<'_, T>,
) {
    let n = p.units();
    let u = step.units.clone();
    let placeholder = &p.bias[u.clone()];
    let w = p
        .peepholes
        .map(|w| w.map(|w| &w[u.clone()]))
        .unwrap_or([placeholder; 3]);
    let limit = p.cell_clip.unwrap_or(T::zero());
    let (width, g_w) = (2 * n, 4 * n);
    let mut none: [&mut [T]; 3] = [&mut [], &mut [], &mut []];
    let (db, dw) = if PEEP {
        let [db_i, db_j, db_f, db_o, dw_i, dw_f, dw_o] = step.d_params.row::<7>(0);
        ([db_i, db_j, db_f, db_o], [dw_i, dw_f, dw_o])
    } else {
        let [dw_i, dw_f, dw_o] = &mut none;
        (
            step.d_params.row::<4>(0),
            [&mut **dw_i, &mut **dw_f, &mut **dw_o],
        )
    };
    let [db_i, db_j, db_f, db_o] = db;
    let [dw_i, dw_f, dw_o] = dw;
    with_activation!(p.activation, |act| {
        for r in 0..step.rows {
            let g = |k: usize| &step.gates[r * g_w + k * n + u.start..r * g_w + k * n + u.end];
            let cp = &step.prev[r * width + u.start..r * width + u.end];
            let cc = &step.next[r * width + u.start..r * width + u.end];
            let [dc, dh] = step.d_state.row::<2>(r);
            let [dzi, dzj, dzf, dzo] = step.d_gates.row::<4>(r);
            row_backward::<T, PEEP, CLIP>(
                act,
                limit,
                [g(0), g(1), g(2), g(3)],
                [cp, cc, dh],
                w,
                dc,
                dzi,
                dzj,
                dzf,
                dzo,
                db_i,
                db_j,
                db_f,
                db_o,
                dw_i,
                dw_f,
                dw_o,
            );
        }
    })
}

/// One row of [`step_backward`]; every written slice is its own parameter
/// (see [`row_forward`]).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn row_backward<T: Scalar, const PEEP: bool, const CLIP: bool>(
    act: Activation,
    limit: T,
    [gi, gj, gf, go]: [&[T]; 4],
    [cp, cc, dh]: [&[T]; 3],
    [w_i, w_f, w_o]: [&[T]; 3],
    dc: &mut [T],
    dzi: &mut [T],
    dzj: &mut [T],
    dzf: &mut [T],
    dzo: &mut [T],
    db_i: &mut [T],
    db_j: &mut [T],
    db_f: &mut [T],
    db_o: &mut [T],
    dw_i: &mut [T],
    dw_f: &mut [T],
    dw_o: &mut [T],
) {
    let n = dc.len();
    let (one, zero) = (T::one(), T::zero());
    let (gi, gj, gf, go) = (&gi[..n], &gj[..n], &gf[..n], &go[..n]);
    let (cp, cc, dh) = (&cp[..n], &cc[..n], &dh[..n]);
    let (dzi, dzj, dzf, dzo) = (&mut dzi[..n], &mut dzj[..n], &mut dzf[..n], &mut dzo[..n]);
    let (db_i, db_j, db_f, db_o) = (
        &mut db_i[..n],
        &mut db_j[..n],
        &mut db_f[..n],
        &mut db_o[..n],
    );
    let k = if PEEP { n } else { 0 };
    let (w_i, w_f, w_o) = (&w_i[..k], &w_f[..k], &w_o[..k]);
    let (dw_i, dw_f, dw_o) = (&mut dw_i[..k], &mut dw_f[..k], &mut dw_o[..k]);
    for u in 0..n {
        let (si, aj, sf, so) = (gi[u], gj[u], gf[u], go[u]);
        let (cp_u, c_u) = (cp[u], cc[u]);
        let ac = act.apply(c_u);
        let dh_u = dh[u];
        let d_o = dh_u * ac * (so * (one - so));
        // gradient of the (clipped) c: later steps + h + o's peephole
        let mut dcc = dc[u] + dh_u * so * act.grad_from_output(ac);
        if PEEP {
            dcc += d_o * w_o[u];
        }
        if CLIP {
            // the unclipped c, bitwise as the forward pass computed it
            let unclipped = sf * cp_u + si * aj;
            dcc = if clip_passes(unclipped, limit) {
                dcc
            } else {
                zero
            };
        }
        let d_i = dcc * aj * (si * (one - si));
        let d_j = dcc * si * act.grad_from_output(aj);
        let d_f = dcc * cp_u * (sf * (one - sf));
        let mut dcp = dcc * sf;
        if PEEP {
            dcp += d_i * w_i[u] + d_f * w_f[u];
            dw_i[u] += d_i * cp_u;
            dw_f[u] += d_f * cp_u;
            dw_o[u] += d_o * c_u;
        }
        dc[u] = dcp;
        dzi[u] = d_i;
        dzj[u] = d_j;
        dzf[u] = d_f;
        dzo[u] = d_o;
        db_i[u] += d_i;
        db_j[u] += d_j;
        db_f[u] += d_f;
        db_o[u] += d_o;
    }
}

/// A built `BasicLSTMCell` or `LSTMCell`.
#[derive(Debug)]
pub struct Lstm<T: Scalar> {
    layout: Layout,
    dims: LstmDims,
    options: LstmOptions<T>,
    /// `[I, 4H]`: the x-rows of `kernel`.
    w_x: Array2<T>,
    /// `[P, 4H]`: the h-rows of `kernel`.
    w_h: StepWeights<T>,
    /// `projection/kernel [H, P]`.
    projection: Option<StepWeights<T>>,
    /// `bias [4H]`.
    bias: Vec<T>,
    /// `w_i_diag, w_f_diag, w_o_diag`.
    peepholes: Option<[Vec<T>; 3]>,
}

impl<T: Scalar> Lstm<T> {
    /// Builds the cell from its weights (the input size is read off the
    /// kernel) and options.
    pub fn new(weights: &LstmWeights<T>, options: LstmOptions<T>) -> Result<Self> {
        check_options(&options)?;
        let dims = check_weights(weights)?;
        let options = LstmOptions {
            proj_clip: options.proj_clip.filter(|_| dims.projection),
            ..options
        };
        let (input, h, p) = (dims.input, dims.units, dims.output);
        let (w_x, w_h) = weights.kernel.split_at(Axis(0), input);
        let raw = if dims.projection { h } else { 0 };
        let unclipped = if options.proj_clip.is_some() { p } else { 0 };
        Ok(Lstm {
            layout: Layout {
                input,
                state: vec![
                    StatePart {
                        name: "c",
                        width: h,
                    },
                    StatePart {
                        name: "h",
                        width: p,
                    },
                ],
                output: 1,
                gates: 4 * h,
                keep_gates: true,
                aux: raw + unclipped,
                d_gates: 4 * h,
                d_aux: if dims.projection { p } else { 0 },
                scratch: raw,
                d_params: 4 * h + if dims.peepholes { 3 * h } else { 0 },
                work_per_token: (input + p) * 4 * h + if dims.projection { h * p } else { 0 },
            },
            dims,
            options,
            w_x: w_x.to_owned(),
            w_h: StepWeights::new(w_h),
            projection: weights.projection.map(StepWeights::new),
            bias: weights.bias.to_vec(),
            peepholes: weights.peepholes.map(|p| {
                [
                    p.w_i_diag.to_vec(),
                    p.w_f_diag.to_vec(),
                    p.w_o_diag.to_vec(),
                ]
            }),
        })
    }

    /// The sizes read off the weights.
    pub fn dims(&self) -> LstmDims {
        self.dims
    }

    /// The options in force (`proj_clip` cleared without a projection).
    pub fn options(&self) -> LstmOptions<T> {
        self.options
    }

    fn params(&self) -> StepParams<'_, T> {
        StepParams {
            bias: &self.bias,
            peepholes: self
                .peepholes
                .as_ref()
                .map(|[i, f, o]| [i.as_slice(), f.as_slice(), o.as_slice()]),
            forget_bias: self.options.forget_bias,
            cell_clip: self.options.cell_clip,
            activation: self.options.activation,
        }
    }
}

/// Builds an LSTM from its options (`forget_bias`, `cell_clip`, `proj_clip`,
/// `activation`) and weights (`kernel`, `bias`, the peepholes `w_i_diag`,
/// `w_f_diag`, `w_o_diag` — all three or none — and `projection/kernel`).
pub fn build<T: Scalar>(
    mut options: Options,
    mut weights: Weights<'_, T>,
) -> Result<Box<dyn Cell<T>>> {
    let opts = LstmOptions {
        forget_bias: T::from_f64(options.float("forget_bias", 1.0)?),
        activation: activation_option(&mut options)?,
        cell_clip: options.optional_float("cell_clip")?.map(T::from_f64),
        proj_clip: options.optional_float("proj_clip")?.map(T::from_f64),
    };
    options.finish("LSTM")?;
    let kernel = weights.matrix("kernel")?;
    let bias = weights.vector("bias")?;
    let names = ["w_i_diag", "w_f_diag", "w_o_diag"];
    let peepholes = match names.map(|n| weights.has(n)) {
        [false, false, false] => None,
        [true, true, true] => Some(Peepholes {
            w_i_diag: weights.vector("w_i_diag")?,
            w_f_diag: weights.vector("w_f_diag")?,
            w_o_diag: weights.vector("w_o_diag")?,
        }),
        some => {
            let n = some.iter().filter(|&&b| b).count();
            return Err(Error::invalid(
                "w_i_diag, w_f_diag, w_o_diag",
                "all three peephole weights or none",
                format!("{n}"),
            ));
        }
    };
    let projection = if weights.has(PROJECTION) {
        Some(weights.matrix(PROJECTION)?)
    } else {
        None
    };
    weights.finish("LSTM")?;
    let w = LstmWeights {
        kernel,
        bias,
        peepholes,
        projection,
    };
    Ok(Box::new(Lstm::new(&w, opts)?))
}

/// The projection's weight name.
const PROJECTION: &str = "projection/kernel";

impl<T: Scalar> Cell<T> for Lstm<T> {
    fn name(&self) -> &'static str {
        "LSTM"
    }

    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn input_kernel(&self) -> ArrayView2<'_, T> {
        self.w_x.view()
    }

    fn forward_step(&self, step: Forward<'_, T>) {
        let (h, p) = (self.dims.units, self.dims.output);
        let (width, a_w) = (h + p, self.layout.aux);
        // gates += h_prev @ W_h
        self.w_h.packed().gemm(
            true,
            mat(step.prev, width).slice_move(s![.., h..]),
            mat_mut(step.gates, 4 * h),
        );
        let params = self.params();
        match &self.projection {
            None => step_forward(&params, step.gates, step.prev, step.next, &mut [], 0),
            Some(proj) => {
                let proj = proj.packed();
                step_forward(&params, step.gates, step.prev, step.next, step.aux, a_w);
                let h_out = mat_mut(step.next, width).slice_move(s![.., h..]);
                let (raw, mut unclipped) = mat_mut(step.aux, a_w).split_at(Axis(1), h);
                match self.options.proj_clip {
                    None => proj.gemm(false, raw.view(), h_out),
                    Some(limit) => {
                        proj.gemm(false, raw.view(), unclipped.view_mut());
                        let mut h_out = h_out;
                        h_out.zip_mut_with(&unclipped, |d, &v| *d = clip(v, limit));
                    }
                }
            }
        }
    }

    fn unit_split(&self) -> Option<UnitSplit> {
        let align = self.w_h.packed().panel_width();
        let split = UnitSplit::aligned(self.dims.units, align, [4, 2, 0, 0], 1);
        split.filter(|_| self.projection.is_none())
    }

    fn forward_units(&self, mut step: UnitStep<'_, T>) {
        let h = self.dims.units;
        // gates[:, units of each of i, j, f, o] += h_prev @ W_h[:, those]
        let prev_h = mat(step.prev, 2 * h).slice_move(s![.., h..]);
        for part in 0..4 {
            self.w_h.packed().gemm_cols(
                true,
                prev_h,
                step.gates.segment(part),
                part * h + step.units.start,
            );
        }
        step_forward_units(&self.params(), &mut step);
    }

    fn backward_split(&self) -> Option<UnitSplit> {
        let align = self.w_h.packed().panel_width();
        let d_params = if self.dims.peepholes { 7 } else { 4 };
        // phase 0: the element-wise step; phase 1: dh_prev = dZ @ W_hᵀ,
        // which reads dZ of every unit
        let split = UnitSplit::aligned(self.dims.units, align, [4, 2, d_params, 0], 2);
        split.filter(|_| self.projection.is_none() && self.w_h.transposed().panel_width() == align)
    }

    fn backward_units(&self, mut step: UnitBack<'_, T>) {
        if step.phase == 0 {
            step_backward_units(&self.params(), &mut step);
        } else {
            // dh_prev[:, the slice's units] = dZ @ W_hᵀ[:, those]
            let first = step.units.start;
            self.w_h.transposed().gemm_cols(
                false,
                step.d_kept.segments(0..4),
                step.d_state.segment(1),
                first,
            );
        }
    }

    fn backward_step(&self, step: Backward<'_, T>) {
        let (h, p) = (self.dims.units, self.dims.output);
        let width = h + p;
        let params = self.params();
        let (d_bias, d_peep) = step.d_params.split_at_mut(4 * h);
        match &self.projection {
            None => step_backward(
                &params,
                step.gates,
                step.prev,
                step.next,
                step.d_state,
                &[],
                step.d_gates,
                d_bias,
                d_peep,
            ),
            Some(proj) => {
                // dH_t = the output's gradient through the clip, kept for d proj
                let dh = mat(step.d_state, width).slice_move(s![.., h..]);
                let mut dh_t = mat_mut(step.d_aux, p);
                match self.options.proj_clip {
                    Some(limit) => {
                        let unclipped = mat(step.aux, self.layout.aux).slice_move(s![.., h..]);
                        ndarray::Zip::from(&mut dh_t)
                            .and(&dh)
                            .and(&unclipped)
                            .for_each(|d, &v, &u| {
                                *d = if clip_passes(u, limit) { v } else { T::zero() }
                            });
                    }
                    None => dh_t.assign(&dh),
                }
                // dh_raw = dH_t @ projᵀ
                proj.transposed()
                    .gemm(false, dh_t.view(), mat_mut(step.scratch, h));
                step_backward(
                    &params,
                    step.gates,
                    step.prev,
                    step.next,
                    step.d_state,
                    step.scratch,
                    step.d_gates,
                    d_bias,
                    d_peep,
                );
            }
        }
        // dh_prev = d_gates @ W_hᵀ
        self.w_h.transposed().gemm(
            false,
            mat(step.d_gates, 4 * h),
            mat_mut(step.d_state, width).slice_move(s![.., h..]),
        );
    }

    fn deferred(&self, d: Deferred<'_, T>) -> WeightGrads<T> {
        deferred_in_one_chunk(self, d)
    }

    fn deferred_sums(&self) -> Vec<Array2<T>> {
        let (input, h, p) = (self.dims.input, self.dims.units, self.dims.output);
        let mut sums = vec![Array2::zeros((input + p, 4 * h))];
        if self.dims.projection {
            sums.push(Array2::zeros((h, p)));
        }
        sums
    }

    fn deferred_chunk(
        &self,
        d: Tokens<'_, T>,
        sums: &mut [Array2<T>],
        d_inputs: ArrayViewMut2<'_, T>,
        parallel: bool,
    ) {
        let (input, h) = (self.dims.input, self.dims.units);
        let (kernel, projection) = sums.split_at_mut(1);
        let (dk_x, dk_h) = kernel[0].view_mut().split_at(Axis(0), input);
        gemm_on(parallel, true, d.x.t(), d.d_gates, dk_x);
        let h_prev = d.states.slice_move(s![.., h..]);
        gemm_on(parallel, true, h_prev.t(), d.d_gates, dk_h);
        if let Some(proj) = projection.first_mut() {
            // d proj += H_rawᵀ dH
            let raw = d.aux.slice_move(s![.., ..h]);
            gemm_on(parallel, true, raw.t(), d.d_aux, proj.view_mut());
        }
        gemm_on(
            parallel,
            false,
            d.d_gates,
            self.w_x.slice(s![..d_inputs.ncols(), ..]).t(),
            d_inputs,
        );
    }

    fn deferred_finish(&self, sums: Vec<Array2<T>>, d_params: ArrayView1<'_, T>) -> Named<T> {
        let h = self.dims.units;
        let mut sums = sums.into_iter();
        let mut weights: Named<T> = vec![
            (
                "kernel".into(),
                sums.next().expect("the kernel's sum").into_dyn(),
            ),
            (
                "bias".into(),
                d_params.slice(s![..4 * h]).to_owned().into_dyn(),
            ),
        ];
        if self.dims.peepholes {
            for (i, name) in ["w_i_diag", "w_f_diag", "w_o_diag"].into_iter().enumerate() {
                let part = d_params.slice(s![(4 + i) * h..(5 + i) * h]);
                weights.push((name.into(), part.to_owned().into_dyn()));
            }
        }
        if let Some(proj) = sums.next() {
            weights.push((PROJECTION.into(), proj.into_dyn()));
        }
        weights
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    // --------------------------------------------------------------------------
    // Hand-computed steps
    // --------------------------------------------------------------------------

    #[test]
    fn step_forward_by_hand() {
        // One row, one unit, peepholes and a cell clip.
        let bias = [0.1, -0.2, 0.3, 0.05];
        let peep = [[0.5], [-0.25], [0.75]];
        let p = StepParams {
            bias: &bias,
            peepholes: Some([&peep[0][..], &peep[1][..], &peep[2][..]]),
            forget_bias: 1.0,
            cell_clip: Some(0.4),
            activation: Activation::Tanh,
        };
        let mut gates = [0.2, 0.4, -0.3, 0.6];
        // state rows [c | h], one unit each
        let prev = [0.8, 0.0];
        let mut next = [0.0, 0.0];
        step_forward(&p, &mut gates, &prev, &mut next, &mut [], 0);
        let (c, m) = ([next[0]], [next[1]]);
        let si = sigmoid(0.2 + 0.1 + 0.5 * 0.8);
        let aj = (0.4f64 - 0.2).tanh();
        let sf = sigmoid(-0.3 + 0.3 - 0.25 * 0.8 + 1.0);
        let c_unc = sf * 0.8 + si * aj;
        assert!(c_unc > 0.4, "the example must exercise the clip");
        let so = sigmoid(0.6 + 0.05 + 0.75 * 0.4);
        let want = [si, aj, sf, so];
        for (g, w) in gates.iter().zip(want) {
            assert!((g - w).abs() < 1e-15, "{g} vs {w}");
        }
        assert_eq!(c[0], 0.4);
        assert!((m[0] - so * 0.4f64.tanh()).abs() < 1e-15);
    }

    #[test]
    fn step_backward_by_hand() {
        // One row, one unit, no options: compare with the chain rule written out.
        let bias = [0.0; 4];
        let p = StepParams {
            bias: &bias,
            peepholes: None,
            forget_bias: 1.0,
            cell_clip: None,
            activation: Activation::Tanh,
        };
        let (si, aj, sf, so) = (0.6, -0.3, 0.7, 0.45);
        let (cp, cc) = (0.5, 0.7 * 0.5 + 0.6 * -0.3);
        let gates = [si, aj, sf, so];
        // d_state rows [dc | dh]
        let mut d_state = [-0.5, 1.5];
        let mut dz = [0.0; 4];
        let mut db = [1.0, 2.0, 3.0, 4.0];
        step_backward(
            &p,
            &gates,
            &[cp, 0.0],
            &[cc, 0.0],
            &mut d_state,
            &[],
            &mut dz,
            &mut db,
            &mut [],
        );
        let dc = [d_state[0]];
        let tc: f64 = f64::tanh(cc);
        let d_o = 1.5 * tc * so * (1.0 - so);
        let dcc = -0.5 + 1.5 * so * (1.0 - tc * tc);
        let want = [
            dcc * aj * si * (1.0 - si),
            dcc * si * (1.0 - aj * aj),
            dcc * cp * sf * (1.0 - sf),
            d_o,
        ];
        for k in 0..4 {
            assert!((dz[k] - want[k]).abs() < 1e-15);
            assert!((db[k] - (k as f64 + 1.0) - want[k]).abs() < 1e-15);
        }
        assert!((dc[0] - dcc * sf).abs() < 1e-15);
    }

    #[test]
    fn clip_gradient_is_inclusive() {
        assert!(clip_passes(0.5, 0.5) && clip_passes(-0.5, 0.5) && clip_passes(0.0, 0.5));
        assert!(!clip_passes(0.5000001, 0.5) && !clip_passes(-0.6, 0.5));
        assert!(!clip_passes(f64::NAN, 0.5));
        assert!(clip(f64::NAN, 0.5).is_nan());
        assert_eq!(clip(2.0, 0.5), 0.5);
        assert_eq!(clip(-2.0f32, 0.5), -0.5);
    }
}
