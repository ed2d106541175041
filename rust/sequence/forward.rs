//! The forward time loop, for every cell.

use super::plan::{Checkpoint, Extent, Group, Plan};
use super::segment::{forward_steps, rel_block, Steps};
use super::slots::{
    final_state, gather_group_rows, gather_inputs, scatter, split_groups, worth_parallel, Slot,
};
use crate::error::{Budget, Error, Interrupt, Result, Uninterrupted};
use crate::kernels::filling::{Filling, Unfilled};
use crate::kernels::rows::try_zeros;
use crate::kernels::scalar::Scalar;
use crate::pool::{self, Watch};
use crate::step::{Cell, Layout, Prepared};
use ndarray::{Array2, Array3, ArrayView2, ArrayView3};

/// What the forward pass keeps for backpropagation.
#[derive(Debug, Clone)]
pub struct Cache<T> {
    /// Where each (row, step) lives.
    pub plan: Plan,
    /// Whether the caller's arrays are `[T, B, …]`.
    pub time_major: bool,
    /// `[R, I]`: the gathered inputs.
    pub x: Array2<T>,
    /// `[R, W]`: the states; block `k` is the state after step `k-1`
    /// (`[0, W]` when checkpointed).
    pub states: Array2<T>,
    /// `[R, G]`: the gate buffer as the steps left it (`[0, 0]` when the
    /// cell's backward does not read it, `[0, G]` when checkpointed).
    pub gates: Array2<T>,
    /// `[R, A]`: what the steps kept in `aux` (`[0, A]` when checkpointed).
    pub aux: Array2<T>,
    /// The checkpoints, when the forward pass kept only those.
    pub checkpoints: Option<Checkpoints<T>>,
}

/// The states a checkpointed forward pass keeps: each group's state block
/// at the first step of each of its segments.
#[derive(Debug, Clone)]
pub struct Checkpoints<T> {
    /// Steps per segment (a whole number of chunks,
    /// [`Plan::segment_steps`]).
    pub every: usize,
    /// `[Σ rows, W]`: group after group, segment after segment, the state
    /// block `t0` of segment `(t0, t1)` (all `cap[t0]` rows).
    pub states: Array2<T>,
}

impl<T> Checkpoints<T> {
    /// Each group's rows in [`Checkpoints::states`], in group order.
    pub fn group_rows(&self, plan: &Plan) -> Vec<usize> {
        plan.groups
            .iter()
            .map(|g| g.checkpoint_rows(self.every))
            .collect()
    }
}

/// What [`forward()`] returns.
#[derive(Debug, Clone)]
pub struct Output<T> {
    /// `[B, T, out]` (or `[T, B, out]` when time-major); zero past each length.
    pub outputs: Array3<T>,
    /// The final state's parts, each `[B, width]`: each row's state after
    /// its last step (its initial state for length 0).
    pub state: Vec<Array2<T>>,
    /// Everything backpropagation needs.
    pub cache: Cache<T>,
}

/// Runs `cell` over a batch of sequences.
///
/// `x` is `[T, B, I]` (any strides; see [`super::time_major_view`]);
/// `initial` holds the initial state's parts, each `[B, width]`; `lengths`
/// (each in `[0, T]`) defaults to `T` for every row; `time_major` chooses the
/// layout of the returned outputs.
///
/// Every buffer of the call is sized first, with checked arithmetic: when
/// they would not fit in memory the call fails with
/// [`Error::OutOfMemory`] (naming `inputs`) before allocating any; the large
/// ones are then allocated fallibly (the same error when the allocator
/// refuses). A call on zero-byte inputs costs time in its batch and time
/// axes only where it has buffers that large.
///
/// ```text
/// plan = Plan::new(B, T, lengths)                rows sorted, grouped
/// X    = gather_inputs(plan, x)      [R, I]      slot layout
/// per group, on its own thread:
///     state block 0 ← initial state
///     per chunk of steps: Z chunk = X chunk @ W_x     one product per chunk
///         for t: cell.forward_step(a rows: Z block t, state blocks t → t+1, aux block t)
/// outputs = scatter(S's output columns); state = final_state(...)
/// ```
pub fn forward<T: Scalar, C: Cell<T> + ?Sized>(
    cell: &C,
    x: ArrayView3<T>,
    initial: &[ArrayView2<T>],
    lengths: Option<&[i64]>,
    time_major: bool,
) -> Result<Output<T>> {
    run(
        cell,
        None,
        (x, initial, lengths, time_major),
        None,
        &Uninterrupted,
    )
}

