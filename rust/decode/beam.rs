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
use super::{check_common, embed, Projection, Stack, Steps};
use crate::error::{Error, Interrupt, Result};
use crate::kernels::rows::{assemble, try_zeros};
use crate::kernels::scalar::Scalar;
use crate::pool::Watch;
use crate::step::Prepared;
use ndarray::{Array2, Array3, ArrayView2, Axis};

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
    let batch = start_tokens.len();
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
    let views: Vec<Vec<ArrayView2<T>>> = tiled
        .iter()
        .map(|parts| parts.iter().map(|p| p.view()).collect())
        .collect();
    let mut stack = Stack::new(cells, &views)?;
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
    let mut top: Vec<(T, usize)> = Vec::with_capacity(k);
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
        // total log-probabilities, in place of the logits
        for (r, mut row) in logits.axis_iter_mut(Axis(0)).enumerate() {
            if finished[r] {
                for (v, l) in row.iter_mut().enumerate() {
                    *l = log_probs[r] + if v == end { T::zero() } else { lowest };
                }
            } else {
                log_softmax(row.view_mut().into_slice().expect("standard layout"));
                for l in row.iter_mut() {
                    *l = log_probs[r] + *l;
                }
            }
        }
        let ids = step_ids.push()?;
        let par = parents.push()?;
        let sc = scores_out.push()?;
        for b in 0..batch {
            top.clear();
            for j in 0..k {
                let r = b * k + j;
                let base = lengths[r];
                for (v, &total) in logits.row(r).iter().enumerate() {
                    let grows = !finished[r] && v != end;
                    let score = penalized(total, base + grows as i32, w);
                    // (a coverage penalty would be added to `score` here)
                    offer(&mut top, k, score, j * vocab + v);
                }
            }
            for (i, &(score, flat)) in top.iter().enumerate() {
                let (j, v) = (flat / vocab, flat % vocab);
                let (r, parent) = (b * k + i, b * k + j);
                next_lp[r] = logits[[parent, v]];
                next_fin[r] = finished[parent] || v == end;
                next_len[r] = lengths[parent] + !finished[parent] as i32;
                parent_rows[r] = parent;
                words[r] = v;
                ids[r] = v as i32;
                par[r] = j as i32;
                sc[r] = score;
            }
        }
        std::mem::swap(&mut log_probs, &mut next_lp);
        std::mem::swap(&mut finished, &mut next_fin);
        std::mem::swap(&mut lengths, &mut next_len);
        stack.gather_rows(&parent_rows);
        embed(embedding, &words, &mut x);
        t += 1;
    }
    watch.result()?;
    Ok(BeamOutput {
        step_ids: step_ids.batch_major(batch, k)?,
        parent_ids: parents.batch_major(batch, k)?,
        scores: scores_out.batch_major(batch, k)?,
        state: stack.state_parts(),
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

/// `total / ((5 + len) / 6) ** w`, the penalty as TensorFlow computes it
/// (`(5 + len) ** w / 6 ** w`); `w = 0` leaves `total` as it is.
fn penalized<T: Scalar>(total: T, len: i32, w: f64) -> T {
    if w == 0.0 {
        return total;
    }
    let penalty = (5.0 + len as f64).powf(w) / 6.0f64.powf(w);
    total / T::from_f64(penalty)
}

/// Adds candidate `(score, flat)` to `top` (at most `k`, best first: higher
/// score first, equal scores in the order offered, i.e. lower flat index
/// first — TensorFlow's `top_k`). A NaN score ranks below every number.
fn offer<T: Scalar>(top: &mut Vec<(T, usize)>, k: usize, score: T, flat: usize) {
    let better = |a: T, b: T| a > b || (b.partial_cmp(&b).is_none() && a.partial_cmp(&a).is_some());
    if top.len() == k {
        match top.last() {
            Some(&(worst, _)) if better(score, worst) => {
                top.pop();
            }
            _ => return,
        }
    }
    let at = top
        .iter()
        .position(|&(s, _)| better(score, s))
        .unwrap_or(top.len());
    top.insert(at, (score, flat));
}

/// `row ← log_softmax(row)`, computed in `f64`: `z - max z - ln Σ exp(z -
/// max z)`.
fn log_softmax<T: Scalar>(row: &mut [T]) {
    let top = row
        .iter()
        .map(|&z| to_f64(z))
        .fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = row.iter().map(|&z| (to_f64(z) - top).exp()).sum();
    let log_sum = sum.ln();
    for z in row.iter_mut() {
        *z = T::from_f64(to_f64(*z) - top - log_sum);
    }
}
