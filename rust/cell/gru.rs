//! `GRUCell`, in its two published forms. Both share the gates
//!
//! ```text
//! r, u = split(σ([x, h] @ gates/kernel + gates/bias), 2)     r: first H columns, u: next H
//! h'   = u*h + (1-u)*c                                        output = state = h'
//! ```
//!
//! and differ in where the reset gate `r` meets the recurrent product of the
//! candidate `c`:
//!
//! * **reset before** (TensorFlow 1.x `GRUCell`, Cho et al. 2014 v3):
//!   `c = act([x, r*h] @ candidate/kernel + candidate/bias)`. The candidate's
//!   recurrent product needs `r`, so each step makes two recurrent GEMMs:
//!   `h @ W_gates_h`, then `(r*h) @ W_cand_h`.
//! * **reset after** (cuDNN, PyTorch, Keras `reset_after=True`):
//!   `c = act(x @ input_kernel + input_bias + r*(h @ hidden_kernel + hidden_bias))`.
//!   Every recurrent product is of `h` itself, so one GEMM per step does them
//!   all: `h @ [W_gates_h | hidden_kernel]` (`[H, 3H]`, packed once per call).
//!
//! Weights (TF1 layout, rows `[x; h]`): `gates/kernel [I+H, 2H]`,
//! `gates/bias [2H]`; reset before: `candidate/kernel [I+H, H]`,
//! `candidate/bias [H]`; reset after: `candidate/input_kernel [I, H]`,
//! `candidate/hidden_kernel [H, H]`, `candidate/input_bias [H]`,
//! `candidate/hidden_bias [H]`.
//!
//! # Buffers of the step (see [`crate::step`])
//!
//! ```text
//! gates  [a, 3H]   r | u | c: x @ [W_gates_x | W_cand_x] on entry (the hoisted
//!                  projection), the gate values on exit; kept for backward
//! aux    [a, H]    r*h (reset before: the input of dW_cand_h = Qᵀ dZ_c), or
//!                  h @ hidden_kernel + hidden_bias (reset after: needed for dr and dZ_hc)
//! ```
//!
//! Backward writes per token `d_gates` = `dz_r | dz_u | dz_c` (reset before)
//! or `dz_c | dz_r | dz_u | dz_hc` (reset after, `dz_hc = dz_c*r` the
//! gradient of `h @ hidden_kernel + hidden_bias`; the order makes every
//! deferred product read one column range); the weight gradients and `dX`
//! are large products after the reverse loop.

use super::activation_option;
use crate::error::{check_shape, Error, Result};
use crate::kernels::activation::{with_activation, Activation};
use crate::kernels::gemm::gemm_on;
use crate::kernels::packed::StepWeights;
use crate::kernels::rows::{mat, mat_mut};
use crate::kernels::scalar::Scalar;
use crate::step::params::{Named, Options, Weights};
use crate::step::{
    deferred_in_one_chunk, Backward, Cell, Deferred, Forward, Layout, StatePart, Tokens, UnitBack,
    UnitSplit, UnitStep, WeightGrads,
};
use ndarray::{concatenate, s, Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis};

/// The weights of a `GRUCell`, borrowed; the variant is the form.
#[derive(Debug, Clone, Copy)]
pub enum GruWeights<'a, T> {
    /// TensorFlow 1.x's form (`reset_after=False`).
    ResetBefore {
        /// `gates/kernel [I+H, 2H]`
        gates_kernel: ArrayView2<'a, T>,
        /// `gates/bias [2H]`
        gates_bias: ArrayView1<'a, T>,
        /// `candidate/kernel [I+H, H]`
        candidate_kernel: ArrayView2<'a, T>,
        /// `candidate/bias [H]`
        candidate_bias: ArrayView1<'a, T>,
    },
    /// The cuDNN / PyTorch / Keras form (`reset_after=True`).
    ResetAfter {
        /// `gates/kernel [I+H, 2H]`
        gates_kernel: ArrayView2<'a, T>,
        /// `gates/bias [2H]`
        gates_bias: ArrayView1<'a, T>,
        /// `candidate/input_kernel [I, H]`
        input_kernel: ArrayView2<'a, T>,
        /// `candidate/hidden_kernel [H, H]`
        hidden_kernel: ArrayView2<'a, T>,
        /// `candidate/input_bias [H]`
        input_bias: ArrayView1<'a, T>,
        /// `candidate/hidden_bias [H]`
        hidden_bias: ArrayView1<'a, T>,
    },
}

impl<T: Scalar> GruWeights<'_, T> {
    /// Whether this is the reset-after form.
    pub fn reset_after(&self) -> bool {
        matches!(self, GruWeights::ResetAfter { .. })
    }

    /// Checks every shape against the others; returns `(I, H)` (`H` taken
    /// from the candidate bias, `I` from `gates/kernel`).
    pub fn check(&self) -> Result<(usize, usize)> {
        let (units, bias_name, gates_kernel, gates_bias) = match self {
            GruWeights::ResetBefore {
                candidate_bias,
                gates_kernel,
                gates_bias,
                ..
            } => (
                candidate_bias.len(),
                "candidate/bias",
                gates_kernel,
                gates_bias,
            ),
            GruWeights::ResetAfter {
                hidden_bias,
                gates_kernel,
                gates_bias,
                ..
            } => (
                hidden_bias.len(),
                "candidate/hidden_bias",
                gates_kernel,
                gates_bias,
            ),
        };
        if units == 0 {
            return Err(Error::invalid(bias_name, "at least 1 unit", "shape [0]"));
        }
        if gates_kernel.ncols() != 2 * units || gates_kernel.nrows() < units {
            return Err(Error::invalid(
                "gates/kernel",
                format!(
                    "shape [I + {units}, {}] (I >= 0, H = {units} from {bias_name})",
                    2 * units
                ),
                format!("shape {:?}", gates_kernel.shape()),
            ));
        }
        let input = gates_kernel.nrows() - units;
        match self {
            GruWeights::ResetBefore {
                candidate_kernel, ..
            } => check_shape(
                "candidate/kernel",
                candidate_kernel.shape(),
                &[input + units, units],
            )?,
            GruWeights::ResetAfter {
                input_kernel,
                hidden_kernel,
                input_bias,
                ..
            } => {
                check_shape(
                    "candidate/input_kernel",
                    input_kernel.shape(),
                    &[input, units],
                )?;
                check_shape(
                    "candidate/hidden_kernel",
                    hidden_kernel.shape(),
                    &[units, units],
                )?;
                check_shape("candidate/input_bias", input_bias.shape(), &[units])?;
            }
        }
        check_shape("gates/bias", gates_bias.shape(), &[2 * units])?;
        Ok((input, units))
    }
}

