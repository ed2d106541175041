//! A built cell kept ready for calls, and single steps on it.

use super::{Cell, Forward, UnitSplit};
use crate::error::{check_shape, Result};
use crate::kernels::packed::PackedB;
use crate::kernels::rows::try_zeros;
use crate::kernels::scalar::Scalar;
use crate::kernels::split::{self, Buffer};
use crate::pool;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};
use std::ops::{Deref, Range};
use std::sync::{Arc, OnceLock};

/// A built cell, with what its single steps need packed on first use and
/// kept (the recurrent weights are packed when the cell is built). Made once
/// per set of weights and shared by every call on them: whole sequences
/// ([`crate::sequence`]) and single steps ([`Prepared::stepper`]).
pub struct Prepared<T: Scalar> {
    cell: Box<dyn Cell<T>>,
    /// `W_x` packed for single steps.
    input: OnceLock<PackedB<T>>,
}

impl<T: Scalar> std::fmt::Debug for Prepared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("cell", &self.cell.name())
            .field("layout", self.cell.layout())
            .finish()
    }
}

impl<T: Scalar> Prepared<T> {
    /// Keeps `cell` ready for calls.
    pub fn new(cell: Box<dyn Cell<T>>) -> Self {
        Prepared {
            cell,
            input: OnceLock::new(),
        }
    }

    /// The cell.
    pub fn cell(&self) -> &dyn Cell<T> {
        self.cell.as_ref()
    }

    /// `W_x` packed (on first use), for single steps and short calls.
    pub fn packed_input(&self) -> &PackedB<T> {
        self.input
            .get_or_init(|| PackedB::new(self.cell.input_kernel()))
    }

    /// A stepper for `batch` rows starting from `initial` (the state's parts,
    /// each `[batch, width]`, named `arg` in errors). Its buffers are
    /// allocated fallibly: [`crate::Error::OutOfMemory`] naming `arg` when
    /// they cannot be.
    pub fn stepper(&self, arg: &str, initial: &[ArrayView2<T>]) -> Result<Stepper<'_, T>> {
        Stepper::new(CellRef::Borrowed(self), arg, initial)
    }

    /// Like [`Prepared::stepper`], for a stepper that holds the cell itself
    /// (one kept between calls, such as Python's `Stepper`).
    pub fn shared_stepper(
        self: &Arc<Self>,
        arg: &str,
        initial: &[ArrayView2<T>],
    ) -> Result<Stepper<'static, T>> {
        Stepper::new(CellRef::Shared(Arc::clone(self)), arg, initial)
    }

    /// One step: `inputs` `[B, I]`, the state's parts; returns the output
    /// and the new state's parts.
    pub fn step(&self, inputs: ArrayView2<T>, state: &[ArrayView2<T>]) -> Result<StepOutput<T>> {
        let mut stepper = self.stepper("state", state)?;
        let output = stepper.step(inputs)?.to_owned();
        Ok(StepOutput {
            output,
            state: stepper.state_parts(),
        })
    }
}

/// What [`Prepared::step`] returns.
#[derive(Debug, Clone)]
pub struct StepOutput<T> {
    /// `[B, output width]`.
    pub output: Array2<T>,
    /// The new state's parts.
    pub state: Vec<Array2<T>>,
}

/// Runs single steps of one cell on a batch, holding the state and every
/// buffer a step needs: after [`Prepared::stepper`] (or
/// [`Prepared::shared_stepper`], for a stepper kept between calls), a step
/// costs its arithmetic (the decoders' loop, Python's `Stepper`). A step of
/// one row chunk (fewer than 32 rows) that is not split runs on the calling
/// thread and allocates nothing; the others hand their chunks or slices to
/// the pool, a few small allocations per step.
///
/// Large batches are cut into row chunks that run on the thread pool; the
/// chunks depend on the batch size only, and each row's arithmetic does not
/// depend on its chunk. A batch of one chunk whose weights are large enough
/// (`Stepper::split`) splits the step by hidden units over the pool instead
/// ([`crate::kernels::split`]), each unit computed as the whole step does.
/// So results are bitwise identical for any thread count.
#[derive(Debug)]
pub struct Stepper<'c, T: Scalar> {
    cell: CellRef<'c, T>,
    /// `[2B, W]`: two states, the current one in block `cur` (rows
    /// `cur * B..`), the other the next step's.
    states: Array2<T>,
    cur: usize,
    gates: Array2<T>,
    aux: Array2<T>,
    scratch: Array2<T>,
}

