//! The forward time loop of the attention wrapper.

use super::score;
use super::{check_weights, effective_v, input_grad_map, Config, Dims, Packed, Score, Weights};
use crate::error::{check_shape, Budget, Error, Interrupt, Result};
use crate::kernels::gemm::try_par_product;
use crate::kernels::packed::PackedB;
use crate::kernels::rows::{mat, mat_mut, try_zeros};
use crate::kernels::scalar::Scalar;
use crate::pool::{self, Watch};
use crate::sequence::plan::{Extent, Plan};
use crate::sequence::slots::{block, final_state, gather_group_rows, scatter, split_groups, Slot};
use crate::step::{Forward, Layout, Prepared};
use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3};

/// A call's arrays (batch-major).
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a, T> {
    /// `inputs` `[B, T, I]`.
    pub x: ArrayView3<'a, T>,
    /// `sequence_length` `[B]`, each in `[0, T]` (`None`: `T`).
    pub lengths: Option<&'a [i64]>,
    /// `initial_state`: the cell's initial state parts, each `[B, width]`.
    pub initial_state: &'a [ArrayView2<'a, T>],
    /// `initial_attention` `[B, A]`.
    pub initial_attention: ArrayView2<'a, T>,
    /// `memory` `[B, Tm, Dm]`.
    pub memory: ArrayView3<'a, T>,
    /// `memory_sequence_length` `[B]`, each in `[1, Tm]` (`None`: `Tm`).
    pub memory_lengths: Option<&'a [i64]>,
}

/// What [`forward()`] keeps for [`super::backward()`]: the plan, the
/// weights, the masked memory and its keys, and the loop's per-token
/// buffers in the slot layout (see [`crate::sequence::plan`]).
#[derive(Debug, Clone)]
pub struct Tape<T> {
    pub(super) plan: Plan,
    pub(super) config: Config,
    pub(super) dims: Dims,
    pub(super) weights: Weights<T>,
    /// The effective Bahdanau `v` (empty for Luong).
    pub(super) v: Vec<T>,
    /// `mlen[b]`.
    pub(super) memory_lengths: Vec<usize>,
    /// `V` `[B * Tm, Dm]`: the memory, zero past each row's length.
    pub(super) values: Array2<T>,
    /// `K` `[B * Tm, U]`.
    pub(super) keys: Array2<T>,
    /// `[R, I + A]`: the cell's inputs `[x_t, a_{t-1}]`.
    pub(super) x: Array2<T>,
    /// `[R, W]`: the cell's states; block `k` is the state after step `k-1`.
    pub(super) states: Array2<T>,
    /// `[R, G]` as the steps left it (`[0, 0]` when the cell's backward does
    /// not read it).
    pub(super) gates: Array2<T>,
    /// `[R, aux]`.
    pub(super) aux: Array2<T>,
    /// `[R, Q + Dm]`: `[h_t, c_t]`.
    pub(super) hc: Array2<T>,
    /// `[R, U]` (Bahdanau; `[R, 0]` for Luong): the processed query
    /// `h_t @ query_layer/kernel` (+ `attention_b` when normalised).
    pub(super) query: Array2<T>,
    /// `[R, Tm]`: each step's alignments.
    pub(super) alignments: Array2<T>,
}

/// What [`forward()`] returns.
#[derive(Debug, Clone)]
pub struct Output<T> {
    /// `[B, T, A]` (the attention) or `[B, T, Q]` (the cell's output), zero
    /// past each length.
    pub outputs: Array3<T>,
    /// The cell's final state parts, each `[B, width]`.
    pub state: Vec<Array2<T>>,
    /// `[B, A]`: each row's last attention (its initial attention for
    /// length 0).
    pub attention: Array2<T>,
    /// `[B, Tm]`: each row's last alignments (zeros for length 0: TF's
    /// `initial_alignments`; a caller that starts from other alignments
    /// keeps them for those rows itself).
    pub alignments: Array2<T>,
    /// `[T, B, Tm]` with `alignment_history` (zeros past each length).
    pub history: Option<Array3<T>>,
    /// What backward needs.
    pub tape: Tape<T>,
}