/// Builds a `GRUCell` from its options (`activation`, `reset_after`) and the
/// weights of that form.
pub fn build<T: Scalar>(
    mut options: Options,
    mut weights: Weights<'_, T>,
) -> Result<Box<dyn Cell<T>>> {
    let activation = activation_option(&mut options)?;
    let reset_after = options.flag("reset_after", false)?;
    options.finish("GRUCell")?;
    let gates_kernel = weights.matrix("gates/kernel")?;
    let gates_bias = weights.vector("gates/bias")?;
    let cell: Box<dyn Cell<T>> = if reset_after {
        let w = GruWeights::ResetAfter {
            gates_kernel,
            gates_bias,
            input_kernel: weights.matrix("candidate/input_kernel")?,
            hidden_kernel: weights.matrix("candidate/hidden_kernel")?,
            input_bias: weights.vector("candidate/input_bias")?,
            hidden_bias: weights.vector("candidate/hidden_bias")?,
        };
        weights.finish("GRUCell (reset-after form)")?;
        Box::new(ResetAfter::new(activation, w)?)
    } else {
        let w = GruWeights::ResetBefore {
            gates_kernel,
            gates_bias,
            candidate_kernel: weights.matrix("candidate/kernel")?,
            candidate_bias: weights.vector("candidate/bias")?,
        };
        weights.finish("GRUCell (reset-before form)")?;
        Box::new(ResetBefore::new(activation, w)?)
    };
    Ok(cell)
}

/// The matrices side by side (same rows), in row-major order: `concatenate!`
/// may lay its result out column-major, and the GEMM then repacks a
/// column-major right-hand side on every call (it made a single GRU step of
/// H = 256 cost 200 µs instead of 30).
fn side_by_side<T: Scalar>(parts: &[ArrayView2<T>]) -> Array2<T> {
    let rows = parts.first().map_or(0, |p| p.nrows());
    let cols = parts.iter().map(|p| p.ncols()).sum();
    let mut out = Array2::zeros((rows, cols));
    let mut at = 0;
    for p in parts {
        out.slice_mut(s![.., at..at + p.ncols()]).assign(p);
        at += p.ncols();
    }
    out
}

/// The layout both forms share but for the widths that differ.
fn layout(input: usize, units: usize, d_gates: usize, scratch: usize) -> Layout {
    Layout {
        input,
        state: vec![StatePart {
            name: "",
            width: units,
        }],
        output: 0,
        gates: 3 * units,
        keep_gates: true,
        aux: units,
        d_gates,
        d_aux: 0,
        scratch,
        d_params: d_gates,
        work_per_token: 3 * (input + units) * units,
    }
}

/// A built `GRUCell` of TensorFlow 1.x's form (`reset_after=False`).
#[derive(Debug)]
pub struct ResetBefore<T: Scalar> {
    layout: Layout,
    activation: Activation,
    /// `[I, 3H]`: the x-rows of both kernels, columns `r | u | c`.
    w_x: Array2<T>,
    /// `[3H]`: `gates/bias | candidate/bias`.
    bias: Vec<T>,
    /// `[H, 2H]`: the h-rows of `gates/kernel`.
    gates_h: StepWeights<T>,
    /// `[H, H]`: the h-rows of `candidate/kernel`.
    cand_h: StepWeights<T>,
}

impl<T: Scalar> ResetBefore<T> {
    /// Builds the cell (`weights` must be the `ResetBefore` variant).
    pub fn new(activation: Activation, weights: GruWeights<T>) -> Result<Self> {
        let (input, units) = weights.check()?;
        let GruWeights::ResetBefore {
            gates_kernel,
            gates_bias,
            candidate_kernel,
            candidate_bias,
        } = weights
        else {
            return Err(Error::invalid(
                "weights",
                "the weights of the reset-before form",
                "those of the reset-after form",
            ));
        };
        let (gx, gh) = gates_kernel.split_at(Axis(0), input);
        let (cx, ch) = candidate_kernel.split_at(Axis(0), input);
        Ok(ResetBefore {
            layout: layout(input, units, 3 * units, units),
            activation,
            w_x: side_by_side(&[gx, cx]),
            bias: concatenate![Axis(0), gates_bias, candidate_bias].to_vec(),
            gates_h: StepWeights::new(gh),
            cand_h: StepWeights::new(ch),
        })
    }
}