/// How a [`Stepper`] holds its cell: borrowed (a stepper for one call) or
/// shared (a stepper kept between calls).
#[derive(Debug)]
enum CellRef<'c, T: Scalar> {
    Borrowed(&'c Prepared<T>),
    Shared(Arc<Prepared<T>>),
}

impl<T: Scalar> Deref for CellRef<'_, T> {
    type Target = Prepared<T>;

    fn deref(&self) -> &Prepared<T> {
        match self {
            CellRef::Borrowed(p) => p,
            CellRef::Shared(p) => p,
        }
    }
}

impl<'c, T: Scalar> Stepper<'c, T> {
    fn new(cell: CellRef<'c, T>, arg: &str, initial: &[ArrayView2<T>]) -> Result<Self> {
        let layout = cell.cell().layout();
        let batch = initial.first().map_or(0, |s| s.nrows());
        layout.check_parts(arg, initial, batch)?;
        let width = layout.state_width();
        let mut states = try_zeros(2 * batch, width, arg, "the next state")?;
        layout.put_parts(initial, states.slice_mut(ndarray::s![..batch, ..]));
        let gates = try_zeros(batch, layout.gates, arg, "a step's gates")?;
        let aux = try_zeros(batch, layout.aux, arg, "a step's kept values")?;
        let scratch = try_zeros(batch, layout.scratch, arg, "a step's scratch")?;
        Ok(Stepper {
            cell,
            states,
            cur: 0,
            gates,
            aux,
            scratch,
        })
    }

    /// Sets the state to `state`'s parts (each `[B, width]`, as
    /// [`Prepared::stepper`] takes them, named `arg` in errors); the batch
    /// size stays.
    pub fn set_state(&mut self, arg: &str, state: &[ArrayView2<T>]) -> Result<()> {
        self.check_state(arg, state)?;
        self.put_state(state);
        Ok(())
    }

    /// What [`Stepper::set_state`] checks of `state`.
    pub fn check_state(&self, arg: &str, state: &[ArrayView2<T>]) -> Result<()> {
        self.cell
            .cell()
            .layout()
            .check_parts(arg, state, self.rows())
    }

    /// [`Stepper::set_state`] on a state [`Stepper::check_state`] passed.
    pub(crate) fn put_state(&mut self, state: &[ArrayView2<T>]) {
        let (current, _) = blocks(&mut self.states, self.cur);
        self.cell.cell().layout().put_parts(state, current);
    }