/// [`forward()`] keeping only checkpoints for backpropagation (see
/// [`Checkpoint`]): the backward pass recomputes each segment's steps from
/// its checkpoint. Outputs, final state and every gradient are bitwise those
/// of [`forward()`]. A call whose rows run at most one chunk of steps
/// ([`Plan::chunk_steps`]) keeps everything: it would recompute all its
/// steps to save nothing.
pub fn forward_checkpointed<T: Scalar, C: Cell<T> + ?Sized>(
    cell: &C,
    x: ArrayView3<T>,
    initial: &[ArrayView2<T>],
    lengths: Option<&[i64]>,
    time_major: bool,
    checkpoint: Checkpoint,
) -> Result<Output<T>> {
    run(
        cell,
        None,
        (x, initial, lengths, time_major),
        Some(checkpoint),
        &Uninterrupted,
    )
}

/// Token rows up to which the input projection of a [`Prepared`] cell runs
/// over its packed input kernel: the general GEMM repacks its right-hand side
/// on every call, which dominates a call of a step or two (a quarter of an
/// LSTM's one-step `dynamic_rnn` at B = 1, H = 256). The choice depends on
/// the shapes only.
pub const PACKED_INPUT_ROWS: usize = 64;

/// [`forward()`] on a [`Prepared`] cell: short calls use its packed input
/// kernel. With `checkpoint`, as [`forward_checkpointed`] (a call of at
/// most [`PACKED_INPUT_ROWS`] token rows keeps everything too: its packed
/// input projection is not what a backward pass would recompute).
/// `interrupt` is polled between time steps (see
/// [`crate::error::Interrupt`]); when it fails, so does the call.
pub fn forward_prepared<T: Scalar>(
    prepared: &Prepared<T>,
    x: ArrayView3<T>,
    initial: &[ArrayView2<T>],
    lengths: Option<&[i64]>,
    time_major: bool,
    checkpoint: Option<Checkpoint>,
    interrupt: &dyn Interrupt,
) -> Result<Output<T>> {
    run(
        prepared.cell(),
        Some(prepared),
        (x, initial, lengths, time_major),
        checkpoint,
        interrupt,
    )
}

/// Adds every buffer a forward pass allocates to `budget`; with segments of
/// `every` steps, what a checkpointed one allocates (bounds).
fn forward_budget(
    layout: &Layout,
    extent: &Extent,
    time_major: bool,
    every: Option<usize>,
    elem: usize,
) -> Budget {
    let mut budget = Budget::new("inputs");
    extent.add_plan(&mut budget);
    let rows = extent.rows().unwrap_or(usize::MAX);
    let (b, t, w) = (extent.batch, extent.time, layout.state_width());
    budget.add("the gathered inputs", &[rows, layout.input], elem);
    match every {
        None => {
            budget.add("the gate buffer", &[rows, layout.gates], elem);
            budget.add("the states", &[rows, w], elem);
            budget.add("the steps' kept values", &[rows, layout.aux], elem);
        }
        Some(every) => {
            let out = layout.output_width();
            budget.add("the outputs' slot rows", &[rows, out], elem);
            let segments = extent.longest.div_ceil(every.max(1)).saturating_add(1);
            budget.add("the checkpoints", &[segments, b, w], elem);
            let seg_rows = every.saturating_add(1);
            let per_token = layout.gates + w + layout.aux;
            budget.add("a segment's buffers", &[seg_rows, b, per_token], elem);
        }
    }
    budget.add("the step scratch", &[b, layout.scratch], elem);
    budget.add("the initial and final states", &[2, b, w], elem);
    let out = layout.output_width();
    let dims = if time_major { [t, b, out] } else { [b, t, out] };
    budget.add("the outputs", &dims, elem);
    budget
}

/// A call's arrays: `x` (`[T, B, I]` view), the initial state's parts, the
/// lengths, and whether the caller's layout is time-major.
type Call<'a, 'b, T> = (
    ArrayView3<'a, T>,
    &'b [ArrayView2<'a, T>],
    Option<&'b [i64]>,
    bool,
);

