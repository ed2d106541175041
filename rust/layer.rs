//! The time loop: hoisted input projection, recurrence, cache for BPTT.
//!
//! ```text
//! X  [R, I]  ← gather(inputs)                      (slot layout, see `mask`)
//! Z  [R, H]  ← X @ W_x                             one GEMM, all steps
//! S  block 0 ← h0
//! for t:  S[block t+1][:a] = act(S[block t][:a] @ W_h + Z[block t][:a] + b)
//! ```
//!
//! Only the small `h @ W_h` product stays inside the loop; groups of rows
//! run their loops concurrently with no per-step synchronisation.

use crate::cell::{basic_rnn, Activation};
use crate::error::{check_shape, Error, Result};
use crate::gemm::{gemm, par_gemm};
use crate::mask::Plan;
use crate::pool;
use crate::scalar::Scalar;
use ndarray::{s, Array2, Array3, ArrayView1, ArrayView2, ArrayView3, ArrayViewMut2, Axis};

/// Work (multiply-adds) below which a call stays on the calling thread.
const PARALLEL_WORK: usize = 1 << 17;

/// What the forward pass keeps for backpropagation: exactly the gathered
/// inputs and every state.
#[derive(Debug, Clone)]
pub struct RnnCache<T> {
    /// Where each (row, step) lives.
    pub plan: Plan,
    /// Gathered inputs `[R, I]`.
    pub x: Array2<T>,
    /// States `[R, H]`: block `k` is the state after step `k-1`.
    pub s: Array2<T>,
    /// The activation used.
    pub activation: Activation,
    /// Whether the caller's arrays are `[T, B, …]`.
    pub time_major: bool,
}

/// Result of [`basic_rnn_forward`].
#[derive(Debug, Clone)]
pub struct RnnForward<T> {
    /// `[B, T, H]` (or `[T, B, H]` when time-major); zero past each length.
    pub outputs: Array3<T>,
    /// `[B, H]`: each row's state after its last step.
    pub state: Array2<T>,
    /// Everything backpropagation needs.
    pub cache: RnnCache<T>,
}

/// Views `inputs` as `[T, B, I]` whatever the caller's layout.
pub fn time_major_view<T>(a: ArrayView3<'_, T>, time_major: bool) -> ArrayView3<'_, T> {
    if time_major {
        a
    } else {
        a.permuted_axes([1, 0, 2])
    }
}

/// Checks a `[I+H, H]` kernel and `[H]` bias against the input size.
pub fn check_weights<T>(
    kernel: &ArrayView2<T>,
    bias: &ArrayView1<T>,
    input: usize,
) -> Result<usize> {
    let units = bias.len();
    check_shape("bias", bias.shape(), &[units])?;
    check_shape("kernel", kernel.shape(), &[input + units, units])?;
    Ok(units)
}

/// Gathers `x` (`[T, B, I]` view) into the slot layout.
pub fn gather_inputs<T: Scalar>(plan: &Plan, x: ArrayView3<T>) -> Array2<T> {
    let input = x.len_of(Axis(2));
    let mut out = Array2::<T>::zeros((plan.rows, input));
    for g in &plan.groups {
        for (t, &a) in g.active.iter().enumerate() {
            for (rank, &b) in g.rows[..a].iter().enumerate() {
                out.row_mut(g.start[t] + rank)
                    .assign(&x.slice(s![t, b, ..]));
            }
        }
    }
    out
}

/// Which slot a (row, step) pair reads in [`scatter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The step's token (`X`, `dZ`, `dX` buffers).
    Token,
    /// The state after the step (`S` buffer): the step's output.
    State,
}

/// Builds a `[B, T, C]` (or `[T, B, C]`) array from a slot buffer, zero
/// past each length: the outputs from `S`, or `d inputs` from `dX`.
pub fn scatter<T: Scalar>(plan: &Plan, buf: &Array2<T>, time_major: bool, slot: Slot) -> Array3<T> {
    let cols = buf.ncols();
    let shape = if time_major {
        (plan.time, plan.batch, cols)
    } else {
        (plan.batch, plan.time, cols)
    };
    let mut out = Array3::<T>::zeros(shape);
    let outer: Vec<_> = out.outer_iter_mut().enumerate().collect();
    pool::for_each(outer, |(i, mut sub): (usize, ArrayViewMut2<T>)| {
        for j in 0..sub.nrows() {
            let (b, t) = if time_major { (j, i) } else { (i, j) };
            let found = match slot {
                Slot::Token => plan.token_slot(b, t),
                Slot::State => plan.state_slot(b, t),
            };
            if let Some(k) = found {
                sub.row_mut(j).assign(&buf.row(k));
            }
        }
    });
    out
}

