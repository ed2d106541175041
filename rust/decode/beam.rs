//! Beam search (TensorFlow 1.15's `BeamSearchDecoder` under
//! `dynamic_decode`: `initialize`, `_beam_search_step`, `_mask_probs`,
//! `_get_scores`, `_length_penalty`).
//!
//! Per step, for `B` batch rows of `K` beams (state row `b * K + k`):
//!
//! ```text
//! step_lp   = log_softmax(logits)                       [B*K, V]
//! step_lp   = finished ? (0 at EOS, dtype.min elsewhere) : step_lp
//! total     = log_probs + step_lp
//! L         = lengths + (not finished and word != EOS)
//! scores    = total / ((5 + L) / 6) ** w              (w = 0: total)
//! top K of scores over K * V per batch row   (higher first; ties: lower flat index)
//! parent = flat / V, word = flat % V
//! log_probs = total[parent, word]; finished = finished[parent] | word == EOS
//! lengths   = lengths[parent] + not finished[parent]; state rows ← parent's
//! ```
//!
//! At step 0 only beam 0 is live (log-probs `0, -inf, …`, finished `false,
//! true, …`). The loop stops when every beam has finished or at
//! `max_iters`. (A coverage penalty, for attention, would add its term to
//! `scores` where marked below.)

use super::greedy::to_f64;
use super::{check_common, embed, Attend, AttentionInputs, AttentionState, Decoding, Projection};
use super::{Stack, Steps, Wrapper};
use crate::error::{Error, Interrupt, Result};
use crate::kernels::rows::{assemble, try_zeros};
use crate::kernels::scalar::Scalar;
use crate::kernels::softmax;
use crate::pool::{self, Watch};
use crate::step::Prepared;
use ndarray::{Array2, Array3, ArrayView2};

/// The options of [`beam()`].
#[derive(Debug, Clone, Copy)]
pub struct BeamOptions {
    /// The id that ends a beam.
    pub end_token: i64,
    /// The most steps the loop runs.
    pub max_iters: usize,
    /// `K >= 1`.
    pub beam_width: usize,
    /// `w` of the length penalty `((5 + L) / 6) ** w` (finite).
    pub length_penalty_weight: f64,
}

/// What [`beam()`] returns (batch-major; TensorFlow's time-major arrays
/// transposed).
#[derive(Debug, Clone)]
pub struct BeamOutput<T> {
    /// `[B, T, K]`: the word each beam took at each step.
    pub step_ids: Array3<i32>,
    /// `[B, T, K]`: the beam each came from.
    pub parent_ids: Array3<i32>,
    /// `[B, T, K]`: the scores of the chosen candidates.
    pub scores: Array3<T>,
    /// Each layer's final state parts, `[B * K, width]`, row `b * K + k`.
    pub state: Vec<Vec<Array2<T>>>,
    /// The attention wrapper's final attention and alignments, `B * K`
    /// rows ([`beam_attention()`]; `None` from [`beam()`]).
    pub attention: Option<AttentionState<T>>,
    /// `[B, K]`.
    pub log_probs: Array2<T>,
    /// `[B, K]`.
    pub finished: Array2<bool>,
    /// `[B, K]`: each beam's length, its EOS included.
    pub lengths: Array2<i32>,
}

/// Runs a beam search of `options.beam_width` beams with the decoder
/// `cells` (a stack, bottom first) from `initial` (each layer's state
/// parts for `B` rows, tiled to `B * K` rows here: row `b * K + k` starts
/// from row `b`), feeding `embedding[word]` back, starting from
/// `embedding[start_tokens]`; the logits are `projection` of the top
/// layer's output. `interrupt` is polled between steps.
pub fn beam<T: Scalar>(
    cells: &[&Prepared<T>],
    initial: &[Vec<ArrayView2<T>>],
    embedding: ArrayView2<T>,
    projection: &Projection<T>,
    start_tokens: &[i64],
    options: BeamOptions,
    interrupt: &dyn Interrupt,
) -> Result<BeamOutput<T>> {
    let batch = start_tokens.len();
    let tiled = tile(initial, batch, options)?;
    let views = views(&tiled);
    let stack = Stack::new(cells, &views)?;
    run(
        stack,
        embedding,
        projection,
        start_tokens,
        options,
        interrupt,
    )
}

