//! `BasicLSTMCell` and `LSTMCell` (TensorFlow 1.x), one implementation.
//!
//! Weights: `kernel [I+P, 4H]` (rows `[x; m]`, column blocks of width `H` in
//! gate order `i, j, f, o`), `bias [4H]`; optional peepholes `w_i_diag,
//! w_f_diag, w_o_diag [H]`; optional `projection/kernel [H, P]`. `P` is the
//! projection width, or `H` without a projection. One step:
//!
//! ```text
//! z = [x, m_prev] @ kernel + bias                      i, j, f, o = split(z, 4)
//! peepholes:  i += w_i_diag * c_prev,  f += w_f_diag * c_prev
//! c = σ(f + forget_bias) * c_prev + σ(i) * act(j)
//! cell_clip:  c = clip(c, -cell_clip, cell_clip)
//! peepholes:  o += w_o_diag * c                        (the new c)
//! m = σ(o) * act(c)
//! projection: m = m @ projection/kernel,  proj_clip: m = clip(m, -proj_clip, proj_clip)
//! state LSTMStateTuple(c, m), output m
//! ```
//!
//! `forget_bias` is added at run time (it is never part of `bias`). A clip
//! passes the gradient where the clipped value lies in `[lo, hi]`
//! (inclusive) and stops it outside, like TensorFlow's `clip_by_value`.
//!
//! # Layout of the passes
//!
//! Forward: `G = X @ W_x` (one `par_gemm`, `[R, 4H]`, slot layout); per step
//! one recurrent product `G_t += m_prev @ W_h` (`[a, 4H]`), one fused
//! element-wise pass that overwrites `G_t` with the gate activations
//! `σ(i), act(j), σ(f+forget_bias), σ(o)` (the cache), writes `c` to the
//! `C` state buffer and the unprojected `m` to `M` (or, with a projection, to
//! the `M_raw` token buffer followed by the per-step `[a, H] @ [H, P]`
//! product and the clip).
//!
//! Backward: a reverse loop with the running gradients `dm [a, P]`,
//! `dc [a, H]` per group; per step (projection only) `dm_raw = dM_t @ projᵀ`,
//! one fused element-wise pass (→ `dZ_t`, `dc_prev`, bias/peephole sums)
//! and one recurrent product `dm = dZ_t @ W_hᵀ`. After the loop, as
//! `par_gemm`s: `dW_x = Xᵀ dZ`, `dW_h = Mᵀ dZ`, `d proj = M_rawᵀ dM`,
//! `dX = dZ @ W_xᵀ`. The unclipped `c` that the clip's gradient needs is
//! recomputed from the cached gates (bitwise the forward's value); the
//! unclipped projection is cached only when `proj_clip` is set.

use super::{with_activation, Activation};
use crate::bptt::{add_step_outputs, check_d_outputs, initial_state_grads, seed_finished_rows};
use crate::error::{check_shape, Error, Result};
use crate::gemm::{par_gemm, par_product};
use crate::layer::{
    block, check_state, fill_initial, final_state, gather_inputs, global_block, mat, mat_mut,
    scatter, split_groups, worth_parallel, Slot,
};
use crate::mask::Plan;
use crate::packed::PackedB;
use crate::pool;
use crate::scalar::Scalar;
use ndarray::{s, Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayView3, Axis};

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
    /// `kernel [I+P, 4H]`: rows `[x; m]`, column blocks `i, j, f, o`.
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
    /// Output (and `m` state) width `P`: the projection's, or `H`.
    pub output: usize,
    /// Whether there are peephole weights.
    pub peepholes: bool,
    /// Whether there is a projection.
    pub projection: bool,
}

