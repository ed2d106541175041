//! Backpropagation through time's shared machinery. A cell's backward pass
//! (see `cell::basic_rnn::backward`) is
//!
//! ```text
//! per group, on its own thread, dh [active[0], H] zeroed once:
//!   for t = last..0:  seed_finished_rows(...)  rows ending at t start from d_state
//!                     add_step_outputs(...)    dh[:a] += dY_t
//!                     dZ[block t][:a] = dh[:a] ⊙ (local derivative)   (db += rows)
//!                     dh[:a] = dZ[block t][:a] @ W_hᵀ                 the only GEMM
//! initial_state_grads(...)                      dh left over → d initial_state
//! dW_x = Xᵀ @ dZ      dW_h = Sᵀ @ dZ      dX = dZ @ W_xᵀ      (par_gemm, after the loop)
//! d inputs = layer::scatter(plan, dX, time_major, Slot::Token)
//! ```
//!
//! Gradients arriving at padded positions (`t >= len`) are ignored: those
//! outputs are constant zeros.

use crate::error::{check_shape, Result};
use crate::mask::{Group, Plan};
use crate::scalar::Scalar;
use ndarray::{s, Array2, ArrayView2, ArrayView3, ArrayViewMut2, Axis};

/// Checks `d_outputs` (a `[T, B, width]` view) against the forward call.
pub fn check_d_outputs<T>(
    d: &ArrayView3<T>,
    plan: &Plan,
    width: usize,
    time_major: bool,
) -> Result<()> {
    let mut want = [plan.time, plan.batch, width];
    let mut got = [d.len_of(Axis(0)), d.len_of(Axis(1)), d.len_of(Axis(2))];
    if !time_major {
        want.swap(0, 1);
        got.swap(0, 1);
    }
    check_shape("d_outputs", &got, &want)
}

/// Rows of `g` whose last step is `t` start their running gradient `d` from
/// `d_state` (zeros without one); rows still running keep theirs.
pub fn seed_finished_rows<T: Scalar>(
    g: &Group,
    t: usize,
    d: &mut ArrayViewMut2<T>,
    d_state: Option<&ArrayView2<T>>,
) {
    let still = g.active.get(t + 1).copied().unwrap_or(0);
    for rank in still..g.active[t] {
        let mut row = d.row_mut(rank);
        match d_state {
            Some(ds) => row.assign(&ds.row(g.rows[rank])),
            None => row.fill(T::zero()),
        }
    }
}

/// `d[:a] += d_outputs[t, rows]` for the rows of `g` active at step `t`.
pub fn add_step_outputs<T: Scalar>(
    g: &Group,
    t: usize,
    d: &mut ArrayViewMut2<T>,
    d_outputs: Option<&ArrayView3<T>>,
) {
    if let Some(dy) = d_outputs {
        for (rank, &b) in g.rows[..g.active[t]].iter().enumerate() {
            d.row_mut(rank)
                .zip_mut_with(&dy.slice(s![t, b, ..]), |acc, &v| *acc += v);
        }
    }
}

/// The gradient of the initial state: what the reverse loop left in each
/// group's running gradient for its rows, and `d_state` itself for rows of
/// length 0 (they never ran).
pub fn initial_state_grads<T: Scalar>(
    plan: &Plan,
    per_group: &[&Array2<T>],
    d_state: Option<&ArrayView2<T>>,
    width: usize,
) -> Array2<T> {
    let mut out = match d_state {
        Some(d) => d.to_owned(),
        None => Array2::zeros((plan.batch, width)),
    };
    for (g, dh) in plan.groups.iter().zip(per_group) {
        for (rank, &b) in g.rows[..g.first_active()].iter().enumerate() {
            out.row_mut(b).assign(&dh.row(rank));
        }
    }
    out
}
