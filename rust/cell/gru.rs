//! `GRUCell`, in its two published forms. Both share the gates
//!
//! ```text
//! r, u = split(σ([x, h] @ gates/kernel + gates/bias), 2)     r: first H columns, u: next H
//! h'   = u*h + (1-u)*c                                        output = state = h'
//! ```
//!
//! and differ in where the reset gate `r` meets the recurrent product of the
//! candidate `c`:
//!
//! * **reset before** (TensorFlow 1.x `GRUCell`, Cho et al. 2014 v3):
//!   `c = act([x, r*h] @ candidate/kernel + candidate/bias)`. The candidate's
//!   recurrent product needs `r`, so each step makes two recurrent GEMMs:
//!   `h @ W_gates_h`, then `(r*h) @ W_cand_h`.
//! * **reset after** (cuDNN, PyTorch, Keras `reset_after=True`):
//!   `c = act(x @ input_kernel + input_bias + r*(h @ hidden_kernel + hidden_bias))`.
//!   Every recurrent product is of `h` itself, so one GEMM per step does them
//!   all: `h @ [W_gates_h | hidden_kernel]` (`[H, 3H]`, packed once per call).
//!
//! Weights (TF1 layout, rows `[x; h]`): `gates/kernel [I+H, 2H]`,
//! `gates/bias [2H]`; reset before: `candidate/kernel [I+H, H]`,
//! `candidate/bias [H]`; reset after: `candidate/input_kernel [I, H]`,
//! `candidate/hidden_kernel [H, H]`, `candidate/input_bias [H]`,
//! `candidate/hidden_bias [H]`.
//!
//! # Buffers (slot layout, see [`crate::mask`])
//!
//! ```text
//! X      [R, I]    gathered inputs
//! Z      [R, 3H]   r | u | c per token: X @ [W_gates_x | W_cand_x] (one par_gemm before
//!                  the loop), turned into the gate values by the step; kept for backward
//! S      [R, H]    states (block k = state after step k-1)
//! Q      [R, H]    per token: r*h (reset before: the input of dW_cand_h = Qᵀ dZ_c), or
//!                  h @ hidden_kernel + hidden_bias (reset after: needed for dr and dZ_hc)
//! ```
//!
//! Backward keeps `dZ` per token — `dz_r | dz_u | dz_c` (reset before) or
//! `dz_c | dz_r | dz_u | dz_hc` (reset after, `dz_hc = dz_c*r` the gradient of
//! `h @ hidden_kernel + hidden_bias`; the order makes every deferred product
//! read one column range) — and forms the weight gradients and `dX` as
//! large GEMMs after the reverse loop.

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
use ndarray::{concatenate, s, Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayView3, Axis};

pub mod naive;

/// The weights of a `GRUCell`, borrowed; the variant is the form.
#[derive(Debug, Clone, Copy)]
pub enum GruWeights<'a, T> {
    /// TensorFlow 1.x's form (`reset_after=False`).
    ResetBefore {
        /// `gates/kernel [I+H, 2H]`
        gates_kernel: ArrayView2<'a, T>,
        /// `gates/bias [2H]`
        gates_bias: ArrayView1<'a, T>,
        /// `candidate/kernel [I+H, H]`
        candidate_kernel: ArrayView2<'a, T>,
        /// `candidate/bias [H]`
        candidate_bias: ArrayView1<'a, T>,
    },
    /// The cuDNN / PyTorch / Keras form (`reset_after=True`).
    ResetAfter {
        /// `gates/kernel [I+H, 2H]`
        gates_kernel: ArrayView2<'a, T>,
        /// `gates/bias [2H]`
        gates_bias: ArrayView1<'a, T>,
        /// `candidate/input_kernel [I, H]`
        input_kernel: ArrayView2<'a, T>,
        /// `candidate/hidden_kernel [H, H]`
        hidden_kernel: ArrayView2<'a, T>,
        /// `candidate/input_bias [H]`
        input_bias: ArrayView1<'a, T>,
        /// `candidate/hidden_bias [H]`
        hidden_bias: ArrayView1<'a, T>,
    },
}