    /// One step on `inputs` `[B, I]`: the state moves on; returns the output
    /// (a view into the new state).
    pub fn step(&mut self, inputs: ArrayView2<T>) -> Result<ArrayView2<'_, T>> {
        let batch = self.rows();
        self.step_rows(batch, inputs)
    }

    /// One step of the first `rows` rows only, on `inputs` `[rows, I]`:
    /// their state moves on; the state of the rows from `rows` on is left
    /// unspecified (a decoder moves the rows it still runs to the front
    /// first, [`Stepper::move_row`]). Returns the output of the `rows` rows.
    /// The row chunks depend on `rows` alone, so results stay bitwise
    /// identical for any thread count, and each row's arithmetic does not
    /// depend on `rows`.
    pub fn step_rows(&mut self, rows: usize, inputs: ArrayView2<T>) -> Result<ArrayView2<'_, T>> {
        let cell = self.cell.cell();
        let layout = cell.layout();
        let batch = self.rows();
        if rows > batch {
            return Err(crate::Error::invalid(
                "rows",
                format!("at most {batch} rows"),
                rows.to_string(),
            ));
        }
        check_shape("inputs", inputs.shape(), &[rows, layout.input])?;
        let chunks = pool::row_chunks(rows);
        if let Some((split, slices)) = self.split(rows, chunks, &inputs) {
            self.step_split(rows, inputs, split, &slices);
            return Ok(self.output(rows));
        }
        let packed = self.cell.packed_input();
        let (prev, next) = blocks(&mut self.states, self.cur);
        if chunks == 1 {
            // one chunk runs here, allocating nothing
            let first = |a| first_rows(a, rows);
            let (gates, aux) = (first(self.gates.view_mut()), first(self.aux.view_mut()));
            let buffers = [gates, first(next), aux, first(self.scratch.view_mut())];
            step_chunk(cell, packed, inputs, first(prev), buffers);
            self.cur ^= 1;
            return Ok(self.output(rows));
        }
        let parallel = pool::worth_parallel(rows.saturating_mul(layout.work_per_token));
        let len = chunk_len(rows, chunks);
        let work: Vec<_> = chunk_rows(&mut self.gates, rows, len)
            .into_iter()
            .zip(chunk_rows(next, rows, len))
            .zip(chunk_rows(&mut self.aux, rows, len))
            .zip(chunk_rows(&mut self.scratch, rows, len))
            .zip(chunk_rows(prev, rows, len))
            .zip(inputs.axis_chunks_iter(Axis(0), len))
            .collect();
        pool::run(parallel, || {
            pool::for_each(work, |(((((gates, next), aux), scratch), prev), x)| {
                step_chunk(cell, packed, x, prev, [gates, next, aux, scratch]);
            })
        });
        self.cur ^= 1;
        Ok(self.output(rows))
    }

    /// How a step of `rows` rows in `chunks` row chunks splits by units,
    /// when it does: one chunk of at least one row, a cell that splits,
    /// weights worth it ([`pool::worth_splitting_alone`]), a pool of two
    /// threads or more, a split that cuts the stepper's buffers, and inputs
    /// and weights the split product takes.
    pub(crate) fn split(
        &self,
        rows: usize,
        chunks: usize,
        inputs: &ArrayView2<T>,
    ) -> Option<(UnitSplit, Vec<Range<usize>>)> {
        let cell = self.cell.cell();
        let layout = cell.layout();
        // `W_x` and `W_h` (one element per multiply-add of a row)
        let weights = layout.work_per_token.saturating_mul(size_of::<T>());
        let worth = chunks == 1 && rows > 0 && pool::worth_splitting_alone(weights);
        let split = cell.unit_split().filter(|_| worth)?;
        let slices = split.slices(pool::threads_available())?;
        let fits = split.cuts(layout)
            && inputs.is_standard_layout()
            && self.cell.packed_input().panel_width() == split.align;
        fits.then_some((split, slices))
    }

    /// One step of the first `rows` rows split by units over the pool
    /// (see [`Stepper::split`]): each slice projects its columns of the
    /// inputs and then runs the cell's step on its units.
    fn step_split(
        &mut self,
        rows: usize,
        inputs: ArrayView2<T>,
        split: UnitSplit,
        slices: &[Range<usize>],
    ) {
        let cell = self.cell.cell();
        let packed = self.cell.packed_input();
        let batch = self.rows();
        if self.cur == 1 {
            // the runner reads block 0 and writes block 1
            let (mut first, second) = self.states.view_mut().split_at(Axis(0), batch);
            first.assign(&second);
            self.cur = 0;
        }
        let [p_g, p_s, p_a, p_x] = split.parts;
        let units = split.units;
        fn buffer<T>(a: &mut Array2<T>, parts: usize) -> Buffer<'_, T> {
            Buffer {
                data: a.as_slice_mut().expect("standard layout"),
                parts,
            }
        }
        let buffers = [
            buffer(&mut self.gates, p_g),
            buffer(&mut self.states, p_s),
            buffer(&mut self.aux, p_a),
            buffer(&mut self.scratch, p_x),
        ];
        // no tick stops the loop
        let _finished = split::run(
            units,
            split.phases,
            slices,
            slices.len() - 1,
            &[0, batch, 2 * batch],
            &[rows],
            buffers,
            |_| true,
            |mut step| {
                if step.phase == 0 {
                    // gates[:, the slice's units of each gate] = x @ W_x[:, those]
                    for part in 0..p_g {
                        let first = part * units + step.units.start;
                        packed.gemm_cols(false, inputs, step.gates.segment(part), first);
                    }
                }
                cell.forward_units(step);
            },
        );
        self.cur = 1;
    }

    /// `[rows, output width]`: the output columns of the first `rows` rows
    /// of the current state (after a step, that step's output).
    pub fn output(&self, rows: usize) -> ArrayView2<'_, T> {
        let columns = self.cell.cell().layout().output_columns();
        self.state().slice_move(ndarray::s![..rows, columns])
    }

    /// Copies state row `from` over row `to` (a decoder packing the rows it
    /// still runs to the front).
    pub fn move_row(&mut self, from: usize, to: usize) {
        if from != to {
            let (mut state, _) = blocks(&mut self.states, self.cur);
            let (src, mut dst) =
                state.multi_slice_mut((ndarray::s![from, ..], ndarray::s![to, ..]));
            dst.assign(&src);
        }
    }

    /// Reorders the state's rows: row `i` becomes the old row `index[i]`
    /// (`index` has one entry per row, each below the batch size; a beam
    /// search following each beam's parent). Goes through the stepper's own
    /// second state buffer: nothing is allocated.
    ///
    /// # Panics
    /// When `index` has the wrong length or an entry out of range (a bug of
    /// the caller).
    pub fn gather_rows(&mut self, index: &[usize]) {
        assert_eq!(index.len(), self.rows(), "gather_rows: one entry per row");
        let (state, mut next) = blocks(&mut self.states, self.cur);
        for (mut dst, &src) in next.rows_mut().into_iter().zip(index) {
            dst.assign(&state.row(src));
        }
        self.cur ^= 1;
    }

    /// The cell it steps.
    pub fn cell(&self) -> &Prepared<T> {
        &self.cell
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.states.nrows() / 2
    }

    /// The state's row `i` (its parts side by side).
    pub fn state_row(&self, i: usize) -> ndarray::ArrayView1<'_, T> {
        self.state().index_axis_move(Axis(0), i)
    }

    /// `[B, W]`: the current state, its parts side by side.
    pub fn state(&self) -> ArrayView2<'_, T> {
        let batch = self.rows();
        let first = self.cur * batch;
        self.states.slice(ndarray::s![first..first + batch, ..])
    }

    /// The current state's parts.
    pub fn state_parts(&self) -> Vec<Array2<T>> {
        self.cell.cell().layout().split_parts(self.state())
    }
}