impl<T: Scalar> Cell<T> for ResetBefore<T> {
    fn name(&self) -> &'static str {
        "GRUCell"
    }

    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn input_kernel(&self) -> ArrayView2<'_, T> {
        self.w_x.view()
    }

    fn forward_step(&self, step: Forward<'_, T>) {
        let h = self.layout.state[0].width;
        let w3 = 3 * h;
        let (z, h_prev, rh) = (step.gates, step.prev, step.aux);
        self.gates_h.packed().gemm(
            true,
            mat(h_prev, h),
            mat_mut(z, w3).slice_move(s![.., ..2 * h]),
        );
        reset_before_gates(z, h_prev, rh, &self.bias[..2 * h]);
        self.cand_h
            .packed()
            .gemm(true, mat(rh, h), mat_mut(z, w3).slice_move(s![.., 2 * h..]));
        reset_before_candidate(self.activation, z, h_prev, step.next, &self.bias[2 * h..]);
    }

    fn unit_split(&self) -> Option<UnitSplit> {
        let h = self.layout.state[0].width;
        let align = self.gates_h.packed().panel_width();
        // phase 0: r, u and r*h; phase 1: the candidate, which reads r*h of
        // every unit
        let split = UnitSplit::aligned(h, align, [3, 1, 1, 0], 2);
        split.filter(|_| self.cand_h.packed().panel_width() == align)
    }

    fn forward_units(&self, mut step: UnitStep<'_, T>) {
        let h = self.layout.state[0].width;
        let first = step.units.start;
        if step.phase == 0 {
            for part in 0..2 {
                self.gates_h.packed().gemm_cols(
                    true,
                    mat(step.prev, h),
                    step.gates.segment(part),
                    part * h + first,
                );
            }
        } else {
            self.cand_h
                .packed()
                .gemm_cols(true, mat(step.kept, h), step.gates.segment(2), first);
        }
        reset_before_units(self.activation, &mut step, &self.bias);
    }

    fn backward_split(&self) -> Option<UnitSplit> {
        let h = self.layout.state[0].width;
        let align = self.gates_h.packed().panel_width();
        // phase 0: dz_u, dz_c and dh'*u; phase 1: d(r*h) = dz_c @ W_cand_hᵀ
        // (reads dz_c of every unit) into the scratch, then dz_r (written
        // late: segment 0) and dh += d(r*h)*r; phase 2: dh += [dz_r | dz_u]
        // @ W_gates_hᵀ (reads both of every unit)
        let split = UnitSplit::aligned(h, align, [3, 1, 3, 1], 3)?.with_late(1);
        let fits = self.cand_h.transposed().panel_width() == align
            && self.gates_h.transposed().panel_width() == align;
        fits.then_some(split)
    }

    fn backward_units(&self, mut step: UnitBack<'_, T>) {
        let first = step.units.start;
        match step.phase {
            0 => reset_before_back_update_units(self.activation, &mut step),
            1 => {
                // d(r*h)[:, the slice's units] = dz_c @ W_cand_hᵀ[:, those]
                self.cand_h.transposed().gemm_cols(
                    false,
                    step.d_kept.segments(2..3),
                    step.scratch.segment(0),
                    first,
                );
                reset_before_back_reset_units(&mut step);
            }
            _ => {
                // dh[:, the slice's units] += [dz_r | dz_u] @ W_gates_hᵀ[:, those]
                self.gates_h.transposed().gemm_cols(
                    true,
                    step.d_kept.segments(0..2),
                    step.d_state.segment(0),
                    first,
                );
            }
        }
    }

    fn backward_step(&self, step: Backward<'_, T>) {
        let h = self.layout.state[0].width;
        let w3 = 3 * h;
        let (dz, dh, drh) = (step.d_gates, step.d_state, step.scratch);
        reset_before_back_update(
            self.activation,
            dz,
            dh,
            step.gates,
            step.prev,
            step.d_params,
        );
        // d(r*h) = dz_c @ W_cand_hᵀ
        self.cand_h.transposed().gemm(
            false,
            mat(dz, w3).slice_move(s![.., 2 * h..]),
            mat_mut(drh, h),
        );
        reset_before_back_reset(dz, dh, drh, step.gates, step.prev, step.d_params);
        // dh += [dz_r | dz_u] @ W_gates_hᵀ
        self.gates_h.transposed().gemm(
            true,
            mat(dz, w3).slice_move(s![.., ..2 * h]),
            mat_mut(dh, h),
        );
    }

    fn deferred(&self, d: Deferred<'_, T>) -> WeightGrads<T> {
        deferred_in_one_chunk(self, d)
    }

    fn deferred_sums(&self) -> Vec<Array2<T>> {
        let (input, h) = (self.layout.input, self.layout.state[0].width);
        vec![
            Array2::zeros((input, 3 * h)), // Xᵀ dZ
            Array2::zeros((h, 2 * h)),     // d gates/kernel h-rows
            Array2::zeros((h, h)),         // d candidate/kernel h-rows
        ]
    }

    fn deferred_chunk(
        &self,
        d: Tokens<'_, T>,
        sums: &mut [Array2<T>],
        d_inputs: ArrayViewMut2<'_, T>,
        parallel: bool,
    ) {
        let h = self.layout.state[0].width;
        let [xtdz, gk_h, ck_h] = sums else {
            unreachable!("three sums")
        };
        gemm_on(parallel, true, d.x.t(), d.d_gates, xtdz.view_mut());
        let dz_gates = d.d_gates.slice(s![.., ..2 * h]);
        gemm_on(parallel, true, d.states.t(), dz_gates, gk_h.view_mut());
        // the candidate's h-rows multiply r*h, kept in aux
        let dz_cand = d.d_gates.slice(s![.., 2 * h..]);
        gemm_on(parallel, true, d.aux.t(), dz_cand, ck_h.view_mut());
        gemm_on(
            parallel,
            false,
            d.d_gates,
            self.w_x.slice(s![..d_inputs.ncols(), ..]).t(),
            d_inputs,
        );
    }

    fn deferred_finish(&self, sums: Vec<Array2<T>>, d_params: ArrayView1<'_, T>) -> Named<T> {
        let h = self.layout.state[0].width;
        let [xtdz, gk_h, ck_h]: [Array2<T>; 3] = sums.try_into().expect("three sums");
        let d_gk = concatenate![Axis(0), xtdz.slice(s![.., ..2 * h]), gk_h];
        let d_ck = concatenate![Axis(0), xtdz.slice(s![.., 2 * h..]), ck_h];
        vec![
            ("gates/kernel".into(), d_gk.into_dyn()),
            (
                "gates/bias".into(),
                d_params.slice(s![..2 * h]).to_owned().into_dyn(),
            ),
            ("candidate/kernel".into(), d_ck.into_dyn()),
            (
                "candidate/bias".into(),
                d_params.slice(s![2 * h..]).to_owned().into_dyn(),
            ),
        ]
    }
}

