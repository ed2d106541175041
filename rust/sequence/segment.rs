//! One group's forward steps over a range of steps, written once for the
//! forward pass and for the backward pass's recomputation of a checkpointed
//! segment, so that both run the same operations on the same values.
//!
//! The buffers handed in start at the range's first block `t0` (see the slot
//! layout in [`super::plan`]): the states hold blocks `t0..=t1` (block `t0`
//! filled on entry), the gates and kept values blocks `t0..t1`. The input
//! projection `X @ W_x` runs chunk by chunk ([`super::plan::Plan::chunk_steps`];
//! `t0` is a multiple of the chunk), so a chunk's product is the same call
//! whichever pass makes it.

use super::plan::Group;
use crate::kernels::filling::Filling;
use crate::kernels::scalar::Scalar;
use crate::kernels::split::{self, Buffer};
use crate::pool::{self, Ticker};
use crate::step::{Cell, Forward, UnitSplit};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use std::ops::Range;

/// Element range, in a `width`-wide group buffer that starts at block
/// `base`, of the first `rows` rows of block `k`.
pub fn rel_block(g: &Group, base: usize, k: usize, rows: usize, width: usize) -> Range<usize> {
    let start = (g.start[k] - g.start[base]) * width;
    start..start + rows * width
}

/// `[rows, width]` view of the slot rows `rows` of a `width`-wide buffer
/// (also for width 0).
pub fn rows_view<T>(data: &[T], rows: Range<usize>, width: usize) -> ArrayView2<'_, T> {
    let n = rows.len();
    ArrayView2::from_shape((n, width), &data[rows.start * width..rows.end * width])
        .expect("whole rows")
}

/// Mutable [`rows_view`].
pub fn rows_view_mut<T>(data: &mut [T], rows: Range<usize>, width: usize) -> ArrayViewMut2<'_, T> {
    let n = rows.len();
    ArrayViewMut2::from_shape((n, width), &mut data[rows.start * width..rows.end * width])
        .expect("whole rows")
}

/// The chunks `(c0, c1)` of `chunk` steps that cover `t0..t1`, in order.
pub fn chunks(
    t0: usize,
    t1: usize,
    chunk: usize,
) -> impl DoubleEndedIterator<Item = (usize, usize)> {
    (t0..t1)
        .step_by(chunk.max(1))
        .map(move |c0| (c0, (c0 + chunk.max(1)).min(t1)))
}

/// A group's buffers from block `t0` on (see the module docs). The steps
/// fill them front to back: the input projection writes each chunk's gate
/// rows, and each step's state and kept-value blocks are zeroed just
/// before it (the padding rows stay zero); on buffers already initialised
/// ([`Filling::init`]) the zeroing does nothing.
pub struct Steps<'a, T: Scalar> {
    /// `[.., G]`: blocks `t0..t1` (initialised already when the caller
    /// wrote the projection).
    pub gates: Filling<'a, T>,
    /// `[.., W]`: blocks `t0..=t1`, block `t0` initialised.
    pub states: Filling<'a, T>,
    /// `[.., A]`: blocks `t0..t1`.
    pub aux: Filling<'a, T>,
    /// `[first_active, S]`.
    pub scratch: &'a mut [T],
}

/// How the gate buffer gets its input projection: from the gathered inputs
/// (`[R, I]`, the whole call's slot rows) chunk by chunk, `parallel` as in
/// [`crate::kernels::gemm::gemm_on`]; or `None` when the caller already wrote it.
/// `parallel` (the group has the pool to itself: a batch of one group) also
/// lets the steps split by units over the pool ([`split_units`]).
pub type Projection<'a, T> = Option<(&'a Array2<T>, bool)>;

/// How group `g`'s steps from `t` split over the pool, when they do: the
/// cell's [`UnitSplit`] and the unit slices, one per thread of the current
/// pool, each starting at a multiple of the cell's alignment. `None` when the
/// cell does not split, the pool has one thread (or the call runs inline),
/// or the step is too small ([`pool::worth_splitting`]).
pub fn split_units<T: Scalar, C: Cell<T> + ?Sized>(
    cell: &C,
    g: &Group,
    t: usize,
) -> Option<(UnitSplit, Vec<Range<usize>>)> {
    slices_of(cell, cell.unit_split()?, g, t)
}

/// [`split_units`] for the backward steps ([`Cell::backward_split`]).
pub fn split_units_back<T: Scalar, C: Cell<T> + ?Sized>(
    cell: &C,
    g: &Group,
    t: usize,
) -> Option<(UnitSplit, Vec<Range<usize>>)> {
    slices_of(cell, cell.backward_split()?, g, t)
}

/// The unit slices of `split` for group `g`'s steps from `t` (see
/// [`split_units`]).
fn slices_of<T: Scalar, C: Cell<T> + ?Sized>(
    cell: &C,
    split: UnitSplit,
    g: &Group,
    t: usize,
) -> Option<(UnitSplit, Vec<Range<usize>>)> {
    let rows = g.active.get(t).copied().unwrap_or(0);
    let work = rows
        .saturating_mul(split.units)
        .saturating_mul(cell.layout().gates);
    if !pool::worth_splitting(work) {
        return None;
    }
    split
        .slices(pool::threads_here())
        .map(|slices| (split, slices))
}