/// Each row's final state: its state after step `len-1`, or `h0` for `len == 0`.
pub fn final_state<T: Scalar>(plan: &Plan, states: &Array2<T>, h0: ArrayView2<T>) -> Array2<T> {
    let mut out = h0.to_owned();
    for b in 0..plan.batch {
        if let Some(slot) = plan.final_slot(b) {
            out.row_mut(b).assign(&states.row(slot));
        }
    }
    out
}

/// Splits the rows of a standard-layout `[R, C]` array into one mutable
/// slice per group, following the plan's slot ranges.
pub fn split_groups<'a, T>(plan: &Plan, a: &'a mut Array2<T>) -> Vec<&'a mut [T]> {
    let cols = a.ncols();
    let mut rest = a.as_slice_mut().expect("standard layout");
    let mut out = Vec::with_capacity(plan.groups.len());
    for g in &plan.groups {
        let (head, tail) = rest.split_at_mut(g.slots().len() * cols);
        out.push(head);
        rest = tail;
    }
    out
}

/// Whether a pass over the plan is worth handing to the thread pool.
pub fn worth_parallel(plan: &Plan, input: usize, units: usize, width: usize) -> bool {
    plan.tokens() * (input + units) * width >= PARALLEL_WORK
}

/// Runs `BasicRNNCell` over a batch of sequences.
///
/// `x` is `[T, B, I]` (any strides; see [`time_major_view`]), `h0` `[B, H]`,
/// `kernel` `[I+H, H]` (rows `[x; h]`), `bias` `[H]`. `time_major` chooses
/// the layout of the returned outputs.
pub fn basic_rnn_forward<T: Scalar>(
    x: ArrayView3<T>,
    h0: ArrayView2<T>,
    kernel: ArrayView2<T>,
    bias: ArrayView1<T>,
    lengths: Option<&[i64]>,
    activation: Activation,
    time_major: bool,
) -> Result<RnnForward<T>> {
    let (time, batch, input) = x.dim();
    let units = check_weights(&kernel, &bias, input)?;
    check_shape("initial_state", h0.shape(), &[batch, units])?;
    let plan = Plan::new(batch, time, lengths)?;
    let (w_x, w_h) = kernel.view().split_at(Axis(0), input);
    let parallel = worth_parallel(&plan, input, units, units);
    let bias = bias.as_standard_layout();
    let bias = bias.as_slice().expect("standard layout");

    let (xs, s) = pool::run(parallel, || {
        let xs = gather_inputs(&plan, x);
        let mut z = Array2::<T>::zeros((plan.rows, units));
        par_gemm(false, xs.view(), w_x, z.view_mut());
        let mut s = Array2::<T>::zeros((plan.rows, units));
        let groups: Vec<_> = plan
            .groups
            .iter()
            .zip(split_groups(&plan, &mut s))
            .collect();
        pool::for_each(groups, |(g, s_g)| {
            let base = g.start[0];
            let at = |k: usize| (g.start[k] - base) * units;
            for (rank, &b) in g.rows[..g.first_active()].iter().enumerate() {
                s_g[rank * units..(rank + 1) * units]
                    .iter_mut()
                    .zip(h0.row(b))
                    .for_each(|(d, &v)| *d = v);
            }
            let z_g = &z.as_slice().expect("standard layout")[base * units..];
            for (t, &a) in g.active.iter().enumerate() {
                let (prev, cur) = s_g.split_at_mut(at(t + 1));
                let h_prev = ArrayView2::from_shape((a, units), &prev[at(t)..at(t) + a * units])
                    .expect("block");
                let h = &mut cur[..a * units];
                gemm(
                    false,
                    h_prev,
                    w_h,
                    ArrayViewMut2::from_shape((a, units), &mut *h).expect("block"),
                );
                basic_rnn::step_forward(activation, h, &z_g[at(t)..at(t) + a * units], bias);
            }
        });
        (xs, s)
    });
    let outputs = pool::run(parallel, || scatter(&plan, &s, time_major, Slot::State));
    let state = final_state(&plan, &s, h0);
    Ok(RnnForward {
        outputs,
        state,
        cache: RnnCache {
            plan,
            x: xs,
            s,
            activation,
            time_major,
        },
    })
}

/// Sanity check used by the bindings: the kernel a backward pass is given
/// must fit the cache it is applied to.
pub fn check_cache_kernel<T>(cache: &RnnCache<T>, kernel: &ArrayView2<T>) -> Result<()> {
    let (input, units) = (cache.x.ncols(), cache.s.ncols());
    if kernel.dim() != (input + units, units) {
        return Err(Error::invalid(
            "kernel",
            format!("shape [{}, {units}] (the forward pass's)", input + units),
            format!("{:?}", kernel.shape()),
        ));
    }
    Ok(())
}
