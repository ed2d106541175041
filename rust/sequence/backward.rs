//! Backpropagation through time, for every cell.

use super::forward::{Cache, SegmentBuffers};
use super::plan::{Group, Plan};
use super::segment::{
    chunks, forward_steps, rel_block, rows_view, rows_view_mut, split_units_back,
};
use super::slots::{scatter, split_groups, worth_parallel, Slot};
use crate::error::{check_shape, Budget, Error, Interrupt, Result, Uninterrupted};
use crate::kernels::rows::try_zeros;
use crate::kernels::scalar::Scalar;
use crate::kernels::split::{self, Buffer, Rows, UnitBack};
use crate::pool::{self, Ticker, Watch};
use crate::step::params::Named;
use crate::step::{Backward, Cell, Layout, Tokens, UnitSplit};
use ndarray::{Array1, Array2, Array3, ArrayView2, ArrayView3, Axis};
use std::ops::Range;

/// Gradients of a [`super::forward()`] call.
#[derive(Debug, Clone)]
pub struct Grads<T> {
    /// `d inputs`, in the forward call's layout; zero past each length.
    pub inputs: Array3<T>,
    /// The initial state's gradient, part by part.
    pub initial_state: Vec<Array2<T>>,
    /// The gradient of every weight, by name.
    pub weights: Named<T>,
}

/// What each group's reverse loop accumulates.
struct GroupGrads<T> {
    /// The small-parameter gradients `[P]`.
    d_params: Array1<T>,
    /// The running state gradient `[first_active, W]`.
    d_state: Array2<T>,
    /// The deferred products' sums ([`Cell::deferred_sums`]).
    sums: Vec<Array2<T>>,
}

/// Backpropagates `d_outputs` (`[T, B, out]` view, see
/// [`super::time_major_view`]) and `d_state` (the final state's gradient,
/// part by part) through the forward pass of `cell` that filled `cache`.
/// Either may be `None` (zeros). Gradients arriving at padded positions
/// (`t >= len`) are ignored: those outputs are constant zeros.
///
/// ```text
/// per group, on its own thread, d_state [active[0], W] zeroed once:
///   for each segment, last first (one segment of all steps unless checkpointed):
///     checkpointed: state block t0 ← its checkpoint; forward_steps(t0..t1)
///     for each chunk of the segment, last first:
///       for t = last..first: rows ending at t start from d_state (or zeros)
///                            d_state[:a, output columns] += dY_t
///                            cell.backward_step(a rows: → dZ chunk block t, d_state ← state before t)
///       cell.deferred_chunk(X, S, gates, aux, dZ, d_aux of the chunk)   weight sums, dX rows
/// d initial_state = what is left in d_state (d_state itself for rows of length 0)
/// weights = cell.deferred_finish(Σ groups' sums, Σ d_params)   (in group order)
/// d inputs = scatter(dX)
/// ```
///
/// The chunks and their order are the same whether the forward pass kept
/// every step or only checkpoints, so the gradients are bitwise the same.
pub fn backward<T: Scalar, C: Cell<T> + ?Sized>(
    cell: &C,
    cache: &Cache<T>,
    d_outputs: Option<ArrayView3<T>>,
    d_state: Option<&[ArrayView2<T>]>,
) -> Result<Grads<T>> {
    backward_interruptible(cell, cache, d_outputs, d_state, &Uninterrupted)
}

/// Adds every buffer a backward pass allocates to `budget`.
fn backward_budget(layout: &Layout, plan: &Plan, every: Option<usize>, elem: usize) -> Budget {
    let mut budget = Budget::new("inputs");
    let (b, t, w) = (plan.batch, plan.time, layout.state_width());
    let chunk_rows = plan.chunk_steps().saturating_mul(b);
    let per_chunk = layout.d_gates + layout.d_aux;
    budget.add("the chunks' gradients", &[chunk_rows, per_chunk], elem);
    if let Some(every) = every {
        let per_token = layout.gates + w + layout.aux;
        let seg_rows = every.saturating_add(1);
        budget.add("a segment's buffers", &[seg_rows, b, per_token], elem);
    }
    budget.add("the step scratch", &[b, layout.scratch], elem);
    budget.add("the state gradients", &[3, b, w], elem);
    budget.add(
        "the gathered input gradients",
        &[plan.rows, layout.input],
        elem,
    );
    budget.add("the input gradients", &[b, t, layout.input], elem);
    budget
}