/// What the forward pass keeps for backpropagation.
#[derive(Debug, Clone)]
pub struct LstmCache<T> {
    /// Where each (row, step) lives.
    pub plan: Plan,
    /// The shapes of the weights used.
    pub dims: LstmDims,
    /// The options used (`proj_clip` cleared when there is no projection).
    pub options: LstmOptions<T>,
    /// Whether the caller's arrays are `[T, B, …]`.
    pub time_major: bool,
    /// Gathered inputs `[R, I]` (token layout).
    pub x: Array2<T>,
    /// Gate activations `[R, 4H]` (token layout): `σ(i), act(j), σ(f + forget_bias), σ(o)`.
    pub gates: Array2<T>,
    /// Cell states `[R, H]` (state layout; block 0 = `c0`), after the clip.
    pub c: Array2<T>,
    /// Output states `m` `[R, P]` (state layout; block 0 = `m0`).
    pub m: Array2<T>,
    /// Unprojected outputs `σ(o) * act(c)` `[R, H]` (token layout), with a projection.
    pub m_raw: Option<Array2<T>>,
    /// Projected outputs before `proj_clip` `[R, P]` (token layout), with a projection clip.
    pub m_unclipped: Option<Array2<T>>,
}

/// Result of [`forward`].
#[derive(Debug, Clone)]
pub struct LstmForward<T> {
    /// `[B, T, P]` (or `[T, B, P]` when time-major); zero past each length.
    pub outputs: Array3<T>,
    /// Final cell state `c` `[B, H]`.
    pub c: Array2<T>,
    /// Final output state `m` `[B, P]` (the `h` of `LSTMStateTuple`).
    pub m: Array2<T>,
    /// Everything backpropagation needs.
    pub cache: LstmCache<T>,
}

/// Peephole gradients, each `[H]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PeepholeGrads<T> {
    /// `d w_i_diag`.
    pub w_i_diag: Array1<T>,
    /// `d w_f_diag`.
    pub w_f_diag: Array1<T>,
    /// `d w_o_diag`.
    pub w_o_diag: Array1<T>,
}

/// Gradients of a [`forward`] call.
#[derive(Debug, Clone)]
pub struct LstmGrads<T> {
    /// `d inputs`, in the forward call's layout; zero past each length.
    pub inputs: Array3<T>,
    /// `d c0` `[B, H]`.
    pub initial_c: Array2<T>,
    /// `d m0` `[B, P]`.
    pub initial_m: Array2<T>,
    /// `d kernel` `[I+P, 4H]`.
    pub kernel: Array2<T>,
    /// `d bias` `[4H]`.
    pub bias: Array1<T>,
    /// Peephole gradients, when the cell has peepholes.
    pub peepholes: Option<PeepholeGrads<T>>,
    /// `d projection/kernel` `[H, P]`, when the cell has a projection.
    pub projection: Option<Array2<T>>,
}

/// Checks the weights' shapes against each other and the input size.
pub fn check_weights<T>(w: &LstmWeights<T>, input: usize) -> Result<LstmDims> {
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
    check_shape("kernel", w.kernel.shape(), &[input + output, cols])?;
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
/// `gates [rows, 4H]` holds `x @ W_x + m_prev @ W_h` on entry and the gate
/// activations `σ(i), act(j), σ(f + forget_bias), σ(o)` on exit; reads
/// `c_prev [rows, H]`, writes `c [rows, H]` (clipped) and the unprojected
/// output `m [rows, H]`.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn step_forward<T: Scalar>(
    p: &StepParams<T>,
    gates: &mut [T],
    c_prev: &[T],
    c: &mut [T],
    m: &mut [T],
) {
    with_flags!(p, step_forward_impl(p, gates, c_prev, c, m))
}

#[inline(always)]
fn step_forward_impl<T: Scalar, const PEEP: bool, const CLIP: bool>(
    p: &StepParams<T>,
    gates: &mut [T],
    c_prev: &[T],
    c: &mut [T],
    m: &mut [T],
) {
    let h = p.units();
    let (b_i, rest) = p.bias.split_at(h);
    let (b_j, rest) = rest.split_at(h);
    let (b_f, b_o) = rest.split_at(h);
    // Without peepholes the three are never read; any [H] slices do.
    let [w_i, w_f, w_o] = p.peepholes.unwrap_or([b_i, b_j, b_f]);
    let limit = p.cell_clip.unwrap_or(T::zero());
    with_activation!(p.activation, |act| {
        for (((g, cp), c), m) in gates
            .chunks_exact_mut(4 * h)
            .zip(c_prev.chunks_exact(h))
            .zip(c.chunks_exact_mut(h))
            .zip(m.chunks_exact_mut(h))
        {
            let (gi, rest) = g.split_at_mut(h);
            let (gj, rest) = rest.split_at_mut(h);
            let (gf, go) = rest.split_at_mut(h);
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
                m,
            );
        }
    })
}

