//! Backpropagation through the attention wrapper's time loop.

use super::forward::{attention_work, Tape};
use super::score;
use super::{
    input_grad_map, sqrt, Score, ATTENTION_B, ATTENTION_G, ATTENTION_KERNEL, ATTENTION_V,
    MEMORY_KERNEL, QUERY_KERNEL,
};
use crate::error::{check_shape, Budget, Error, Interrupt, Result};
use crate::kernels::gemm::{par_gemm, try_par_product};
use crate::kernels::packed::PackedB;
use crate::kernels::rows::{mat, mat_mut, try_zeros};
use crate::kernels::scalar::Scalar;
use crate::pool::{self, Watch};
use crate::sequence::slots::{block, global_block, scatter, split_groups, Slot};
use crate::step::params::Named;
use crate::step::{Backward, Deferred, Prepared};
use ndarray::{s, Array0, Array1, Array2, Array3, ArrayView2, ArrayView3};

/// The gradients of a [`super::forward()`] call.
#[derive(Debug, Clone)]
pub struct Grads<T> {
    /// `d inputs` `[B, T, I]`, zero past each length.
    pub inputs: Array3<T>,
    /// The cell's initial state's gradient, part by part.
    pub initial_state: Vec<Array2<T>>,
    /// `d initial_attention` `[B, A]`.
    pub initial_attention: Array2<T>,
    /// `d memory` `[B, Tm, Dm]`, through the keys and the values; zero at
    /// masked positions.
    pub memory: Array3<T>,
    /// The cell's weights' gradients (its own names), then
    /// `memory_layer/kernel`, `query_layer/kernel`, `attention_v`,
    /// `attention_g`, `attention_b`, `attention_layer/kernel` (those the
    /// call had).
    pub weights: Named<T>,
}

/// The gradients arriving at a forward call's results; `None` is zeros.
#[derive(Debug, Clone, Copy, Default)]
pub struct Incoming<'a, T> {
    /// `[B, T, out]`.
    pub outputs: Option<ArrayView3<'a, T>>,
    /// The final cell state's parts.
    pub state: Option<&'a [ArrayView2<'a, T>]>,
    /// `[B, A]`.
    pub attention: Option<ArrayView2<'a, T>>,
    /// `[B, Tm]`.
    pub alignments: Option<ArrayView2<'a, T>>,
}

/// One group's running gradients and sums.
struct GroupGrads<T> {
    /// The cell's small-parameter gradients `[P]`.
    d_params: Array1<T>,
    /// `[first_active, W]`: the cell state's running gradient.
    d_state: Array2<T>,
    /// `[first_active, A]`: the attention's running gradient.
    d_att: Array2<T>,
    /// `[first_active, Q + Dm]`: `d [h_t, c_t]` of a step.
    d_hc: Array2<T>,
    /// `[Tm]`: a row's score gradients.
    ds: Array1<T>,
    /// `[Tm]`: a row's final alignments' gradient.
    extra: Array1<T>,
    /// `[first_active, S]`.
    scratch: Array2<T>,
    /// The effective `v`'s gradient `[U]` (Bahdanau).
    d_v: Array1<T>,
    /// `attention_b`'s gradient `[U]` (normalised Bahdanau).
    d_b: Array1<T>,
    /// `attention_g`'s gradient (scaled Luong).
    d_g: T,
}