/// A built `GRUCell` of the cuDNN / PyTorch / Keras form (`reset_after=True`).
#[derive(Debug)]
pub struct ResetAfter<T: Scalar> {
    layout: Layout,
    activation: Activation,
    /// `[I, 3H]`: `gates/kernel`'s x-rows | `candidate/input_kernel`, columns `r | u | c`.
    w_x: Array2<T>,
    /// `[I, 3H]`: the same columns in `d_gates` order `c | r | u`, for `dX`.
    w_x_back: Array2<T>,
    /// `[3H]`: `gates/bias | candidate/input_bias`.
    bias: Vec<T>,
    /// `[H]`: `candidate/hidden_bias`.
    hidden_bias: Vec<T>,
    /// `[H, 3H]`: `[gates/kernel h-rows | candidate/hidden_kernel]`.
    w_h: StepWeights<T>,
}

impl<T: Scalar> ResetAfter<T> {
    /// Builds the cell (`weights` must be the `ResetAfter` variant).
    pub fn new(activation: Activation, weights: GruWeights<T>) -> Result<Self> {
        let (input, units) = weights.check()?;
        let GruWeights::ResetAfter {
            gates_kernel,
            gates_bias,
            input_kernel,
            hidden_kernel,
            input_bias,
            hidden_bias,
        } = weights
        else {
            return Err(Error::invalid(
                "weights",
                "the weights of the reset-after form",
                "those of the reset-before form",
            ));
        };
        let (gx, gh) = gates_kernel.split_at(Axis(0), input);
        Ok(ResetAfter {
            layout: layout(input, units, 4 * units, 3 * units),
            activation,
            w_x: side_by_side(&[gx, input_kernel]),
            w_x_back: side_by_side(&[input_kernel, gx]),
            bias: concatenate![Axis(0), gates_bias, input_bias].to_vec(),
            hidden_bias: hidden_bias.to_vec(),
            w_h: StepWeights::new(side_by_side(&[gh, hidden_kernel]).view()),
        })
    }
}

impl<T: Scalar> Cell<T> for ResetAfter<T> {
    fn name(&self) -> &'static str {
        "GRUCell"
    }

    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn input_kernel(&self) -> ArrayView2<'_, T> {
        self.w_x.view()
    }

    fn forward_step(&self, step: Forward<'_, T>) {
        let h = self.layout.state[0].width;
        // acc = h @ [W_gates_h | hidden_kernel] of the running rows
        let acc = step.scratch;
        self.w_h
            .packed()
            .gemm(false, mat(step.prev, h), mat_mut(acc, 3 * h));
        reset_after_step(
            self.activation,
            step.gates,
            acc,
            step.prev,
            step.aux,
            step.next,
            &self.bias,
            &self.hidden_bias,
        );
    }

    fn unit_split(&self) -> Option<UnitSplit> {
        let h = self.layout.state[0].width;
        UnitSplit::aligned(h, self.w_h.packed().panel_width(), [3, 1, 1, 3], 1)
    }

    fn forward_units(&self, mut step: UnitStep<'_, T>) {
        let h = self.layout.state[0].width;
        // acc = h @ [W_gates_h | hidden_kernel], the slice's columns of each
        for part in 0..3 {
            self.w_h.packed().gemm_cols(
                false,
                mat(step.prev, h),
                step.scratch.segment(part),
                part * h + step.units.start,
            );
        }
        reset_after_units(self.activation, &mut step, &self.bias, &self.hidden_bias);
    }

    fn backward_split(&self) -> Option<UnitSplit> {
        let h = self.layout.state[0].width;
        let align = self.w_h.packed().panel_width();
        // phase 0: the element-wise step; phase 1: dh += dZ @ W_hᵀ, which
        // reads dZ of every unit
        let split = UnitSplit::aligned(h, align, [4, 1, 4, 0], 2);
        split.filter(|_| self.w_h.transposed().panel_width() == align)
    }

    fn backward_units(&self, mut step: UnitBack<'_, T>) {
        if step.phase == 0 {
            reset_after_back_units(self.activation, &mut step);
        } else {
            // dh[:, the slice's units] += [dz_r | dz_u | dz_hc] @ W_hᵀ[:, those]
            let first = step.units.start;
            self.w_h.transposed().gemm_cols(
                true,
                step.d_kept.segments(1..4),
                step.d_state.segment(0),
                first,
            );
        }
    }

    fn backward_step(&self, step: Backward<'_, T>) {
        let h = self.layout.state[0].width;
        let (dz, dh) = (step.d_gates, step.d_state);
        reset_after_back(
            self.activation,
            dz,
            dh,
            step.gates,
            step.aux,
            step.prev,
            step.d_params,
        );
        // dh += [dz_r | dz_u | dz_hc] @ [W_gates_h | hidden_kernel]ᵀ
        self.w_h
            .transposed()
            .gemm(true, mat(dz, 4 * h).slice_move(s![.., h..]), mat_mut(dh, h));
    }

    fn deferred(&self, d: Deferred<'_, T>) -> WeightGrads<T> {
        deferred_in_one_chunk(self, d)
    }

    fn deferred_sums(&self) -> Vec<Array2<T>> {
        let (input, h) = (self.layout.input, self.layout.state[0].width);
        vec![Array2::zeros((input, 3 * h)), Array2::zeros((h, 3 * h))]
    }

    fn deferred_chunk(
        &self,
        d: Tokens<'_, T>,
        sums: &mut [Array2<T>],
        d_inputs: ArrayViewMut2<'_, T>,
        parallel: bool,
    ) {
        let h = self.layout.state[0].width;
        let [xtdz, stdz] = sums else {
            unreachable!("two sums")
        };
        let dz_x = d.d_gates.slice(s![.., ..3 * h]);
        gemm_on(parallel, true, d.x.t(), dz_x, xtdz.view_mut());
        let dz_h = d.d_gates.slice(s![.., h..]);
        gemm_on(parallel, true, d.states.t(), dz_h, stdz.view_mut());
        gemm_on(
            parallel,
            false,
            dz_x,
            self.w_x_back.slice(s![..d_inputs.ncols(), ..]).t(),
            d_inputs,
        );
    }

    fn deferred_finish(&self, sums: Vec<Array2<T>>, d_params: ArrayView1<'_, T>) -> Named<T> {
        let h = self.layout.state[0].width;
        let [xtdz, stdz]: [Array2<T>; 2] = sums.try_into().expect("two sums");
        let d_gk = concatenate![
            Axis(0),
            xtdz.slice(s![.., h..]),
            stdz.slice(s![.., ..2 * h])
        ];
        let db = d_params;
        vec![
            ("gates/kernel".into(), d_gk.into_dyn()),
            (
                "gates/bias".into(),
                db.slice(s![h..3 * h]).to_owned().into_dyn(),
            ),
            (
                "candidate/input_kernel".into(),
                xtdz.slice(s![.., ..h]).to_owned().into_dyn(),
            ),
            (
                "candidate/hidden_kernel".into(),
                stdz.slice(s![.., 2 * h..]).to_owned().into_dyn(),
            ),
            (
                "candidate/input_bias".into(),
                db.slice(s![..h]).to_owned().into_dyn(),
            ),
            (
                "candidate/hidden_bias".into(),
                db.slice(s![3 * h..]).to_owned().into_dyn(),
            ),
        ]
    }
}