/// [`beam()`] with an attention wrapper around the decoder `cells`
/// (TensorFlow's `AttentionWrapper`; see [`Attend`]): the wrapper's
/// initial attention and alignments are given for `B` rows too (tiled
/// here); hypothesis row `r` attends to memory row `r / (B * K / M)` (`r /
/// K` for a memory of `B` rows: no copy per beam); the output also has the
/// wrapper's final attention and alignments (`B * K` rows).
#[allow(clippy::too_many_arguments)]
pub fn beam_attention<T: Scalar>(
    cells: &[&Prepared<T>],
    initial: &[Vec<ArrayView2<T>>],
    wrapper: Wrapper<'_, T>,
    embedding: ArrayView2<T>,
    projection: &Projection<T>,
    start_tokens: &[i64],
    options: BeamOptions,
    interrupt: &dyn Interrupt,
) -> Result<BeamOutput<T>> {
    let batch = start_tokens.len();
    let tiled = tile(initial, batch, options)?;
    let views = views(&tiled);
    let extra = [
        vec![wrapper.inputs.attention],
        vec![wrapper.inputs.alignments],
    ];
    let names = ["initial_attention", "initial_alignments"];
    for (parts, name) in extra.iter().zip(names) {
        if parts[0].nrows() != batch {
            return Err(Error::invalid(
                name,
                format!("{batch} rows (one per start token)"),
                parts[0].nrows().to_string(),
            ));
        }
    }
    let extra = tile(&extra, batch, options)?;
    let inputs = AttentionInputs {
        attention: extra[0][0].view(),
        alignments: extra[1][0].view(),
        ..wrapper.inputs
    };
    let cell = Attend::new(cells, &views, Wrapper { inputs, ..wrapper })?;
    run(
        cell,
        embedding,
        projection,
        start_tokens,
        options,
        interrupt,
    )
}

/// Borrows tiled states.
fn views<T: Scalar>(tiled: &[Vec<Array2<T>>]) -> Vec<Vec<ArrayView2<'_, T>>> {
    tiled
        .iter()
        .map(|parts| parts.iter().map(|p| p.view()).collect())
        .collect()
}