/// Steps `c0..c1` of group `g` (its buffers from block `t0` on, the chunk's
/// gate rows projected already) split by units as [`split_units`] said,
/// one thread of the pool per slice ([`crate::kernels::split`]). Returns
/// `false` when `ticker` says the call must stop.
fn split_chunk<T: Scalar, C: Cell<T> + ?Sized>(
    cell: &C,
    g: &Group,
    (t0, c0, c1): (usize, usize, usize),
    (split, slices): &(UnitSplit, Vec<Range<usize>>),
    bufs: &mut Steps<'_, T>,
    ticker: &mut Ticker<'_>,
) -> bool {
    let layout = cell.layout();
    let (width, g_w, a_w) = (layout.state_width(), layout.gates, layout.aux);
    let [p_g, p_s, p_a, p_x] = split.parts;
    assert!(
        split.cuts(layout),
        "{}: unit split does not cut the buffers",
        cell.name()
    );
    // Every block the chunk writes, zeroed first (the slices write the
    // running rows; the padding rows stay zero).
    bufs.states
        .zero_to(rel_block(g, t0, c1, g.active[c1 - 1], width).end);
    bufs.aux
        .zero_to(rel_block(g, t0, c1 - 1, g.cap(c1 - 1), a_w).end);
    let starts: Vec<usize> = (c0..=c1 + 1).map(|k| g.start[k] - g.start[c0]).collect();
    let from = |w| rel_block(g, t0, c0, 0, w).start;
    let active = &g.active[c0..c1];
    let per_slice = layout.work_per_token / (slices.len() * split.phases);
    let scratch: &mut [T] = if p_x == 0 { &mut [] } else { bufs.scratch };
    split::run(
        split.units,
        split.phases,
        slices,
        slices.len() - 1,
        &starts,
        active,
        [
            Buffer {
                data: &mut bufs.gates.init_mut()[from(g_w)..],
                parts: p_g,
            },
            Buffer {
                data: &mut bufs.states.init_mut()[from(width)..],
                parts: p_s,
            },
            Buffer {
                data: &mut bufs.aux.init_mut()[from(a_w)..],
                parts: p_a,
            },
            Buffer {
                data: scratch,
                parts: p_x,
            },
        ],
        |t: usize| ticker.tick(active[t].saturating_mul(per_slice)).is_ok(),
        |step| cell.forward_units(step),
    )
}

/// Runs the forward steps `t0..t1` of group `g` (see the module docs), the
/// input projection chunk by chunk of `chunk` steps. Returns `false` when
/// `ticker` says the call must stop.
#[allow(clippy::too_many_arguments)]
pub fn forward_steps<T: Scalar, C: Cell<T> + ?Sized>(
    cell: &C,
    g: &Group,
    (t0, t1): (usize, usize),
    chunk: usize,
    project: Projection<'_, T>,
    bufs: Steps<'_, T>,
    ticker: &mut Ticker<'_>,
) -> bool {
    let layout = cell.layout();
    let (width, g_w, a_w, s_w) = (
        layout.state_width(),
        layout.gates,
        layout.aux,
        layout.scratch,
    );
    let mut bufs = bufs;
    for (c0, c1) in chunks(t0, t1, chunk) {
        let Steps {
            gates,
            states,
            aux,
            scratch,
        } = &mut bufs;
        if let Some((xs, parallel)) = project {
            let input = xs.ncols();
            let x = rows_view(
                xs.as_slice().expect("standard layout"),
                g.start[c0]..g.start[c1],
                input,
            );
            let rows = g.rows_from(t0, c0, c1);
            let z = rows.start * g_w..rows.end * g_w;
            gates.product(z, parallel, x, cell.input_kernel());
            if let Some(split) = split_units(cell, g, c0).filter(|_| parallel) {
                if !split_chunk(cell, g, (t0, c0, c1), &split, &mut bufs, ticker) {
                    return false; // the watch keeps the error
                }
                continue;
            }
        }
        for t in c0..c1 {
            let a = g.active[t];
            if ticker
                .tick(a.saturating_mul(layout.work_per_token))
                .is_err()
            {
                return false; // the watch keeps the error
            }
            // block t + 1 of the states (its `a` rows), all of block t of
            // the kept values (the rows past `a` are padding and stay zero)
            states.zero_to(rel_block(g, t0, t + 1, a, width).end);
            aux.zero_to(rel_block(g, t0, t, g.cap(t), a_w).end);
            let states = states.init_mut();
            let (prev, next) = states.split_at_mut(rel_block(g, t0, t + 1, 0, width).start);
            cell.forward_step(Forward {
                rows: a,
                gates: &mut gates.init_mut()[rel_block(g, t0, t, a, g_w)],
                prev: &prev[rel_block(g, t0, t, a, width)],
                next: &mut next[..a * width],
                aux: &mut aux.init_mut()[rel_block(g, t0, t, a, a_w)],
                scratch: &mut scratch[..a * s_w],
            });
        }
    }
    true
}
