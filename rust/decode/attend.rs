//! An attention wrapper as the decoder cell (TensorFlow 1.15's
//! `AttentionWrapper` around one stack of cells, with one
//! `BahdanauAttention` or `LuongAttention`), stepped by the decoding loops
//! ([`super::greedy_attention()`], [`super::beam_attention()`]).
//!
//! Per step, for the first `n` rows (row `r` attends to memory row
//! `memory_row[r]`; the loops move and gather it with the rows):
//!
//! ```text
//! h, cell state = cell([x, a_prev], cell state)
//! s_j = score(h, K[m, j]) for j < mlen[m]         (see crate::attention)
//! α = softmax(s) (positions past mlen[m]: exactly 0)
//! c = Σ_j α_j V[m, j]
//! a = [h, c] @ attention_layer/kernel, or c
//! output = a if output_attention else h
//! ```
//!
//! The values (the memory zeroed past each length) and the keys `V @
//! memory_layer/kernel` are computed once per call for the memory's own
//! rows: beams share them through `memory_row` (no copy per beam). The rows'
//! scores, softmax and context run per row (`crate::attention::score`, the
//! teacher-forced loop's code) in chunks cut by the row count alone, so
//! results do not depend on the thread count.

use super::{Decoding, Stack};
use crate::attention::{self, score, Config, Score, Weights};
use crate::error::{check_shape, Error, Result};
use crate::kernels::gemm::try_par_product;
use crate::kernels::packed::PackedB;
use crate::kernels::rows::try_zeros;
use crate::kernels::scalar::Scalar;
use crate::pool;
use crate::step::Prepared;
use ndarray::{s, Array2, ArrayView2, ArrayView3, Axis};

/// The memory and the wrapper's state a decoder starts from.
#[derive(Debug, Clone, Copy)]
pub struct AttentionInputs<'a, T> {
    /// `memory` `[M, Tm, Dm]`; the decoder's rows are a multiple of `M`
    /// (row `r` attends to memory row `r / (rows / M)`).
    pub memory: ArrayView3<'a, T>,
    /// `memory_sequence_length` `[M]`, each in `[1, Tm]` (`None`: `Tm`).
    pub memory_lengths: Option<&'a [i64]>,
    /// The initial attention `[rows, A]`.
    pub attention: ArrayView2<'a, T>,
    /// The initial alignments `[rows, Tm]`.
    pub alignments: ArrayView2<'a, T>,
}

/// An attention wrapper's part of a decoding call: the memory and initial
/// state, the mechanism's and attention layer's weights, the options.
#[derive(Debug, Clone, Copy)]
pub struct Wrapper<'a, T> {
    /// The memory and the initial attention and alignments.
    pub inputs: AttentionInputs<'a, T>,
    /// The weights.
    pub weights: &'a Weights<T>,
    /// The options (`alignment_history` false).
    pub config: Config,
}

/// The wrapper's final state beside the cell's.
#[derive(Debug, Clone)]
pub struct AttentionState<T> {
    /// `[rows, A]`: the last attention.
    pub attention: Array2<T>,
    /// `[rows, Tm]`: the last alignments.
    pub alignments: Array2<T>,
}

/// An attention wrapper's decoder cell (see the module).
#[derive(Debug)]
pub struct Attend<'c, T: Scalar> {
    stack: Stack<'c, T>,
    score: Score,
    output_attention: bool,
    /// `I`, `Q`, `Tm`, `Dm`, `U`, `A`.
    input: usize,
    query: usize,
    tm: usize,
    dm: usize,
    units: usize,
    width: usize,
    /// `[M * Tm, Dm]` and `[M * Tm, U]`.
    values: Array2<T>,
    keys: Array2<T>,
    mlen: Vec<usize>,
    v: Vec<T>,
    g: T,
    bias: Option<Vec<T>>,
    query_kernel: Option<PackedB<T>>,
    attention_kernel: Option<PackedB<T>>,
    /// Each row's memory row, and the second buffer `gather_rows` fills.
    memory_row: Vec<usize>,
    spare_rows: Vec<usize>,
    /// `[rows, A]` and `[rows, Tm]`, each with its second buffer.
    attention: Array2<T>,
    alignments: Array2<T>,
    spare_attention: Array2<T>,
    spare_alignments: Array2<T>,
    /// Step scratch: `[rows, I + A]`, `[rows, Q + Dm]`, `[rows, U]` (the
    /// processed queries, Bahdanau) and `[rows, U]` (the `tanh` terms).
    cell_in: Array2<T>,
    hc: Array2<T>,
    processed: Array2<T>,
    tanh: Array2<T>,
}