// ---------------------------------------------------------------------------
// Fused element-wise passes of one step. Rows are `3H` (or `4H`) wide in the
// per-token buffers and `H` wide in the state buffers; `units = H`.
//
// A loop that writes one part of a row and reads or writes another part of
// the same row does not vectorise: the compiler cannot tell the parts apart.
// Such loops live in small functions of their own (multiversioned, so never
// inlined into their callers) taking the parts as separate slice arguments
// (which the compiler knows are disjoint; inlining would lose that), called
// once per row, or are split into loops that each write one buffer. Every
// element-wise pass is compiled for AVX-512 and AVX2 as well as the baseline
// and picks one at run time (the `multiversion` attributes).
// ---------------------------------------------------------------------------

/// Reset before, forward, gates: on entry `z[:, :2H]` holds
/// `x @ W_gates_x + h @ W_gates_h`; on exit `r | u = σ(· + gates/bias)`,
/// and `rh = r*h`.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn reset_before_gates<T: Scalar>(z: &mut [T], h: &[T], rh: &mut [T], gates_bias: &[T]) {
    let units = gates_bias.len() / 2;
    for ((z_row, h_row), rh_row) in z
        .chunks_exact_mut(3 * units)
        .zip(h.chunks_exact(units))
        .zip(rh.chunks_exact_mut(units))
    {
        for (zv, &b) in z_row[..2 * units].iter_mut().zip(gates_bias) {
            *zv = (*zv + b).sigmoid();
        }
        for ((rh, &r), &h) in rh_row.iter_mut().zip(&z_row[..units]).zip(h_row) {
            *rh = r * h;
        }
    }
}

/// Reset before, forward, candidate and update: on entry `z[:, 2H:]` holds
/// `x @ W_cand_x + (r*h) @ W_cand_h`; on exit `c = act(· + candidate/bias)`,
/// and `h_next = u*h + (1-u)*c`.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn reset_before_candidate<T: Scalar>(
    act: Activation,
    z: &mut [T],
    h: &[T],
    h_next: &mut [T],
    cand_bias: &[T],
) {
    let units = cand_bias.len();
    with_activation!(act, |act| {
        for ((z_row, h_row), hn_row) in z
            .chunks_exact_mut(3 * units)
            .zip(h.chunks_exact(units))
            .zip(h_next.chunks_exact_mut(units))
        {
            let (ru, c) = z_row.split_at_mut(2 * units);
            for (c, &b) in c.iter_mut().zip(cand_bias) {
                *c = act.apply(*c + b);
            }
            update(hn_row, h_row, &ru[units..], c);
        }
    })
}

/// The reset-before step's element-wise passes for one slice of units of a
/// step split by units ([`crate::kernels::split`]): phase 0 is
/// [`reset_before_gates`], phase 1 [`reset_before_candidate`], each with
/// the same operations on the same values in those units.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn reset_before_units<'s, T: Scalar>(act: Activation, step: &mut UnitStep<'s, T>, bias: &[T]) {
    let (n, u) = (bias.len() / 3, step.units.clone());
    let b = |k: usize| &bias[k * n + u.start..k * n + u.end];
    let (b_r, b_u, b_c) = (b(0), b(1), b(2));
    for r in 0..step.rows {
        let h = &step.prev[r * n + u.start..r * n + u.end];
        let [zr, zu, zc] = step.gates.row::<3>(r);
        if step.phase == 0 {
            let [rh] = step.aux.row::<1>(r);
            for (zv, &b) in zr.iter_mut().zip(b_r) {
                *zv = (*zv + b).sigmoid();
            }
            for (zv, &b) in zu.iter_mut().zip(b_u) {
                *zv = (*zv + b).sigmoid();
            }
            for ((rh, &r), &h) in rh.iter_mut().zip(&*zr).zip(h) {
                *rh = r * h;
            }
        } else {
            let [hn] = step.next.row::<1>(r);
            with_activation!(act, |act| {
                for (c, &b) in zc.iter_mut().zip(b_c) {
                    *c = act.apply(*c + b);
                }
            });
            update(hn, h, zu, zc);
        }
    }
}