fn run<T: Scalar, C: Cell<T> + ?Sized>(
    cell: &C,
    prepared: Option<&Prepared<T>>,
    (x, initial, lengths, time_major): Call<'_, '_, T>,
    checkpoint: Option<Checkpoint>,
    interrupt: &dyn Interrupt,
) -> Result<Output<T>> {
    let layout = cell.layout();
    let (time, batch, input) = x.dim();
    if input != layout.input {
        let mut got = [time, batch, input];
        let mut want = ["T".to_string(), "B".to_string(), layout.input.to_string()];
        if !time_major {
            got.swap(0, 1);
            want.swap(0, 1);
        }
        return Err(Error::invalid(
            "inputs",
            format!(
                "shape [{}] (I = {}, the cell's input size)",
                want.join(", "),
                layout.input
            ),
            format!("shape {got:?}"),
        ));
    }
    let extent = Extent::new(batch, time, lengths)?;
    layout.check_parts("initial_state", initial, batch)?;
    // A short call on a prepared cell projects its inputs with the packed
    // kernel, which a recomputation would not. A call of at most one chunk
    // of steps would recompute it all to save nothing. Both keep everything.
    let packed = prepared.is_some() && extent.rows().is_some_and(|r| r <= PACKED_INPUT_ROWS);
    let chunk = super::plan::chunk_steps(batch);
    let checkpoint = checkpoint.filter(|_| !packed && extent.longest > chunk);
    // the plan's segment length, from the sizes alone
    let every = checkpoint.map(|c| super::plan::segment_steps(c, batch, extent.longest));
    // Absurd sizes fail here, before anything is allocated.
    forward_budget(layout, &extent, time_major, every, std::mem::size_of::<T>()).check()?;
    let plan = Plan::new(batch, time, lengths)?;
    let initial = layout.join_parts(initial, batch);
    let parallel = worth_parallel(&plan, layout.work_per_token);
    let watch = Watch::new(interrupt);
    // One entry into the pool per call: every hand-off to the pool's
    // workers costs a wake-up, which on a small problem is a sizeable part
    // of the call (`benches/README.md`).
    match checkpoint {
        None => {
            let (xs, states, gates, aux, outputs) = pool::run_watched(parallel, &watch, || {
                let xs = gather_inputs(&plan, x)?;
                let (states, gates, aux) = keep_all(
                    cell,
                    prepared.filter(|_| packed),
                    &plan,
                    &xs,
                    &initial,
                    &watch,
                )?;
                let outputs = scatter(
                    &plan,
                    &states,
                    layout.output_columns(),
                    time_major,
                    (Slot::State, "the outputs"),
                )?;
                Ok::<_, Error>((xs, states, gates, aux, outputs))
            })?;
            let gates = if layout.keep_gates {
                gates
            } else {
                Array2::zeros((0, 0))
            };
            let state = layout.split_parts(final_state(&plan, &states, &initial).view());
            Ok(Output {
                outputs,
                state,
                cache: Cache {
                    plan,
                    time_major,
                    x: xs,
                    states,
                    gates,
                    aux,
                    checkpoints: None,
                },
            })
        }
        Some(checkpoint) => {
            let every = plan.segment_steps(checkpoint);
            let (xs, kept, outputs, finals) = pool::run_watched(parallel, &watch, || {
                let xs = gather_inputs(&plan, x)?;
                let (kept, slots, finals) =
                    keep_checkpoints(cell, &plan, &xs, &initial, every, &watch)?;
                let outputs = scatter(
                    &plan,
                    &slots,
                    0..layout.output_width(),
                    time_major,
                    (Slot::State, "the outputs"),
                )?;
                Ok::<_, Error>((xs, kept, outputs, finals))
            })?;
            let state = layout.split_parts(finals.view());
            let width = layout.state_width();
            Ok(Output {
                outputs,
                state,
                cache: Cache {
                    plan,
                    time_major,
                    x: xs,
                    states: Array2::zeros((0, width)),
                    gates: Array2::zeros((0, layout.gates)),
                    aux: Array2::zeros((0, layout.aux)),
                    checkpoints: Some(Checkpoints {
                        every,
                        states: kept,
                    }),
                },
            })
        }
    }
}