/// Checks `options` and `initial` (`batch` rows) and tiles the state: row
/// `b * K + j` is row `b`.
fn tile<T: Scalar>(
    initial: &[Vec<ArrayView2<T>>],
    batch: usize,
    options: BeamOptions,
) -> Result<Vec<Vec<Array2<T>>>> {
    let k = options.beam_width;
    if k == 0 {
        return Err(Error::invalid("beam_width", "an integer >= 1", "0"));
    }
    let w = options.length_penalty_weight;
    if !w.is_finite() {
        return Err(Error::invalid(
            "length_penalty_weight",
            "a finite number",
            w.to_string(),
        ));
    }
    for (i, parts) in initial.iter().enumerate() {
        for p in parts {
            if p.nrows() != batch {
                return Err(Error::invalid(
                    format!("initial_state[{i}]"),
                    format!("{batch} rows (one per start token)"),
                    p.nrows().to_string(),
                ));
            }
        }
    }
    let rows = batch
        .checked_mul(k)
        .ok_or_else(|| Error::out_of_memory("beam_width", "the beams' states", None))?;
    // the initial state tiled: row b * K + j is row b
    let tiled: Vec<Vec<Array2<T>>> = initial
        .iter()
        .map(|parts| {
            parts
                .iter()
                .map(|p| {
                    assemble(
                        rows,
                        p.ncols(),
                        0,
                        ("beam_width", "the beams' states"),
                        |r| Some(p.row(r / k)),
                    )
                })
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<_>>()?;
    Ok(tiled)
}

/// The loop of [`beam()`] on any decoder cell of `B * K` rows.
fn run<T: Scalar, D: Decoding<T>>(
    mut stack: D,
    embedding: ArrayView2<T>,
    projection: &Projection<T>,
    start_tokens: &[i64],
    options: BeamOptions,
    interrupt: &dyn Interrupt,
) -> Result<BeamOutput<T>> {
    let k = options.beam_width;
    let w = options.length_penalty_weight;
    let batch = start_tokens.len();
    let rows = batch * k;
    check_common(
        &stack,
        embedding,
        projection,
        start_tokens,
        options.end_token,
    )?;
    let vocab = projection.vocab();
    let end = options.end_token as usize;
    let max_iters = options.max_iters;
    let lowest = lowest::<T>();

    let mut x = try_zeros::<T>(rows, stack.input_size(), "beam_width", "the step inputs")?;
    let mut logits = try_zeros::<T>(rows, vocab, "beam_width", "the step logits")?;
    let mut step_ids = Steps::<i32>::new(rows, max_iters, "the beams' ids");
    let mut parents = Steps::<i32>::new(rows, max_iters, "the beams' parents");
    let mut scores_out = Steps::<T>::new(rows, max_iters, "the beams' scores");
    let mut log_probs: Vec<T> = (0..rows)
        .map(|r| {
            if r % k == 0 {
                T::zero()
            } else {
                T::from_f64(f64::NEG_INFINITY)
            }
        })
        .collect();
    let mut finished: Vec<bool> = (0..rows).map(|r| r % k != 0).collect();
    let mut lengths = vec![0i32; rows];
    // the next step's values, and the top-K candidates of one batch row
    let (mut next_lp, mut next_fin, mut next_len) =
        (log_probs.clone(), finished.clone(), lengths.clone());
    let mut parent_rows = vec![0usize; rows];
    let mut words: Vec<usize> = (0..rows).map(|r| start_tokens[r / k] as usize).collect();
    // each batch row's top K (score, flat index), best first, and each
    // beam's log-softmax constants (its max logit and log-sum-exp)
    let mut top: Vec<(T, usize)> = vec![(T::zero(), 0); rows];
    let (mut shift, mut log_sum) = (vec![T::zero(); rows], vec![T::zero(); rows]);
    embed(embedding, &words, &mut x);

    let watch = Watch::new(interrupt);
    let mut ticker = watch.ticker();
    let work_per_row = stack
        .work_per_row()
        .saturating_add(projection.work_per_row());
    let mut t = 0;
    while t < max_iters && finished.iter().any(|f| !f) {
        ticker.tick(rows.saturating_mul(work_per_row))?;
        let h = stack.step(rows, x.view())?;
        projection.apply(h, logits.view_mut());
        let view = Beams {
            logits: logits.view(),
            log_probs: &log_probs,
            finished: &finished,
            lengths: &lengths,
            k,
            end,
            w,
            lowest,
        };
        // per batch row (independent, cut by shapes alone): each beam's
        // log-softmax constants and the row's top K
        let per = batch.div_ceil(pool::row_chunks(batch)).max(1);
        let work: Vec<_> = top
            .chunks_mut(per * k)
            .zip(shift.chunks_mut(per * k))
            .zip(log_sum.chunks_mut(per * k))
            .enumerate()
            .collect();
        let parallel = pool::worth_parallel(rows.saturating_mul(vocab).saturating_mul(16));
        pool::run(parallel, || {
            pool::for_each(work, |(c, ((top, shift), log_sum))| {
                softmax::vectorized(Select {
                    beams: &view,
                    b0: c * per,
                    top,
                    shift,
                    log_sum,
                })
            })
        });
        let ids = step_ids.push()?;
        let par = parents.push()?;
        let sc = scores_out.push()?;
        for (r, &(score, flat)) in top.iter().enumerate() {
            let (j, v) = (flat / vocab, flat % vocab);
            let parent = r - r % k + j;
            next_lp[r] = view.total(parent, v, shift[parent], log_sum[parent]);
            next_fin[r] = finished[parent] || v == end;
            next_len[r] = lengths[parent] + !finished[parent] as i32;
            parent_rows[r] = parent;
            words[r] = v;
            ids[r] = v as i32;
            par[r] = j as i32;
            sc[r] = score;
        }
        std::mem::swap(&mut log_probs, &mut next_lp);
        std::mem::swap(&mut finished, &mut next_fin);
        std::mem::swap(&mut lengths, &mut next_len);
        stack.gather_rows(&parent_rows);
        embed(embedding, &words, &mut x);
        t += 1;
    }
    watch.result()?;
    let (state, attention) = stack.finish(stack.blocks());
    Ok(BeamOutput {
        step_ids: step_ids.batch_major(batch, k)?,
        parent_ids: parents.batch_major(batch, k)?,
        scores: scores_out.batch_major(batch, k)?,
        state,
        attention,
        log_probs: grid(batch, k, log_probs),
        finished: grid(batch, k, finished),
        lengths: grid(batch, k, lengths),
    })
}

/// `v` as `[batch, k]`.
fn grid<E>(batch: usize, k: usize, v: Vec<E>) -> Array2<E> {
    Array2::from_shape_vec((batch, k), v).expect("B * K entries")
}

/// The most negative finite value of `T` (TensorFlow's `dtype.min`, the
/// log-probability `_mask_probs` gives a finished beam's non-EOS words).
fn lowest<T: Scalar>() -> T {
    if std::mem::size_of::<T>() == 4 {
        T::from_f64(f32::MIN as f64)
    } else {
        T::from_f64(f64::MIN)
    }
}

/// `((5 + len) / 6) ** w` as TensorFlow computes it (`(5 + len) ** w /
/// 6 ** w`), rounded to `T`; 1 when `w = 0` (dividing by it changes
/// nothing).
fn penalty<T: Scalar>(len: i32, w: f64) -> T {
    if w == 0.0 {
        return T::one();
    }
    T::from_f64((5.0 + len as f64).powf(w) / 6.0f64.powf(w))
}

/// One step's candidates: `B * K` beams' logits and state.
struct Beams<'a, T> {
    logits: ArrayView2<'a, T>,
    log_probs: &'a [T],
    finished: &'a [bool],
    lengths: &'a [i32],
    k: usize,
    end: usize,
    w: f64,
    lowest: T,
}

impl<T: Scalar> Beams<'_, T> {
    /// The total log-probability of word `v` after beam `r`
    /// (`log_probs[r] + log_softmax(logits[r])[v]`, the log-softmax being
    /// `(z - shift) - log_sum`; a finished beam's only free word is EOS).
    #[inline(always)]
    fn total(&self, r: usize, v: usize, shift: T, log_sum: T) -> T {
        let lp = self.log_probs[r];
        if self.finished[r] {
            lp + if v == self.end {
                T::zero()
            } else {
                self.lowest
            }
        } else {
            lp + ((self.logits[[r, v]] - shift) - log_sum)
        }
    }

    /// Batch rows `b0..` (as many as `top` holds `K`-blocks): each beam's
    /// log-softmax constants into `shift` and `log_sum`, and the row's best
    /// `K` candidates `(score, j * V + v)` into its block of `top`, in one
    /// pass over the `K * V` candidates without sorting.
    #[inline(always)]
    fn select(&self, b0: usize, top: &mut [(T, usize)], shift: &mut [T], log_sum: &mut [T]) {
        let k = self.k;
        for (i, best) in top.chunks_mut(k).enumerate() {
            let mut best = TopK {
                items: best,
                len: 0,
            };
            for j in 0..k {
                let r = (b0 + i) * k + j;
                let row = self.logits.row(r);
                let row = row.as_slice().expect("standard layout");
                let (lp, len) = (self.log_probs[r], self.lengths[r]);
                let at = j * row.len();
                if self.finished[r] {
                    let p = penalty::<T>(len, self.w);
                    let (free, masked) = ((lp + T::zero()) / p, (lp + self.lowest) / p);
                    // (a coverage penalty would be added to the scores here)
                    best.scan(row.len(), at, |v| if v == self.end { free } else { masked });
                } else {
                    let m = softmax::max(row);
                    let ls = T::from_f64(to_f64(softmax::sum_exp(row, m)).ln());
                    shift[i * k + j] = m;
                    log_sum[i * k + j] = ls;
                    let (grow, stay) = (penalty::<T>(len + 1, self.w), penalty::<T>(len, self.w));
                    let end = self.end;
                    best.scan(row.len(), at, |v| {
                        (lp + ((row[v] - m) - ls)) / if v == end { stay } else { grow }
                    });
                }
            }
        }
    }
}