/// `[B, W]` each: the current state (block `cur` of `states`, `[2B, W]`)
/// and the other block (the next step's).
fn blocks<T>(states: &mut Array2<T>, cur: usize) -> (ArrayViewMut2<'_, T>, ArrayViewMut2<'_, T>) {
    let batch = states.nrows() / 2;
    let (first, second) = states.view_mut().split_at(Axis(0), batch);
    if cur == 0 {
        (first, second)
    } else {
        (second, first)
    }
}

/// Rows per chunk when `batch` rows are cut into `chunks` chunks.
fn chunk_len(batch: usize, chunks: usize) -> usize {
    batch.div_ceil(chunks.max(1)).max(1)
}

/// `a`'s first `rows` rows in consecutive chunks of `len` rows (the last
/// may be shorter), each as its own mutable view.
fn chunk_rows<'a, T>(
    a: impl Into<ArrayViewMut2<'a, T>>,
    rows: usize,
    len: usize,
) -> Vec<ArrayViewMut2<'a, T>> {
    let mut rest = a.into().split_at(Axis(0), rows).0;
    let mut chunks = Vec::with_capacity(rows.div_ceil(len));
    while rest.nrows() > 0 {
        let at = len.min(rest.nrows());
        let (chunk, tail) = rest.split_at(Axis(0), at);
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

/// One chunk of rows of a step: `x @ W_x` into the gate rows, then the
/// cell's step from `prev` into the next state rows (`[gates, next, aux,
/// scratch]`, the chunk's rows of each).
fn step_chunk<T: Scalar>(
    cell: &dyn Cell<T>,
    packed: &PackedB<T>,
    x: ArrayView2<'_, T>,
    prev: ArrayViewMut2<'_, T>,
    [mut gates, mut next, mut aux, mut scratch]: [ArrayViewMut2<'_, T>; 4],
) {
    packed.gemm(false, x, gates.view_mut());
    cell.forward_step(Forward {
        rows: gates.nrows(),
        gates: slice_mut(&mut gates),
        prev: prev.into_slice().expect("standard layout"),
        next: slice_mut(&mut next),
        aux: slice_mut(&mut aux),
        scratch: slice_mut(&mut scratch),
    });
}

/// `a`'s first `rows` rows.
fn first_rows<T>(a: ArrayViewMut2<'_, T>, rows: usize) -> ArrayViewMut2<'_, T> {
    a.split_at(Axis(0), rows).0
}

/// A standard-layout view's elements.
fn slice_mut<'a, T>(a: &'a mut ArrayViewMut2<'_, T>) -> &'a mut [T] {
    a.as_slice_mut().expect("standard layout")
}