impl<T: Scalar> GruWeights<'_, T> {
    /// Whether this is the reset-after form.
    pub fn reset_after(&self) -> bool {
        matches!(self, GruWeights::ResetAfter { .. })
    }

    /// Checks every shape against input size `input`; returns `H` (taken
    /// from the candidate bias).
    pub fn check(&self, input: usize) -> Result<usize> {
        let (units, bias_name) = match self {
            GruWeights::ResetBefore { candidate_bias, .. } => {
                (candidate_bias.len(), "candidate/bias")
            }
            GruWeights::ResetAfter { hidden_bias, .. } => {
                (hidden_bias.len(), "candidate/hidden_bias")
            }
        };
        if units == 0 {
            return Err(Error::invalid(bias_name, "at least 1 unit", "shape [0]"));
        }
        let (gk, gb, units) = match self {
            GruWeights::ResetBefore {
                gates_kernel,
                gates_bias,
                candidate_kernel,
                candidate_bias,
            } => {
                let h = candidate_bias.len();
                check_shape(
                    "candidate/kernel",
                    candidate_kernel.shape(),
                    &[input + h, h],
                )?;
                (gates_kernel, gates_bias, h)
            }
            GruWeights::ResetAfter {
                gates_kernel,
                gates_bias,
                input_kernel,
                hidden_kernel,
                input_bias,
                hidden_bias,
            } => {
                let h = hidden_bias.len();
                check_shape("candidate/input_kernel", input_kernel.shape(), &[input, h])?;
                check_shape("candidate/hidden_kernel", hidden_kernel.shape(), &[h, h])?;
                check_shape("candidate/input_bias", input_bias.shape(), &[h])?;
                (gates_kernel, gates_bias, h)
            }
        };
        check_shape("gates/kernel", gk.shape(), &[input + units, 2 * units])?;
        check_shape("gates/bias", gb.shape(), &[2 * units])?;
        Ok(units)
    }

    /// The parts every pass needs, packed once per call.
    fn pack(&self, input: usize, units: usize) -> Packed<'_, T> {
        match *self {
            GruWeights::ResetBefore {
                gates_kernel,
                gates_bias,
                candidate_kernel,
                candidate_bias,
            } => {
                let (gx, gh) = gates_kernel.split_at(Axis(0), input);
                let (cx, ch) = candidate_kernel.split_at(Axis(0), input);
                Packed {
                    w_x: concatenate![Axis(1), gx, cx],
                    bias: concatenate![Axis(0), gates_bias, candidate_bias],
                    recurrent: Recurrent::ResetBefore {
                        gates_h: gh,
                        cand_h: ch,
                    },
                }
            }
            GruWeights::ResetAfter {
                gates_kernel,
                gates_bias,
                input_kernel,
                hidden_kernel,
                input_bias,
                hidden_bias,
            } => {
                let (gx, gh) = gates_kernel.split_at(Axis(0), input);
                debug_assert_eq!(hidden_kernel.dim(), (units, units));
                Packed {
                    w_x: concatenate![Axis(1), gx, input_kernel],
                    bias: concatenate![Axis(0), gates_bias, input_bias],
                    recurrent: Recurrent::ResetAfter {
                        w_h: concatenate![Axis(1), gh, hidden_kernel],
                        hidden_bias: hidden_bias.to_vec(),
                    },
                }
            }
        }
    }
}

/// Weights rearranged for the passes (built once per call, never per step).
struct Packed<'a, T> {
    /// `[I, 3H]`: the x-rows of both kernels, columns `r | u | c`.
    w_x: Array2<T>,
    /// `[3H]`: `gates/bias | candidate/bias` (or `candidate/input_bias`).
    bias: Array1<T>,
    /// The recurrent weights.
    recurrent: Recurrent<'a, T>,
}

enum Recurrent<'a, T> {
    ResetBefore {
        /// `[H, 2H]`: the h-rows of `gates/kernel`.
        gates_h: ArrayView2<'a, T>,
        /// `[H, H]`: the h-rows of `candidate/kernel`.
        cand_h: ArrayView2<'a, T>,
    },
    ResetAfter {
        /// `[H, 3H]`: `[gates/kernel h-rows | candidate/hidden_kernel]`.
        w_h: Array2<T>,
        /// `[H]`
        hidden_bias: Vec<T>,
    },
}

// ---------------------------------------------------------------------------
// Fused element-wise passes of one step. Rows are `3H` (or `4H`) wide in the
// per-token buffers and `H` wide in the state buffers; `units = H`.
//
// A loop that writes one part of a row and reads or writes another part of
// the same row does not vectorise: the compiler cannot tell the parts apart.
// Such loops live in small functions of their own (multiversioned, so never
// inlined into their callers) taking the parts as separate slice arguments
// (which the compiler knows are disjoint; inlining would lose that), called
// once per row, or are split into loops that each write one buffer. Every
// element-wise pass is compiled for AVX-512 and AVX2 as well as the baseline
// and picks one at run time (the `multiversion` attributes).
// ---------------------------------------------------------------------------

/// Reset before, forward, gates: on entry `z[:, :2H]` holds
/// `x @ W_gates_x + h @ W_gates_h`; on exit `r | u = σ(· + gates/bias)`,
/// and `rh = r*h`.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn reset_before_gates<T: Scalar>(z: &mut [T], h: &[T], rh: &mut [T], gates_bias: &[T]) {
    let units = gates_bias.len() / 2;
    for ((z_row, h_row), rh_row) in z
        .chunks_exact_mut(3 * units)
        .zip(h.chunks_exact(units))
        .zip(rh.chunks_exact_mut(units))
    {
        for (zv, &b) in z_row[..2 * units].iter_mut().zip(gates_bias) {
            *zv = (*zv + b).sigmoid();
        }
        for ((rh, &r), &h) in rh_row.iter_mut().zip(&z_row[..units]).zip(h_row) {
            *rh = r * h;
        }
    }
}