/// [`reset_after_step`] for one slice of units of a step split by units
/// ([`crate::kernels::split`]), `acc` being the slice's scratch: the same
/// operations on the same values in those units.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn reset_after_units<'s, T: Scalar>(
    act: Activation,
    step: &mut UnitStep<'s, T>,
    bias: &[T],
    hidden_bias: &[T],
) {
    let (n, u) = (hidden_bias.len(), step.units.clone());
    let b = |k: usize| &bias[k * n + u.start..k * n + u.end];
    let (b_r, b_u, b_c, b_h) = (b(0), b(1), b(2), &hidden_bias[u.clone()]);
    for r in 0..step.rows {
        let h = &step.prev[r * n + u.start..r * n + u.end];
        let [zr, zu, zc] = step.gates.row::<3>(r);
        let [acc_r, acc_u, acc_c] = step.scratch.row::<3>(r);
        let [hc] = step.aux.row::<1>(r);
        let [hn] = step.next.row::<1>(r);
        for ((zv, &a), &b) in zr.iter_mut().zip(&*acc_r).zip(b_r) {
            *zv = (*zv + a + b).sigmoid();
        }
        for ((zv, &a), &b) in zu.iter_mut().zip(&*acc_u).zip(b_u) {
            *zv = (*zv + a + b).sigmoid();
        }
        for ((hc, &a), &b) in hc.iter_mut().zip(&*acc_c).zip(b_h) {
            *hc = a + b;
        }
        reset_after_candidate(act, zc, zr, hc, b_c);
        update(hn, h, zu, zc);
    }
}

/// `h_next = u*h + (1-u)*c`.
#[inline(always)]
fn update<T: Scalar>(h_next: &mut [T], h: &[T], u: &[T], c: &[T]) {
    for (((hn, &h), &u), &c) in h_next.iter_mut().zip(h).zip(u).zip(c) {
        *hn = u * h + (T::one() - u) * c;
    }
}

/// Reset after, forward, the whole step: `acc = h @ [W_gates_h | hidden_kernel]`
/// (`[rows, 3H]`), `z` holds `x @ [W_gates_x | input_kernel]` on entry and
/// `r | u | c` on exit; `hc = acc[:, 2H:] + hidden_bias` is stored for
/// backward; `h_next = u*h + (1-u)*c`. `bias` is `gates/bias | input_bias`.
#[allow(clippy::too_many_arguments)]
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn reset_after_step<T: Scalar>(
    act: Activation,
    z: &mut [T],
    acc: &[T],
    h: &[T],
    hc: &mut [T],
    h_next: &mut [T],
    bias: &[T],
    hidden_bias: &[T],
) {
    let units = hidden_bias.len();
    let (bias_ru, bias_c) = bias.split_at(2 * units);
    for ((((z_row, acc_row), h_row), hc_row), hn_row) in z
        .chunks_exact_mut(3 * units)
        .zip(acc.chunks_exact(3 * units))
        .zip(h.chunks_exact(units))
        .zip(hc.chunks_exact_mut(units))
        .zip(h_next.chunks_exact_mut(units))
    {
        let (ru, c) = z_row.split_at_mut(2 * units);
        let (acc_ru, acc_c) = acc_row.split_at(2 * units);
        for ((zv, &a), &b) in ru.iter_mut().zip(acc_ru).zip(bias_ru) {
            *zv = (*zv + a + b).sigmoid();
        }
        for ((hc, &a), &b) in hc_row.iter_mut().zip(acc_c).zip(hidden_bias) {
            *hc = a + b;
        }
        let (r, u) = ru.split_at(units);
        reset_after_candidate(act, c, r, hc_row, bias_c);
        update(hn_row, h_row, u, c);
    }
}

/// `c = act(c + input_bias + r*hc)`, in place. Not inlined, so that the
/// compiler keeps knowing `c` and `r` (parts of one row) are disjoint.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
fn reset_after_candidate<T: Scalar>(act: Activation, c: &mut [T], r: &[T], hc: &[T], bias: &[T]) {
    with_activation!(act, |act| {
        for (((c, &r), &hc), &b) in c.iter_mut().zip(r).zip(hc).zip(bias) {
            *c = act.apply(*c + b + r * hc);
        }
    })
}

/// Reset before, backward, first pass. `dh` is `dL/dh'` on entry and its
/// direct share of `dL/dh` (`dh'*u`) on exit; writes `dz_u = dh'*(h-c)*u(1-u)`
/// and `dz_c = dh'*(1-u)*act'(c)` into `dz` (`dz_r | dz_u | dz_c` rows) and
/// adds them into `d_bias` (`3H`, same order).
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn reset_before_back_update<T: Scalar>(
    act: Activation,
    dz: &mut [T],
    dh: &mut [T],
    gates: &[T],
    h: &[T],
    d_bias: &mut [T],
) {
    let units = d_bias.len() / 3;
    for (((dz_row, dh_row), g_row), h_row) in dz
        .chunks_exact_mut(3 * units)
        .zip(dh.chunks_exact_mut(units))
        .zip(gates.chunks_exact(3 * units))
        .zip(h.chunks_exact(units))
    {
        let (dz_u, dz_c) = dz_row[units..].split_at_mut(units);
        let (u, c) = g_row[units..].split_at(units);
        update_and_candidate_back(act, dz_u, dz_c, dh_row, h_row, u, c);
        for (db, &v) in d_bias[units..].iter_mut().zip(&dz_row[units..]) {
            *db += v;
        }
    }
}

/// Through `h' = u*h + (1-u)*c` and `c = act(zc)`: `dz_u = dh'*(h-c)*u(1-u)`,
/// `dz_c = dh'*(1-u)*act'(c)`, and `dh = dh'*u` in place. Not inlined, so
/// that the compiler keeps knowing `dz_u` and `dz_c` (parts of one row) are
/// disjoint.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
fn update_and_candidate_back<T: Scalar>(
    act: Activation,
    dz_u: &mut [T],
    dz_c: &mut [T],
    dh: &mut [T],
    h: &[T],
    u: &[T],
    c: &[T],
) {
    with_activation!(act, |act| {
        for (((((dz_u, dz_c), dh), &h), &u), &c) in dz_u
            .iter_mut()
            .zip(dz_c.iter_mut())
            .zip(dh.iter_mut())
            .zip(h)
            .zip(u)
            .zip(c)
        {
            let d = *dh;
            *dz_c = d * (T::one() - u) * act.grad_from_output(c);
            *dz_u = d * (h - c) * u * (T::one() - u);
            *dh = d * u;
        }
    })
}