/// The forward loop keeping every step: returns the states, the gate buffer
/// and the kept values, each `[R, …]`. With `packed`, the input projection
/// runs up front over its packed input kernel; else chunk by chunk in each
/// group's loop ([`forward_steps`]).
fn keep_all<T: Scalar, C: Cell<T> + ?Sized>(
    cell: &C,
    packed: Option<&Prepared<T>>,
    plan: &Plan,
    xs: &Array2<T>,
    initial: &Array2<T>,
    watch: &Watch<'_>,
) -> Result<(Array2<T>, Array2<T>, Array2<T>)> {
    let layout = cell.layout();
    let (width, s_w) = (layout.state_width(), layout.scratch);
    // Never zeroed first: the steps fill them front to back (see `Steps`).
    // A short call on a prepared cell (at most `PACKED_INPUT_ROWS` rows)
    // writes its whole gate buffer with one product up front instead.
    let mut projected = packed.map(|p| {
        let mut gates = Array2::zeros((plan.rows, layout.gates));
        p.packed_input().gemm(false, xs.view(), gates.view_mut());
        gates
    });
    let mut fresh = match projected {
        Some(_) => None,
        None => Some(Unfilled::new(
            plan.rows,
            layout.gates,
            "inputs",
            "the gate buffer",
        )?),
    };
    let mut states = Unfilled::new(plan.rows, width, "inputs", "the states")?;
    let mut aux = Unfilled::new(plan.rows, layout.aux, "inputs", "the steps' kept values")?;
    let group_rows = || plan.groups.iter().map(|g| g.slots().len());
    let gate_parts: Vec<Filling<'_, T>> = match (&mut projected, &mut fresh) {
        (Some(gates), _) => split_groups(plan, gates)
            .into_iter()
            .map(Filling::init)
            .collect(),
        (None, fresh) => fresh.as_mut().expect("unprojected").parts(group_rows()),
    };
    watch.result()?;
    let (chunk, single) = (plan.chunk_steps(), plan.groups.len() == 1);
    let project = packed.is_none().then_some((xs, single));
    let work: Vec<_> = plan
        .groups
        .iter()
        .zip(gate_parts)
        .zip(states.parts(group_rows()))
        .zip(aux.parts(group_rows()))
        .collect();
    pool::for_each(work, |(((g, gates_g), mut states_g), aux_g)| {
        states_g.zero_to(g.first_active() * width);
        gather_group_rows(g, states_g.init_mut(), initial);
        let mut scratch = vec![T::zero(); g.first_active() * s_w];
        let bufs = Steps {
            gates: gates_g,
            states: states_g,
            aux: aux_g,
            scratch: &mut scratch,
        };
        let steps = (0, g.steps());
        forward_steps(cell, g, steps, chunk, project, bufs, &mut watch.ticker());
    });
    watch.result()?;
    let gates = match (projected, fresh) {
        (Some(gates), _) => gates,
        (None, fresh) => fresh.expect("unprojected").into_init(),
    };
    Ok((states.into_init(), gates, aux.into_init()))
}

/// A group's buffers for one segment of `every` steps (its first segment
/// is its largest: rows only leave as steps go on).
pub(super) struct SegmentBuffers<T> {
    pub gates: Vec<T>,
    pub states: Vec<T>,
    pub aux: Vec<T>,
    pub scratch: Vec<T>,
}

impl<T: Scalar> SegmentBuffers<T> {
    /// Sized for group `g`'s segments of `every` steps.
    pub fn new(layout: &Layout, g: &Group, every: usize) -> Self {
        let t1 = every.min(g.steps());
        let tokens = g.rows_from(0, 0, t1).len();
        let states = g.rows_from(0, 0, (t1 + 1).min(g.start.len() - 1)).len();
        SegmentBuffers {
            gates: vec![T::zero(); tokens * layout.gates],
            states: vec![T::zero(); states * layout.state_width()],
            aux: vec![T::zero(); tokens * layout.aux],
            scratch: vec![T::zero(); g.first_active() * layout.scratch],
        }
    }

    /// The buffers as [`forward_steps`] takes them.
    pub fn steps(&mut self) -> Steps<'_, T> {
        Steps {
            gates: Filling::init(&mut self.gates),
            states: Filling::init(&mut self.states),
            aux: Filling::init(&mut self.aux),
            scratch: &mut self.scratch,
        }
    }
}