/// Each row's memory length, checked: in `[1, Tm]` (`None`: `Tm`).
pub(crate) fn memory_lengths(
    batch: usize,
    tm: usize,
    lengths: Option<&[i64]>,
) -> Result<Vec<usize>> {
    let arg = "memory_sequence_length";
    match lengths {
        None => Ok(vec![tm; batch]),
        Some(l) => {
            if l.len() != batch {
                return Err(Error::invalid(
                    arg,
                    format!("{batch} lengths (one per batch row)"),
                    l.len().to_string(),
                ));
            }
            l.iter()
                .enumerate()
                .map(|(b, &v)| {
                    if v < 1 || v as u64 > tm as u64 {
                        Err(Error::invalid(
                            arg,
                            format!(
                                "values in [1, {tm}] (a row needs at least one memory position)"
                            ),
                            format!("{v} at index {b}"),
                        ))
                    } else {
                        Ok(v as usize)
                    }
                })
                .collect()
        }
    }
}

/// Multiply-adds per token of the attention's part of a step.
pub(super) fn attention_work(dims: &Dims, config: &Config, layer: bool, gates: usize) -> usize {
    let (tm, u, dm, q, a) = (
        dims.memory_time,
        dims.units,
        dims.memory_depth,
        dims.query,
        dims.attention,
    );
    let scores = match config.score {
        Score::Bahdanau { .. } => tm * u * 2 + q * u,
        Score::Luong { .. } => tm * u,
    };
    scores + tm * dm + if layer { (q + dm) * a } else { 0 } + a * gates
}

fn forward_budget<T>(layout: &Layout, extent: &Extent, dims: &Dims, config: &Config) -> Budget {
    let elem = std::mem::size_of::<T>();
    let mut budget = Budget::new("inputs");
    extent.add_plan(&mut budget);
    let rows = extent.rows().unwrap_or(usize::MAX);
    let (b, t, tm) = (dims.batch, dims.time, dims.memory_time);
    budget.add("the cell inputs", &[rows, dims.cell_input()], elem);
    budget.add("the gate buffer", &[rows, layout.gates], elem);
    budget.add("the states", &[rows, layout.state_width()], elem);
    budget.add("the steps' kept values", &[rows, layout.aux], elem);
    budget.add("the outputs and contexts", &[rows, dims.hc()], elem);
    budget.add("the processed queries", &[rows, dims.units], elem);
    budget.add("the alignments", &[rows, tm], elem);
    budget.add("the attentions", &[rows, dims.attention], elem);
    budget.add("the values", &[b, tm, dims.memory_depth], elem);
    budget.add("the keys", &[b, tm, dims.units], elem);
    budget.add("the step scratch", &[b, layout.scratch], elem);
    budget.add("the final states", &[2, b, layout.state_width()], elem);
    budget.add("the final attentions", &[b, dims.attention + tm], elem);
    budget.add("the outputs", &[b, t, dims.output(config)], elem);
    if config.alignment_history {
        budget.add("the alignment history", &[t, b, tm], elem);
    }
    budget
}

