//! Decoding loops: a decoder cell run on its own outputs, one token per
//! step, the whole loop in Rust — greedy and sampled decoding
//! ([`greedy()`]) and beam search ([`beam()`]), TensorFlow 1.15's
//! `tf.contrib.seq2seq` semantics.
//!
//! The pieces every loop shares live here: the cell ([`Stack`]: one
//! [`Stepper`] per layer of a `MultiRNNCell`, kept for the whole loop), the
//! output projection ([`Projection`]: the kernel packed once per call), the
//! embedding lookup of the next step's inputs ([`embed`]) and the outputs
//! growing by whole steps ([`Steps`] time-major, [`BatchSteps`] the greedy
//! logits batch-major in a zeroed buffer). Nothing is allocated inside a loop
//! but the geometric growth of the outputs; work is cut by shapes alone, so
//! results are bitwise identical for any thread count.

pub mod attend;
pub mod beam;
pub mod greedy;

pub use attend::{Attend, AttentionInputs, AttentionState, Wrapper};
pub use beam::{beam, beam_attention, BeamOptions, BeamOutput};
pub use greedy::{greedy, greedy_attention, GreedyOptions, GreedyOutput, Sampling};

use crate::error::{check_shape, Budget, Error, Result};
use crate::kernels::packed::PackedB;
use crate::kernels::rows::try_zeros;
use crate::kernels::scalar::Scalar;
use crate::pool;
use crate::step::{Prepared, Stepper};
use ndarray::{Array2, Array3, ArrayView1, ArrayView2, ArrayViewMut2, Axis};
use std::ops::Deref;
use std::sync::Arc;

/// What a decoding loop steps: a [`Stack`] of cells, or an attention
/// wrapper around one ([`Attend`]). Its per-row state (the cells' and the
/// wrapper's) moves with the rows the loops move or gather.
pub trait Decoding<T: Scalar> {
    /// The width of the inputs the loop feeds (the embedding's).
    fn input_size(&self) -> usize;
    /// The width of each step's output (what the projection reads).
    fn output_size(&self) -> usize;
    /// Multiply-adds of one row's step.
    fn work_per_row(&self) -> usize;
    /// One step of the first `rows` rows on `inputs` `[rows, I]`; returns
    /// their outputs `[rows, output_size]`.
    fn step(&mut self, rows: usize, inputs: ArrayView2<T>) -> Result<ArrayView2<'_, T>>;
    /// Copies every per-row state of row `from` over row `to`.
    fn move_row(&mut self, from: usize, to: usize);
    /// Reorders the rows: row `i` becomes old row `index[i]` (one entry per
    /// row).
    fn gather_rows(&mut self, index: &[usize]);
    /// Copies of every per-row state block (`[rows, width]` each).
    fn blocks(&self) -> Vec<Array2<T>>;
    /// Copies row `from` of every block into row `to` of `kept` (as
    /// [`Decoding::blocks`] made them).
    fn save_row(&self, from: usize, kept: &mut [Array2<T>], to: usize);
    /// Blocks (as [`Decoding::blocks`] made them) as each layer's state
    /// parts and the wrapper's state.
    #[allow(clippy::type_complexity)]
    fn finish(&self, blocks: Vec<Array2<T>>) -> (Vec<Vec<Array2<T>>>, Option<AttentionState<T>>);
}

impl<T: Scalar> Decoding<T> for Stack<'_, T> {
    fn input_size(&self) -> usize {
        Stack::input_size(self)
    }

    fn output_size(&self) -> usize {
        Stack::output_size(self)
    }

    fn work_per_row(&self) -> usize {
        Stack::work_per_row(self)
    }

    fn step(&mut self, rows: usize, inputs: ArrayView2<T>) -> Result<ArrayView2<'_, T>> {
        Stack::step(self, rows, inputs)
    }

    fn move_row(&mut self, from: usize, to: usize) {
        Stack::move_row(self, from, to)
    }

    fn gather_rows(&mut self, index: &[usize]) {
        Stack::gather_rows(self, index)
    }

    fn blocks(&self) -> Vec<Array2<T>> {
        self.states().map(|s| s.to_owned()).collect()
    }

    fn save_row(&self, from: usize, kept: &mut [Array2<T>], to: usize) {
        for (kept, state) in kept.iter_mut().zip(self.states()) {
            kept.row_mut(to).assign(&state.row(from));
        }
    }

    fn finish(&self, blocks: Vec<Array2<T>>) -> (Vec<Vec<Array2<T>>>, Option<AttentionState<T>>) {
        (self.split(&blocks), None)
    }
}

