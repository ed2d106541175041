//! Greedy and sampled decoding (TensorFlow 1.15's `BasicDecoder` with a
//! `GreedyEmbeddingHelper` or `SampleEmbeddingHelper` under
//! `dynamic_decode`).

use super::{check_common, embed, Attend, AttentionState, BatchSteps, Decoding, Projection};
use super::{Stack, Steps, Wrapper};
use crate::error::{Error, Interrupt, Result};
use crate::kernels::rows::try_zeros;
use crate::kernels::scalar::Scalar;
use crate::kernels::softmax;
use crate::pool::Watch;
use crate::step::Prepared;
use ndarray::{Array2, Array3, ArrayView1, ArrayView2, Axis};

/// Sampling instead of argmax (`SampleEmbeddingHelper`): row `b` at step `t`
/// draws with the uniform `uniforms[t, b]` from `softmax(logits /
/// temperature)`, computed in `f64`: `e = exp((z - max z) / temperature)`, `cdf` its
/// sequential cumulative sum, `id = min(#{k : cdf[k] <= u * cdf[V-1]}, V - 1)`
/// (NumPy's `searchsorted(cdf, u * cdf[-1], side="right")`, clipped).
#[derive(Debug, Clone, Copy)]
pub struct Sampling<'a> {
    /// `[maximum_iterations, B]`.
    pub uniforms: ArrayView2<'a, f64>,
    /// Positive and finite.
    pub temperature: f64,
}

/// The options of [`greedy()`].
#[derive(Debug, Clone, Copy)]
pub struct GreedyOptions<'a> {
    /// The id that ends a row.
    pub end_token: i64,
    /// The most steps the loop runs.
    pub max_iters: usize,
    /// TensorFlow's `impute_finished`: rows finished before a step output
    /// zeros there (id 0) and keep their state; they leave the step's
    /// products. When false every row is computed until all have finished.
    pub impute_finished: bool,
    /// `None`: argmax (the first maximum).
    pub sampling: Option<Sampling<'a>>,
}

/// What [`greedy()`] returns.
#[derive(Debug, Clone)]
pub struct GreedyOutput<T> {
    /// `[B, T, V]`: the logits of every step (zeros where imputed).
    pub rnn_output: Array3<T>,
    /// `[B, T]`: the ids chosen (0 where imputed).
    pub sample_id: Array2<i32>,
    /// `[B]`: the step at which each row finished, its EOS step included
    /// (`max_iters` for a row that never emitted EOS).
    pub lengths: Vec<i32>,
    /// Each layer's final state, as its parts `[B, width]`.
    pub state: Vec<Vec<Array2<T>>>,
    /// The attention wrapper's final attention and alignments
    /// ([`greedy_attention()`]; `None` from [`greedy()`]).
    pub attention: Option<AttentionState<T>>,
}

/// Runs the decoder `cells` (a stack, bottom first) from `initial` (each
/// layer's state parts, `[B, width]`), feeding `embedding[id]` (`[V_e, I]`)
/// of each step's id back as the next step's input, starting from
/// `embedding[start_tokens]`; the logits are `projection` of the top
/// layer's output. Lengths and finished rows follow TensorFlow's
/// `dynamic_decode`: a row finishes at the step that emits `end_token`
/// (counted in its length) or at `max_iters`; the loop stops when every row
/// has finished. `interrupt` is polled between steps.
pub fn greedy<T: Scalar>(
    cells: &[&Prepared<T>],
    initial: &[Vec<ArrayView2<T>>],
    embedding: ArrayView2<T>,
    projection: &Projection<T>,
    start_tokens: &[i64],
    options: GreedyOptions<'_>,
    interrupt: &dyn Interrupt,
) -> Result<GreedyOutput<T>> {
    let stack = Stack::new(cells, initial)?;
    check_batch(initial, start_tokens.len())?;
    run(
        stack,
        embedding,
        projection,
        start_tokens,
        options,
        interrupt,
    )
}

/// [`greedy()`] with an attention wrapper around the decoder `cells`
/// (TensorFlow's `AttentionWrapper`; see [`Attend`]): row `b` attends to
/// memory row `b / (B / M)`; the output also has the wrapper's final
/// attention and alignments (with `impute_finished`, each row's as it
/// finished).
#[allow(clippy::too_many_arguments)]
pub fn greedy_attention<T: Scalar>(
    cells: &[&Prepared<T>],
    initial: &[Vec<ArrayView2<T>>],
    wrapper: Wrapper<'_, T>,
    embedding: ArrayView2<T>,
    projection: &Projection<T>,
    start_tokens: &[i64],
    options: GreedyOptions<'_>,
    interrupt: &dyn Interrupt,
) -> Result<GreedyOutput<T>> {
    let cell = Attend::new(cells, initial, wrapper)?;
    check_batch(initial, start_tokens.len())?;
    run(
        cell,
        embedding,
        projection,
        start_tokens,
        options,
        interrupt,
    )
}

/// Checks that the initial state has one row per start token.
fn check_batch<T>(initial: &[Vec<ArrayView2<T>>], batch: usize) -> Result<()> {
    let rows0 = initial[0].first().map_or(0, |p| p.nrows());
    if rows0 != batch {
        return Err(Error::invalid(
            "start_tokens",
            format!("shape [{rows0}] (the initial state's batch)"),
            format!("shape [{batch}]"),
        ));
    }
    Ok(())
}