/// Runs the attention wrapper around `cell` over a batch of sequences
/// (see the module for the maths).
///
/// Shapes are checked first (errors name `inputs`, `sequence_length`,
/// `initial_state`, `initial_attention`, `memory`,
/// `memory_sequence_length`, the weights by name, or `cell`); then every
/// buffer is sized with checked arithmetic ([`Error::OutOfMemory`] naming
/// `inputs` before any is allocated) and allocated fallibly. `interrupt` is
/// polled between time steps.
pub fn forward<T: Scalar>(
    cell: &Prepared<T>,
    inputs: Inputs<'_, T>,
    weights: Weights<T>,
    config: Config,
    interrupt: &dyn Interrupt,
) -> Result<Output<T>> {
    let core = cell.cell();
    let layout = core.layout();
    let (batch, time, input) = inputs.x.dim();
    let (m_batch, tm, dm) = inputs.memory.dim();
    if m_batch != batch || tm == 0 || dm == 0 {
        return Err(Error::invalid(
            "memory",
            format!("shape [{batch}, Tm, Dm] (B = {batch} from inputs; Tm, Dm >= 1)"),
            format!("shape {:?}", inputs.memory.shape()),
        ));
    }
    let q = layout.output_width();
    let (units, attention) = check_weights(config.score, &weights, dm, q, layout.input)?;
    if input + attention != layout.input {
        return Err(Error::invalid(
            "inputs",
            format!(
                "shape [{batch}, {time}, {}] (the cell's input size {} minus the attention's width {attention})",
                layout.input - attention,
                layout.input
            ),
            format!("shape {:?}", inputs.x.shape()),
        ));
    }
    let back_rows = input_grad_map(core, input)?.nrows();
    debug_assert!(back_rows <= layout.d_gates);
    let dims = Dims {
        batch,
        time,
        input,
        attention,
        memory_time: tm,
        memory_depth: dm,
        units,
        query: q,
    };
    let extent = Extent::new(batch, time, inputs.lengths)?;
    layout.check_parts("initial_state", inputs.initial_state, batch)?;
    check_shape(
        "initial_attention",
        inputs.initial_attention.shape(),
        &[batch, attention],
    )?;
    let mlen = memory_lengths(batch, tm, inputs.memory_lengths)?;
    forward_budget::<T>(layout, &extent, &dims, &config).check()?;

    let plan = Plan::new(batch, time, inputs.lengths)?;
    let initial = layout.join_parts(inputs.initial_state, batch);
    let bahdanau = config.score.is_bahdanau();
    let layer = weights.attention_kernel.is_some();
    let v = effective_v(&weights);
    let packed = Packed {
        cell_attention: PackedB::new(core.input_kernel().slice(s![input.., ..])),
        query: weights
            .query_kernel
            .as_ref()
            .map(|k| PackedB::new(k.view())),
        attention: weights
            .attention_kernel
            .as_ref()
            .map(|k| PackedB::new(k.view())),
    };
    let work_per_token =
        layout
            .work_per_token
            .saturating_add(attention_work(&dims, &config, layer, layout.gates));
    let parallel = pool::worth_parallel(plan.tokens().saturating_mul(work_per_token));
    let watch = Watch::new(interrupt);
    let (ci, width, hw) = (dims.cell_input(), layout.state_width(), dims.hc());
    let (gw, aw, sw) = (layout.gates, layout.aux, layout.scratch);
    let q_w = if bahdanau { units } else { 0 };
    let out_cols = layout.output_columns();
    let g_scale = weights.g.unwrap_or(T::one());
    let bias = weights.b.as_ref().map(|b| b.to_vec());

    let bufs = pool::run_watched(parallel, &watch, || -> Result<_> {
        // V: the memory, masked; K = V @ memory_layer/kernel, once
        let mut values = try_zeros::<T>(batch * tm, dm, "inputs", "the values")?;
        for (b, &m) in mlen.iter().enumerate() {
            let src = inputs.memory.slice(s![b, ..m, ..]);
            values.slice_mut(s![b * tm..b * tm + m, ..]).assign(&src);
        }
        let keys = try_par_product(
            values.view(),
            weights.memory_kernel.view(),
            "inputs",
            "the keys",
        )?;
        // X = [x_t, a_{t-1}] in the slot layout; the x part now
        let mut xs = try_zeros::<T>(plan.rows, ci, "inputs", "the cell inputs")?;
        let work: Vec<_> = plan
            .groups
            .iter()
            .zip(split_groups(&plan, &mut xs))
            .collect();
        pool::for_each(work, |(g, xs_g)| {
            for (t, &a) in g.active.iter().enumerate() {
                let rows = xs_g[block(g, t, a, ci)].chunks_exact_mut(ci);
                for (row, &b) in rows.zip(&g.rows) {
                    for (d, &v) in row[..input].iter_mut().zip(inputs.x.slice(s![b, t, ..])) {
                        *d = v;
                    }
                }
            }
        });
        // the hoisted input projection: Z = x @ W_x[:I]
        let mut gates = try_par_product(
            xs.slice(s![.., ..input]),
            core.input_kernel().slice(s![..input, ..]),
            "inputs",
            "the gate buffer",
        )?;
        let mut states = try_zeros::<T>(plan.rows, width, "inputs", "the states")?;
        let mut aux = try_zeros::<T>(plan.rows, aw, "inputs", "the steps' kept values")?;
        let mut hc = try_zeros::<T>(plan.rows, hw, "inputs", "the outputs and contexts")?;
        let mut query = try_zeros::<T>(plan.rows, q_w, "inputs", "the processed queries")?;
        let mut alignments = try_zeros::<T>(plan.rows, tm, "inputs", "the alignments")?;
        let mut att = try_zeros::<T>(plan.rows, attention, "inputs", "the attentions")?;
        let mut scratch = Vec::with_capacity(plan.groups.len());
        for g in &plan.groups {
            let cell = try_zeros::<T>(g.first_active(), sw, "inputs", "the step scratch")?;
            scratch.push((cell, vec![T::zero(); q_w]));
        }
        watch.result()?;
        let (values_s, keys_s) = (
            values.as_slice().expect("standard layout"),
            keys.as_slice().expect("standard layout"),
        );
        let work: Vec<_> = plan
            .groups
            .iter()
            .zip(split_groups(&plan, &mut xs))
            .zip(split_groups(&plan, &mut gates))
            .zip(split_groups(&plan, &mut states))
            .zip(split_groups(&plan, &mut aux))
            .zip(split_groups(&plan, &mut hc))
            .zip(split_groups(&plan, &mut query))
            .zip(split_groups(&plan, &mut alignments))
            .zip(split_groups(&plan, &mut att))
            .zip(scratch.iter_mut())
            .collect();
        pool::for_each(work, |item| {
            let (((((((((g, xs_g), z_g), s_g), aux_g), hc_g), q_g), al_g), att_g), scratch) = item;
            let (scratch, e) = scratch;
            let scratch = scratch.as_slice_mut().expect("standard layout");
            gather_group_rows(g, s_g, &initial);
            let mut ticker = watch.ticker();
            for (t, &a) in g.active.iter().enumerate() {
                if ticker.tick(a.saturating_mul(work_per_token)).is_err() {
                    return; // the watch keeps the error
                }
                // 1. a_{t-1} into the cell inputs
                let xb = &mut xs_g[block(g, t, a, ci)];
                for (rank, row) in xb.chunks_exact_mut(ci).enumerate() {
                    let dst = &mut row[input..];
                    if t == 0 {
                        let src = inputs.initial_attention.row(g.rows[rank]);
                        dst.iter_mut().zip(src).for_each(|(d, &v)| *d = v);
                    } else {
                        let prev = &att_g[block(g, t - 1, a, attention)];
                        dst.copy_from_slice(&prev[rank * attention..(rank + 1) * attention]);
                    }
                }
                // 2. gates += a_{t-1} @ W_x[I:]
                let zb = &mut z_g[block(g, t, a, gw)];
                let xb = mat(&xs_g[block(g, t, a, ci)], ci);
                packed
                    .cell_attention
                    .gemm(true, xb.slice(s![.., input..]), mat_mut(zb, gw));
                // 3. the cell
                let (prev, next) = s_g.split_at_mut(block(g, t + 1, 0, width).start);
                core.forward_step(Forward {
                    rows: a,
                    gates: zb,
                    prev: &prev[block(g, t, a, width)],
                    next: &mut next[..a * width],
                    aux: &mut aux_g[block(g, t, a, aw)],
                    scratch: &mut scratch[..a * sw],
                });
                // 4. h_t into [h_t, c_t]
                let hcb = &mut hc_g[block(g, t, a, hw)];
                for (row, state) in hcb.chunks_exact_mut(hw).zip(next.chunks_exact(width)) {
                    row[..q].copy_from_slice(&state[out_cols.clone()]);
                }
                // 5. the processed query (Bahdanau)
                let qb = &mut q_g[block(g, t, a, q_w)];
                if let Some(wq) = &packed.query {
                    wq.gemm(false, mat(hcb, hw).slice(s![.., ..q]), mat_mut(qb, q_w));
                    if let Some(bias) = &bias {
                        for row in qb.chunks_exact_mut(q_w) {
                            row.iter_mut().zip(bias).for_each(|(x, &b)| *x += b);
                        }
                    }
                }
                // 6. scores, alignments, context, row by row
                let alb = &mut al_g[block(g, t, a, tm)];
                for (rank, (row, al)) in hcb
                    .chunks_exact_mut(hw)
                    .zip(alb.chunks_exact_mut(tm))
                    .enumerate()
                {
                    let b = g.rows[rank];
                    let m = mlen[b];
                    let keys = &keys_s[b * tm * units..(b * tm + m) * units];
                    let values = &values_s[b * tm * dm..(b * tm + m) * dm];
                    let s = &mut al[..m];
                    let (h, c) = row.split_at_mut(q);
                    if bahdanau {
                        score::bahdanau(&qb[rank * q_w..(rank + 1) * q_w], keys, &v, s, e);
                    } else {
                        score::luong(h, keys, g_scale, s);
                    }
                    score::softmax_in_place(s);
                    score::context(s, values, c);
                }
                // 7. the attention
                let ab = &mut att_g[block(g, t, a, attention)];
                match &packed.attention {
                    Some(w) => w.gemm(false, mat(hcb, hw), mat_mut(ab, attention)),
                    None => {
                        for (dst, row) in ab.chunks_exact_mut(attention).zip(hcb.chunks_exact(hw)) {
                            dst.copy_from_slice(&row[q..]);
                        }
                    }
                }
            }
        });
        watch.result()?;
        Ok((
            values, keys, xs, gates, states, aux, hc, query, alignments, att,
        ))
    })?;
    let (values, keys, xs, gates, states, aux, hc, query, alignments, att) = bufs;
    let gates = if layout.keep_gates {
        gates
    } else {
        Array2::zeros((0, 0))
    };
    let outputs = pool::run(parallel, || {
        if config.output_attention {
            scatter(
                &plan,
                &att,
                0..attention,
                false,
                (Slot::Token, "the outputs"),
            )
        } else {
            scatter(
                &plan,
                &states,
                out_cols.clone(),
                false,
                (Slot::State, "the outputs"),
            )
        }
    })?;
    let history = match config.alignment_history {
        true => Some(pool::run(parallel, || {
            scatter(
                &plan,
                &alignments,
                0..tm,
                true,
                (Slot::Token, "the alignment history"),
            )
        })?),
        false => None,
    };
    let state = layout.split_parts(final_state(&plan, &states, &initial).view());
    let mut final_attention = inputs.initial_attention.to_owned();
    let mut final_alignments = try_zeros::<T>(batch, tm, "inputs", "the final alignments")?;
    for b in 0..batch {
        if let Some(slot) = plan.lengths[b]
            .checked_sub(1)
            .and_then(|t| plan.token_slot(b, t))
        {
            final_attention.row_mut(b).assign(&att.row(slot));
            final_alignments.row_mut(b).assign(&alignments.row(slot));
        }
    }
    Ok(Output {
        outputs,
        state,
        attention: final_attention,
        alignments: final_alignments,
        history,
        tape: Tape {
            plan,
            config,
            dims,
            weights,
            v,
            memory_lengths: mlen,
            values,
            keys,
            x: xs,
            states,
            gates,
            aux,
            hc,
            query,
            alignments,
        },
    })
}