/// A stack of cells run as one (TensorFlow's `MultiRNNCell`): layer `i`
/// reads layer `i - 1`'s output; one [`Stepper`] per layer for the whole
/// loop.
#[derive(Debug)]
pub struct Stack<'c, T: Scalar> {
    layers: Vec<Stepper<'c, T>>,
}

impl<'c, T: Scalar> Stack<'c, T> {
    /// The stack of `cells` (bottom first) starting from `initial`: each
    /// layer's state parts, `[rows, width]` each (named `initial_state[i]`
    /// in errors). A layer whose input size is not the output width of the
    /// layer below fails naming `cells[i]`.
    pub fn new(cells: &[&'c Prepared<T>], initial: &[Vec<ArrayView2<T>>]) -> Result<Self> {
        Self::build(cells, initial, |cell, arg, parts| cell.stepper(arg, parts))
    }

    /// Like [`Stack::new`], for a stack that holds its cells (one kept
    /// between calls, such as Python's `Stepper`).
    pub fn shared(
        cells: &[Arc<Prepared<T>>],
        initial: &[Vec<ArrayView2<T>>],
    ) -> Result<Stack<'static, T>> {
        Stack::build(cells, initial, |cell, arg, parts| {
            cell.shared_stepper(arg, parts)
        })
    }

    fn build<C: Deref<Target = Prepared<T>>>(
        cells: &[C],
        initial: &[Vec<ArrayView2<T>>],
        stepper: impl Fn(&C, &str, &[ArrayView2<T>]) -> Result<Stepper<'c, T>>,
    ) -> Result<Self> {
        if cells.is_empty() {
            return Err(Error::invalid("cells", "at least one cell", "none"));
        }
        one_per_layer("initial_state", initial, cells.len())?;
        let rows = initial[0].first().map_or(0, |p| p.nrows());
        let mut layers = Vec::with_capacity(cells.len());
        for (i, (cell, parts)) in cells.iter().zip(initial).enumerate() {
            let layout = cell.cell().layout();
            if i > 0 {
                let below = cells[i - 1].cell().layout().output_width();
                if layout.input != below {
                    return Err(Error::invalid(
                        format!("cells[{i}]"),
                        format!("input size {below} (the output width of cells[{}])", i - 1),
                        layout.input.to_string(),
                    ));
                }
            }
            let arg = layer_arg("initial_state", cells.len(), i);
            layout.check_parts(&arg, parts, rows)?;
            layers.push(stepper(cell, &arg, parts)?);
        }
        Ok(Stack { layers })
    }

    /// Sets every layer's state (`state[i]`: layer `i`'s parts, each
    /// `[rows, width]`, named as in [`Stack::new`] in errors).
    pub fn set_state(&mut self, state: &[Vec<ArrayView2<T>>]) -> Result<()> {
        let layers = self.layers.len();
        one_per_layer("state", state, layers)?;
        // every layer checked before any changes
        for (i, (layer, parts)) in self.layers.iter().zip(state).enumerate() {
            layer.check_state(&layer_arg("state", layers, i), parts)?;
        }
        for (layer, parts) in self.layers.iter_mut().zip(state) {
            layer.put_state(parts);
        }
        Ok(())
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.layers[0].rows()
    }

    /// `I` of the bottom layer.
    pub fn input_size(&self) -> usize {
        self.layers[0].cell().cell().layout().input
    }

    /// The top layer's output width.
    pub fn output_size(&self) -> usize {
        self.top().cell().cell().layout().output_width()
    }