/// Reset before, backward, second pass: with `drh = dz_c @ W_cand_hᵀ`
/// (`dL/d(r*h)`), writes `dz_r = drh*h*r(1-r)`, adds it into `d_bias[..H]`,
/// and adds `drh*r` into `dh`.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn reset_before_back_reset<T: Scalar>(
    dz: &mut [T],
    dh: &mut [T],
    drh: &[T],
    gates: &[T],
    h: &[T],
    d_bias: &mut [T],
) {
    let units = d_bias.len() / 3;
    let db_r = &mut d_bias[..units];
    for ((((dz_row, dh_row), drh_row), g_row), h_row) in dz
        .chunks_exact_mut(3 * units)
        .zip(dh.chunks_exact_mut(units))
        .zip(drh.chunks_exact(units))
        .zip(gates.chunks_exact(3 * units))
        .zip(h.chunks_exact(units))
    {
        reset_back(
            &mut dz_row[..units],
            db_r,
            dh_row,
            drh_row,
            &g_row[..units],
            h_row,
        );
    }
}

/// Through `r*h`, given `drh = dL/d(r*h)`: `dz_r = drh*h*r(1-r)`, added into
/// `db_r`, and `dh += drh*r`. Not inlined, like [`update_and_candidate_back`].
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
fn reset_back<T: Scalar>(
    dz_r: &mut [T],
    db_r: &mut [T],
    dh: &mut [T],
    drh: &[T],
    r: &[T],
    h: &[T],
) {
    for (((((dz_r, db), dh), &d), &r), &h) in dz_r
        .iter_mut()
        .zip(db_r.iter_mut())
        .zip(dh.iter_mut())
        .zip(drh)
        .zip(r)
        .zip(h)
    {
        let zr = d * h * r * (T::one() - r);
        *dz_r = zr;
        *db += zr;
        *dh += d * r;
    }
}

/// [`reset_before_back_update`] for one slice of units of a backward step
/// split by units ([`crate::kernels::split::run_back`], phase 0): the same
/// operations on the same values in those units.
pub fn reset_before_back_update_units<T: Scalar>(act: Activation, step: &mut UnitBack<'_, T>) {
    let (n, u) = (step.d_state.units(), step.units.clone());
    let [_, mut db_u, mut db_c] = step.d_params.row::<3>(0);
    for r in 0..step.rows {
        let g = |k: usize| &step.gates[r * 3 * n + k * n + u.start..r * 3 * n + k * n + u.end];
        let h = &step.prev[r * n + u.start..r * n + u.end];
        let [_, dz_u, dz_c] = step.d_gates.row::<3>(r);
        let [dh] = step.d_state.row::<1>(r);
        update_and_candidate_back(act, dz_u, dz_c, dh, h, g(1), g(2));
        for (db, dz) in [(&mut db_u, &*dz_u), (&mut db_c, &*dz_c)] {
            for (b, &v) in db.iter_mut().zip(dz) {
                *b += v;
            }
        }
    }
}

/// [`reset_before_back_reset`] for one slice of units of a backward step
/// split by units (phase 1, once the slice's columns of `d(r*h)` are in the
/// scratch rows): the same operations on the same values in those units.
pub fn reset_before_back_reset_units<T: Scalar>(step: &mut UnitBack<'_, T>) {
    let (n, u) = (step.d_state.units(), step.units.clone());
    for r in 0..step.rows {
        let g_r = &step.gates[r * 3 * n + u.start..r * 3 * n + u.end];
        let h = &step.prev[r * n + u.start..r * n + u.end];
        let dz_r = step.d_gates.part(r, 0);
        let db_r = step.d_params.part(0, 0);
        let dh = step.d_state.part(r, 0);
        let drh = step.scratch.part(r, 0);
        reset_back(dz_r, db_r, dh, drh, g_r, h);
    }
}

/// Reset after, backward, the whole element-wise step. `dh` is `dL/dh'` on
/// entry and `dh'*u` on exit; `dz` rows are `dz_c | dz_r | dz_u | dz_hc`
/// (`4H`), added into `d_bias` in the same order:
///
/// ```text
/// dz_c = dh'*(1-u)*act'(c)      dz_hc = dz_c*r      dz_r = dz_c*hc*r(1-r)
/// dz_u = dh'*(h-c)*u(1-u)
/// ```
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn reset_after_back<T: Scalar>(
    act: Activation,
    dz: &mut [T],
    dh: &mut [T],
    gates: &[T],
    hc: &[T],
    h: &[T],
    d_bias: &mut [T],
) {
    let units = d_bias.len() / 4;
    for ((((dz_row, dh_row), g_row), hc_row), h_row) in dz
        .chunks_exact_mut(4 * units)
        .zip(dh.chunks_exact_mut(units))
        .zip(gates.chunks_exact(3 * units))
        .zip(hc.chunks_exact(units))
        .zip(h.chunks_exact(units))
    {
        let (dz_c, rest) = dz_row.split_at_mut(units);
        let (dz_r, rest) = rest.split_at_mut(units);
        let (dz_u, dz_hc) = rest.split_at_mut(units);
        let (u, c) = g_row[units..].split_at(units);
        update_and_candidate_back(act, dz_u, dz_c, dh_row, h_row, u, c);
        reset_after_reset_back(dz_r, dz_hc, dz_c, &g_row[..units], hc_row);
        for (db, &v) in d_bias.iter_mut().zip(dz_row.iter()) {
            *db += v;
        }
    }
}