/// Reset before, forward, candidate and update: on entry `z[:, 2H:]` holds
/// `x @ W_cand_x + (r*h) @ W_cand_h`; on exit `c = act(· + candidate/bias)`,
/// and `h_next = u*h + (1-u)*c`.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn reset_before_candidate<T: Scalar>(
    act: Activation,
    z: &mut [T],
    h: &[T],
    h_next: &mut [T],
    cand_bias: &[T],
) {
    let units = cand_bias.len();
    with_activation!(act, |act| {
        for ((z_row, h_row), hn_row) in z
            .chunks_exact_mut(3 * units)
            .zip(h.chunks_exact(units))
            .zip(h_next.chunks_exact_mut(units))
        {
            let (ru, c) = z_row.split_at_mut(2 * units);
            for (c, &b) in c.iter_mut().zip(cand_bias) {
                *c = act.apply(*c + b);
            }
            update(hn_row, h_row, &ru[units..], c);
        }
    })
}

/// `h_next = u*h + (1-u)*c`.
#[inline(always)]
fn update<T: Scalar>(h_next: &mut [T], h: &[T], u: &[T], c: &[T]) {
    for (((hn, &h), &u), &c) in h_next.iter_mut().zip(h).zip(u).zip(c) {
        *hn = u * h + (T::one() - u) * c;
    }
}

/// Reset after, forward, the whole step: `acc = h @ [W_gates_h | hidden_kernel]`
/// (`[rows, 3H]`), `z` holds `x @ [W_gates_x | input_kernel]` on entry and
/// `r | u | c` on exit; `hc = acc[:, 2H:] + hidden_bias` is stored for
/// backward; `h_next = u*h + (1-u)*c`. `bias` is `gates/bias | input_bias`.
#[allow(clippy::too_many_arguments)]
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn reset_after_step<T: Scalar>(
    act: Activation,
    z: &mut [T],
    acc: &[T],
    h: &[T],
    hc: &mut [T],
    h_next: &mut [T],
    bias: &[T],
    hidden_bias: &[T],
) {
    let units = hidden_bias.len();
    let (bias_ru, bias_c) = bias.split_at(2 * units);
    for ((((z_row, acc_row), h_row), hc_row), hn_row) in z
        .chunks_exact_mut(3 * units)
        .zip(acc.chunks_exact(3 * units))
        .zip(h.chunks_exact(units))
        .zip(hc.chunks_exact_mut(units))
        .zip(h_next.chunks_exact_mut(units))
    {
        let (ru, c) = z_row.split_at_mut(2 * units);
        let (acc_ru, acc_c) = acc_row.split_at(2 * units);
        for ((zv, &a), &b) in ru.iter_mut().zip(acc_ru).zip(bias_ru) {
            *zv = (*zv + a + b).sigmoid();
        }
        for ((hc, &a), &b) in hc_row.iter_mut().zip(acc_c).zip(hidden_bias) {
            *hc = a + b;
        }
        let (r, u) = ru.split_at(units);
        reset_after_candidate(act, c, r, hc_row, bias_c);
        update(hn_row, h_row, u, c);
    }
}

/// `c = act(c + input_bias + r*hc)`, in place. Not inlined, so that the
/// compiler keeps knowing `c` and `r` (parts of one row) are disjoint.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
fn reset_after_candidate<T: Scalar>(act: Activation, c: &mut [T], r: &[T], hc: &[T], bias: &[T]) {
    with_activation!(act, |act| {
        for (((c, &r), &hc), &b) in c.iter_mut().zip(r).zip(hc).zip(bias) {
            *c = act.apply(*c + b + r * hc);
        }
    })
}

/// Reset before, backward, first pass. `dh` is `dL/dh'` on entry and its
/// direct share of `dL/dh` (`dh'*u`) on exit; writes `dz_u = dh'*(h-c)*u(1-u)`
/// and `dz_c = dh'*(1-u)*act'(c)` into `dz` (`dz_r | dz_u | dz_c` rows) and
/// adds them into `d_bias` (`3H`, same order).
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn reset_before_back_update<T: Scalar>(
    act: Activation,
    dz: &mut [T],
    dh: &mut [T],
    gates: &[T],
    h: &[T],
    d_bias: &mut [T],
) {
    let units = d_bias.len() / 3;
    for (((dz_row, dh_row), g_row), h_row) in dz
        .chunks_exact_mut(3 * units)
        .zip(dh.chunks_exact_mut(units))
        .zip(gates.chunks_exact(3 * units))
        .zip(h.chunks_exact(units))
    {
        let (dz_u, dz_c) = dz_row[units..].split_at_mut(units);
        let (u, c) = g_row[units..].split_at(units);
        update_and_candidate_back(act, dz_u, dz_c, dh_row, h_row, u, c);
        for (db, &v) in d_bias[units..].iter_mut().zip(&dz_row[units..]) {
            *db += v;
        }
    }
}