    /// Multiply-adds of one row's step through every layer.
    pub fn work_per_row(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.cell().cell().layout().work_per_token)
            .fold(0, usize::saturating_add)
    }

    fn top(&self) -> &Stepper<'c, T> {
        self.layers.last().expect("at least one layer")
    }

    /// One step of the first `rows` rows on `inputs` `[rows, I]`; returns
    /// the top layer's output. (See [`Stepper::step_rows`].)
    pub fn step(&mut self, rows: usize, inputs: ArrayView2<T>) -> Result<ArrayView2<'_, T>> {
        self.layers[0].step_rows(rows, inputs)?;
        for i in 1..self.layers.len() {
            let (below, above) = self.layers.split_at_mut(i);
            above[0].step_rows(rows, below[i - 1].output(rows))?;
        }
        Ok(self.top().output(rows))
    }

    /// The top layer's output for the first `rows` rows (after a step, that
    /// step's).
    pub fn output(&self, rows: usize) -> ArrayView2<'_, T> {
        self.top().output(rows)
    }

    /// Copies every layer's state row `from` over row `to`.
    pub fn move_row(&mut self, from: usize, to: usize) {
        for l in &mut self.layers {
            l.move_row(from, to);
        }
    }

    /// Reorders every layer's state rows: row `i` becomes old row `index[i]`.
    pub fn gather_rows(&mut self, index: &[usize]) {
        for l in &mut self.layers {
            l.gather_rows(index);
        }
    }

    /// Each layer's state `[rows, W]` (parts side by side).
    pub fn states(&self) -> impl Iterator<Item = ArrayView2<'_, T>> {
        self.layers.iter().map(|l| l.state())
    }

    /// Each layer's state split into its parts.
    pub fn state_parts(&self) -> Vec<Vec<Array2<T>>> {
        self.layers.iter().map(|l| l.state_parts()).collect()
    }

    /// Each layer's state width `W`.
    pub fn widths(&self) -> Vec<usize> {
        self.layers
            .iter()
            .map(|l| l.cell().cell().layout().state_width())
            .collect()
    }

    /// Splits joined `[rows, W]` states (one per layer) into each layer's
    /// parts.
    pub fn split(&self, joined: &[Array2<T>]) -> Vec<Vec<Array2<T>>> {
        self.layers
            .iter()
            .zip(joined)
            .map(|(l, s)| l.cell().cell().layout().split_parts(s.view()))
            .collect()
    }
}

/// Layer `i`'s name in errors about the stack's states `arg` (`arg`
/// itself for a stack of one layer).
fn layer_arg(arg: &str, layers: usize, i: usize) -> String {
    if layers == 1 {
        arg.to_string()
    } else {
        format!("{arg}[{i}]")
    }
}

/// Checks that `states` (named `arg`) has one entry per layer.
fn one_per_layer<S>(arg: &str, states: &[S], layers: usize) -> Result<()> {
    if states.len() == layers {
        return Ok(());
    }
    Err(Error::invalid(
        arg,
        format!("one state per layer ({layers})"),
        states.len().to_string(),
    ))
}

/// The output layer of a decoder (an `rnnrs.Dense` without activation):
/// `logits = h @ kernel + bias`, the kernel (`[H, V]`, optional: `V = H`
/// without one) packed once per call, `bias` (`[V]`) optional.
#[derive(Debug)]
pub struct Projection<T: Scalar> {
    kernel: Option<PackedB<T>>,
    bias: Option<Vec<T>>,
    hidden: usize,
    vocab: usize,
}

impl<T: Scalar> Projection<T> {
    /// For cell outputs of width `hidden`; errors name `output_layer.kernel`
    /// and `output_layer.bias`.
    pub fn new(
        hidden: usize,
        kernel: Option<ArrayView2<T>>,
        bias: Option<ArrayView1<T>>,
    ) -> Result<Self> {
        let vocab = match kernel {
            Some(k) => {
                if k.nrows() != hidden {
                    return Err(Error::invalid(
                        "output_layer.kernel",
                        format!("shape [{hidden}, V] (the cell's output width first)"),
                        format!("shape {:?}", k.shape()),
                    ));
                }
                k.ncols()
            }
            None => hidden,
        };
        if let Some(b) = bias {
            check_shape("output_layer.bias", b.shape(), &[vocab])?;
        }
        if vocab == 0 {
            return Err(Error::invalid(
                "output_layer.kernel",
                "at least 1 unit",
                "0",
            ));
        }
        Ok(Projection {
            kernel: kernel.map(PackedB::new),
            bias: bias.map(|b| b.to_vec()),
            hidden,
            vocab,
        })
    }

    /// `V`: the logits' width.
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// Multiply-adds per row.
    pub fn work_per_row(&self) -> usize {
        if self.kernel.is_some() {
            self.hidden.saturating_mul(self.vocab)
        } else {
            0
        }
    }

    /// `out [n, V] = h [n, H] @ kernel + bias`. Rows are cut into chunks by
    /// their number alone ([`pool::row_chunks`]) and run on the pool when
    /// worth it.
    pub fn apply(&self, h: ArrayView2<T>, mut out: ArrayViewMut2<T>) {
        let n = h.nrows();
        match &self.kernel {
            None => out.assign(&h),
            Some(k) => {
                let len = n.div_ceil(pool::row_chunks(n)).max(1);
                let work: Vec<_> = h
                    .axis_chunks_iter(Axis(0), len)
                    .zip(out.axis_chunks_iter_mut(Axis(0), len))
                    .collect();
                let parallel = pool::worth_parallel(n.saturating_mul(self.work_per_row()));
                pool::run(parallel, || {
                    pool::for_each(work, |(h, out)| k.gemm(false, h, out))
                });
            }
        }
        if let Some(bias) = &self.bias {
            for mut row in out.rows_mut() {
                for (o, &b) in row.iter_mut().zip(bias) {
                    *o += b;
                }
            }
        }
    }
}