/// The forward loop keeping checkpoints only, segments of `every` steps:
/// returns the checkpoints ([`Checkpoints::states`]), the outputs in the
/// slot layout (`[R, out]`, the output columns of the states) and the final
/// state `[B, W]`.
fn keep_checkpoints<T: Scalar, C: Cell<T> + ?Sized>(
    cell: &C,
    plan: &Plan,
    xs: &Array2<T>,
    initial: &Array2<T>,
    every: usize,
    watch: &Watch<'_>,
) -> Result<(Array2<T>, Array2<T>, Array2<T>)> {
    let layout = cell.layout();
    let width = layout.state_width();
    let (out_cols, out_w) = (layout.output_columns(), layout.output_width());
    let per_group: Vec<usize> = plan
        .groups
        .iter()
        .map(|g| g.checkpoint_rows(every))
        .collect();
    let total = per_group.iter().sum();
    let mut kept = try_zeros::<T>(total, width, "inputs", "the checkpoints")?;
    let mut slots = try_zeros::<T>(plan.rows, out_w, "inputs", "the outputs' slot rows")?;
    let mut finals: Vec<Array2<T>> = plan
        .groups
        .iter()
        .map(|g| Array2::zeros((g.first_active(), width)))
        .collect();
    watch.result()?;
    let (chunk, single) = (plan.chunk_steps(), plan.groups.len() == 1);
    let work: Vec<_> = plan
        .groups
        .iter()
        .zip(split_rows(&mut kept, &per_group))
        .zip(split_groups(plan, &mut slots))
        .zip(finals.iter_mut())
        .collect();
    pool::for_each(work, |(((g, kept_g), slots_g), final_g)| {
        let mut bufs = SegmentBuffers::new(layout, g, every);
        gather_group_rows(g, &mut bufs.states, initial);
        let mut ticker = watch.ticker();
        let mut at = 0; // the next checkpoint's first element in kept_g
        let mut last = 0; // the previous segment's first step
        for (t0, t1) in g.segments(every) {
            if t0 > 0 {
                // block t0 ends the previous segment and starts this one
                let from = rel_block(g, last, t0, g.cap(t0), width);
                bufs.states.copy_within(from, 0);
            }
            let n = g.cap(t0) * width;
            kept_g[at..at + n].copy_from_slice(&bufs.states[..n]);
            at += n;
            let project = Some((xs, single));
            if !forward_steps(cell, g, (t0, t1), chunk, project, bufs.steps(), &mut ticker) {
                return; // the watch keeps the error
            }
            for t in t0..t1 {
                let a = g.active[t];
                let next = &bufs.states[rel_block(g, t0, t + 1, a, width)];
                let to = &mut slots_g[rel_block(g, 0, t + 1, a, out_w)];
                for (o, s) in to
                    .chunks_exact_mut(out_w.max(1))
                    .zip(next.chunks_exact(width))
                {
                    o.copy_from_slice(&s[out_cols.clone()]);
                }
                // rows whose last step is t
                let still = g.active.get(t + 1).copied().unwrap_or(0);
                for rank in still..a {
                    let row = &next[rank * width..(rank + 1) * width];
                    final_g
                        .row_mut(rank)
                        .iter_mut()
                        .zip(row)
                        .for_each(|(d, &v)| *d = v);
                }
            }
            last = t0;
        }
    });
    watch.result()?;
    let mut state = initial.clone();
    for (g, final_g) in plan.groups.iter().zip(&finals) {
        for (rank, &b) in g.rows[..g.first_active()].iter().enumerate() {
            state.row_mut(b).assign(&final_g.row(rank));
        }
    }
    Ok((kept, slots, state))
}