/// Through `h' = u*h + (1-u)*c` and `c = act(zc)`: `dz_u = dh'*(h-c)*u(1-u)`,
/// `dz_c = dh'*(1-u)*act'(c)`, and `dh = dh'*u` in place. Not inlined, so
/// that the compiler keeps knowing `dz_u` and `dz_c` (parts of one row) are
/// disjoint.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
fn update_and_candidate_back<T: Scalar>(
    act: Activation,
    dz_u: &mut [T],
    dz_c: &mut [T],
    dh: &mut [T],
    h: &[T],
    u: &[T],
    c: &[T],
) {
    with_activation!(act, |act| {
        for (((((dz_u, dz_c), dh), &h), &u), &c) in dz_u
            .iter_mut()
            .zip(dz_c.iter_mut())
            .zip(dh.iter_mut())
            .zip(h)
            .zip(u)
            .zip(c)
        {
            let d = *dh;
            *dz_c = d * (T::one() - u) * act.grad_from_output(c);
            *dz_u = d * (h - c) * u * (T::one() - u);
            *dh = d * u;
        }
    })
}

/// Reset before, backward, second pass: with `drh = dz_c @ W_cand_hᵀ`
/// (`dL/d(r*h)`), writes `dz_r = drh*h*r(1-r)`, adds it into `d_bias[..H]`,
/// and adds `drh*r` into `dh`.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn reset_before_back_reset<T: Scalar>(
    dz: &mut [T],
    dh: &mut [T],
    drh: &[T],
    gates: &[T],
    h: &[T],
    d_bias: &mut [T],
) {
    let units = d_bias.len() / 3;
    let db_r = &mut d_bias[..units];
    for ((((dz_row, dh_row), drh_row), g_row), h_row) in dz
        .chunks_exact_mut(3 * units)
        .zip(dh.chunks_exact_mut(units))
        .zip(drh.chunks_exact(units))
        .zip(gates.chunks_exact(3 * units))
        .zip(h.chunks_exact(units))
    {
        for (((((dz_r, db), dh), &d), &r), &h) in dz_row[..units]
            .iter_mut()
            .zip(db_r.iter_mut())
            .zip(dh_row.iter_mut())
            .zip(drh_row)
            .zip(&g_row[..units])
            .zip(h_row)
        {
            let zr = d * h * r * (T::one() - r);
            *dz_r = zr;
            *db += zr;
            *dh += d * r;
        }
    }
}

/// Reset after, backward, the whole element-wise step. `dh` is `dL/dh'` on
/// entry and `dh'*u` on exit; `dz` rows are `dz_c | dz_r | dz_u | dz_hc`
/// (`4H`), added into `d_bias` in the same order:
///
/// ```text
/// dz_c = dh'*(1-u)*act'(c)      dz_hc = dz_c*r      dz_r = dz_c*hc*r(1-r)
/// dz_u = dh'*(h-c)*u(1-u)
/// ```
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn reset_after_back<T: Scalar>(
    act: Activation,
    dz: &mut [T],
    dh: &mut [T],
    gates: &[T],
    hc: &[T],
    h: &[T],
    d_bias: &mut [T],
) {
    let units = d_bias.len() / 4;
    for ((((dz_row, dh_row), g_row), hc_row), h_row) in dz
        .chunks_exact_mut(4 * units)
        .zip(dh.chunks_exact_mut(units))
        .zip(gates.chunks_exact(3 * units))
        .zip(hc.chunks_exact(units))
        .zip(h.chunks_exact(units))
    {
        let (dz_c, rest) = dz_row.split_at_mut(units);
        let (dz_r, rest) = rest.split_at_mut(units);
        let (dz_u, dz_hc) = rest.split_at_mut(units);
        let (u, c) = g_row[units..].split_at(units);
        update_and_candidate_back(act, dz_u, dz_c, dh_row, h_row, u, c);
        reset_after_reset_back(dz_r, dz_hc, dz_c, &g_row[..units], hc_row);
        for (db, &v) in d_bias.iter_mut().zip(dz_row.iter()) {
            *db += v;
        }
    }
}

/// Through `r*hc`: `dz_hc = dz_c*r`, `dz_r = dz_c*hc*r(1-r)`. Not inlined,
/// like [`update_and_candidate_back`].
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
fn reset_after_reset_back<T: Scalar>(
    dz_r: &mut [T],
    dz_hc: &mut [T],
    dz_c: &[T],
    r: &[T],
    hc: &[T],
) {
    for ((((dz_r, dz_hc), &zc), &r), &hc) in dz_r
        .iter_mut()
        .zip(dz_hc.iter_mut())
        .zip(dz_c)
        .zip(r)
        .zip(hc)
    {
        *dz_hc = zc * r;
        *dz_r = zc * hc * r * (T::one() - r);
    }
}

// ---------------------------------------------------------------------------
// Forward and backward over a batch of sequences
// ---------------------------------------------------------------------------

/// What the forward pass keeps for backpropagation.
#[derive(Debug, Clone)]
pub struct GruCache<T> {
    /// Where each (row, step) lives.
    pub plan: Plan,
    /// Gathered inputs `[R, I]`.
    pub x: Array2<T>,
    /// States `[R, H]`: block `k` is the state after step `k-1`.
    pub s: Array2<T>,
    /// Per token `r | u | c` `[R, 3H]`.
    pub gates: Array2<T>,
    /// Per token `[R, H]`: `r*h` (reset before) or
    /// `h @ hidden_kernel + hidden_bias` (reset after).
    pub q: Array2<T>,
    /// Which form ran.
    pub reset_after: bool,
    /// The activation used.
    pub activation: Activation,
    /// Whether the caller's arrays are `[T, B, …]`.
    pub time_major: bool,
}

