//! The step trait: what a cell is to the rest of the crate.
//!
//! A cell is one time step's maths. It implements [`Cell`]: its sizes
//! ([`Layout`]), the input kernel the driver hoists out of the time loop,
//! one step forward, one step backward, and the weight-gradient products
//! deferred until after the reverse loop. Everything else — the plan of
//! rows and lengths, the slot buffers, the forward and reverse time loops,
//! threading, masking, the caller's layouts — is written once, in
//! [`crate::sequence`] (whole sequences) and [`Prepared`] (single steps, for
//! decoders and streaming).
//!
//! # The state
//!
//! A cell's state is one row of `W` numbers per batch row: its parts (an
//! LSTM's `c` then `h`) side by side, in the order of [`Layout::state`]. One
//! part is the step's output ([`Layout::output`]). The driver keeps states in
//! `[rows, W]` blocks and hands the cell a block of the rows running at a
//! step; the cell slices the parts out of each row.
//!
//! # What a step sees
//!
//! Every slice in [`Forward`] and [`Backward`] holds `rows` rows, row-major,
//! of the width named beside it; the driver guarantees the lengths. Slices
//! of width 0 are empty. A cell never allocates inside a step: its scratch
//! comes from the driver, allocated once per call.
//!
//! # Weights
//!
//! Cells are built from named arrays ([`params::Weights`], TensorFlow 1.x
//! names) and named options ([`params::Options`]), and return their weight
//! gradients under the same names ([`params::Named`]): one protocol for
//! every cell, across the Python edge and inside Rust.

pub mod params;
mod prepared;

pub use prepared::{Prepared, StepOutput, Stepper};

use crate::error::{check_shape, Error, Result};
use crate::kernels::scalar::Scalar;
pub use crate::kernels::split::{UnitBack, UnitStep};
use crate::pool;
use ndarray::{s, Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut2};
use params::Named;
use std::ops::Range;

/// One part of a state row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatePart {
    /// Its name in error messages and Python (`""` for a cell whose state is
    /// one array; `"c"`, `"h"` for an LSTM's `LSTMStateTuple`).
    pub name: &'static str,
    /// Its width.
    pub width: usize,
}

/// The sizes a cell works with; fixed when the cell is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `I`: the input size.
    pub input: usize,
    /// The state's parts, in the order they sit side by side in a state row.
    pub state: Vec<StatePart>,
    /// Which part of the state is the step's output.
    pub output: usize,
    /// `G`: the width of the per-token gate buffer, which holds `x @ W_x`
    /// when a step starts.
    pub gates: usize,
    /// Whether backward reads the gate buffer as forward left it (if not,
    /// the driver frees it after the forward loop).
    pub keep_gates: bool,
    /// Width of the per-token values the cell keeps for backward (`aux`).
    pub aux: usize,
    /// `D`: the width of the per-token gradient `d_gates` that the deferred
    /// products read.
    pub d_gates: usize,
    /// Width of a second per-token gradient buffer (`d_aux`), for deferred
    /// products of a weight applied inside the step (an LSTM projection).
    pub d_aux: usize,
    /// Width of the per-row scratch of a step (forward and backward).
    pub scratch: usize,
    /// Length of the small-parameter gradient (biases, peepholes) each
    /// reverse loop sums into, added across groups in a fixed order.
    pub d_params: usize,
    /// Multiply-adds per token of one pass, to decide whether a call is worth
    /// the thread pool.
    pub work_per_token: usize,
}

impl Layout {
    /// `W`: the width of a state row.
    pub fn state_width(&self) -> usize {
        self.state.iter().map(|p| p.width).sum()
    }

    /// The columns of part `i` in a state row.
    pub fn part(&self, i: usize) -> Range<usize> {
        let start: usize = self.state[..i].iter().map(|p| p.width).sum();
        start..start + self.state[i].width
    }

    /// The columns of the output in a state row.
    pub fn output_columns(&self) -> Range<usize> {
        self.part(self.output)
    }

    /// The output's width.
    pub fn output_width(&self) -> usize {
        self.state[self.output].width
    }

    /// The public name of state part `i` under argument `arg`:
    /// `initial_state`, or `initial_state.c` for a part with a name.
    pub fn part_arg(&self, arg: &str, i: usize) -> String {
        match self.state[i].name {
            "" => arg.to_string(),
            name => format!("{arg}.{name}"),
        }
    }