/// Splits the rows of a standard-layout `[R, C]` array into consecutive
/// mutable slices of `rows[i]` rows each.
pub(super) fn split_rows<'a, T>(a: &'a mut Array2<T>, rows: &[usize]) -> Vec<&'a mut [T]> {
    let cols = a.ncols();
    let mut rest = a.as_slice_mut().expect("standard layout");
    let mut out = Vec::with_capacity(rows.len());
    for &r in rows {
        let (head, tail) = rest.split_at_mut(r * cols);
        out.push(head);
        rest = tail;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::basic_rnn::BasicRnn;
    use crate::error::{Error, INTERRUPT_PERIOD};
    use crate::kernels::activation::Activation;
    use crate::sequence::backward::backward_interruptible;
    use ndarray::{Array1, Array3};
    use std::time::{Duration, Instant};

    fn cell(input: usize, units: usize) -> BasicRnn<f32> {
        let kernel = Array2::from_shape_fn((input + units, units), |(i, j)| {
            ((i * 7 + j * 3) % 11) as f32 / 11.0 - 0.5
        });
        BasicRnn::new(Activation::Tanh, kernel.view(), Array1::zeros(units).view()).unwrap()
    }

    /// Item: a zero-width input with a huge time axis (or batch) aborted the
    /// process in `Plan::new`, or spun there for minutes; now the sizes are
    /// checked first and the call fails at once.
    #[test]
    fn absurd_sizes_fail_at_once_without_allocating() {
        let c = cell(0, 3);
        let cases: [(usize, usize, Option<&[i64]>); 5] = [
            (1 << 40, 1, None),
            (1 << 31, 1, None),
            (1 << 20, 1 << 20, None),
            (1 << 40, 1, Some(&[0])), // no steps, but the outputs [1, 2**40, 3]
            (isize::MAX as usize / 8, 4, None),
        ];
        for (time, batch, lengths) in cases {
            let x = ArrayView3::<f32>::from_shape((time, batch, 0), &[]).unwrap();
            let h0 = Array2::<f32>::zeros((batch.min(1 << 20), 3));
            let h0 = h0.slice(ndarray::s![..batch.min(1 << 20), ..]);
            let started = Instant::now();
            let e = forward(&c, x, &[h0], lengths, true).unwrap_err();
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{time} x {batch}"
            );
            if batch <= 1 << 20 {
                let msg = e.to_string();
                assert!(
                    matches!(e, Error::OutOfMemory { .. })
                        && msg.starts_with("inputs: the call needs"),
                    "{msg}"
                );
            }
        }
    }

    #[test]
    fn plans_are_linear_in_batch_and_steps() {
        let started = Instant::now();
        let p = Plan::new(1 << 16, 1 << 16, None).unwrap();
        assert_eq!(p.groups.len(), 8);
        assert!(started.elapsed() < Duration::from_secs(2));
        let e = Extent::new(3, 5, Some(&[5, 0, 2])).unwrap();
        assert_eq!(
            (e.longest, e.tokens, e.running, e.rows()),
            (5, 7, 2, Some(9))
        );
        assert_eq!(Plan::new(3, 5, Some(&[5, 0, 2])).unwrap().rows, 9);
    }

    /// A long call: B = 1, H = 512, 20,000 steps (about a second).
    fn long_case() -> (BasicRnn<f32>, Array3<f32>, Array2<f32>) {
        let x = Array3::from_shape_fn((20_000, 1, 1), |(t, _, _)| (t % 7) as f32 * 0.1);
        (cell(1, 512), x, Array2::zeros((1, 512)))
    }

    /// Item: Ctrl-C could not stop a long call. The hook is polled between
    /// steps (from the calling thread, also while the pool runs the loop),
    /// and its error stops the forward and the backward pass.
    #[test]
    fn the_interrupt_hook_stops_forward_and_backward() {
        let (c, x, h0) = long_case();
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let stop = || {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err(Error::Interrupted)
        };
        let started = Instant::now();
        let e = run(&c, None, (x.view(), &[h0.view()], None, true), None, &stop).unwrap_err();
        assert_eq!(e, Error::Interrupted);
        assert!(
            started.elapsed() < INTERRUPT_PERIOD * 4,
            "{:?}",
            started.elapsed()
        );
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);

        let go_on = || Ok(());
        let f = run(&c, None, (x.view(), &[h0.view()], None, true), None, &go_on).unwrap();
        let plain = forward(&c, x.view(), &[h0.view()], None, true).unwrap();
        assert_eq!(f.outputs, plain.outputs, "a hook never changes results");
        let started = Instant::now();
        let e =
            backward_interruptible(&c, &f.cache, Some(f.outputs.view()), None, &stop).unwrap_err();
        assert_eq!(e, Error::Interrupted);
        assert!(
            started.elapsed() < INTERRUPT_PERIOD * 4,
            "{:?}",
            started.elapsed()
        );

        // Checkpointed: the forward loop and the backward pass's
        // recomputation stop too.
        let every = Some(Checkpoint::Every(2048));
        let call = (x.view(), &[h0.view()][..], None, true);
        let started = Instant::now();
        let e = run(&c, None, call, every, &stop).unwrap_err();
        assert_eq!(e, Error::Interrupted);
        assert!(started.elapsed() < INTERRUPT_PERIOD * 4);
        let f = run(&c, None, call, every, &go_on).unwrap();
        assert!(f.cache.checkpoints.is_some());
        let started = Instant::now();
        let e =
            backward_interruptible(&c, &f.cache, Some(f.outputs.view()), None, &stop).unwrap_err();
        assert_eq!(e, Error::Interrupted);
        assert!(started.elapsed() < INTERRUPT_PERIOD * 4);
    }
}