impl<'c, T: Scalar> Attend<'c, T> {
    /// The wrapper around `cells` (a stack, bottom first; the top layer's
    /// output is the query) starting from `initial` (each layer's state
    /// parts, `[rows, width]`) and `wrapper` (`alignment_history` must be
    /// false: the loops keep no history).
    /// Errors name `memory`, `memory_sequence_length`, `initial_state`,
    /// `initial_attention`, `initial_alignments`, the weights or `cell`.
    pub fn new(
        cells: &[&'c Prepared<T>],
        initial: &[Vec<ArrayView2<T>>],
        wrapper: Wrapper<'_, T>,
    ) -> Result<Self> {
        let Wrapper {
            inputs,
            weights,
            config,
        } = wrapper;
        if config.alignment_history {
            return Err(Error::invalid(
                "alignment_history",
                "False (the decoding loops keep no alignment history)",
                "True",
            ));
        }
        let stack = Stack::new(cells, initial)?;
        let rows = initial[0].first().map_or(0, |p| p.nrows());
        let (count, tm, dm) = inputs.memory.dim();
        if count == 0 || tm == 0 || dm == 0 || !rows.is_multiple_of(count) {
            return Err(Error::invalid(
                "memory",
                format!(
                    "shape [M, Tm, Dm] with M dividing the {rows} decoder rows (beams: M \
                     rows repeated) and Tm, Dm >= 1"
                ),
                format!("shape {:?}", inputs.memory.shape()),
            ));
        }
        let query = stack.output_size();
        let cell_input = stack.input_size();
        let (units, width) =
            attention::check_weights(config.score, weights, dm, query, cell_input)?;
        check_shape(
            "initial_attention",
            inputs.attention.shape(),
            &[rows, width],
        )?;
        check_shape("initial_alignments", inputs.alignments.shape(), &[rows, tm])?;
        let mlen = attention::memory_lengths(count, tm, inputs.memory_lengths)?;
        let what = ("memory", "the values");
        let mut values = try_zeros::<T>(count * tm, dm, what.0, what.1)?;
        for (m, &len) in mlen.iter().enumerate() {
            values
                .slice_mut(s![m * tm..m * tm + len, ..])
                .assign(&inputs.memory.slice(s![m, ..len, ..]));
        }
        let keys = try_par_product(
            values.view(),
            weights.memory_kernel.view(),
            "memory",
            "the keys",
        )?;
        let bahdanau = matches!(config.score, Score::Bahdanau { .. });
        let q_w = if bahdanau { units } else { 0 };
        let per_row = rows / count;
        let memory_row: Vec<usize> = (0..rows).map(|r| r / per_row).collect();
        let input = cell_input - width;
        let mut cell_in = try_zeros::<T>(rows, cell_input, "memory", "the cell inputs")?;
        cell_in.slice_mut(s![.., input..]).assign(&inputs.attention);
        Ok(Attend {
            stack,
            score: config.score,
            output_attention: config.output_attention,
            input,
            query,
            tm,
            dm,
            units,
            width,
            values,
            keys,
            mlen,
            v: attention::effective_v(weights),
            g: weights.g.unwrap_or(T::one()),
            bias: weights.b.as_ref().map(|b| b.to_vec()),
            query_kernel: weights
                .query_kernel
                .as_ref()
                .map(|k| PackedB::new(k.view())),
            attention_kernel: weights
                .attention_kernel
                .as_ref()
                .map(|k| PackedB::new(k.view())),
            spare_rows: memory_row.clone(),
            memory_row,
            attention: inputs.attention.to_owned(),
            alignments: inputs.alignments.to_owned(),
            spare_attention: inputs.attention.to_owned(),
            spare_alignments: inputs.alignments.to_owned(),
            cell_in,
            hc: try_zeros::<T>(rows, query + dm, "memory", "the outputs and contexts")?,
            processed: try_zeros::<T>(rows, q_w, "memory", "the processed queries")?,
            tanh: try_zeros::<T>(rows, q_w, "memory", "the step scratch")?,
        })
    }

    /// Multiply-adds of one row's attention at one step.
    fn attention_work(&self) -> usize {
        let (tm, u, dm, q, a) = (self.tm, self.units, self.dm, self.query, self.width);
        let scores = match self.score {
            Score::Bahdanau { .. } => tm * u * 2 + q * u,
            Score::Luong { .. } => tm * u,
        };
        let layer = if self.attention_kernel.is_some() {
            (q + dm) * a
        } else {
            0
        };
        scores + tm * dm + layer
    }
}

impl<T: Scalar> Decoding<T> for Attend<'_, T> {
    fn input_size(&self) -> usize {
        self.input
    }