/// [`backward()`], polling `interrupt` between time steps (see
/// [`crate::error::Interrupt`]): when it fails, so does the call. Its
/// buffers are sized and allocated like the forward pass's (see
/// [`super::forward()`]): [`Error::OutOfMemory`] naming `inputs` when they
/// cannot be.
pub fn backward_interruptible<T: Scalar, C: Cell<T> + ?Sized>(
    cell: &C,
    cache: &Cache<T>,
    d_outputs: Option<ArrayView3<T>>,
    d_state: Option<&[ArrayView2<T>]>,
    interrupt: &dyn Interrupt,
) -> Result<Grads<T>> {
    let layout = cell.layout();
    let plan = &cache.plan;
    let width = layout.state_width();
    let every = cache.checkpoints.as_ref().map(|c| c.every);
    let kept_ok = match &cache.checkpoints {
        Some(c) => c.states.ncols() == width,
        None => cache.states.ncols() == width,
    };
    if cache.x.ncols() != layout.input || !kept_ok {
        return Err(Error::invalid(
            "cache",
            format!("the cache of a forward pass of this {}", cell.name()),
            "the cache of another cell",
        ));
    }
    if let Some(d) = &d_outputs {
        check_d_outputs(d, plan, layout.output_width(), cache.time_major)?;
    }
    let d_final = match d_state {
        Some(parts) => {
            layout.check_parts("d_state", parts, plan.batch)?;
            Some(layout.join_parts(parts, plan.batch))
        }
        None => None,
    };
    let (d_w, da_w) = (layout.d_gates, layout.d_aux);
    let (g_w, a_w, input) = (layout.gates, layout.aux, layout.input);
    let gates_kept = layout.keep_gates;
    let out_cols = layout.output_columns();
    let work_per_token = layout.work_per_token;
    let parallel = worth_parallel(plan, work_per_token);
    backward_budget(layout, plan, every, std::mem::size_of::<T>()).check()?;
    let watch = Watch::new(interrupt);
    let (chunk, single) = (plan.chunk_steps(), plan.groups.len() == 1);

    pool::run_watched(parallel, &watch, || {
        let mut d_x = try_zeros::<T>(plan.rows, input, "inputs", "the gathered input gradients")?;
        let mut per_group: Vec<GroupGrads<T>> = plan
            .groups
            .iter()
            .map(|g| GroupGrads {
                d_params: Array1::zeros(layout.d_params),
                d_state: Array2::zeros((g.first_active(), width)),
                sums: cell.deferred_sums(),
            })
            .collect();
        let kept: Vec<Option<&[T]>> = match &cache.checkpoints {
            Some(c) => {
                let all = c.states.as_slice().expect("standard layout");
                let mut at = 0;
                c.group_rows(plan)
                    .into_iter()
                    .map(|rows| {
                        let part = &all[at..at + rows * width];
                        at += rows * width;
                        Some(part)
                    })
                    .collect()
            }
            None => vec![None; plan.groups.len()],
        };
        let work: Vec<_> = plan
            .groups
            .iter()
            .zip(split_groups(plan, &mut d_x))
            .zip(per_group.iter_mut())
            .zip(kept)
            .collect();
        pool::for_each(work, |(((g, d_x_g), gg), kept_g)| {
            let d_params = gg.d_params.as_slice_mut().expect("standard layout");
            let d_run = gg.d_state.as_slice_mut().expect("standard layout");
            // the largest chunk is the first (rows only leave as steps go on)
            let chunk_rows = g.rows_from(0, 0, chunk.min(g.steps())).len();
            let mut d_gates = vec![T::zero(); chunk_rows * d_w];
            let mut d_aux = vec![T::zero(); chunk_rows * da_w];
            let mut scratch = vec![T::zero(); g.first_active() * layout.scratch];
            let mut recompute =
                kept_g.map(|k| (k, SegmentBuffers::new(layout, g, every.unwrap_or(1))));
            let mut ticker = watch.ticker();
            let segments: Vec<(usize, usize)> = match every {
                Some(every) => g.segments(every).collect(),
                None => g.segments(g.steps()).collect(),
            };
            let mut at = kept_g.map_or(0, |k| k.len());
            for &(t0, t1) in segments.iter().rev() {
                // this segment's buffers, from block t0 on
                let (gates, states, aux): (&[T], &[T], &[T]) = match &mut recompute {
                    Some((kept_g, bufs)) => {
                        let n = g.cap(t0) * width;
                        at -= n;
                        bufs.states[..n].copy_from_slice(&kept_g[at..at + n]);
                        // The steps write the running rows only: the padding
                        // rows the products read stay zero, as when kept.
                        bufs.aux.fill(T::zero());
                        let project = Some((&cache.x, single));
                        if !forward_steps(
                            cell,
                            g,
                            (t0, t1),
                            chunk,
                            project,
                            bufs.steps(),
                            &mut ticker,
                        ) {
                            return; // the watch keeps the error
                        }
                        (&bufs.gates, &bufs.states, &bufs.aux)
                    }
                    None => (
                        group_rows(&cache.gates, g, gates_kept),
                        group_rows(&cache.states, g, true),
                        group_rows(&cache.aux, g, true),
                    ),
                };
                for (c0, c1) in chunks(t0, t1, chunk).rev() {
                    let rows = g.rows_from(c0, c0, c1).len();
                    let split = split_units_back(cell, g, c0)
                        .filter(|(sp, _)| single && out_cols.len() == sp.units);
                    if let Some(split) = &split {
                        let chunk_bufs = ChunkBuffers {
                            gates: if gates_kept {
                                &gates[rel_block(g, t0, c0, 0, g_w).start..]
                            } else {
                                &[]
                            },
                            states: &states[rel_block(g, t0, c0, 0, width).start..],
                            aux: &aux[rel_block(g, t0, c0, 0, a_w).start..],
                            d_gates: &mut d_gates,
                            d_state: &mut *d_run,
                            d_params: &mut *d_params,
                            scratch: &mut scratch,
                        };
                        let seeds = Seeds {
                            d_final: d_final.as_ref(),
                            d_outputs: d_outputs.as_ref(),
                        };
                        if !split_chunk_back(
                            cell,
                            g,
                            (c0, c1),
                            split,
                            chunk_bufs,
                            seeds,
                            &mut ticker,
                        ) {
                            return; // the watch keeps the error
                        }
                    }
                    // the steps one after the other (unless split above)
                    for t in (c0..c1).rev().filter(|_| split.is_none()) {
                        let a = g.active[t];
                        if ticker.tick(a.saturating_mul(work_per_token)).is_err() {
                            return; // the watch keeps the error
                        }
                        // The step writes its `a` rows; the block's padding
                        // rows (rows that ended before t) must read zero.
                        let cap = g.cap(t);
                        d_gates[rel_block(g, c0, t, cap, d_w)][a * d_w..].fill(T::zero());
                        d_aux[rel_block(g, c0, t, cap, da_w)][a * da_w..].fill(T::zero());
                        let d_run = &mut d_run[..a * width];
                        seed_finished_rows(g, t, d_run, width, d_final.as_ref());
                        add_step_outputs(g, t, d_run, width, &out_cols, d_outputs.as_ref());
                        cell.backward_step(Backward {
                            rows: a,
                            gates: if gates_kept {
                                &gates[rel_block(g, t0, t, a, g_w)]
                            } else {
                                &[]
                            },
                            prev: &states[rel_block(g, t0, t, a, width)],
                            next: &states[rel_block(g, t0, t + 1, a, width)],
                            aux: &aux[rel_block(g, t0, t, a, a_w)],
                            d_state: d_run,
                            d_gates: &mut d_gates[rel_block(g, c0, t, a, d_w)],
                            d_aux: &mut d_aux[rel_block(g, c0, t, a, da_w)],
                            scratch: &mut scratch[..a * layout.scratch],
                            d_params,
                        });
                    }
                    let in_segment = g.rows_from(t0, c0, c1);
                    let tokens = Tokens {
                        x: rows_view(
                            cache.x.as_slice().expect("standard layout"),
                            g.start[c0]..g.start[c1],
                            input,
                        ),
                        states: rows_view(states, in_segment.clone(), width),
                        gates: if gates_kept {
                            rows_view(gates, in_segment.clone(), g_w)
                        } else {
                            rows_view(&[], 0..0, 0)
                        },
                        aux: rows_view(aux, in_segment, a_w),
                        d_gates: rows_view(&d_gates, 0..rows, d_w),
                        d_aux: rows_view(&d_aux, 0..rows, da_w),
                    };
                    let d_x = rows_view_mut(d_x_g, g.rows_from(0, c0, c1), input);
                    cell.deferred_chunk(tokens, &mut gg.sums, d_x, single);
                }
            }
        });
        watch.result()?;
        // Added in group order, fixed by the shapes: thread-count independent.
        let d_params = per_group
            .iter()
            .fold(Array1::zeros(layout.d_params), |acc, gg| acc + &gg.d_params);
        let mut sums = cell.deferred_sums();
        for gg in &per_group {
            for (sum, part) in sums.iter_mut().zip(&gg.sums) {
                *sum += part;
            }
        }
        let d_initial = initial_state_grads(plan, &per_group, d_final.as_ref(), width);
        let weights = cell.deferred_finish(sums, d_params.view());
        Ok(Grads {
            inputs: scatter(
                plan,
                &d_x,
                0..input,
                cache.time_major,
                (Slot::Token, "the input gradients"),
            )?,
            initial_state: layout.split_parts(d_initial.view()),
            weights,
        })
    })
}