/// One row of [`step_forward`]. Every slice is its own parameter, so the
/// compiler knows they do not overlap and vectorises the loop without
/// run-time overlap checks (which it gives up on for this many streams);
/// each is cut to `[..h]` so the bounds checks go too.
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
    m: &mut [T],
) {
    let h = cp.len();
    let (b_i, b_j, b_f, b_o) = (&b_i[..h], &b_j[..h], &b_f[..h], &b_o[..h]);
    let (w_i, w_f, w_o) = (&w_i[..h], &w_f[..h], &w_o[..h]);
    let (gi, gj, gf, go) = (&mut gi[..h], &mut gj[..h], &mut gf[..h], &mut go[..h]);
    let (c, m) = (&mut c[..h], &mut m[..h]);
    for u in 0..h {
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
        m[u] = so * act.apply(cc);
    }
}

/// Backward element-wise pass of one step for `rows` rows.
///
/// Reads the step's cached `gates [rows, 4H]`, `c_prev` and `c` (`[rows, H]`)
/// and `dm [rows, H]`, the gradient of the unprojected output. `dc` holds the
/// gradient of `c` from later steps on entry and that of `c_prev` on exit.
/// Writes `dz [rows, 4H]` (pre-activation gradients, gate order `i, j, f, o`)
/// and adds its rows into `d_bias [4H]` and, with peepholes, into
/// `d_peep [3H]` (`w_i, w_f, w_o`).
#[allow(clippy::too_many_arguments)]
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn step_backward<T: Scalar>(
    p: &StepParams<T>,
    gates: &[T],
    c_prev: &[T],
    c: &[T],
    dm: &[T],
    dc: &mut [T],
    dz: &mut [T],
    d_bias: &mut [T],
    d_peep: &mut [T],
) {
    with_flags!(
        p,
        step_backward_impl(p, gates, c_prev, c, dm, dc, dz, d_bias, d_peep)
    )
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn step_backward_impl<T: Scalar, const PEEP: bool, const CLIP: bool>(
    p: &StepParams<T>,
    gates: &[T],
    c_prev: &[T],
    c: &[T],
    dm: &[T],
    dc: &mut [T],
    dz: &mut [T],
    d_bias: &mut [T],
    d_peep: &mut [T],
) {
    let h = p.units();
    let w = p.peepholes.unwrap_or([&p.bias[..h]; 3]);
    let limit = p.cell_clip.unwrap_or(T::zero());
    let (db_i, rest) = d_bias.split_at_mut(h);
    let (db_j, rest) = rest.split_at_mut(h);
    let (db_f, db_o) = rest.split_at_mut(h);
    // Without peepholes `d_peep` is empty and never touched.
    let k = if PEEP { h } else { 0 };
    let (dw_i, rest) = d_peep.split_at_mut(k);
    let (dw_f, dw_o) = rest.split_at_mut(k);
    with_activation!(p.activation, |act| {
        for ((((g, cp), cc), (dm, dc)), dz) in gates
            .chunks_exact(4 * h)
            .zip(c_prev.chunks_exact(h))
            .zip(c.chunks_exact(h))
            .zip(dm.chunks_exact(h).zip(dc.chunks_exact_mut(h)))
            .zip(dz.chunks_exact_mut(4 * h))
        {
            let (gi, rest) = g.split_at(h);
            let (gj, rest) = rest.split_at(h);
            let (gf, go) = rest.split_at(h);
            let (dzi, rest) = dz.split_at_mut(h);
            let (dzj, rest) = rest.split_at_mut(h);
            let (dzf, dzo) = rest.split_at_mut(h);
            row_backward::<T, PEEP, CLIP>(
                act,
                limit,
                [gi, gj, gf, go],
                [cp, cc, dm],
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
    [cp, cc, dm]: [&[T]; 3],
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
    let h = dc.len();
    let (one, zero) = (T::one(), T::zero());
    let (gi, gj, gf, go) = (&gi[..h], &gj[..h], &gf[..h], &go[..h]);
    let (cp, cc, dm) = (&cp[..h], &cc[..h], &dm[..h]);
    let (dzi, dzj, dzf, dzo) = (&mut dzi[..h], &mut dzj[..h], &mut dzf[..h], &mut dzo[..h]);
    let (db_i, db_j, db_f, db_o) = (
        &mut db_i[..h],
        &mut db_j[..h],
        &mut db_f[..h],
        &mut db_o[..h],
    );
    let k = if PEEP { h } else { 0 };
    let (w_i, w_f, w_o) = (&w_i[..k], &w_f[..k], &w_o[..k]);
    let (dw_i, dw_f, dw_o) = (&mut dw_i[..k], &mut dw_f[..k], &mut dw_o[..k]);
    for u in 0..h {
        let (si, aj, sf, so) = (gi[u], gj[u], gf[u], go[u]);
        let (cp_u, c_u) = (cp[u], cc[u]);
        let ac = act.apply(c_u);
        let dm_u = dm[u];
        let d_o = dm_u * ac * (so * (one - so));
        // gradient of the (clipped) c: later steps + m + o's peephole
        let mut dcc = dc[u] + dm_u * so * act.grad_from_output(ac);
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

/// One mutable slice per group of an optional slot buffer (None for every
/// group when the buffer is absent).
fn split_optional<'a, T>(plan: &Plan, a: Option<&'a mut Array2<T>>) -> Vec<Option<&'a mut [T]>> {
    match a {
        Some(a) => split_groups(plan, a).into_iter().map(Some).collect(),
        None => plan.groups.iter().map(|_| None).collect(),
    }
}

/// The weights' small vectors, copied into contiguous storage once per call.
struct Small<T> {
    bias: Vec<T>,
    peepholes: Option<[Vec<T>; 3]>,
}

impl<T: Scalar> Small<T> {
    fn new(w: &LstmWeights<T>) -> Self {
        Small {
            bias: w.bias.to_vec(),
            peepholes: w.peepholes.map(|p| {
                [
                    p.w_i_diag.to_vec(),
                    p.w_f_diag.to_vec(),
                    p.w_o_diag.to_vec(),
                ]
            }),
        }
    }

    fn params(&self, o: &LstmOptions<T>) -> StepParams<'_, T> {
        StepParams {
            bias: &self.bias,
            peepholes: self
                .peepholes
                .as_ref()
                .map(|[i, f, o]| [i.as_slice(), f.as_slice(), o.as_slice()]),
            forget_bias: o.forget_bias,
            cell_clip: o.cell_clip,
            activation: o.activation,
        }
    }
}

/// Multiply-adds per token of one pass (decides on threading).
fn work_per_token(d: &LstmDims) -> usize {
    (d.input + d.output) * 4 * d.units + if d.projection { d.units * d.output } else { 0 }
}

/// Runs the LSTM over a batch of sequences.
///
/// `x` is `[T, B, I]` (any strides; see [`crate::layer::time_major_view`]),
/// `c0` `[B, H]`, `m0` `[B, P]`; `time_major` chooses the layout of the
/// returned outputs. Returns the outputs `[B, T, P]`, the final `(c, m)` and
/// the cache for [`backward`].
pub fn forward<T: Scalar>(
    x: ArrayView3<T>,
    c0: ArrayView2<T>,
    m0: ArrayView2<T>,
    weights: &LstmWeights<T>,
    lengths: Option<&[i64]>,
    options: LstmOptions<T>,
    time_major: bool,
) -> Result<LstmForward<T>> {
    let (time, batch, input) = x.dim();
    check_options(&options)?;
    let dims = check_weights(weights, input)?;
    let plan = Plan::new(batch, time, lengths)?;
    check_state("initial_state.c", &c0, &plan, dims.units)?;
    check_state("initial_state.h", &m0, &plan, dims.output)?;
    let options = LstmOptions {
        proj_clip: options.proj_clip.filter(|_| dims.projection),
        ..options
    };
    let (h, p, g4) = (dims.units, dims.output, 4 * dims.units);
    let (w_x, w_h) = weights.kernel.split_at(Axis(0), input);
    let projection = weights.projection;
    let proj_clip = options.proj_clip;
    let small = Small::new(weights);
    let params = small.params(&options);
    let parallel = worth_parallel(&plan, work_per_token(&dims));

    let (xs, gates, c, m, m_raw, m_unclipped) = pool::run(parallel, || {
        let w_h = PackedB::new(w_h);
        let proj = projection.map(PackedB::new);
        let xs = gather_inputs(&plan, x);
        let mut gates = par_product(xs.view(), w_x);
        let mut c = Array2::<T>::zeros((plan.rows, h));
        let mut m = Array2::<T>::zeros((plan.rows, p));
        let mut m_raw = projection.map(|_| Array2::<T>::zeros((plan.rows, h)));
        let mut m_unc = proj_clip.map(|_| Array2::<T>::zeros((plan.rows, p)));
        let work: Vec<_> = plan
            .groups
            .iter()
            .zip(split_groups(&plan, &mut gates))
            .zip(split_groups(&plan, &mut c))
            .zip(split_groups(&plan, &mut m))
            .zip(split_optional(&plan, m_raw.as_mut()))
            .zip(split_optional(&plan, m_unc.as_mut()))
            .collect();
        pool::for_each(
            work,
            |(((((g, gates_g), c_g), m_g), mut raw_g), mut unc_g)| {
                fill_initial(g, c_g, &c0);
                fill_initial(g, m_g, &m0);
                for (t, &a) in g.active.iter().enumerate() {
                    let gates_t = &mut gates_g[block(g, t, a, g4)];
                    let (m_prev, m_next) = m_g.split_at_mut(block(g, t + 1, 0, p).start);
                    w_h.gemm(
                        true,
                        mat(&m_prev[block(g, t, a, p)], p),
                        mat_mut(gates_t, g4),
                    );
                    let m_t = &mut m_next[..a * p];
                    let (c_prev, c_next) = c_g.split_at_mut(block(g, t + 1, 0, h).start);
                    let c_prev = &c_prev[block(g, t, a, h)];
                    let c_t = &mut c_next[..a * h];
                    match (raw_g.as_deref_mut(), &proj) {
                        (Some(raw_g), Some(proj)) => {
                            let raw_t = &mut raw_g[block(g, t, a, h)];
                            step_forward(&params, gates_t, c_prev, c_t, raw_t);
                            match (unc_g.as_deref_mut(), proj_clip) {
                                (Some(unc_g), Some(limit)) => {
                                    let unc_t = &mut unc_g[block(g, t, a, p)];
                                    proj.gemm(false, mat(raw_t, h), mat_mut(unc_t, p));
                                    for (d, &v) in m_t.iter_mut().zip(unc_t.iter()) {
                                        *d = clip(v, limit);
                                    }
                                }
                                _ => proj.gemm(false, mat(raw_t, h), mat_mut(m_t, p)),
                            }
                        }
                        _ => step_forward(&params, gates_t, c_prev, c_t, m_t),
                    }
                }
            },
        );
        (xs, gates, c, m, m_raw, m_unc)
    });
    let outputs = pool::run(parallel, || scatter(&plan, &m, time_major, Slot::State));
    let c_final = final_state(&plan, &c, c0);
    let m_final = final_state(&plan, &m, m0);
    Ok(LstmForward {
        outputs,
        c: c_final,
        m: m_final,
        cache: LstmCache {
            plan,
            dims,
            options,
            time_major,
            x: xs,
            gates,
            c,
            m,
            m_raw,
            m_unclipped,
        },
    })
}

/// Checks that `weights` have the shapes of the forward pass's.
fn check_same_weights<T>(cache: &LstmCache<T>, weights: &LstmWeights<T>) -> Result<()> {
    let want = cache.dims;
    let got = check_weights(weights, want.input)?;
    let what = |d: &LstmDims| {
        format!(
            "H = {}, P = {}, {} peepholes, {} projection",
            d.units,
            d.output,
            if d.peepholes { "with" } else { "no" },
            if d.projection { "with" } else { "no" },
        )
    };
    if got != want {
        return Err(Error::invalid(
            "weights",
            format!("the forward pass's weights ({})", what(&want)),
            what(&got),
        ));
    }
    Ok(())
}

/// What each group's reverse loop accumulates.
struct GroupGrads<T> {
    /// `d bias` `[4H]`.
    d_bias: Array1<T>,
    /// `d w_i, d w_f, d w_o` `[3H]` (empty without peepholes).
    d_peep: Array1<T>,
    /// Running `d m` `[first_active, P]`.
    dm: Array2<T>,
    /// Running `d c` `[first_active, H]`.
    dc: Array2<T>,
    /// Scratch for the unprojected `d m` `[first_active, H]` (projection only).
    dm_raw: Array2<T>,
}

/// Backpropagates `d_outputs` (`[T, B, P]` view, see
/// [`crate::layer::time_major_view`]) and the final-state gradients `d_c`
/// (`[B, H]`) and `d_m` (`[B, P]`) through the forward pass that filled
/// `cache`. Any of them may be `None` (zeros). `weights` must be the
/// forward pass's.
pub fn backward<T: Scalar>(
    cache: &LstmCache<T>,
    weights: &LstmWeights<T>,
    d_outputs: Option<ArrayView3<T>>,
    d_c: Option<ArrayView2<T>>,
    d_m: Option<ArrayView2<T>>,
) -> Result<LstmGrads<T>> {
    check_same_weights(cache, weights)?;
    let plan = &cache.plan;
    let dims = cache.dims;
    let (input, h, p, g4) = (dims.input, dims.units, dims.output, 4 * dims.units);
    if let Some(d) = &d_outputs {
        check_d_outputs(d, plan, p, cache.time_major)?;
    }
    if let Some(d) = &d_c {
        check_state("d_state.c", d, plan, h)?;
    }
    if let Some(d) = &d_m {
        check_state("d_state.h", d, plan, p)?;
    }
    let (w_x, w_h) = weights.kernel.split_at(Axis(0), input);
    let projection = weights.projection;
    let proj_clip = cache.options.proj_clip;
    let small = Small::new(weights);
    let params = small.params(&cache.options);
    let parallel = worth_parallel(plan, work_per_token(&dims));
    let n_peep = if dims.peepholes { 3 * h } else { 0 };

    Ok(pool::run(parallel, || {
        let w_h_t = PackedB::new(w_h.t());
        let proj_t = projection.map(|w| PackedB::new(w.reversed_axes()));
        let mut dz = Array2::<T>::zeros((plan.rows, g4));
        let mut dm_tok = projection.map(|_| Array2::<T>::zeros((plan.rows, p)));
        let mut per_group: Vec<GroupGrads<T>> = plan
            .groups
            .iter()
            .map(|g| GroupGrads {
                d_bias: Array1::zeros(g4),
                d_peep: Array1::zeros(n_peep),
                dm: Array2::zeros((g.first_active(), p)),
                dc: Array2::zeros((g.first_active(), h)),
                dm_raw: Array2::zeros((if dims.projection { g.first_active() } else { 0 }, h)),
            })
            .collect();
        let work: Vec<_> = plan
            .groups
            .iter()
            .zip(split_groups(plan, &mut dz))
            .zip(split_optional(plan, dm_tok.as_mut()))
            .zip(per_group.iter_mut())
            .collect();
        pool::for_each(work, |(((g, dz_g), mut dmt_g), gg)| {
            let GroupGrads {
                d_bias,
                d_peep,
                dm,
                dc,
                dm_raw,
            } = gg;
            let d_bias = d_bias.as_slice_mut().expect("standard layout");
            let d_peep = d_peep.as_slice_mut().expect("standard layout");
            for t in (0..g.steps()).rev() {
                let a = g.active[t];
                let mut dm_a = dm.slice_mut(s![..a, ..]);
                let mut dc_a = dc.slice_mut(s![..a, ..]);
                seed_finished_rows(g, t, &mut dm_a, d_m.as_ref());
                seed_finished_rows(g, t, &mut dc_a, d_c.as_ref());
                add_step_outputs(g, t, &mut dm_a, d_outputs.as_ref());
                let dz_t = &mut dz_g[block(g, t, a, g4)];
                let gates_t = global_block(&cache.gates, g, t, a);
                let c_prev = global_block(&cache.c, g, t, a);
                let c_t = global_block(&cache.c, g, t + 1, a);
                let dc_a = dc_a.as_slice_mut().expect("standard layout");
                match (dmt_g.as_deref_mut(), &proj_t) {
                    (Some(dmt_g), Some(proj_t)) => {
                        // dM_t = dm (through the clip), dm_raw = dM_t @ projᵀ
                        let dmt = &mut dmt_g[block(g, t, a, p)];
                        let dm_s = dm_a.as_slice().expect("standard layout");
                        match (&cache.m_unclipped, proj_clip) {
                            (Some(unc), Some(limit)) => {
                                let unc_t = global_block(unc, g, t, a);
                                for ((d, &v), &u) in dmt.iter_mut().zip(dm_s).zip(unc_t) {
                                    *d = if clip_passes(u, limit) { v } else { T::zero() };
                                }
                            }
                            _ => dmt.copy_from_slice(dm_s),
                        }
                        let mut raw_a = dm_raw.slice_mut(s![..a, ..]);
                        proj_t.gemm(false, mat(dmt, p), raw_a.view_mut());
                        step_backward(
                            &params,
                            gates_t,
                            c_prev,
                            c_t,
                            raw_a.as_slice().expect("standard layout"),
                            dc_a,
                            dz_t,
                            d_bias,
                            d_peep,
                        );
                    }
                    _ => step_backward(
                        &params,
                        gates_t,
                        c_prev,
                        c_t,
                        dm_a.as_slice().expect("standard layout"),
                        dc_a,
                        dz_t,
                        d_bias,
                        d_peep,
                    ),
                }
                w_h_t.gemm(false, mat(dz_t, g4), dm_a);
            }
        });
        let d_bias = per_group
            .iter()
            .fold(Array1::zeros(g4), |acc, gg| acc + &gg.d_bias);
        let d_peep = per_group
            .iter()
            .fold(Array1::zeros(n_peep), |acc, gg| acc + &gg.d_peep);
        let dcs: Vec<_> = per_group.iter().map(|gg| &gg.dc).collect();
        let dms: Vec<_> = per_group.iter().map(|gg| &gg.dm).collect();
        let d_c0 = initial_state_grads(plan, &dcs, d_c.as_ref(), h);
        let d_m0 = initial_state_grads(plan, &dms, d_m.as_ref(), p);

        let mut d_kernel = Array2::<T>::zeros((input + p, g4));
        {
            let (dk_x, dk_h) = d_kernel.view_mut().split_at(Axis(0), input);
            par_gemm(false, cache.x.t(), dz.view(), dk_x);
            par_gemm(false, cache.m.t(), dz.view(), dk_h);
        }
        let d_proj = match (&cache.m_raw, &dm_tok) {
            (Some(raw), Some(dmt)) => {
                let d = par_product(raw.t(), dmt.view());
                Some(d)
            }
            _ => None,
        };
        let dx = par_product(dz.view(), w_x.t());
        let peepholes = dims.peepholes.then(|| PeepholeGrads {
            w_i_diag: d_peep.slice(s![..h]).to_owned(),
            w_f_diag: d_peep.slice(s![h..2 * h]).to_owned(),
            w_o_diag: d_peep.slice(s![2 * h..]).to_owned(),
        });
        LstmGrads {
            inputs: scatter(plan, &dx, cache.time_major, Slot::Token),
            initial_c: d_c0,
            initial_m: d_m0,
            kernel: d_kernel,
            bias: d_bias,
            peepholes,
            projection: d_proj,
        }
    }))
}

#[cfg(test)]
#[path = "lstm_tests.rs"]
mod tests;