    /// Checks a state given as its parts, each `[batch, width]`, named `arg`
    /// (`arg.c` for a named part) in errors.
    pub fn check_parts<T>(&self, arg: &str, parts: &[ArrayView2<T>], batch: usize) -> Result<()> {
        if parts.len() != self.state.len() {
            return Err(Error::invalid(
                arg,
                format!("{} state parts", self.state.len()),
                format!("{}", parts.len()),
            ));
        }
        for (i, p) in parts.iter().enumerate() {
            check_shape(
                &self.part_arg(arg, i),
                p.shape(),
                &[batch, self.state[i].width],
            )?;
        }
        Ok(())
    }

    /// The state's parts side by side: `[batch, W]` (checked by
    /// [`Layout::check_parts`] first).
    pub fn join_parts<T: Scalar>(&self, parts: &[ArrayView2<T>], batch: usize) -> Array2<T> {
        let mut out = Array2::zeros((batch, self.state_width()));
        self.put_parts(parts, out.view_mut());
        out
    }

    /// Writes the state's parts side by side into `out` (`[batch, W]`;
    /// the parts checked by [`Layout::check_parts`] first).
    pub fn put_parts<T: Scalar>(&self, parts: &[ArrayView2<T>], mut out: ArrayViewMut2<T>) {
        for (i, p) in parts.iter().enumerate() {
            out.slice_mut(s![.., self.part(i)]).assign(p);
        }
    }

    /// A `[B, W]` state cut into its parts.
    pub fn split_parts<T: Scalar>(&self, state: ArrayView2<T>) -> Vec<Array2<T>> {
        (0..self.state.len())
            .map(|i| state.slice(s![.., self.part(i)]).to_owned())
            .collect()
    }
}

/// How a cell's step splits by hidden units ([`Cell::unit_split`] forward,
/// [`Cell::backward_split`] backward): every buffer row is segments of
/// `units` columns side by side (an LSTM's gate row `i, j, f, o`; its state
/// row `c, h`), a slice's units must start at a multiple of `align` (the
/// packed recurrent weights' panel width), and the threads meet after each
/// of the step's `phases`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitSplit {
    /// `H`.
    pub units: usize,
    /// Segments of the rows of the buffers the slices write (0: a buffer
    /// the step does not use). Forward: a gate row, a state row, a
    /// kept-values row and a scratch row. Backward: a gate-gradient row, a
    /// state(-gradient) row, the small-parameter gradients and a scratch row.
    pub parts: [usize; 4],
    /// What a slice's first unit is a multiple of.
    pub align: usize,
    /// Phases of a step (see [`crate::kernels::split`]).
    pub phases: usize,
    /// Backward: the leading gate-gradient segments a step writes in its
    /// second phase rather than its first ([`crate::kernels::split::run_back`];
    /// 0 for most cells).
    pub late: usize,
}

impl UnitSplit {
    /// The split of `units` units into slices aligned on `align` (the
    /// packed weights' panel width, 0 when they are not packed), or `None`
    /// when `units` is not a whole number of such panels.
    pub fn aligned(units: usize, align: usize, parts: [usize; 4], phases: usize) -> Option<Self> {
        (align > 0 && units.is_multiple_of(align)).then_some(UnitSplit {
            units,
            parts,
            align,
            phases,
            late: 0,
        })
    }

    /// The same split, with the first `late` gate-gradient segments written
    /// in the backward step's second phase.
    pub fn with_late(self, late: usize) -> Self {
        UnitSplit { late, ..self }
    }

    /// Whether the split cuts `layout`'s forward buffers: the gates, the
    /// state and the kept values whole, the scratch rows whole or not at
    /// all (the split's `parts` segments of `units` columns each).
    pub fn cuts(&self, layout: &Layout) -> bool {
        let [g, s, a, x] = self.parts.map(|p| p * self.units);
        g == layout.gates
            && s == layout.state_width()
            && a == layout.aux
            && (x == 0 || x == layout.scratch)
    }

    /// The slices of the units, one per thread of `threads`, each starting
    /// at a multiple of the alignment; `None` when there would be fewer
    /// than two.
    pub fn slices(&self, threads: usize) -> Option<Vec<std::ops::Range<usize>>> {
        if threads < 2 || self.align == 0 {
            return None;
        }
        let blocks = self.units / self.align;
        let per = blocks.div_ceil(threads).max(1) * self.align;
        let slices: Vec<_> = (0..self.units)
            .step_by(per)
            .map(|u| u..(u + per).min(self.units))
            .collect();
        (slices.len() > 1).then_some(slices)
    }
}