/// One chunk's buffers for [`split_chunk_back`]: the forward buffers from
/// the chunk's first block on (`gates` empty unless kept), the chunk's gate
/// gradients (from its first block; a split cell has no `d_aux`), and the
/// group's running state gradient, small-parameter gradients and step
/// scratch.
struct ChunkBuffers<'a, T> {
    gates: &'a [T],
    states: &'a [T],
    aux: &'a [T],
    d_gates: &'a mut [T],
    d_state: &'a mut [T],
    d_params: &'a mut [T],
    scratch: &'a mut [T],
}

/// The gradients the backward steps start from: the final state's and the
/// outputs' (`None`: zeros).
#[derive(Clone, Copy)]
struct Seeds<'a, 'v, T> {
    d_final: Option<&'a Array2<T>>,
    d_outputs: Option<&'a ArrayView3<'v, T>>,
}

/// The backward steps `c0..c1` of group `g` (the last first) split by units
/// as [`split_units_back`] said, one thread of the pool per slice
/// ([`split::run_back`]): the same values as the serial steps, bit for bit.
/// Each slice seeds and adds the output gradients of its own columns
/// before the cell's first phase. Returns `false` when `ticker` says the
/// call must stop.
fn split_chunk_back<T: Scalar, C: Cell<T> + ?Sized>(
    cell: &C,
    g: &Group,
    (c0, c1): (usize, usize),
    (split, slices): &(UnitSplit, Vec<Range<usize>>),
    bufs: ChunkBuffers<'_, T>,
    seeds: Seeds<'_, '_, T>,
    ticker: &mut Ticker<'_>,
) -> bool {
    let layout = cell.layout();
    let (width, d_w, da_w) = (layout.state_width(), layout.d_gates, layout.d_aux);
    let [p_d, p_s, p_p, p_x] = split.parts;
    let units = split.units;
    assert!(
        p_d * units == d_w
            && p_s * units == width
            && p_p * units == layout.d_params
            && (p_x == 0 || p_x * units == layout.scratch)
            && da_w == 0,
        "{}: backward unit split does not cut the buffers",
        cell.name()
    );
    let out_part = layout.output_columns().start / units;
    // The padding rows of each block (rows that ended before the step) must
    // read zero; the slices write the running rows.
    for t in c0..c1 {
        let (a, cap) = (g.active[t], g.cap(t));
        bufs.d_gates[rel_block(g, c0, t, cap, d_w)][a * d_w..].fill(T::zero());
    }
    let starts: Vec<usize> = (c0..=c1 + 1).map(|k| g.start[k] - g.start[c0]).collect();
    let active = &g.active[c0..c1];
    // one tick per round of the loop: about a step of a slice
    let per_slice = layout.work_per_token / slices.len();
    let scratch: &mut [T] = if p_x == 0 { &mut [] } else { bufs.scratch };
    let gates_w = if bufs.gates.is_empty() {
        0
    } else {
        layout.gates
    };
    split::run_back(
        units,
        split.phases,
        split.late,
        slices,
        slices.len() - 1,
        &starts,
        active,
        [
            Rows {
                data: bufs.gates,
                width: gates_w,
            },
            Rows {
                data: bufs.states,
                width,
            },
            Rows {
                data: bufs.aux,
                width: layout.aux,
            },
        ],
        [
            Buffer {
                data: bufs.d_gates,
                parts: p_d,
            },
            Buffer {
                data: bufs.d_state,
                parts: p_s,
            },
            Buffer {
                data: bufs.d_params,
                parts: p_p,
            },
            Buffer {
                data: scratch,
                parts: p_x,
            },
        ],
        |t: usize| ticker.tick(active[t].saturating_mul(per_slice)).is_ok(),
        |mut step| {
            if step.phase == 0 {
                seed_units(g, c0 + step.step, &mut step, out_part, seeds);
            }
            cell.backward_units(step);
        },
    )
}