/// Fills the first `ids.len()` rows of `x` with the embedding rows of `ids`
/// (each checked below `embedding.nrows()` by the caller).
pub fn embed<T: Scalar>(embedding: ArrayView2<T>, ids: &[usize], x: &mut Array2<T>) {
    for (mut row, &id) in x.rows_mut().into_iter().zip(ids) {
        row.assign(&embedding.row(id));
    }
}

/// Checks the arguments every decoder shares: the embedding `[V_e, I]`
/// against the stack, the start tokens and the end token against the
/// vocabularies, and that every id the projection can emit has an
/// embedding row.
fn check_common<T: Scalar, D: Decoding<T>>(
    stack: &D,
    embedding: ArrayView2<T>,
    projection: &Projection<T>,
    start_tokens: &[i64],
    end_token: i64,
) -> Result<()> {
    let (v_e, width) = embedding.dim();
    let input = stack.input_size();
    if projection.hidden != stack.output_size() {
        return Err(Error::invalid(
            "output_layer.kernel",
            format!(
                "shape [{}, V] (the cell's output width first)",
                stack.output_size()
            ),
            format!("{} rows", projection.hidden),
        ));
    }
    if width != input {
        return Err(Error::invalid(
            "embedding",
            format!("shape [V, {input}] (the cell's input size last)"),
            format!("shape {:?}", embedding.shape()),
        ));
    }
    if projection.vocab() > v_e {
        return Err(Error::invalid(
            "output_layer",
            format!("at most {v_e} units (one embedding row per id it can emit)"),
            projection.vocab().to_string(),
        ));
    }
    if let Some(&bad) = start_tokens
        .iter()
        .find(|&&s| s < 0 || s as u64 >= v_e as u64)
    {
        return Err(Error::invalid(
            "start_tokens",
            format!("ids in [0, {v_e})"),
            bad.to_string(),
        ));
    }
    if end_token < 0 || end_token as u64 >= projection.vocab() as u64 {
        return Err(Error::invalid(
            "end_token",
            format!("an id in [0, {})", projection.vocab()),
            end_token.to_string(),
        ));
    }
    Ok(())
}

/// Outputs that grow by whole steps of `per_step` elements, time-major:
/// capacity doubles (at most `max_steps` steps) so that a loop allocates
/// `O(log T)` times, each growth checked against the memory budget
/// ([`Error::OutOfMemory`] naming `maximum_iterations`).
#[derive(Debug)]
pub struct Steps<E> {
    data: Vec<E>,
    per_step: usize,
    max_steps: usize,
    what: &'static str,
}

impl<E: Copy + Default> Steps<E> {
    /// Empty, for at most `max_steps` steps of `per_step` elements.
    pub fn new(per_step: usize, max_steps: usize, what: &'static str) -> Self {
        Steps {
            data: Vec::new(),
            per_step,
            max_steps,
            what,
        }
    }

    /// The steps stored.
    pub fn steps(&self) -> usize {
        self.data.len().checked_div(self.per_step).unwrap_or(0)
    }

    /// Appends a step of default values; returns it.
    pub fn push(&mut self) -> Result<&mut [E]> {
        let len = self.data.len();
        if self.data.capacity() - len < self.per_step {
            let have = self.data.capacity() / self.per_step.max(1);
            let steps = have
                .saturating_mul(2)
                .max(16)
                .min(self.max_steps)
                .max(have + 1);
            let mut budget = Budget::new("maximum_iterations");
            budget.add(self.what, &[steps, self.per_step], std::mem::size_of::<E>());
            budget.check()?;
            let total = steps * self.per_step;
            self.data.try_reserve_exact(total - len).map_err(|_| {
                Error::out_of_memory(
                    "maximum_iterations",
                    format!("{} [{steps}, {}]", self.what, self.per_step),
                    crate::error::bytes_of(&[steps, self.per_step], std::mem::size_of::<E>()),
                )
            })?;
        }
        self.data.resize(len + self.per_step, E::default());
        Ok(&mut self.data[len..])
    }