/// Backpropagates `incoming` through the forward pass of `cell` that made
/// `tape`. Gradients of outputs past a row's length are ignored (those
/// outputs are constant zeros); the final alignments' gradient of a row of
/// length 0 goes nowhere (its alignments are constant zeros here).
///
/// ```text
/// per group, reverse over t, the running d_state, d_att of its rows:
///   rows ending at t start from the final state's, attention's gradients
///   d_out_t into d_att (output_attention) or the cell output's columns
///   d [h, c] = d_att @ attention_layer/kernelᵀ (or d c = d_att)
///   per row: through the context, the softmax and the score → d V, d K,
///            d h (Luong) or d q (Bahdanau; d h += d q @ query_layer/kernelᵀ)
///   cell.backward_step → d_gates_t, d_state ← the state before t
///   d_att ← d_gates_t @ W_x[I:]ᵀ   (the gradient of a_{t-1})
/// then cell.deferred over every token, the weights' products, and
/// d memory = d V + d K @ memory_layer/kernelᵀ
/// ```
pub fn backward<T: Scalar>(
    cell: &Prepared<T>,
    tape: &Tape<T>,
    incoming: Incoming<'_, T>,
    interrupt: &dyn Interrupt,
) -> Result<Grads<T>> {
    let core = cell.cell();
    let layout = core.layout();
    let (plan, dims, config, weights) = (&tape.plan, &tape.dims, &tape.config, &tape.weights);
    if tape.x.ncols() != layout.input || tape.states.ncols() != layout.state_width() {
        return Err(Error::invalid(
            "tape",
            format!("the tape of an attention pass of this {}", core.name()),
            "the tape of another cell",
        ));
    }
    let (batch, time, tm, dm) = (dims.batch, dims.time, dims.memory_time, dims.memory_depth);
    let (q, units, attention, input) = (dims.query, dims.units, dims.attention, dims.input);
    if let Some(d) = &incoming.outputs {
        check_shape("d_outputs", d.shape(), &[batch, time, dims.output(config)])?;
    }
    let d_final = match incoming.state {
        Some(parts) => {
            layout.check_parts("d_state", parts, batch)?;
            Some(layout.join_parts(parts, batch))
        }
        None => None,
    };
    if let Some(d) = &incoming.attention {
        check_shape("d_attention", d.shape(), &[batch, attention])?;
    }
    if let Some(d) = &incoming.alignments {
        check_shape("d_alignments", d.shape(), &[batch, tm])?;
    }
    let back = PackedB::new(input_grad_map(core, input)?.view());
    let back_rows = back.rows();
    let layer = weights.attention_kernel.is_some();
    let bahdanau = config.score.is_bahdanau();
    let q_w = tape.query.ncols();
    let (width, hw) = (layout.state_width(), dims.hc());
    let (d_w, da_w, s_w) = (layout.d_gates, layout.d_aux, layout.scratch);
    let out_cols = layout.output_columns();
    let gates_kept = layout.keep_gates;
    let work_per_token =
        layout
            .work_per_token
            .saturating_add(attention_work(dims, config, layer, layout.gates));
    let parallel = pool::worth_parallel(plan.tokens().saturating_mul(work_per_token));
    backward_budget::<T>(tape, layout.d_gates, layout.d_aux).check()?;
    let watch = Watch::new(interrupt);
    let att_t = weights
        .attention_kernel
        .as_ref()
        .map(|k| PackedB::new(k.t()));
    let query_t = weights.query_kernel.as_ref().map(|k| PackedB::new(k.t()));
    let g_scale = weights.g.unwrap_or(T::one());
    let scaled_luong = matches!(config.score, Score::Luong { scale: true });
    let (values_s, keys_s, hc_s) = (
        tape.values.as_slice().expect("standard layout"),
        tape.keys.as_slice().expect("standard layout"),
        tape.hc.as_slice().expect("standard layout"),
    );
    let (q_s, al_s) = (
        tape.query.as_slice().expect("standard layout"),
        tape.alignments.as_slice().expect("standard layout"),
    );

    pool::run_watched(parallel, &watch, || {
        let mut d_gates = try_zeros::<T>(plan.rows, d_w, "inputs", "the gate gradients")?;
        let mut d_aux = try_zeros::<T>(plan.rows, da_w, "inputs", "the kept values' gradients")?;
        let att_w = if layer { attention } else { 0 };
        let mut d_att_tok =
            try_zeros::<T>(plan.rows, att_w, "inputs", "the attentions' gradients")?;
        let mut d_query = try_zeros::<T>(plan.rows, q_w, "inputs", "the queries' gradients")?;
        let mut d_values = try_zeros::<T>(batch * tm, dm, "inputs", "the values' gradients")?;
        let mut d_keys = try_zeros::<T>(batch * tm, units, "inputs", "the keys' gradients")?;
        let mut per_group = Vec::with_capacity(plan.groups.len());
        for g in &plan.groups {
            let fa = g.first_active();
            per_group.push(GroupGrads {
                d_params: Array1::zeros(layout.d_params),
                d_state: try_zeros(fa, width, "inputs", "the state gradients")?,
                d_att: try_zeros(fa, attention, "inputs", "the attention gradients")?,
                d_hc: try_zeros(fa, hw, "inputs", "the attention gradients")?,
                ds: Array1::zeros(tm),
                extra: Array1::zeros(tm),
                scratch: try_zeros(fa, s_w, "inputs", "the step scratch")?,
                d_v: Array1::zeros(if bahdanau { units } else { 0 }),
                d_b: Array1::zeros(if weights.b.is_some() { units } else { 0 }),
                d_g: T::zero(),
            });
        }
        // each batch row's [Tm, Dm] and [Tm, U] gradient blocks, to its group
        let mut dv_rows: Vec<Option<&mut [T]>> = d_values
            .as_slice_mut()
            .expect("standard layout")
            .chunks_mut(tm * dm)
            .map(Some)
            .collect();
        let mut dk_rows: Vec<Option<&mut [T]>> = d_keys
            .as_slice_mut()
            .expect("standard layout")
            .chunks_mut(tm * units)
            .map(Some)
            .collect();
        let row_blocks: Vec<Vec<(&mut [T], &mut [T])>> = plan
            .groups
            .iter()
            .map(|g| {
                g.rows
                    .iter()
                    .map(|&b| {
                        let dv = dv_rows[b].take().expect("each row in one group");
                        let dk = dk_rows[b].take().expect("each row in one group");
                        (dv, dk)
                    })
                    .collect()
            })
            .collect();
        watch.result()?;
        let work: Vec<_> = plan
            .groups
            .iter()
            .zip(split_groups(plan, &mut d_gates))
            .zip(split_groups(plan, &mut d_aux))
            .zip(split_groups(plan, &mut d_att_tok))
            .zip(split_groups(plan, &mut d_query))
            .zip(row_blocks)
            .zip(per_group.iter_mut())
            .collect();
        pool::for_each(work, |item| {
            let ((((((g, dg_g), dax_g), dat_g), dq_g), mut rows), gg) = item;
            let d_params = gg.d_params.as_slice_mut().expect("standard layout");
            let d_run = gg.d_state.as_slice_mut().expect("standard layout");
            let d_att = gg.d_att.as_slice_mut().expect("standard layout");
            let d_hc = gg.d_hc.as_slice_mut().expect("standard layout");
            let ds = gg.ds.as_slice_mut().expect("standard layout");
            let extra = gg.extra.as_slice_mut().expect("standard layout");
            let scratch = gg.scratch.as_slice_mut().expect("standard layout");
            let d_v = gg.d_v.as_slice_mut().expect("standard layout");
            let d_b = gg.d_b.as_slice_mut().expect("standard layout");
            let mut ticker = watch.ticker();
            for t in (0..g.steps()).rev() {
                let a = g.active[t];
                if ticker.tick(a.saturating_mul(work_per_token)).is_err() {
                    return; // the watch keeps the error
                }
                let still = g.active.get(t + 1).copied().unwrap_or(0);
                let d_run = &mut d_run[..a * width];
                let d_att = &mut d_att[..a * attention];
                // rows whose last step is t start from the final gradients
                for rank in still..a {
                    let b = g.rows[rank];
                    let row = &mut d_run[rank * width..(rank + 1) * width];
                    match &d_final {
                        Some(d) => row.iter_mut().zip(d.row(b)).for_each(|(r, &v)| *r = v),
                        None => row.fill(T::zero()),
                    }
                    let row = &mut d_att[rank * attention..(rank + 1) * attention];
                    match &incoming.attention {
                        Some(d) => row.iter_mut().zip(d.row(b)).for_each(|(r, &v)| *r = v),
                        None => row.fill(T::zero()),
                    }
                }
                // the step's output gradient
                if let Some(dy) = &incoming.outputs {
                    for (rank, &b) in g.rows[..a].iter().enumerate() {
                        let src = dy.slice(s![b, t, ..]);
                        let dst = if config.output_attention {
                            &mut d_att[rank * attention..(rank + 1) * attention]
                        } else {
                            &mut d_run[rank * width + out_cols.start..rank * width + out_cols.end]
                        };
                        dst.iter_mut().zip(src).for_each(|(d, &v)| *d += v);
                    }
                }
                // through the attention layer: d [h, c] = d_att @ Wᵀ
                let d_hc = &mut d_hc[..a * hw];
                if let Some(w_t) = &att_t {
                    dat_g[block(g, t, a, attention)].copy_from_slice(d_att);
                    w_t.gemm(false, mat(d_att, attention), mat_mut(d_hc, hw));
                    for (row, dh) in d_run.chunks_exact_mut(width).zip(d_hc.chunks_exact(hw)) {
                        score::axpy(T::one(), &dh[..q], &mut row[out_cols.clone()]);
                    }
                }
                // row by row: context, softmax, score
                let hcb = &hc_s[(g.start[t]) * hw..][..a * hw];
                let alb = &al_s[(g.start[t]) * tm..][..a * tm];
                let qb = &q_s[(g.start[t]) * q_w..][..a * q_w];
                let dqb = &mut dq_g[block(g, t, a, q_w)];
                for rank in 0..a {
                    let b = g.rows[rank];
                    let m = tape.memory_lengths[b];
                    let d_c = if layer {
                        &d_hc[rank * hw + q..(rank + 1) * hw]
                    } else {
                        &d_att[rank * attention..(rank + 1) * attention]
                    };
                    // the final alignments' gradient enters at a row's last step
                    let extra = match (&incoming.alignments, rank >= still) {
                        (Some(d), true) => {
                            let e = &mut extra[..m];
                            e.iter_mut().zip(d.row(b)).for_each(|(e, &v)| *e = v);
                            Some(&*e)
                        }
                        _ => None,
                    };
                    let (dv, dk) = &mut rows[rank];
                    let ds = &mut ds[..m];
                    score::through_softmax(
                        &alb[rank * tm..rank * tm + m],
                        &values_s[b * tm * dm..(b * tm + m) * dm],
                        d_c,
                        extra,
                        &mut dv[..m * dm],
                        ds,
                    );
                    let keys = &keys_s[b * tm * units..(b * tm + m) * units];
                    let dk = &mut dk[..m * units];
                    if bahdanau {
                        score::bahdanau_backward(
                            &qb[rank * q_w..(rank + 1) * q_w],
                            keys,
                            &tape.v,
                            ds,
                            dk,
                            &mut dqb[rank * q_w..(rank + 1) * q_w],
                            d_v,
                        );
                        if !d_b.is_empty() {
                            score::axpy(T::one(), &dqb[rank * q_w..(rank + 1) * q_w], d_b);
                        }
                    } else {
                        let d_h =
                            &mut d_run[rank * width + out_cols.start..rank * width + out_cols.end];
                        score::luong_backward(
                            &hcb[rank * hw..rank * hw + q],
                            keys,
                            g_scale,
                            ds,
                            dk,
                            d_h,
                            scaled_luong.then_some(&mut gg.d_g),
                        );
                    }
                }
                // d h += d q @ query_layer/kernelᵀ
                if let Some(wq_t) = &query_t {
                    let d_h = mat_mut(d_run, width).slice_move(s![.., out_cols.clone()]);
                    wq_t.gemm(true, mat(dqb, q_w), d_h);
                }
                // the cell's step
                let dgb = &mut dg_g[block(g, t, a, d_w)];
                core.backward_step(Backward {
                    rows: a,
                    gates: if gates_kept {
                        global_block(&tape.gates, g, t, a)
                    } else {
                        &[]
                    },
                    prev: global_block(&tape.states, g, t, a),
                    next: global_block(&tape.states, g, t + 1, a),
                    aux: global_block(&tape.aux, g, t, a),
                    d_state: d_run,
                    d_gates: dgb,
                    d_aux: &mut dax_g[block(g, t, a, da_w)],
                    scratch: &mut scratch[..a * s_w],
                    d_params,
                });
                // the gradient of a_{t-1}
                let dg = mat(dgb, d_w).slice_move(s![.., ..back_rows]);
                back.gemm(false, dg, mat_mut(d_att, attention));
            }
        });
        watch.result()?;
        // the cell's small parameters and the mechanism's, in group order
        let mut d_params = Array1::<T>::zeros(layout.d_params);
        let mut d_v = Array1::<T>::zeros(tape.v.len());
        let mut d_b = Array1::<T>::zeros(if weights.b.is_some() { units } else { 0 });
        let mut d_g = T::zero();
        for gg in &per_group {
            d_params += &gg.d_params;
            d_v += &gg.d_v;
            d_b += &gg.d_b;
            d_g += gg.d_g;
        }
        // the initial state's and attention's gradients
        let mut d_initial = match &d_final {
            Some(d) => d.clone(),
            None => Array2::zeros((batch, width)),
        };
        let mut d_initial_att = match &incoming.attention {
            Some(d) => d.to_owned(),
            None => Array2::zeros((batch, attention)),
        };
        for (g, gg) in plan.groups.iter().zip(&per_group) {
            for (rank, &b) in g.rows[..g.first_active()].iter().enumerate() {
                d_initial.row_mut(b).assign(&gg.d_state.row(rank));
                d_initial_att.row_mut(b).assign(&gg.d_att.row(rank));
            }
        }
        drop(per_group);
        // the deferred products
        let grads = core.deferred(Deferred {
            x: tape.x.view(),
            states: tape.states.view(),
            gates: tape.gates.view(),
            aux: tape.aux.view(),
            d_gates: d_gates.view(),
            d_aux: d_aux.view(),
            d_params: d_params.view(),
            // the attention columns' gradient came out of the step loop
            input_columns: input,
        });
        let mut named = grads.weights;
        named.push((
            MEMORY_KERNEL.into(),
            try_par_product(
                tape.values.t(),
                d_keys.view(),
                "inputs",
                "a weight gradient",
            )?
            .into_dyn(),
        ));
        if bahdanau {
            let h = tape.hc.slice(s![.., ..q]);
            named.push((
                QUERY_KERNEL.into(),
                try_par_product(h.t(), d_query.view(), "inputs", "a weight gradient")?.into_dyn(),
            ));
            let v = weights.v.as_ref().expect("Bahdanau has attention_v");
            match weights.g.filter(|_| weights.b.is_some()) {
                // v_eff = g v / ‖v‖
                Some(g) => {
                    let norm = sqrt(v.iter().fold(T::zero(), |acc, &x| acc + x * x));
                    let along = v
                        .iter()
                        .zip(&d_v)
                        .fold(T::zero(), |acc, (&x, &d)| acc + x * d)
                        / norm;
                    let d_vn: Array1<T> = v
                        .iter()
                        .zip(&d_v)
                        .map(|(&x, &d)| g / norm * (d - x / norm * along))
                        .collect();
                    named.push((ATTENTION_V.into(), d_vn.into_dyn()));
                    named.push((ATTENTION_G.into(), Array0::from_elem((), along).into_dyn()));
                    named.push((ATTENTION_B.into(), d_b.into_dyn()));
                }
                None => named.push((ATTENTION_V.into(), d_v.into_dyn())),
            }
        } else if scaled_luong {
            named.push((ATTENTION_G.into(), Array0::from_elem((), d_g).into_dyn()));
        }
        if layer {
            named.push((
                ATTENTION_KERNEL.into(),
                try_par_product(tape.hc.t(), d_att_tok.view(), "inputs", "a weight gradient")?
                    .into_dyn(),
            ));
        }
        // d memory = d V + d K @ memory_layer/kernelᵀ (zero where masked)
        par_gemm(
            true,
            d_keys.view(),
            weights.memory_kernel.t(),
            d_values.view_mut(),
        );
        let memory = d_values
            .into_shape_with_order((batch, tm, dm))
            .expect("B * Tm rows");
        let inputs = scatter(
            plan,
            &grads.inputs,
            0..input,
            false,
            (Slot::Token, "the input gradients"),
        )?;
        Ok(Grads {
            inputs,
            initial_state: layout.split_parts(d_initial.view()),
            initial_attention: d_initial_att,
            memory,
            weights: named,
        })
    })
}

fn backward_budget<T>(tape: &Tape<T>, d_gates: usize, d_aux: usize) -> Budget {
    let elem = std::mem::size_of::<T>();
    let (plan, dims) = (&tape.plan, &tape.dims);
    let (b, tm) = (dims.batch, dims.memory_time);
    let mut budget = Budget::new("inputs");
    budget.add("the gate gradients", &[plan.rows, d_gates], elem);
    budget.add("the kept values' gradients", &[plan.rows, d_aux], elem);
    budget.add(
        "the attentions' gradients",
        &[plan.rows, dims.attention],
        elem,
    );
    budget.add("the queries' gradients", &[plan.rows, dims.units], elem);
    budget.add("the values' gradients", &[b, tm, dims.memory_depth], elem);
    budget.add("the keys' gradients", &[b, tm, dims.units], elem);
    budget.add("the state gradients", &[3, b, tape.states.ncols()], elem);
    budget.add("the attention gradients", &[3, b, dims.hc()], elem);
    budget.add(
        "the gathered input gradients",
        &[plan.rows, dims.cell_input()],
        elem,
    );
    budget.add("the input gradients", &[b, dims.time, dims.input], elem);
    budget
}