/// [`seed_finished_rows`] and [`add_step_outputs`] for one slice's columns
/// of the running gradient at step `t` of group `g` (`out_part`: the state
/// part that is the output, a whole part of the slice's units).
fn seed_units<T: Scalar>(
    g: &Group,
    t: usize,
    step: &mut UnitBack<'_, T>,
    out_part: usize,
    seeds: Seeds<'_, '_, T>,
) {
    let (a, cols) = (step.rows, step.units.clone());
    let parts = step.d_state.parts();
    let units = step.d_state.units();
    let still = g.active.get(t + 1).copied().unwrap_or(0);
    for rank in still..a {
        for p in 0..parts {
            let row = step.d_state.part(rank, p);
            match seeds.d_final {
                Some(ds) => {
                    let src = ds.row(g.rows[rank]);
                    let first = p * units + cols.start;
                    for (r, &v) in row.iter_mut().zip(src.slice(ndarray::s![first..])) {
                        *r = v;
                    }
                }
                None => row.fill(T::zero()),
            }
        }
    }
    if let Some(dy) = seeds.d_outputs {
        let dy_t = dy.index_axis(Axis(0), t);
        for (rank, &b) in g.rows[..a].iter().enumerate() {
            let row = step.d_state.part(rank, out_part);
            let src = dy_t.row(b);
            let src = src.slice(ndarray::s![cols.clone()]);
            match src.as_slice() {
                Some(src) => add_into(row, src),
                None => row.iter_mut().zip(src).for_each(|(r, &v)| *r += v),
            }
        }
    }
}