/// Result of [`forward`].
#[derive(Debug, Clone)]
pub struct GruForward<T> {
    /// `[B, T, H]` (or `[T, B, H]` when time-major); zero past each length.
    pub outputs: Array3<T>,
    /// `[B, H]`: each row's state after its last step.
    pub state: Array2<T>,
    /// Everything backpropagation needs.
    pub cache: GruCache<T>,
}

/// Gradients of the weights, in the form of the forward pass.
#[derive(Debug, Clone, PartialEq)]
pub enum GruWeightGrads<T> {
    /// Reset before.
    ResetBefore {
        /// `d gates/kernel [I+H, 2H]`
        gates_kernel: Array2<T>,
        /// `d gates/bias [2H]`
        gates_bias: Array1<T>,
        /// `d candidate/kernel [I+H, H]`
        candidate_kernel: Array2<T>,
        /// `d candidate/bias [H]`
        candidate_bias: Array1<T>,
    },
    /// Reset after.
    ResetAfter {
        /// `d gates/kernel [I+H, 2H]`
        gates_kernel: Array2<T>,
        /// `d gates/bias [2H]`
        gates_bias: Array1<T>,
        /// `d candidate/input_kernel [I, H]`
        input_kernel: Array2<T>,
        /// `d candidate/hidden_kernel [H, H]`
        hidden_kernel: Array2<T>,
        /// `d candidate/input_bias [H]`
        input_bias: Array1<T>,
        /// `d candidate/hidden_bias [H]`
        hidden_bias: Array1<T>,
    },
}

/// Gradients of a [`forward`] call.
#[derive(Debug, Clone, PartialEq)]
pub struct GruGrads<T> {
    /// `d inputs`, in the forward call's layout; zero past each length.
    pub inputs: Array3<T>,
    /// `d initial_state` `[B, H]`.
    pub initial_state: Array2<T>,
    /// `d weights`.
    pub weights: GruWeightGrads<T>,
}

/// Runs `GRUCell` over a batch of sequences.
///
/// `x` is `[T, B, I]` (any strides; see [`crate::layer::time_major_view`]),
/// `h0` `[B, H]`; the form is the variant of `weights`. `time_major`
/// chooses the layout of the returned outputs.
pub fn forward<T: Scalar>(
    x: ArrayView3<T>,
    h0: ArrayView2<T>,
    weights: GruWeights<T>,
    lengths: Option<&[i64]>,
    activation: Activation,
    time_major: bool,
) -> Result<GruForward<T>> {
    let (time, batch, input) = x.dim();
    let units = weights.check(input)?;
    let plan = Plan::new(batch, time, lengths)?;
    check_state("initial_state", &h0, &plan, units)?;
    let packed = weights.pack(input, units);
    let parallel = worth_parallel(&plan, 3 * (input + units) * units);
    let bias = packed.bias.as_slice().expect("standard layout");
    let w3 = 3 * units;

    let (xs, s, gates, q) = pool::run(parallel, || {
        let xs = gather_inputs(&plan, x);
        // The x-parts of every gate, for every step: one GEMM.
        let mut z = par_product(xs.view(), packed.w_x.view());
        let mut s = Array2::<T>::zeros((plan.rows, units));
        let mut q = Array2::<T>::zeros((plan.rows, units));
        let work: Vec<_> = plan
            .groups
            .iter()
            .zip(split_groups(&plan, &mut z))
            .zip(split_groups(&plan, &mut q))
            .zip(split_groups(&plan, &mut s))
            .collect();
        match &packed.recurrent {
            Recurrent::ResetBefore { gates_h, cand_h } => {
                let (gates_h, cand_h) = (PackedB::new(*gates_h), PackedB::new(*cand_h));
                pool::for_each(work, |(((g, z_g), q_g), s_g)| {
                    fill_initial(g, s_g, &h0);
                    for (t, &a) in g.active.iter().enumerate() {
                        let (prev, next) = s_g.split_at_mut(block(g, t + 1, 0, units).start);
                        let h = &prev[block(g, t, a, units)];
                        let z_t = &mut z_g[block(g, t, a, w3)];
                        let rh = &mut q_g[block(g, t, a, units)];
                        gates_h.gemm(
                            true,
                            mat(h, units),
                            mat_mut(z_t, w3).slice_move(s![.., ..2 * units]),
                        );
                        reset_before_gates(z_t, h, rh, &bias[..2 * units]);
                        cand_h.gemm(
                            true,
                            mat(rh, units),
                            mat_mut(z_t, w3).slice_move(s![.., 2 * units..]),
                        );
                        reset_before_candidate(
                            activation,
                            z_t,
                            h,
                            &mut next[..a * units],
                            &bias[2 * units..],
                        );
                    }
                });
            }
            Recurrent::ResetAfter { w_h, hidden_bias } => {
                let w_h = PackedB::new(w_h.view());
                pool::for_each(work, |(((g, z_g), q_g), s_g)| {
                    fill_initial(g, s_g, &h0);
                    // h @ [W_gates_h | hidden_kernel] of the running rows.
                    let mut acc = vec![T::zero(); g.first_active() * w3];
                    for (t, &a) in g.active.iter().enumerate() {
                        let (prev, next) = s_g.split_at_mut(block(g, t + 1, 0, units).start);
                        let h = &prev[block(g, t, a, units)];
                        let acc = &mut acc[..a * w3];
                        w_h.gemm(false, mat(h, units), mat_mut(acc, w3));
                        reset_after_step(
                            activation,
                            &mut z_g[block(g, t, a, w3)],
                            acc,
                            h,
                            &mut q_g[block(g, t, a, units)],
                            &mut next[..a * units],
                            bias,
                            hidden_bias,
                        );
                    }
                });
            }
        }
        (xs, s, z, q)
    });
    let outputs = pool::run(parallel, || scatter(&plan, &s, time_major, Slot::State));
    let state = final_state(&plan, &s, h0);
    Ok(GruForward {
        outputs,
        state,
        cache: GruCache {
            plan,
            x: xs,
            s,
            gates,
            q,
            reset_after: weights.reset_after(),
            activation,
            time_major,
        },
    })
}

