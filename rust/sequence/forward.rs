//! The forward time loop, for every cell.

use super::plan::Plan;
use super::slots::{
    block, final_state, gather_group_rows, gather_inputs, scatter, split_groups, worth_parallel,
    Slot,
};
use crate::error::{Error, Result};
use crate::kernels::gemm::par_product;
use crate::kernels::scalar::Scalar;
use crate::pool;
use crate::step::{Cell, Forward, Prepared};
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
    run(cell, None, x, initial, lengths, time_major)
}

/// Token rows up to which the input projection of a [`Prepared`] cell runs
/// over its packed input kernel: the general GEMM repacks its right-hand side
/// on every call, which dominates a call of a step or two (a quarter of an
/// LSTM's one-step `dynamic_rnn` at B = 1, H = 256). The choice depends on
/// the shapes only.
const PACKED_INPUT_ROWS: usize = 64;

/// [`forward()`] on a [`Prepared`] cell: short calls use its packed input
/// kernel.
pub fn forward_prepared<T: Scalar>(
    prepared: &Prepared<T>,
    x: ArrayView3<T>,
    initial: &[ArrayView2<T>],
    lengths: Option<&[i64]>,
    time_major: bool,
) -> Result<Output<T>> {
    run(
        prepared.cell(),
        Some(prepared),
        x,
        initial,
        lengths,
        time_major,
    )
}

fn run<T: Scalar, C: Cell<T> + ?Sized>(
    cell: &C,
    prepared: Option<&Prepared<T>>,
    x: ArrayView3<T>,
    initial: &[ArrayView2<T>],
    lengths: Option<&[i64]>,
    time_major: bool,
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
    let plan = Plan::new(batch, time, lengths)?;
    layout.check_parts("initial_state", initial, batch)?;
    let initial = layout.join_parts(initial, batch);
    let width = layout.state_width();
    let (g_w, a_w, s_w) = (layout.gates, layout.aux, layout.scratch);
    let parallel = worth_parallel(&plan, layout.work_per_token);

    let (xs, states, gates, aux) = pool::run(parallel, || {
        let xs = gather_inputs(&plan, x);
        let mut gates = match prepared {
            Some(p) if plan.rows <= PACKED_INPUT_ROWS => {
                let mut gates = Array2::zeros((plan.rows, layout.gates));
                p.packed_input().gemm(false, xs.view(), gates.view_mut());
                gates
            }
            _ => par_product(xs.view(), cell.input_kernel()),
        };
        let mut states = Array2::<T>::zeros((plan.rows, width));
        let mut aux = Array2::<T>::zeros((plan.rows, a_w));
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
            for (t, &a) in g.active.iter().enumerate() {
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
        (xs, states, gates, aux)
    });
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
            Slot::State,
        )
    });
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