/// One forward step of `rows` running rows.
#[derive(Debug)]
pub struct Forward<'a, T> {
    /// How many rows run this step.
    pub rows: usize,
    /// `[rows, G]`: `x @ W_x` on entry; on exit whatever backward reads (when
    /// [`Layout::keep_gates`]).
    pub gates: &'a mut [T],
    /// `[rows, W]`: the state before the step.
    pub prev: &'a [T],
    /// `[rows, W]`: the state after the step, written by the cell.
    pub next: &'a mut [T],
    /// `[rows, A]`: per-token values kept for backward, written by the cell.
    pub aux: &'a mut [T],
    /// `[rows, S]`: scratch; contents unspecified on entry.
    pub scratch: &'a mut [T],
}

/// One backward step of `rows` running rows, through the step that the
/// forward pass ran with the same `prev`, `next`, `gates` and `aux`.
#[derive(Debug)]
pub struct Backward<'a, T> {
    /// How many rows ran this step.
    pub rows: usize,
    /// `[rows, G]`: the gate buffer as forward left it (empty unless
    /// [`Layout::keep_gates`]).
    pub gates: &'a [T],
    /// `[rows, W]`: the state before the step.
    pub prev: &'a [T],
    /// `[rows, W]`: the state after the step.
    pub next: &'a [T],
    /// `[rows, A]`: what forward kept in `aux`.
    pub aux: &'a [T],
    /// `[rows, W]`: the gradient of the state after the step on entry (the
    /// output's gradient already added to the output's columns); the cell
    /// leaves the gradient of the state before the step.
    pub d_state: &'a mut [T],
    /// `[rows, D]`: written by the cell, read by the deferred products
    /// ([`Cell::deferred_chunk`], [`Cell::deferred`]).
    pub d_gates: &'a mut [T],
    /// `[rows, DA]`: written by the cell (when it has a `d_aux` width).
    pub d_aux: &'a mut [T],
    /// `[rows, S]`: scratch; contents unspecified on entry.
    pub scratch: &'a mut [T],
    /// `[P]`: the cell adds the step's small-parameter gradients into it.
    pub d_params: &'a mut [T],
}

/// What the deferred products read: whole slot buffers of `R` rows, all in
/// one row layout (see [`crate::sequence::plan`]), so that row `r` of
/// `states` is the state *before* the step whose token sits in row `r` of
/// `x`, `gates`, `aux`, `d_gates` and `d_aux` (padding rows are zero in the
/// per-token buffers).
#[derive(Debug, Clone, Copy)]
pub struct Deferred<'a, T> {
    /// `[R, I]`: the inputs.
    pub x: ArrayView2<'a, T>,
    /// `[R, W]`: the states.
    pub states: ArrayView2<'a, T>,
    /// `[R, G]`: the gate buffer as forward left it (`[0, 0]` unless
    /// [`Layout::keep_gates`]).
    pub gates: ArrayView2<'a, T>,
    /// `[R, A]`.
    pub aux: ArrayView2<'a, T>,
    /// `[R, D]`.
    pub d_gates: ArrayView2<'a, T>,
    /// `[R, DA]`.
    pub d_aux: ArrayView2<'a, T>,
    /// `[P]`: the small-parameter gradients, summed over every step.
    pub d_params: ArrayView1<'a, T>,
    /// How many leading input columns [`WeightGrads::inputs`] covers
    /// (`x.ncols()` for all of them; the attention loop has the gradient of
    /// its attention columns already, from its step loop).
    pub input_columns: usize,
}

/// One chunk of the slot layout for [`Cell::deferred_chunk`]: consecutive
/// slot rows of one group (whole blocks), aligned as in [`Deferred`] (row `r`
/// of `states` is the state before the step whose token sits in row `r` of
/// the others; padding rows are zero in `x`, `d_gates` and `d_aux`).
#[derive(Debug, Clone, Copy)]
pub struct Tokens<'a, T> {
    /// `[r, I]`: the inputs.
    pub x: ArrayView2<'a, T>,
    /// `[r, W]`: the states before the steps.
    pub states: ArrayView2<'a, T>,
    /// `[r, G]`: the gate buffer as forward left it (`[0, 0]` unless
    /// [`Layout::keep_gates`]).
    pub gates: ArrayView2<'a, T>,
    /// `[r, A]`.
    pub aux: ArrayView2<'a, T>,
    /// `[r, D]`.
    pub d_gates: ArrayView2<'a, T>,
    /// `[r, DA]`.
    pub d_aux: ArrayView2<'a, T>,
}

