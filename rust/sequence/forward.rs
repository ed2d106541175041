//! The forward time loop, for every cell.

use super::plan::{Extent, Plan};
use super::slots::{
    block, final_state, gather_group_rows, gather_inputs, scatter, split_groups, worth_parallel,
    Slot,
};
use crate::error::{Budget, Error, Interrupt, Result, Uninterrupted};
use crate::kernels::gemm::try_par_product;
use crate::kernels::rows::try_zeros;
use crate::kernels::scalar::Scalar;
use crate::pool::{self, Watch};
use crate::step::{Cell, Forward, Layout, Prepared};
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
    /// `[R, W]`: the states; block `k` is the state after step `k-1`.
    pub states: Array2<T>,
    /// `[R, G]`: the gate buffer as the steps left it (`[0, 0]` when the
    /// cell's backward does not read it).
    pub gates: Array2<T>,
    /// `[R, A]`: what the steps kept in `aux`.
    pub aux: Array2<T>,
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
/// Z    = X @ W_x          (par_gemm) [R, G]      one product for all steps
/// per group, on its own thread:
///     state block 0 ← initial state
///     for t: cell.forward_step(a rows: Z block t, state blocks t → t+1, aux block t)
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
        &Uninterrupted,
    )
}

/// Token rows up to which the input projection of a [`Prepared`] cell runs
/// over its packed input kernel: the general GEMM repacks its right-hand side
/// on every call, which dominates a call of a step or two (a quarter of an
/// LSTM's one-step `dynamic_rnn` at B = 1, H = 256). The choice depends on
/// the shapes only.
const PACKED_INPUT_ROWS: usize = 64;

/// [`forward()`] on a [`Prepared`] cell: short calls use its packed input
/// kernel. `interrupt` is polled between time steps (see
/// [`crate::error::Interrupt`]); when it fails, so does the call.
pub fn forward_prepared<T: Scalar>(
    prepared: &Prepared<T>,
    x: ArrayView3<T>,
    initial: &[ArrayView2<T>],
    lengths: Option<&[i64]>,
    time_major: bool,
    interrupt: &dyn Interrupt,
) -> Result<Output<T>> {
    run(
        prepared.cell(),
        Some(prepared),
        (x, initial, lengths, time_major),
        interrupt,
    )
}

/// Adds every buffer a forward pass allocates to `budget`.
fn forward_budget(layout: &Layout, extent: &Extent, time_major: bool, elem: usize) -> Budget {
    let mut budget = Budget::new("inputs");
    extent.add_plan(&mut budget);
    let rows = extent.rows().unwrap_or(usize::MAX);
    let (b, t) = (extent.batch, extent.time);
    budget.add("the gathered inputs", &[rows, layout.input], elem);
    budget.add("the gate buffer", &[rows, layout.gates], elem);
    budget.add("the states", &[rows, layout.state_width()], elem);
    budget.add("the steps' kept values", &[rows, layout.aux], elem);
    budget.add("the step scratch", &[b, layout.scratch], elem);
    budget.add(
        "the initial and final states",
        &[2, b, layout.state_width()],
        elem,
    );
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
    // Absurd sizes fail here, before anything is allocated.
    forward_budget(layout, &extent, time_major, std::mem::size_of::<T>()).check()?;
    let plan = Plan::new(batch, time, lengths)?;
    let initial = layout.join_parts(initial, batch);
    let width = layout.state_width();
    let (g_w, a_w, s_w) = (layout.gates, layout.aux, layout.scratch);
    let work_per_token = layout.work_per_token;
    let parallel = worth_parallel(&plan, work_per_token);
    let watch = Watch::new(interrupt);

    let (xs, states, gates, aux) = pool::run_watched(parallel, &watch, || -> Result<_> {
        let xs = gather_inputs(&plan, x)?;
        let mut gates = match prepared {
            Some(p) if plan.rows <= PACKED_INPUT_ROWS => {
                let mut gates = Array2::zeros((plan.rows, layout.gates));
                p.packed_input().gemm(false, xs.view(), gates.view_mut());
                gates
            }
            _ => try_par_product(xs.view(), cell.input_kernel(), "inputs", "the gate buffer")?,
        };
        let mut states = try_zeros::<T>(plan.rows, width, "inputs", "the states")?;
        let mut aux = try_zeros::<T>(plan.rows, a_w, "inputs", "the steps' kept values")?;
        watch.result()?;
        let work: Vec<_> = plan
            .groups
            .iter()
            .zip(split_groups(&plan, &mut gates))
            .zip(split_groups(&plan, &mut states))
            .zip(split_groups(&plan, &mut aux))
            .collect();
        pool::for_each(work, |(((g, gates_g), states_g), aux_g)| {
            gather_group_rows(g, states_g, &initial);
            let mut scratch = vec![T::zero(); g.first_active() * s_w];
            let mut ticker = watch.ticker();
            for (t, &a) in g.active.iter().enumerate() {
                if ticker.tick(a.saturating_mul(work_per_token)).is_err() {
                    return; // the watch keeps the error
                }
                let (prev, next) = states_g.split_at_mut(block(g, t + 1, 0, width).start);
                cell.forward_step(Forward {
                    rows: a,
                    gates: &mut gates_g[block(g, t, a, g_w)],
                    prev: &prev[block(g, t, a, width)],
                    next: &mut next[..a * width],
                    aux: &mut aux_g[block(g, t, a, a_w)],
                    scratch: &mut scratch[..a * s_w],
                });
            }
        });
        watch.result()?;
        Ok((xs, states, gates, aux))
    })?;
    let gates = if layout.keep_gates {
        gates
    } else {
        Array2::zeros((0, 0))
    };
    let outputs = pool::run(parallel, || {
        scatter(
            &plan,
            &states,
            layout.output_columns(),
            time_major,
            (Slot::State, "the outputs"),
        )
    })?;
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
        },
    })
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
        let e = run(&c, None, (x.view(), &[h0.view()], None, true), &stop).unwrap_err();
        assert_eq!(e, Error::Interrupted);
        assert!(
            started.elapsed() < INTERRUPT_PERIOD * 4,
            "{:?}",
            started.elapsed()
        );
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);

        let go_on = || Ok(());
        let f = run(&c, None, (x.view(), &[h0.view()], None, true), &go_on).unwrap();
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
    }
}