/// Group `g`'s rows of a whole-call slot buffer (empty unless `kept`).
fn group_rows<'a, T>(buf: &'a Array2<T>, g: &Group, kept: bool) -> &'a [T] {
    if !kept {
        return &[];
    }
    let width = buf.ncols();
    let rows = g.slots();
    &buf.as_slice().expect("standard layout")[rows.start * width..rows.end * width]
}

/// Checks `d_outputs` (a `[T, B, width]` view) against the forward call.
fn check_d_outputs<T>(
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

/// Rows of `g` whose last step is `t` start their running gradient `d`
/// (`[a, W]`) from the final state's gradient (zeros without one); rows still
/// running keep theirs.
fn seed_finished_rows<T: Scalar>(
    g: &Group,
    t: usize,
    d: &mut [T],
    width: usize,
    d_final: Option<&Array2<T>>,
) {
    let still = g.active.get(t + 1).copied().unwrap_or(0);
    for rank in still..g.active[t] {
        let row = &mut d[rank * width..(rank + 1) * width];
        match d_final {
            Some(ds) => {
                for (r, &v) in row.iter_mut().zip(ds.row(g.rows[rank])) {
                    *r = v;
                }
            }
            None => row.fill(T::zero()),
        }
    }
}

/// `d[:a, output columns] += d_outputs[t, rows]` for the rows of `g` active
/// at step `t`.
fn add_step_outputs<T: Scalar>(
    g: &Group,
    t: usize,
    d: &mut [T],
    width: usize,
    cols: &Range<usize>,
    d_outputs: Option<&ArrayView3<T>>,
) {
    if let Some(dy) = d_outputs {
        let dy_t = dy.index_axis(Axis(0), t);
        for (rank, &b) in g.rows[..g.active[t]].iter().enumerate() {
            let row = &mut d[rank * width + cols.start..rank * width + cols.end];
            let src = dy_t.row(b);
            match src.as_slice() {
                Some(src) => add_into(row, src),
                None => row.iter_mut().zip(src).for_each(|(r, &v)| *r += v),
            }
        }
    }
}

/// `row += src`.
#[inline]
fn add_into<T: Scalar>(row: &mut [T], src: &[T]) {
    for (r, &v) in row.iter_mut().zip(src) {
        *r += v;
    }
}

/// The gradient of the initial state `[B, W]`: what the reverse loop left in
/// each group's running gradient for its rows, and the final state's
/// gradient itself for rows of length 0 (they never ran).
fn initial_state_grads<T: Scalar>(
    plan: &Plan,
    per_group: &[GroupGrads<T>],
    d_final: Option<&Array2<T>>,
    width: usize,
) -> Array2<T> {
    let mut out = match d_final {
        Some(d) => d.clone(),
        None => Array2::zeros((plan.batch, width)),
    };
    for (g, gg) in plan.groups.iter().zip(per_group) {
        for (rank, &b) in g.rows[..g.first_active()].iter().enumerate() {
            out.row_mut(b).assign(&gg.d_state.row(rank));
        }
    }
    out
}