    /// The steps as `[B, T, inner]` (`per_step = B * inner`).
    pub fn batch_major(&self, batch: usize, inner: usize) -> Result<Array3<E>> {
        let t = self.steps();
        let mut out = Vec::new();
        out.try_reserve_exact(self.data.len()).map_err(|_| {
            Error::out_of_memory(
                "maximum_iterations",
                self.what,
                crate::error::bytes_of(&[t, self.per_step], std::mem::size_of::<E>()),
            )
        })?;
        for b in 0..batch {
            for step in 0..t {
                let at = step * self.per_step + b * inner;
                out.extend_from_slice(&self.data[at..at + inner]);
            }
        }
        Ok(Array3::from_shape_vec((batch, t, inner), out).expect("B * T * inner elements"))
    }
}

/// Outputs `[B, T, inner]` written batch-major as the steps come, in a
/// buffer zeroed by the allocator: a row a step never writes stays zero at
/// no cost (fresh pages are not even touched). The first capacity is
/// `max_steps` steps when the memory budget allows it at once (untouched
/// capacity costs address space only), else 16; past it the capacity
/// doubles (at most `max_steps`), each row's steps copied over and each
/// growth checked against the budget ([`Error::OutOfMemory`] naming
/// `maximum_iterations`).
#[derive(Debug)]
pub struct BatchSteps<T> {
    /// `[B, cap * inner]`.
    data: Array2<T>,
    batch: usize,
    inner: usize,
    cap: usize,
    steps: usize,
    max_steps: usize,
    what: &'static str,
}

impl<T: Scalar> BatchSteps<T> {
    /// Empty, for at most `max_steps` steps of `[batch, inner]`.
    pub fn new(batch: usize, inner: usize, max_steps: usize, what: &'static str) -> Result<Self> {
        let mut out = BatchSteps {
            data: Array2::zeros((batch, 0)),
            batch,
            inner,
            cap: 0,
            steps: 0,
            max_steps,
            what,
        };
        let mut budget = Budget::new("maximum_iterations");
        budget.add(what, &[batch, max_steps, inner], std::mem::size_of::<T>());
        if budget.check().is_ok() {
            if let Ok(data) = Self::alloc(batch, max_steps, inner, what) {
                out.data = data;
                out.cap = max_steps;
            }
        }
        Ok(out)
    }

    fn alloc(batch: usize, cap: usize, inner: usize, what: &'static str) -> Result<Array2<T>> {
        let cols = cap
            .checked_mul(inner)
            .ok_or_else(|| Error::out_of_memory("maximum_iterations", what, None))?;
        try_zeros::<T>(batch, cols, "maximum_iterations", what)
    }

    /// The steps stored.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Appends a step of zeros (see [`BatchSteps::row_mut`]).
    pub fn push(&mut self) -> Result<()> {
        if self.steps == self.cap {
            let cap = self
                .cap
                .saturating_mul(2)
                .max(16)
                .min(self.max_steps)
                .max(self.cap + 1);
            let mut budget = Budget::new("maximum_iterations");
            budget.add(
                self.what,
                &[self.batch, cap, self.inner],
                std::mem::size_of::<T>(),
            );
            budget.check()?;
            let mut data = Self::alloc(self.batch, cap, self.inner, self.what)?;
            let used = self.steps * self.inner;
            for (mut new, old) in data.rows_mut().into_iter().zip(self.data.rows()) {
                new.slice_mut(ndarray::s![..used])
                    .assign(&old.slice(ndarray::s![..used]));
            }
            self.data = data;
            self.cap = cap;
        }
        self.steps += 1;
        Ok(())
    }

    /// Row `b` of the last step pushed.
    pub fn row_mut(&mut self, b: usize) -> &mut [T] {
        let at = (self.steps - 1) * self.inner;
        let row = self.data.row_mut(b).into_slice().expect("standard layout");
        &mut row[at..at + self.inner]
    }

    /// The steps as `[B, T, inner]` (moved down in place when fewer than
    /// the capacity).
    pub fn into_array(self) -> Array3<T> {
        let (batch, inner, steps) = (self.batch, self.inner, self.steps);
        let width = self.cap * inner;
        let (mut data, _) = self.data.into_raw_vec_and_offset();
        let used = steps * inner;
        if used < width {
            for b in 1..batch {
                data.copy_within(b * width..b * width + used, b * used);
            }
            data.truncate(batch * used);
            data.shrink_to_fit();
        }
        Array3::from_shape_vec((batch, steps, inner), data).expect("B * T * inner elements")
    }
}

#[cfg(test)]
mod tests;