/// [`reset_after_back`] for one slice of units of a backward step split by
/// units ([`crate::kernels::split::run_back`], phase 0): the same operations
/// on the same values in those units.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn reset_after_back_units<'s, T: Scalar>(act: Activation, step: &mut UnitBack<'s, T>) {
    let (n, u) = (step.d_state.units(), step.units.clone());
    let mut d_bias = step.d_params.row::<4>(0);
    for r in 0..step.rows {
        let g = |k: usize| &step.gates[r * 3 * n + k * n + u.start..r * 3 * n + k * n + u.end];
        let hc = &step.aux[r * n + u.start..r * n + u.end];
        let h = &step.prev[r * n + u.start..r * n + u.end];
        let [dz_c, dz_r, dz_u, dz_hc] = step.d_gates.row::<4>(r);
        let [dh] = step.d_state.row::<1>(r);
        update_and_candidate_back(act, dz_u, dz_c, dh, h, g(1), g(2));
        reset_after_reset_back(dz_r, dz_hc, dz_c, g(0), hc);
        for (db, dz) in d_bias.iter_mut().zip([&*dz_c, &*dz_r, &*dz_u, &*dz_hc]) {
            for (b, &v) in db.iter_mut().zip(dz) {
                *b += v;
            }
        }
    }
}

/// Through `r*hc`: `dz_hc = dz_c*r`, `dz_r = dz_c*hc*r(1-r)`. Not inlined,
/// like [`update_and_candidate_back`].
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
fn reset_after_reset_back<T: Scalar>(
    dz_r: &mut [T],
    dz_hc: &mut [T],
    dz_c: &[T],
    r: &[T],
    hc: &[T],
) {
    for ((((dz_r, dz_hc), &zc), &r), &hc) in dz_r
        .iter_mut()
        .zip(dz_hc.iter_mut())
        .zip(dz_c)
        .zip(r)
        .zip(hc)
    {
        *dz_hc = zc * r;
        *dz_r = zc * hc * r * (T::one() - r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    #[test]
    fn reset_before_forward_by_hand() {
        // one row, one unit: z = [zr, zu, zc] before the bias
        let mut z = vec![0.3f64, -0.2, 0.0];
        let h = [0.5];
        let mut rh = [0.0];
        reset_before_gates(&mut z, &h, &mut rh, &[0.1, 1.0]);
        let (r, u) = (sig(0.4), sig(0.8));
        assert!((z[0] - r).abs() < 1e-15 && (z[1] - u).abs() < 1e-15);
        assert!((rh[0] - r * 0.5).abs() < 1e-15);
        z[2] = 0.7; // x @ W_cand_x + (r*h) @ W_cand_h
        let mut hn = [0.0];
        reset_before_candidate(Activation::Tanh, &mut z, &h, &mut hn, &[-0.2]);
        let c = (0.5f64).tanh();
        assert!((z[2] - c).abs() < 1e-15);
        assert!((hn[0] - (u * 0.5 + (1.0 - u) * c)).abs() < 1e-15);
    }

    #[test]
    fn reset_after_forward_by_hand() {
        let mut z = vec![0.3f64, -0.2, 0.6];
        let acc = [0.1, 0.4, -0.5];
        let h = [0.5];
        let (mut hc, mut hn) = ([0.0], [0.0]);
        let bias = [0.1, 1.0, 0.2];
        reset_after_step(
            Activation::Identity,
            &mut z,
            &acc,
            &h,
            &mut hc,
            &mut hn,
            &bias,
            &[0.25],
        );
        let (r, u) = (sig(0.5), sig(1.2));
        let hcv = -0.5 + 0.25;
        let c = 0.6 + 0.2 + r * hcv;
        assert!((z[0] - r).abs() < 1e-15 && (z[1] - u).abs() < 1e-15);
        assert!((hc[0] - hcv).abs() < 1e-15);
        assert!((z[2] - c).abs() < 1e-15);
        assert!((hn[0] - (u * 0.5 + (1.0 - u) * c)).abs() < 1e-15);
    }

    #[test]
    fn backward_passes_by_hand() {
        let (r, u, c, h, d) = (0.3f64, 0.6, -0.4, 0.5, 2.0);
        let gates = [r, u, c];
        // reset before
        let mut dz = [0.0; 3];
        let mut dh = [d];
        let mut db = [1.0, 1.0, 1.0];
        reset_before_back_update(Activation::Tanh, &mut dz, &mut dh, &gates, &[h], &mut db);
        let zc = d * (1.0 - u) * (1.0 - c * c);
        let zu = d * (h - c) * u * (1.0 - u);
        assert_eq!(dz[0], 0.0);
        assert!((dz[1] - zu).abs() < 1e-15 && (dz[2] - zc).abs() < 1e-15);
        assert!((dh[0] - d * u).abs() < 1e-15);
        assert!((db[1] - 1.0 - zu).abs() < 1e-15 && (db[2] - 1.0 - zc).abs() < 1e-15);
        let drh = 0.7;
        reset_before_back_reset(&mut dz, &mut dh, &[drh], &gates, &[h], &mut db);
        let zr = drh * h * r * (1.0 - r);
        assert!((dz[0] - zr).abs() < 1e-15 && (db[0] - 1.0 - zr).abs() < 1e-15);
        assert!((dh[0] - (d * u + drh * r)).abs() < 1e-15);
        // reset after
        let hc = -0.8;
        let mut dz = [0.0; 4];
        let mut dh = [d];
        let mut db = [0.0; 4];
        reset_after_back(
            Activation::Tanh,
            &mut dz,
            &mut dh,
            &gates,
            &[hc],
            &[h],
            &mut db,
        );
        let want = [zc, zc * hc * r * (1.0 - r), zu, zc * r];
        for (g, w) in dz.iter().zip(want) {
            assert!((g - w).abs() < 1e-15);
        }
        assert_eq!(db, dz);
        assert!((dh[0] - d * u).abs() < 1e-15);
    }
}