/// Backpropagates `d_outputs` (`[T, B, H]` view, see
/// [`crate::layer::time_major_view`]) and `d_state` (`[B, H]`) through the
/// forward pass that filled `cache`. Either may be `None` (zeros).
/// `weights` must be the forward pass's (same form and shapes).
pub fn backward<T: Scalar>(
    cache: &GruCache<T>,
    weights: GruWeights<T>,
    d_outputs: Option<ArrayView3<T>>,
    d_state: Option<ArrayView2<T>>,
) -> Result<GruGrads<T>> {
    let plan = &cache.plan;
    let (input, units) = (cache.x.ncols(), cache.s.ncols());
    if weights.reset_after() != cache.reset_after {
        return Err(Error::invalid(
            "weights",
            format!(
                "the reset_after={} weights of the forward pass",
                py_bool(cache.reset_after)
            ),
            format!("reset_after={} weights", py_bool(weights.reset_after())),
        ));
    }
    let got_units = weights.check(input)?;
    if got_units != units {
        return Err(Error::invalid(
            "weights",
            format!("{units} units (the forward pass's)"),
            format!("{got_units}"),
        ));
    }
    if let Some(d) = &d_outputs {
        check_d_outputs(d, plan, units, cache.time_major)?;
    }
    if let Some(d) = &d_state {
        check_state("d_state", d, plan, units)?;
    }
    let packed = weights.pack(input, units);
    let parallel = worth_parallel(plan, 3 * (input + units) * units);
    let activation = cache.activation;
    let h = units;

    Ok(pool::run(parallel, || match &packed.recurrent {
        Recurrent::ResetBefore { gates_h, cand_h } => {
            let w3 = 3 * h;
            let (gates_h_t, cand_h_t) = (PackedB::new(gates_h.t()), PackedB::new(cand_h.t()));
            // dz_r | dz_u | dz_c per token
            let mut dz = Array2::<T>::zeros((plan.rows, w3));
            let mut per_group: Vec<(Array1<T>, Array2<T>, Array2<T>)> = plan
                .groups
                .iter()
                .map(|g| {
                    (
                        Array1::zeros(w3),
                        Array2::zeros((g.first_active(), h)),
                        Array2::zeros((g.first_active(), h)),
                    )
                })
                .collect();
            let work: Vec<_> = plan
                .groups
                .iter()
                .zip(split_groups(plan, &mut dz))
                .zip(per_group.iter_mut())
                .collect();
            pool::for_each(work, |((g, dz_g), (d_bias, dh, drh))| {
                let d_bias = d_bias.as_slice_mut().expect("standard layout");
                for t in (0..g.steps()).rev() {
                    let a = g.active[t];
                    let mut dh_a = dh.slice_mut(s![..a, ..]);
                    seed_finished_rows(g, t, &mut dh_a, d_state.as_ref());
                    add_step_outputs(g, t, &mut dh_a, d_outputs.as_ref());
                    let dz_t = &mut dz_g[block(g, t, a, w3)];
                    let gates_t = global_block(&cache.gates, g, t, a);
                    let h_prev = global_block(&cache.s, g, t, a);
                    let dh_s = dh_a.as_slice_mut().expect("standard layout");
                    reset_before_back_update(activation, dz_t, dh_s, gates_t, h_prev, d_bias);
                    // d(r*h) = dz_c @ W_cand_hᵀ
                    let drh_a = &mut drh.as_slice_mut().expect("standard layout")[..a * h];
                    cand_h_t.gemm(
                        false,
                        mat(dz_t, w3).slice_move(s![.., 2 * h..]),
                        mat_mut(drh_a, h),
                    );
                    reset_before_back_reset(dz_t, dh_s, drh_a, gates_t, h_prev, d_bias);
                    // dh += [dz_r | dz_u] @ W_gates_hᵀ
                    gates_h_t.gemm(
                        true,
                        mat(dz_t, w3).slice_move(s![.., ..2 * h]),
                        mat_mut(dh_s, h),
                    );
                }
            });
            let d_bias = sum_in_group_order(per_group.iter().map(|(db, _, _)| db), w3);
            let dhs: Vec<_> = per_group.iter().map(|(_, dh, _)| dh).collect();
            let d_h0 = initial_state_grads(plan, &dhs, d_state.as_ref(), h);

            // Xᵀ dZ = [d gates/kernel x-rows | d candidate/kernel x-rows]
            let xtdz = par_product(cache.x.t(), dz.view());
            let mut d_gk = Array2::<T>::zeros((input + h, 2 * h));
            let mut d_ck = Array2::<T>::zeros((input + h, h));
            d_gk.slice_mut(s![..input, ..])
                .assign(&xtdz.slice(s![.., ..2 * h]));
            d_ck.slice_mut(s![..input, ..])
                .assign(&xtdz.slice(s![.., 2 * h..]));
            par_gemm(
                false,
                cache.s.t(),
                dz.slice(s![.., ..2 * h]),
                d_gk.slice_mut(s![input.., ..]),
            );
            par_gemm(
                false,
                cache.q.t(),
                dz.slice(s![.., 2 * h..]),
                d_ck.slice_mut(s![input.., ..]),
            );
            let dx = par_product(dz.view(), packed.w_x.t());
            GruGrads {
                inputs: scatter(plan, &dx, cache.time_major, Slot::Token),
                initial_state: d_h0,
                weights: GruWeightGrads::ResetBefore {
                    gates_kernel: d_gk,
                    gates_bias: d_bias.slice(s![..2 * h]).to_owned(),
                    candidate_kernel: d_ck,
                    candidate_bias: d_bias.slice(s![2 * h..]).to_owned(),
                },
            }
        }
        Recurrent::ResetAfter { w_h, .. } => {
            let w4 = 4 * h;
            let w_h_t = PackedB::new(w_h.t());
            // dz_c | dz_r | dz_u | dz_hc per token
            let mut dz = Array2::<T>::zeros((plan.rows, w4));
            let mut per_group: Vec<(Array1<T>, Array2<T>)> = plan
                .groups
                .iter()
                .map(|g| (Array1::zeros(w4), Array2::zeros((g.first_active(), h))))
                .collect();
            let work: Vec<_> = plan
                .groups
                .iter()
                .zip(split_groups(plan, &mut dz))
                .zip(per_group.iter_mut())
                .collect();
            pool::for_each(work, |((g, dz_g), (d_bias, dh))| {
                let d_bias = d_bias.as_slice_mut().expect("standard layout");
                for t in (0..g.steps()).rev() {
                    let a = g.active[t];
                    let mut dh_a = dh.slice_mut(s![..a, ..]);
                    seed_finished_rows(g, t, &mut dh_a, d_state.as_ref());
                    add_step_outputs(g, t, &mut dh_a, d_outputs.as_ref());
                    let dz_t = &mut dz_g[block(g, t, a, w4)];
                    let dh_s = dh_a.as_slice_mut().expect("standard layout");
                    reset_after_back(
                        activation,
                        dz_t,
                        dh_s,
                        global_block(&cache.gates, g, t, a),
                        global_block(&cache.q, g, t, a),
                        global_block(&cache.s, g, t, a),
                        d_bias,
                    );
                    // dh += [dz_r | dz_u | dz_hc] @ [W_gates_h | hidden_kernel]ᵀ
                    w_h_t.gemm(
                        true,
                        mat(dz_t, w4).slice_move(s![.., h..]),
                        mat_mut(dh_s, h),
                    );
                }
            });
            let d_bias = sum_in_group_order(per_group.iter().map(|(db, _)| db), w4);
            let dhs: Vec<_> = per_group.iter().map(|(_, dh)| dh).collect();
            let d_h0 = initial_state_grads(plan, &dhs, d_state.as_ref(), h);

            // Xᵀ [dz_c | dz_r | dz_u] = [d input_kernel | d gates/kernel x-rows]
            let mut xtdz = Array2::<T>::zeros((input, 3 * h));
            par_gemm(
                false,
                cache.x.t(),
                dz.slice(s![.., ..3 * h]),
                xtdz.view_mut(),
            );
            // Sᵀ [dz_r | dz_u | dz_hc] = [d gates/kernel h-rows | d hidden_kernel]
            let stdz = par_product(cache.s.t(), dz.slice(s![.., h..]));
            let mut d_gk = Array2::<T>::zeros((input + h, 2 * h));
            d_gk.slice_mut(s![..input, ..])
                .assign(&xtdz.slice(s![.., h..]));
            d_gk.slice_mut(s![input.., ..])
                .assign(&stdz.slice(s![.., ..2 * h]));
            // dX = [dz_c | dz_r | dz_u] @ [input_kernel | W_gates_x]ᵀ
            let (gx, ix) = packed.w_x.view().split_at(Axis(1), 2 * h);
            let w_x = concatenate![Axis(1), ix, gx];
            let dx = par_product(dz.slice(s![.., ..3 * h]), w_x.t());
            GruGrads {
                inputs: scatter(plan, &dx, cache.time_major, Slot::Token),
                initial_state: d_h0,
                weights: GruWeightGrads::ResetAfter {
                    gates_kernel: d_gk,
                    gates_bias: d_bias.slice(s![h..3 * h]).to_owned(),
                    input_kernel: xtdz.slice(s![.., ..h]).to_owned(),
                    hidden_kernel: stdz.slice(s![.., 2 * h..]).to_owned(),
                    input_bias: d_bias.slice(s![..h]).to_owned(),
                    hidden_bias: d_bias.slice(s![3 * h..]).to_owned(),
                },
            }
        }
    }))
}