/// The loop of [`greedy()`] on any decoder cell.
fn run<T: Scalar, D: Decoding<T>>(
    mut stack: D,
    embedding: ArrayView2<T>,
    projection: &Projection<T>,
    start_tokens: &[i64],
    options: GreedyOptions<'_>,
    interrupt: &dyn Interrupt,
) -> Result<GreedyOutput<T>> {
    let batch = start_tokens.len();
    check_common(
        &stack,
        embedding,
        projection,
        start_tokens,
        options.end_token,
    )?;
    let max_iters = options.max_iters;
    if let Some(s) = &options.sampling {
        crate::error::check_shape("uniforms", s.uniforms.shape(), &[max_iters, batch])?;
        if !(s.temperature.is_finite() && s.temperature > 0.0) {
            return Err(Error::invalid(
                "softmax_temperature",
                "a positive finite number",
                s.temperature.to_string(),
            ));
        }
    }
    let vocab = projection.vocab();
    let end = options.end_token as usize;
    let input = stack.input_size();

    let mut x = try_zeros::<T>(batch, input, "start_tokens", "the step inputs")?;
    let mut logits = try_zeros::<T>(batch, vocab, "output_layer", "the step logits")?;
    let mut cdf = vec![0.0f64; if options.sampling.is_some() { vocab } else { 0 }];
    let mut outputs = BatchSteps::<T>::new(batch, vocab, max_iters, "the outputs")?;
    let mut ids_out = Steps::<i32>::new(batch, max_iters, "the sample ids");
    // positions → rows: the rows still running sit at the front of the
    // stepper's buffers (with `impute_finished`; else every row runs)
    let mut active: Vec<usize> = (0..batch).collect();
    let mut ids: Vec<usize> = start_tokens.iter().map(|&s| s as usize).collect();
    let mut finished = vec![max_iters == 0; batch];
    let mut lengths = vec![0i32; batch];
    // with `impute_finished`, each row's state as it finished
    let mut kept: Vec<Array2<T>> = if options.impute_finished {
        stack.blocks()
    } else {
        Vec::new()
    };
    embed(embedding, &ids, &mut x);

    let watch = Watch::new(interrupt);
    let mut ticker = watch.ticker();
    let work_per_row = stack
        .work_per_row()
        .saturating_add(projection.work_per_row());
    let mut t = 0;
    while finished.iter().any(|f| !f) {
        let n = active.len();
        ticker.tick(n.saturating_mul(work_per_row))?;
        let h = stack.step(n, x.slice(ndarray::s![..n, ..]))?;
        let mut step_logits = logits.slice_mut(ndarray::s![..n, ..]);
        projection.apply(h, step_logits.view_mut());
        outputs.push()?;
        let id_row = ids_out.push()?;
        let last = t + 1 >= max_iters;
        for (p, row) in step_logits.axis_iter(Axis(0)).enumerate() {
            let b = active[p];
            let id = match &options.sampling {
                None => argmax(row),
                Some(s) => sample(row, s.uniforms[[t, b]], s.temperature, &mut cdf),
            };
            ids[p] = id;
            outputs
                .row_mut(b)
                .copy_from_slice(row.as_slice().expect("standard layout"));
            id_row[b] = id as i32;
            if !finished[b] {
                lengths[b] = (t + 1) as i32;
            }
            finished[b] |= id == end || last;
        }
        if options.impute_finished {
            // keep the state of the rows that finished, move the others up
            let mut k = 0;
            for p in 0..n {
                let b = active[p];
                if finished[b] {
                    stack.save_row(p, &mut kept, b);
                } else {
                    stack.move_row(p, k);
                    active[k] = b;
                    ids[k] = ids[p];
                    k += 1;
                }
            }
            active.truncate(k);
            ids.truncate(k);
        }
        embed(embedding, &ids, &mut x);
        t += 1;
    }
    watch.result()?;
    let (state, attention) = stack.finish(if options.impute_finished {
        kept
    } else {
        stack.blocks()
    });
    Ok(GreedyOutput {
        rnn_output: outputs.into_array(),
        sample_id: ids_out
            .batch_major(batch, 1)?
            .into_shape_with_order((batch, t))
            .expect("[B, T, 1] is [B, T]"),
        lengths,
        state,
        attention,
    })
}

/// The index of the first maximum (NumPy's `argmax`: a NaN wins at once).
pub fn argmax<T: Scalar>(row: ArrayView1<T>) -> usize {
    match row.as_slice() {
        Some(row) => softmax::argmax(row),
        None => softmax::argmax(&row.to_vec()),
    }
}

/// The id drawn with uniform `u` (see [`Sampling`]); `cdf` is scratch of
/// `V` entries.
pub fn sample<T: Scalar>(row: ArrayView1<T>, u: f64, temperature: f64, cdf: &mut [f64]) -> usize {
    let v = row.len();
    // Dividing after the subtraction keeps a tiny temperature exact (the
    // first maximum) instead of overflowing to inf - inf.
    let top = row
        .iter()
        .map(|&x| to_f64(x))
        .fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for (c, &x) in cdf.iter_mut().zip(row) {
        sum += ((to_f64(x) - top) / temperature).exp();
        *c = sum;
    }
    let threshold = u * sum;
    cdf.partition_point(|&c| c <= threshold).min(v - 1)
}

/// `x` as `f64` (exact for both scalar types).
pub(crate) fn to_f64<T: Scalar>(x: T) -> f64 {
    // `Scalar` is sealed to f32 and f64, both of which convert exactly.
    let any: &dyn std::any::Any = &x;
    match any.downcast_ref::<f32>() {
        Some(&v) => v as f64,
        None => *any.downcast_ref::<f64>().expect("Scalar is f32 or f64"),
    }
}