/// [`Beams::select`] on the CPU's widest vectors.
struct Select<'a, 'b, T> {
    beams: &'a Beams<'b, T>,
    b0: usize,
    top: &'a mut [(T, usize)],
    shift: &'a mut [T],
    log_sum: &'a mut [T],
}

impl<T: Scalar> softmax::Vectorized for Select<'_, '_, T> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        self.beams
            .select(self.b0, self.top, self.shift, self.log_sum)
    }
}

/// The best candidates offered so far (at most `items.len()`), best first:
/// higher score first, equal scores in the order offered, i.e. lower flat
/// index first (TensorFlow's `top_k`); a NaN score ranks below every number.
struct TopK<'a, T> {
    items: &'a mut [(T, usize)],
    len: usize,
}

impl<T: Scalar> TopK<'_, T> {
    /// Whether any score can enter without beating the worst kept one
    /// numerically (not full yet, or the worst is NaN).
    #[inline(always)]
    fn open(&self) -> bool {
        self.len < self.items.len() || {
            let worst = self.items[self.len - 1].0;
            worst.partial_cmp(&worst).is_none()
        }
    }

    /// Offers `score(v)` for `v` in `0..n` as flat index `at + v`, in
    /// order; blocks of [`softmax::LANES`] candidates none of which beats
    /// the worst kept are skipped at once.
    #[inline(always)]
    fn scan(&mut self, n: usize, at: usize, score: impl Fn(usize) -> T) {
        const W: usize = softmax::LANES;
        let mut v = 0;
        while v + W <= n {
            let mut s = [T::zero(); W];
            for (l, s) in s.iter_mut().enumerate() {
                *s = score(v + l);
            }
            let mut open = self.open();
            if !open {
                let worst = self.items[self.len - 1].0;
                for &s in &s {
                    open |= s > worst;
                }
            }
            if open {
                for (l, &s) in s.iter().enumerate() {
                    self.offer(s, at + v + l);
                }
            }
            v += W;
        }
        while v < n {
            self.offer(score(v), at + v);
            v += 1;
        }
    }

    /// Adds candidate `(score, flat)` if it is among the best.
    #[inline(always)]
    fn offer(&mut self, score: T, flat: usize) {
        let better =
            |a: T, b: T| a > b || (b.partial_cmp(&b).is_none() && a.partial_cmp(&a).is_some());
        let k = self.items.len();
        if self.len == k {
            if !better(score, self.items[k - 1].0) {
                return;
            }
            self.len -= 1;
        }
        let at = self.items[..self.len]
            .iter()
            .position(|&(s, _)| better(score, s))
            .unwrap_or(self.len);
        self.items.copy_within(at..self.len, at + 1);
        self.items[at] = (score, flat);
        self.len += 1;
    }
}