/// The per-group bias sums added in group order (fixed by the shapes).
fn sum_in_group_order<'a, T: Scalar + 'a>(
    parts: impl Iterator<Item = &'a Array1<T>>,
    width: usize,
) -> Array1<T> {
    parts.fold(Array1::zeros(width), |acc, db| acc + db)
}

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    #[test]
    fn reset_before_forward_by_hand() {
        // one row, one unit: z = [zr, zu, zc] before the bias
        let mut z = vec![0.3f64, -0.2, 0.0];
        let h = [0.5];
        let mut rh = [0.0];
        reset_before_gates(&mut z, &h, &mut rh, &[0.1, 1.0]);
        let (r, u) = (sig(0.4), sig(0.8));
        assert!((z[0] - r).abs() < 1e-15 && (z[1] - u).abs() < 1e-15);
        assert!((rh[0] - r * 0.5).abs() < 1e-15);
        z[2] = 0.7; // x @ W_cand_x + (r*h) @ W_cand_h
        let mut hn = [0.0];
        reset_before_candidate(Activation::Tanh, &mut z, &h, &mut hn, &[-0.2]);
        let c = (0.5f64).tanh();
        assert!((z[2] - c).abs() < 1e-15);
        assert!((hn[0] - (u * 0.5 + (1.0 - u) * c)).abs() < 1e-15);
    }

    #[test]
    fn reset_after_forward_by_hand() {
        let mut z = vec![0.3f64, -0.2, 0.6];
        let acc = [0.1, 0.4, -0.5];
        let h = [0.5];
        let (mut hc, mut hn) = ([0.0], [0.0]);
        let bias = [0.1, 1.0, 0.2];
        reset_after_step(
            Activation::Identity,
            &mut z,
            &acc,
            &h,
            &mut hc,
            &mut hn,
            &bias,
            &[0.25],
        );
        let (r, u) = (sig(0.5), sig(1.2));
        let hcv = -0.5 + 0.25;
        let c = 0.6 + 0.2 + r * hcv;
        assert!((z[0] - r).abs() < 1e-15 && (z[1] - u).abs() < 1e-15);
        assert!((hc[0] - hcv).abs() < 1e-15);
        assert!((z[2] - c).abs() < 1e-15);
        assert!((hn[0] - (u * 0.5 + (1.0 - u) * c)).abs() < 1e-15);
    }

    #[test]
    fn backward_passes_by_hand() {
        let (r, u, c, h, d) = (0.3f64, 0.6, -0.4, 0.5, 2.0);
        let gates = [r, u, c];
        // reset before
        let mut dz = [0.0; 3];
        let mut dh = [d];
        let mut db = [1.0, 1.0, 1.0];
        reset_before_back_update(Activation::Tanh, &mut dz, &mut dh, &gates, &[h], &mut db);
        let zc = d * (1.0 - u) * (1.0 - c * c);
        let zu = d * (h - c) * u * (1.0 - u);
        assert_eq!(dz[0], 0.0);
        assert!((dz[1] - zu).abs() < 1e-15 && (dz[2] - zc).abs() < 1e-15);
        assert!((dh[0] - d * u).abs() < 1e-15);
        assert!((db[1] - 1.0 - zu).abs() < 1e-15 && (db[2] - 1.0 - zc).abs() < 1e-15);
        let drh = 0.7;
        reset_before_back_reset(&mut dz, &mut dh, &[drh], &gates, &[h], &mut db);
        let zr = drh * h * r * (1.0 - r);
        assert!((dz[0] - zr).abs() < 1e-15 && (db[0] - 1.0 - zr).abs() < 1e-15);
        assert!((dh[0] - (d * u + drh * r)).abs() < 1e-15);
        // reset after
        let hc = -0.8;
        let mut dz = [0.0; 4];
        let mut dh = [d];
        let mut db = [0.0; 4];
        reset_after_back(
            Activation::Tanh,
            &mut dz,
            &mut dh,
            &gates,
            &[hc],
            &[h],
            &mut db,
        );
        let want = [zc, zc * hc * r * (1.0 - r), zu, zc * r];
        for (g, w) in dz.iter().zip(want) {
            assert!((g - w).abs() < 1e-15);
        }
        assert_eq!(db, dz);
        assert!((dh[0] - d * u).abs() < 1e-15);
    }
}