/// What [`Cell::deferred`] returns.
#[derive(Debug)]
pub struct WeightGrads<T> {
    /// The gradient of every weight, under the names the cell was built with.
    pub weights: Named<T>,
    /// `[R, input_columns]`: the gradient of the inputs' leading columns,
    /// in the slot layout.
    pub inputs: Array2<T>,
}

/// One time step of a recurrent cell: the trait every cell implements.
///
/// The driver calls `forward_step` once per step for the running rows, and
/// `backward_step` once per step in reverse; steps of different row groups
/// may run at the same time on different threads, so a cell is `Sync` and
/// keeps no per-call state of its own.
pub trait Cell<T: Scalar>: Send + Sync + std::fmt::Debug {
    /// The cell's public name, for error messages (`"BasicRNNCell"`).
    fn name(&self) -> &'static str;

    /// The cell's sizes.
    fn layout(&self) -> &Layout;

    /// `W_x` `[I, G]`: the input projection, hoisted out of the time loop
    /// (one product per chunk of steps, or for every token of a call).
    fn input_kernel(&self) -> ArrayView2<'_, T>;

    /// One step forward (see [`Forward`]).
    fn forward_step(&self, step: Forward<'_, T>);

    /// Whether the forward step can run split by hidden units over threads
    /// ([`crate::kernels::split`]), and how its buffers are cut: `None` (the
    /// default) when it cannot.
    fn unit_split(&self) -> Option<UnitSplit> {
        None
    }

    /// One slice of a step split by units ([`Cell::unit_split`]): the same
    /// values in the slice's units as [`Cell::forward_step`] writes there,
    /// bit for bit. Only called when [`Cell::unit_split`] is `Some`.
    fn forward_units(&self, step: UnitStep<'_, T>) {
        let _ = step;
        unreachable!("{} has no unit split", self.name())
    }

    /// One step backward (see [`Backward`]).
    fn backward_step(&self, step: Backward<'_, T>);

    /// Whether the backward step can run split by hidden units over threads
    /// ([`crate::kernels::split::run_back`]), and how its buffers are cut:
    /// `None` (the default) when it cannot. The driver splits only cells
    /// whose output is one whole part of the state.
    fn backward_split(&self) -> Option<UnitSplit> {
        None
    }

    /// One slice of a backward step split by units
    /// ([`Cell::backward_split`]): the same values in the slice's units of
    /// `d_state`, `d_gates` and the small-parameter gradients as
    /// [`Cell::backward_step`] leaves there, bit for bit, once the step's
    /// last phase is done. Only called when [`Cell::backward_split`] is
    /// `Some`.
    fn backward_units(&self, step: UnitBack<'_, T>) {
        let _ = step;
        unreachable!("{} has no backward unit split", self.name())
    }

    /// The products deferred until after the reverse loop: the weight
    /// gradients and the inputs' gradient, over all tokens at once.
    fn deferred(&self, d: Deferred<'_, T>) -> WeightGrads<T>;

    /// The running sums of the deferred products, zeroed: one matrix per
    /// product, in an order of the cell's choosing (read back by
    /// [`Cell::deferred_finish`]). The sequence driver keeps one set per
    /// group of rows and adds them in group order.
    ///
    /// The default (for a cell that only implements [`Cell::deferred`])
    /// holds every weight gradient, flattened to one row.
    fn deferred_sums(&self) -> Vec<Array2<T>> {
        let empty = empty_deferred(self.layout());
        let zeros = Array1::zeros(self.layout().d_params);
        let grads = self.deferred(empty.with_params(zeros.view()));
        grads
            .weights
            .iter()
            .map(|(_, a)| Array2::zeros((1, a.len())))
            .collect()
    }

    /// The deferred products of one chunk of tokens (see [`Tokens`]): adds
    /// the weight products into `sums` (from [`Cell::deferred_sums`]) and
    /// writes the gradient of the chunk's leading `c` input columns into
    /// `d_inputs` (`[r, c]`, `c <= I`: `I` for the driver).
    /// `parallel`: whether the products may spread over the current pool
    /// (results never depend on it).
    ///
    /// The driver runs it over fixed chunks of whole steps, in the same
    /// order whether the forward states were kept or recomputed, so the
    /// gradients are bitwise the same either way. The default calls
    /// [`Cell::deferred`] on the chunk (it allocates; the built-in cells
    /// override it with products accumulated in place).
    fn deferred_chunk(
        &self,
        d: Tokens<'_, T>,
        sums: &mut [Array2<T>],
        mut d_inputs: ArrayViewMut2<'_, T>,
        parallel: bool,
    ) {
        let _ = parallel;
        let zeros = Array1::zeros(self.layout().d_params);
        let grads = self.deferred(Deferred {
            x: d.x,
            states: d.states,
            gates: d.gates,
            aux: d.aux,
            d_gates: d.d_gates,
            d_aux: d.d_aux,
            d_params: zeros.view(),
            input_columns: d_inputs.ncols(),
        });
        for (sum, (_, g)) in sums.iter_mut().zip(&grads.weights) {
            let g = g
                .view()
                .into_shape_with_order((1, g.len()))
                .expect("contiguous");
            *sum += &g;
        }
        d_inputs.assign(&grads.inputs);
    }

    /// The weight gradients, by name (as [`Cell::deferred`] returns them),
    /// from the summed products and the small-parameter gradients `[P]`.
    fn deferred_finish(&self, sums: Vec<Array2<T>>, d_params: ArrayView1<'_, T>) -> Named<T> {
        let empty = empty_deferred(self.layout());
        let mut grads = self.deferred(empty.with_params(d_params)).weights;
        for ((_, g), sum) in grads.iter_mut().zip(sums) {
            let sum = sum.into_shape_with_order(g.raw_dim()).expect("contiguous");
            *g = sum + &*g;
        }
        grads
    }
}

/// [`Cell::deferred`] of a cell that implements [`Cell::deferred_sums`],
/// [`Cell::deferred_chunk`] and [`Cell::deferred_finish`]: all the tokens as
/// one chunk, the products spread over the current pool when called from
/// it. The built-in cells' `deferred` is this, so each names its weight
/// gradients in one place (`deferred_finish`).
pub fn deferred_in_one_chunk<T: Scalar, C: Cell<T> + ?Sized>(
    cell: &C,
    d: Deferred<'_, T>,
) -> WeightGrads<T> {
    let mut sums = cell.deferred_sums();
    let mut inputs = Array2::zeros((d.x.nrows(), d.input_columns));
    let tokens = Tokens {
        x: d.x,
        states: d.states,
        gates: d.gates,
        aux: d.aux,
        d_gates: d.d_gates,
        d_aux: d.d_aux,
    };
    cell.deferred_chunk(tokens, &mut sums, inputs.view_mut(), pool::in_pool());
    WeightGrads {
        weights: cell.deferred_finish(sums, d.d_params),
        inputs,
    }
}

/// Zero-row buffers of `layout`'s widths, for the default deferred methods.
struct EmptyDeferred<T> {
    x: Array2<T>,
    states: Array2<T>,
    gates: Array2<T>,
    aux: Array2<T>,
    d_gates: Array2<T>,
    d_aux: Array2<T>,
}

fn empty_deferred<T: Scalar>(layout: &Layout) -> EmptyDeferred<T> {
    let gates = if layout.keep_gates { layout.gates } else { 0 };
    EmptyDeferred {
        x: Array2::zeros((0, layout.input)),
        states: Array2::zeros((0, layout.state_width())),
        gates: Array2::zeros((0, gates)),
        aux: Array2::zeros((0, layout.aux)),
        d_gates: Array2::zeros((0, layout.d_gates)),
        d_aux: Array2::zeros((0, layout.d_aux)),
    }
}

impl<T: Scalar> EmptyDeferred<T> {
    fn with_params<'a>(&'a self, d_params: ArrayView1<'a, T>) -> Deferred<'a, T> {
        Deferred {
            x: self.x.view(),
            states: self.states.view(),
            gates: self.gates.view(),
            aux: self.aux.view(),
            d_gates: self.d_gates.view(),
            d_aux: self.d_aux.view(),
            d_params,
            input_columns: self.x.ncols(),
        }
    }
}
