//! Backpropagation through time, for every cell.

use super::forward::Cache;
use super::plan::{Group, Plan};
use super::slots::{block, global_block, scatter, split_groups, worth_parallel, Slot};
use crate::error::{check_shape, Budget, Error, Interrupt, Result, Uninterrupted};
use crate::kernels::rows::try_zeros;
use crate::kernels::scalar::Scalar;
use crate::pool::{self, Watch};
use crate::step::params::Named;
use crate::step::{Backward, Cell, Deferred, Layout};
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
}

/// Backpropagates `d_outputs` (`[T, B, out]` view, see
/// [`super::time_major_view`]) and `d_state` (the final state's gradient,
/// part by part) through the forward pass of `cell` that filled `cache`.
/// Either may be `None` (zeros). Gradients arriving at padded positions
/// (`t >= len`) are ignored: those outputs are constant zeros.
///
/// ```text
/// per group, on its own thread, d_state [active[0], W] zeroed once:
///   for t = last..0:  rows ending at t start from d_state (or zeros)
///                     d_state[:a, output columns] += dY_t
///                     cell.backward_step(a rows: → d_gates block t, d_state ← state before t)
/// d initial_state = what is left in d_state (d_state itself for rows of length 0)
/// cell.deferred(X, S, gates, aux, d_gates, d_aux, Σ d_params)   the big products
/// d inputs = scatter(dX)
/// ```
pub fn backward<T: Scalar, C: Cell<T> + ?Sized>(
    cell: &C,
    cache: &Cache<T>,
    d_outputs: Option<ArrayView3<T>>,
    d_state: Option<&[ArrayView2<T>]>,
) -> Result<Grads<T>> {
    backward_interruptible(cell, cache, d_outputs, d_state, &Uninterrupted)
}

/// Adds every buffer a backward pass allocates to `budget`.
fn backward_budget(layout: &Layout, plan: &Plan, elem: usize) -> Budget {
    let mut budget = Budget::new("inputs");
    let (b, t, w) = (plan.batch, plan.time, layout.state_width());
    budget.add("the gate gradients", &[plan.rows, layout.d_gates], elem);
    budget.add(
        "the kept values' gradients",
        &[plan.rows, layout.d_aux],
        elem,
    );
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
    if cache.x.ncols() != layout.input || cache.states.ncols() != layout.state_width() {
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
    let width = layout.state_width();
    let (d_w, da_w, s_w) = (layout.d_gates, layout.d_aux, layout.scratch);
    let gates_kept = layout.keep_gates;
    let out_cols = layout.output_columns();
    let work_per_token = layout.work_per_token;
    let parallel = worth_parallel(plan, work_per_token);
    backward_budget(layout, plan, std::mem::size_of::<T>()).check()?;
    let watch = Watch::new(interrupt);

    pool::run_watched(parallel, &watch, || {
        let mut d_gates = try_zeros::<T>(plan.rows, d_w, "inputs", "the gate gradients")?;
        let mut d_aux = try_zeros::<T>(plan.rows, da_w, "inputs", "the kept values' gradients")?;
        let mut per_group: Vec<GroupGrads<T>> = plan
            .groups
            .iter()
            .map(|g| GroupGrads {
                d_params: Array1::zeros(layout.d_params),
                d_state: Array2::zeros((g.first_active(), width)),
            })
            .collect();
        let work: Vec<_> = plan
            .groups
            .iter()
            .zip(split_groups(plan, &mut d_gates))
            .zip(split_groups(plan, &mut d_aux))
            .zip(per_group.iter_mut())
            .collect();
        pool::for_each(work, |(((g, d_gates_g), d_aux_g), gg)| {
            let d_params = gg.d_params.as_slice_mut().expect("standard layout");
            let d_run = gg.d_state.as_slice_mut().expect("standard layout");
            let mut scratch = vec![T::zero(); g.first_active() * s_w];
            let mut ticker = watch.ticker();
            for t in (0..g.steps()).rev() {
                let a = g.active[t];
                if ticker.tick(a.saturating_mul(work_per_token)).is_err() {
                    return; // the watch keeps the error
                }
                let d_run = &mut d_run[..a * width];
                seed_finished_rows(g, t, d_run, width, d_final.as_ref());
                add_step_outputs(g, t, d_run, width, &out_cols, d_outputs.as_ref());
                cell.backward_step(Backward {
                    rows: a,
                    gates: if gates_kept {
                        global_block(&cache.gates, g, t, a)
                    } else {
                        &[]
                    },
                    prev: global_block(&cache.states, g, t, a),
                    next: global_block(&cache.states, g, t + 1, a),
                    aux: global_block(&cache.aux, g, t, a),
                    d_state: d_run,
                    d_gates: &mut d_gates_g[block(g, t, a, d_w)],
                    d_aux: &mut d_aux_g[block(g, t, a, da_w)],
                    scratch: &mut scratch[..a * s_w],
                    d_params,
                });
            }
        });
        watch.result()?;
        // Added in group order, fixed by the shapes: thread-count independent.
        let d_params = per_group
            .iter()
            .fold(Array1::zeros(layout.d_params), |acc, gg| acc + &gg.d_params);
        let d_initial = initial_state_grads(plan, &per_group, d_final.as_ref(), width);
        let grads = cell.deferred(Deferred {
            x: cache.x.view(),
            states: cache.states.view(),
            gates: cache.gates.view(),
            aux: cache.aux.view(),
            d_gates: d_gates.view(),
            d_aux: d_aux.view(),
            d_params: d_params.view(),
            input_columns: layout.input,
        });
        debug_assert_eq!(grads.inputs.dim(), (plan.rows, layout.input));
        Ok(Grads {
            inputs: scatter(
                plan,
                &grads.inputs,
                0..layout.input,
                cache.time_major,
                (Slot::Token, "the input gradients"),
            )?,
            initial_state: layout.split_parts(d_initial.view()),
            weights: grads.weights,
        })
    })
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