    fn output_size(&self) -> usize {
        if self.output_attention {
            self.width
        } else {
            self.query
        }
    }

    fn work_per_row(&self) -> usize {
        self.stack
            .work_per_row()
            .saturating_add(self.attention_work())
    }

    fn step(&mut self, rows: usize, inputs: ArrayView2<T>) -> Result<ArrayView2<'_, T>> {
        let (input, q) = (self.input, self.query);
        // 1. [x, a_prev] (the attention columns hold a_prev already) and the cell
        self.cell_in
            .slice_mut(s![..rows, ..input])
            .assign(&inputs.slice(s![..rows, ..]));
        {
            let h = self.stack.step(rows, self.cell_in.slice(s![..rows, ..]))?;
            self.hc.slice_mut(s![..rows, ..q]).assign(&h);
        }
        // 2. the processed queries (Bahdanau)
        if let Some(wq) = &self.query_kernel {
            let mut qb = self.processed.slice_mut(s![..rows, ..]);
            wq.gemm(false, self.hc.slice(s![..rows, ..q]), qb.view_mut());
            if let Some(bias) = &self.bias {
                for mut row in qb.rows_mut() {
                    row.iter_mut().zip(bias).for_each(|(x, &b)| *x += b);
                }
            }
        }
        // 3. scores, alignments and context, row by row, in chunks of rows
        //    cut by their number alone
        let (tm, dm, units) = (self.tm, self.dm, self.units);
        let len = rows.div_ceil(pool::row_chunks(rows)).max(1);
        let values = self.values.as_slice().expect("standard layout");
        let keys = self.keys.as_slice().expect("standard layout");
        let (mlen, v, g, score) = (&self.mlen, &self.v, self.g, self.score);
        let q_w = self.processed.ncols();
        let parallel = pool::worth_parallel(rows.saturating_mul(self.attention_work()));
        let work: Vec<_> = self
            .hc
            .slice_axis_mut(Axis(0), (..rows).into())
            .into_axis_chunks_iter_mut(Axis(0), len)
            .zip(
                self.alignments
                    .slice_axis_mut(Axis(0), (..rows).into())
                    .into_axis_chunks_iter_mut(Axis(0), len),
            )
            .zip(self.processed.axis_chunks_iter(Axis(0), len))
            .zip(self.tanh.axis_chunks_iter_mut(Axis(0), len))
            .zip(self.memory_row[..rows].chunks(len))
            .collect();
        pool::run(parallel, || {
            pool::for_each(work, |((((mut hc, mut al), qb), mut e), mem)| {
                for (p, &m) in mem.iter().enumerate() {
                    let n = mlen[m];
                    let keys = &keys[m * tm * units..(m * tm + n) * units];
                    let values = &values[m * tm * dm..(m * tm + n) * dm];
                    let row = hc.row_mut(p).into_slice().expect("standard layout");
                    let al = al.row_mut(p).into_slice().expect("standard layout");
                    let (h, c) = row.split_at_mut(q);
                    let (s, masked) = al.split_at_mut(n);
                    match score {
                        Score::Bahdanau { .. } => {
                            let qr = qb.row(p);
                            let qr = qr.as_slice().expect("standard layout");
                            let e = e.row_mut(p).into_slice().expect("standard layout");
                            score::bahdanau(&qr[..q_w], keys, v, s, e);
                        }
                        Score::Luong { .. } => score::luong(h, keys, g, s),
                    }
                    score::softmax_in_place(s);
                    masked.fill(T::zero());
                    score::context(s, values, c);
                }
            })
        });
        // 4. the attention, kept in the cell inputs' columns for the next step
        let mut ab = self.attention.slice_mut(s![..rows, ..]);
        match &self.attention_kernel {
            Some(w) => w.gemm(false, self.hc.slice(s![..rows, ..]), ab.view_mut()),
            None => ab.assign(&self.hc.slice(s![..rows, q..])),
        }
        self.cell_in.slice_mut(s![..rows, input..]).assign(&ab);
        Ok(if self.output_attention {
            self.attention.slice(s![..rows, ..])
        } else {
            self.hc.slice(s![..rows, ..q])
        })
    }

    fn move_row(&mut self, from: usize, to: usize) {
        if from == to {
            return;
        }
        self.stack.move_row(from, to);
        self.memory_row[to] = self.memory_row[from];
        for a in [&mut self.attention, &mut self.alignments, &mut self.cell_in] {
            let (src, mut dst) = a.multi_slice_mut((s![from, ..], s![to, ..]));
            dst.assign(&src);
        }
    }

    fn gather_rows(&mut self, index: &[usize]) {
        self.stack.gather_rows(index);
        for (d, &i) in self.spare_rows.iter_mut().zip(index) {
            *d = self.memory_row[i];
        }
        std::mem::swap(&mut self.memory_row, &mut self.spare_rows);
        for (a, spare) in [
            (&mut self.attention, &mut self.spare_attention),
            (&mut self.alignments, &mut self.spare_alignments),
        ] {
            for (mut dst, &i) in spare.rows_mut().into_iter().zip(index) {
                dst.assign(&a.row(i));
            }
            std::mem::swap(a, spare);
        }
        let input = self.input;
        self.cell_in
            .slice_mut(s![..index.len(), input..])
            .assign(&self.attention.slice(s![..index.len(), ..]));
    }

    fn blocks(&self) -> Vec<Array2<T>> {
        let mut out = self.stack.blocks();
        out.push(self.attention.clone());
        out.push(self.alignments.clone());
        out
    }

    fn save_row(&self, from: usize, kept: &mut [Array2<T>], to: usize) {
        let layers = kept.len() - 2;
        self.stack.save_row(from, &mut kept[..layers], to);
        kept[layers].row_mut(to).assign(&self.attention.row(from));
        kept[layers + 1]
            .row_mut(to)
            .assign(&self.alignments.row(from));
    }

    fn finish(
        &self,
        mut blocks: Vec<Array2<T>>,
    ) -> (Vec<Vec<Array2<T>>>, Option<AttentionState<T>>) {
        let alignments = blocks.pop().expect("the alignments block");
        let attention = blocks.pop().expect("the attention block");
        let (state, _) = self.stack.finish(blocks);
        (
            state,
            Some(AttentionState {
                attention,
                alignments,
            }),
        )
    }
}
