//! The time loop's shared machinery: the pieces every cell's forward pass is
//! built from. A cell's forward (see `cell::basic_rnn::forward`) is
//!
//! ```text
//! plan = Plan::new(B, T, lengths)                  rows sorted, grouped (mask.rs)
//! X    = gather_inputs(plan, x)        [R, I]      slot layout
//! Z    = X @ W_x            (par_gemm) [R, G]      one GEMM for all steps
//! per group, on its own thread (pool::for_each over split_groups(...)):
//!     fill_initial(...)                            state block 0 ← h0
//!     for t: h_prev = state block t, a = active[t] rows
//!            acc = h_prev @ W_h  (packed.rs)       the only GEMM in the loop; W_h
//!                                                  packed once per call
//!            one fused element-wise pass → state block t+1 (+ per-token cache)
//! outputs = scatter(plan, S, time_major, Slot::State);  state = final_state(...)
//! ```
//!
//! Only the small `h @ W_h` product stays inside the loop; groups run their
//! loops concurrently with no per-step synchronisation; nothing is allocated
//! inside the loop.

use crate::error::{check_shape, Result};
use crate::mask::{Group, Plan};
use crate::pool;
use crate::scalar::Scalar;
use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3, ArrayViewMut2, Axis};
use std::mem::MaybeUninit;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Work (multiply-adds) below which a call stays on the calling thread.
/// Handing work to the pool costs a wake-up per parallel region (a forward
/// pass has three, a training step eight), tens of microseconds each on the
/// project's VM: at B32 T50 one thread beat two for the BasicRNN (10 M
/// multiply-adds, 250 vs 350 µs) and the GRU (29 M, 0.68 vs 0.82 ms), while
/// two won for the LSTM (39 M, 0.76 vs 0.92 ms).
const PARALLEL_WORK: usize = 1 << 25;

/// The threshold in force; tests lower it to take the parallel paths on
/// small problems (see [`set_parallel_work`]).
static PARALLEL_WORK_NOW: AtomicUsize = AtomicUsize::new(PARALLEL_WORK);

/// Views `inputs` as `[T, B, I]` whatever the caller's layout.
pub fn time_major_view<T>(a: ArrayView3<'_, T>, time_major: bool) -> ArrayView3<'_, T> {
    if time_major {
        a
    } else {
        a.permuted_axes([1, 0, 2])
    }
}

/// Checks a `[B, width]` state component (`initial_state`, `d_state`, …).
pub fn check_state<T>(
    arg: &'static str,
    state: &ArrayView2<T>,
    plan: &Plan,
    width: usize,
) -> Result<()> {
    check_shape(arg, state.shape(), &[plan.batch, width])
}

/// Gathers `x` (`[T, B, I]` view) into the slot layout, padding rows zero.
/// Every row is written exactly once (no zeroing pass first).
pub fn gather_inputs<T: Scalar>(plan: &Plan, x: ArrayView3<T>) -> Array2<T> {
    let input = x.len_of(Axis(2));
    let mut out = Array2::<T>::uninit((plan.rows, input));
    for g in &plan.groups {
        for k in 0..g.start.len() - 1 {
            let active = g.active.get(k).copied().unwrap_or(0);
            for slot in g.start[k]..g.start[k + 1] {
                let rank = slot - g.start[k];
                let mut row = out.row_mut(slot);
                if rank < active {
                    x.slice(s![k, g.rows[rank], ..]).assign_to(row);
                } else {
                    row.fill(MaybeUninit::new(T::zero()));
                }
            }
        }
    }
    // SAFETY: the groups' blocks tile all `plan.rows` slot rows and every
    // row of every block was written above.
    unsafe { out.assume_init() }
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
    let mut out = Array3::<T>::uninit(shape);
    let outer: Vec<_> = out.outer_iter_mut().enumerate().collect();
    pool::for_each(
        outer,
        |(i, mut sub): (usize, ArrayViewMut2<MaybeUninit<T>>)| {
            for j in 0..sub.nrows() {
                let (b, t) = if time_major { (j, i) } else { (i, j) };
                let found = match slot {
                    Slot::Token => plan.token_slot(b, t),
                    Slot::State => plan.state_slot(b, t),
                };
                let mut row = sub.row_mut(j);
                match found {
                    Some(k) => buf.row(k).assign_to(row),
                    None => row.fill(MaybeUninit::new(T::zero())),
                }
            }
        },
    );
    // SAFETY: every row of every outer slice was written above.
    unsafe { out.assume_init() }
}

/// Each row's final state: its state after step `len-1`, or `initial` for
/// `len == 0`.
pub fn final_state<T: Scalar>(
    plan: &Plan,
    states: &Array2<T>,
    initial: ArrayView2<T>,
) -> Array2<T> {
    let mut out = initial.to_owned();
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

/// Element range, inside a group's slice of a `[R, width]` slot buffer, of
/// the first `rows` rows of block `k`.
pub fn block(g: &Group, k: usize, rows: usize, width: usize) -> Range<usize> {
    let start = (g.start[k] - g.start[0]) * width;
    start..start + rows * width
}

/// The whole slot buffer's rows of group `g`, block `k`, first `rows` rows.
pub fn global_block<'a, T>(buf: &'a Array2<T>, g: &Group, k: usize, rows: usize) -> &'a [T] {
    let width = buf.ncols();
    &buf.as_slice().expect("standard layout")[g.start[k] * width..][..rows * width]
}

/// A `[rows, cols]` view of a slice.
pub fn mat<T>(data: &[T], cols: usize) -> ArrayView2<'_, T> {
    ArrayView2::from_shape((data.len() / cols.max(1), cols), data).expect("whole rows")
}

/// A mutable `[rows, cols]` view of a slice.
pub fn mat_mut<T>(data: &mut [T], cols: usize) -> ArrayViewMut2<'_, T> {
    ArrayViewMut2::from_shape((data.len() / cols.max(1), cols), data).expect("whole rows")
}

/// Copies the initial state of the group's running rows into block 0 of its
/// slice `state_g` of a `[R, width]` state buffer.
pub fn fill_initial<T: Scalar>(g: &Group, state_g: &mut [T], initial: &ArrayView2<T>) {
    let width = initial.ncols();
    for (rank, &b) in g.rows[..g.first_active()].iter().enumerate() {
        for (d, &v) in state_g[rank * width..(rank + 1) * width]
            .iter_mut()
            .zip(initial.row(b))
        {
            *d = v;
        }
    }
}

/// Whether a pass over the plan is worth handing to the thread pool, given
/// the multiply-adds per token.
pub fn worth_parallel(plan: &Plan, work_per_token: usize) -> bool {
    plan.tokens() * work_per_token >= PARALLEL_WORK_NOW.load(Ordering::Relaxed)
}

/// Sets the work from which a call uses the thread pool (`None`: the
/// default). For tests: results never depend on it, only speed does, so the
/// thread-count determinism tests set it to 0 to run small problems on every
/// parallel path.
#[doc(hidden)]
pub fn set_parallel_work(work: Option<usize>) {
    PARALLEL_WORK_NOW.store(work.unwrap_or(PARALLEL_WORK), Ordering::Relaxed);
}
