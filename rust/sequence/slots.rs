//! The slot buffers of a call (see [`super::plan`]): moving rows between the
//! caller's `[T, B, …]` arrays and the slot layout, cutting buffers into one
//! slice per group, and addressing a step's block inside them.

use super::plan::{Group, Plan};
use crate::error::{bytes_of, Error, Result};
use crate::kernels::rows::{assemble, assemble_in_order};
use crate::kernels::scalar::Scalar;
use crate::pool;
use ndarray::{s, Array2, Array3, ArrayView3, Axis};
use std::ops::Range;

/// Views `inputs` as `[T, B, I]` whatever the caller's layout.
pub fn time_major_view<T>(a: ArrayView3<'_, T>, time_major: bool) -> ArrayView3<'_, T> {
    if time_major {
        a
    } else {
        a.permuted_axes([1, 0, 2])
    }
}

/// Gathers `x` (`[T, B, I]` view) into the slot layout, padding rows zero
/// (allocated fallibly: see [`crate::kernels::rows::try_zeros`]).
pub fn gather_inputs<T: Scalar>(plan: &Plan, x: ArrayView3<T>) -> Result<Array2<T>> {
    // slot rows in order: group by group, block by block, rank by rank
    let sources = plan.groups.iter().flat_map(|g| {
        (0..g.start.len() - 1).flat_map(move |k| {
            let active = g.active.get(k).copied().unwrap_or(0);
            // block k holds step k's tokens (the last block none: padding)
            let x_k = (active > 0).then(|| x.index_axis_move(Axis(0), k));
            (0..g.start[k + 1] - g.start[k]).map(move |rank| match x_k {
                Some(x_k) if rank < active => Some(x_k.index_axis_move(Axis(0), g.rows[rank])),
                _ => None,
            })
        })
    });
    let name = ("inputs", "the gathered inputs");
    assemble_in_order(plan.rows, x.len_of(Axis(2)), name, sources)
}

/// Which slot a (row, step) pair reads in [`scatter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The step's token (`X`, `d_gates`, `dX` buffers).
    Token,
    /// The state after the step (`S` buffer): the step's output.
    State,
}

/// Builds a `[B, T, C]` (or `[T, B, C]`) array from the columns `cols` of a
/// slot buffer, zero past each length: the outputs from `S`, or `d inputs`
/// from `dX`. It is allocated fallibly ([`crate::Error::OutOfMemory`] naming
/// `inputs` and `what` when it cannot be).
pub fn scatter<T: Scalar>(
    plan: &Plan,
    buf: &Array2<T>,
    cols: Range<usize>,
    time_major: bool,
    (slot, what): (Slot, &str),
) -> Result<Array3<T>> {
    let width = cols.len();
    let (outer, inner) = if time_major {
        (plan.time, plan.batch)
    } else {
        (plan.batch, plan.time)
    };
    let columns = buf.slice(s![.., cols]);
    let rows = outer.checked_mul(inner).ok_or_else(|| {
        let bytes = bytes_of(&[outer, inner, width], std::mem::size_of::<T>());
        Error::out_of_memory(
            "inputs",
            format!("{what} [{outer}, {inner}, {width}]"),
            bytes,
        )
    })?;
    let flat = assemble(rows, width, inner, ("inputs", what), |r| {
        let (i, j) = (r / inner.max(1), r % inner.max(1));
        let (b, t) = if time_major { (j, i) } else { (i, j) };
        let found = match slot {
            Slot::Token => plan.token_slot(b, t),
            Slot::State => plan.state_slot(b, t),
        };
        found.map(|k| columns.row(k))
    })?;
    Ok(flat
        .into_shape_with_order((outer, inner, width))
        .expect("standard layout"))
}

/// Each row's final state `[B, W]`: its state after step `len-1`, or
/// `initial` for `len == 0`.
pub fn final_state<T: Scalar>(plan: &Plan, states: &Array2<T>, initial: &Array2<T>) -> Array2<T> {
    let mut out = initial.clone();
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

/// Copies `from`'s rows of the group's running rows (its first
/// `first_active`, in group order) into `to` (`[first_active, W]`).
pub fn gather_group_rows<T: Scalar>(g: &Group, to: &mut [T], from: &Array2<T>) {
    let width = from.ncols();
    for (rank, &b) in g.rows[..g.first_active()].iter().enumerate() {
        for (d, &v) in to[rank * width..(rank + 1) * width]
            .iter_mut()
            .zip(from.row(b))
        {
            *d = v;
        }
    }
}

/// Whether a pass over the plan is worth handing to the thread pool, given
/// the multiply-adds per token.
pub fn worth_parallel(plan: &Plan, work_per_token: usize) -> bool {
    pool::worth_parallel(plan.tokens().saturating_mul(work_per_token))
}
