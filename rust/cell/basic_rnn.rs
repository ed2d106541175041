//! `BasicRNNCell`: `h' = act([x, h] @ kernel + bias)`; output = state = `h'`.
//!
//! Weights: `kernel [I+H, H]` (rows `[x; h]`), `bias [H]`. The forward pass
//! keeps only the states (the local derivative is computed from the output:
//! `act'(z) = f(h)`), so it frees the gate buffer after the loop.

use super::{activation_option, units_from};
use crate::error::{Error, Result};
use crate::kernels::activation::{with_activation, Activation};
use crate::kernels::gemm::gemm_on;
use crate::kernels::packed::StepWeights;
use crate::kernels::rows::{mat, mat_mut};
use crate::kernels::scalar::Scalar;
use crate::step::params::Named;
use crate::step::params::{Options, Weights};
use crate::step::{
    deferred_in_one_chunk, Backward, Cell, Deferred, Forward, Layout, StatePart, Tokens, UnitBack,
    UnitSplit, UnitStep, WeightGrads,
};
use ndarray::{s, Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis};

/// Forward element-wise pass of one step, for `rows` rows of `H` units:
/// `h[r, j] = act(h[r, j] + xw[r, j] + bias[j])`, where `h` holds
/// `h_prev @ W_h` on entry and the new state on exit.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn step_forward<T: Scalar>(act: Activation, h: &mut [T], xw: &[T], bias: &[T]) {
    let units = bias.len();
    debug_assert_eq!(h.len(), xw.len());
    with_activation!(act, |act| {
        for (h_row, xw_row) in h.chunks_exact_mut(units).zip(xw.chunks_exact(units)) {
            for ((h, &xw), &b) in h_row.iter_mut().zip(xw_row).zip(bias) {
                *h = act.apply(*h + xw + b);
            }
        }
    })
}

/// [`step_forward`] for one slice of units of a step split by units
/// ([`crate::kernels::split`]): the same operations on the same values.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn step_forward_units<'s, T: Scalar>(act: Activation, step: &mut UnitStep<'s, T>, bias: &[T]) {
    let bias = &bias[step.units.clone()];
    with_activation!(act, |act| {
        for r in 0..step.rows {
            let [h] = step.next.row::<1>(r);
            let [xw] = step.gates.row::<1>(r);
            for ((h, &xw), &b) in h.iter_mut().zip(&*xw).zip(bias) {
                *h = act.apply(*h + xw + b);
            }
        }
    })
}

/// Backward element-wise pass of one step: `dz = dh ⊙ act'(z)`, with
/// `act'` computed from the step's output `h`; adds `dz`'s rows into
/// `d_bias`.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn step_backward<T: Scalar>(
    act: Activation,
    dz: &mut [T],
    dh: &[T],
    h: &[T],
    d_bias: &mut [T],
) {
    let units = d_bias.len();
    with_activation!(act, |act| {
        for ((dz_row, dh_row), h_row) in dz
            .chunks_exact_mut(units)
            .zip(dh.chunks_exact(units))
            .zip(h.chunks_exact(units))
        {
            for (((dz, &dh), &h), db) in dz_row
                .iter_mut()
                .zip(dh_row)
                .zip(h_row)
                .zip(d_bias.iter_mut())
            {
                *dz = dh * act.grad_from_output(h);
                *db += *dz;
            }
        }
    })
}

/// [`step_backward`] for one slice of units of a backward step split by
/// units ([`crate::kernels::split::run_back`], phase 0): the same operations
/// on the same values in those units.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn step_backward_units<'s, T: Scalar>(act: Activation, step: &mut UnitBack<'s, T>) {
    let (n, u) = (step.d_state.units(), step.units.clone());
    let [d_bias] = step.d_params.row::<1>(0);
    with_activation!(act, |act| {
        for r in 0..step.rows {
            let [dz] = step.d_gates.row::<1>(r);
            let [dh] = step.d_state.row::<1>(r);
            let h = &step.next[r * n + u.start..r * n + u.end];
            for (((dz, &dh), &h), db) in dz.iter_mut().zip(&*dh).zip(h).zip(d_bias.iter_mut()) {
                *dz = dh * act.grad_from_output(h);
                *db += *dz;
            }
        }
    })
}

/// A built `BasicRNNCell`.
#[derive(Debug)]
pub struct BasicRnn<T: Scalar> {
    layout: Layout,
    activation: Activation,
    /// `[I, H]`: the x-rows of `kernel`.
    w_x: Array2<T>,
    /// `[H, H]`: the h-rows of `kernel`.
    w_h: StepWeights<T>,
    /// `[H]`.
    bias: Vec<T>,
}

impl<T: Scalar> BasicRnn<T> {
    /// Builds the cell from `kernel` `[I+H, H]` and `bias` `[H]`.
    pub fn new(activation: Activation, kernel: ArrayView2<T>, bias: ArrayView1<T>) -> Result<Self> {
        let units = units_from("bias", bias.len(), 1)?;
        if kernel.ncols() != units || kernel.nrows() < units {
            return Err(Error::invalid(
                "kernel",
                format!("shape [I + {units}, {units}] (I >= 0, H = {units} from bias)"),
                format!("shape {:?}", kernel.shape()),
            ));
        }
        let input = kernel.nrows() - units;
        let (w_x, w_h) = kernel.split_at(Axis(0), input);
        Ok(BasicRnn {
            layout: Layout {
                input,
                state: vec![StatePart {
                    name: "",
                    width: units,
                }],
                output: 0,
                gates: units,
                keep_gates: false,
                aux: 0,
                d_gates: units,
                d_aux: 0,
                scratch: 0,
                d_params: units,
                work_per_token: (input + units) * units,
            },
            activation,
            w_x: w_x.to_owned(),
            w_h: StepWeights::new(w_h),
            bias: bias.to_vec(),
        })
    }

    fn units(&self) -> usize {
        self.bias.len()
    }
}

/// Builds a `BasicRNNCell` from its options (`activation`) and weights
/// (`kernel`, `bias`).
pub fn build<T: Scalar>(
    mut options: Options,
    mut weights: Weights<'_, T>,
) -> Result<Box<dyn Cell<T>>> {
    let activation = activation_option(&mut options)?;
    options.finish("BasicRNNCell")?;
    let kernel = weights.matrix("kernel")?;
    let bias = weights.vector("bias")?;
    weights.finish("BasicRNNCell")?;
    Ok(Box::new(BasicRnn::new(activation, kernel, bias)?))
}

impl<T: Scalar> Cell<T> for BasicRnn<T> {
    fn name(&self) -> &'static str {
        "BasicRNNCell"
    }

    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn input_kernel(&self) -> ArrayView2<'_, T> {
        self.w_x.view()
    }

    fn forward_step(&self, step: Forward<'_, T>) {
        let h = self.units();
        // next = h_prev @ W_h, then act(next + x @ W_x + bias) in place
        self.w_h
            .packed()
            .gemm(false, mat(step.prev, h), mat_mut(step.next, h));
        step_forward(self.activation, step.next, step.gates, &self.bias);
    }

    fn unit_split(&self) -> Option<UnitSplit> {
        UnitSplit::aligned(
            self.units(),
            self.w_h.packed().panel_width(),
            [1, 1, 0, 0],
            1,
        )
    }

    fn forward_units(&self, mut step: UnitStep<'_, T>) {
        let h = self.units();
        let first = step.units.start;
        self.w_h
            .packed()
            .gemm_cols(false, mat(step.prev, h), step.next.segment(0), first);
        step_forward_units(self.activation, &mut step, &self.bias);
    }

    fn backward_split(&self) -> Option<UnitSplit> {
        let align = self.w_h.packed().panel_width();
        // phase 0: dZ; phase 1: dh_prev = dZ @ W_hᵀ, which reads dZ of
        // every unit
        let split = UnitSplit::aligned(self.units(), align, [1, 1, 1, 0], 2);
        split.filter(|_| self.w_h.transposed().panel_width() == align)
    }

    fn backward_units(&self, mut step: UnitBack<'_, T>) {
        if step.phase == 0 {
            step_backward_units(self.activation, &mut step);
        } else {
            let first = step.units.start;
            self.w_h.transposed().gemm_cols(
                false,
                step.d_kept.segments(0..1),
                step.d_state.segment(0),
                first,
            );
        }
    }

    fn backward_step(&self, step: Backward<'_, T>) {
        let h = self.units();
        step_backward(
            self.activation,
            step.d_gates,
            step.d_state,
            step.next,
            step.d_params,
        );
        self.w_h
            .transposed()
            .gemm(false, mat(step.d_gates, h), mat_mut(step.d_state, h));
    }

    fn deferred(&self, d: Deferred<'_, T>) -> WeightGrads<T> {
        deferred_in_one_chunk(self, d)
    }

    fn deferred_sums(&self) -> Vec<Array2<T>> {
        let (input, h) = (self.layout.input, self.units());
        vec![Array2::zeros((input + h, h))]
    }

    fn deferred_chunk(
        &self,
        d: Tokens<'_, T>,
        sums: &mut [Array2<T>],
        d_inputs: ArrayViewMut2<'_, T>,
        parallel: bool,
    ) {
        let (dk_x, dk_h) = sums[0].view_mut().split_at(Axis(0), self.layout.input);
        gemm_on(parallel, true, d.x.t(), d.d_gates, dk_x);
        gemm_on(parallel, true, d.states.t(), d.d_gates, dk_h);
        gemm_on(
            parallel,
            false,
            d.d_gates,
            self.w_x.slice(s![..d_inputs.ncols(), ..]).t(),
            d_inputs,
        );
    }

    fn deferred_finish(&self, sums: Vec<Array2<T>>, d_params: ArrayView1<'_, T>) -> Named<T> {
        let h = self.units();
        let kernel = sums.into_iter().next().expect("the kernel's sum");
        vec![
            ("kernel".into(), kernel.into_dyn()),
            ("bias".into(), d_params.slice(s![..h]).to_owned().into_dyn()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_by_hand() {
        // two rows, two units: h = tanh(acc + xw + b)
        let mut h = vec![0.5f64, -1.0, 0.0, 2.0];
        let xw = [0.25, 0.5, -0.5, 0.0];
        let b = [0.1, -0.2];
        step_forward(Activation::Tanh, &mut h, &xw, &b);
        let want = [
            (0.85f64).tanh(),
            (-0.7f64).tanh(),
            (-0.4f64).tanh(),
            (1.8f64).tanh(),
        ];
        for (g, w) in h.iter().zip(want) {
            assert!((g - w).abs() < 1e-15);
        }
        let mut r = vec![-1.0f64, 1.0];
        step_forward(Activation::Relu, &mut r, &[0.5, 0.5], &[0.0, 0.0]);
        assert_eq!(r, vec![0.0, 1.5]);
    }

    #[test]
    fn zero_units_is_an_error_not_a_panic() {
        let k = Array2::<f64>::zeros((2, 0));
        let b = ndarray::Array1::<f64>::zeros(0);
        let e = BasicRnn::new(Activation::Tanh, k.view(), b.view()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "bias: expected at least 1 unit, got shape [0]"
        );
        let k = Array2::<f64>::zeros((1, 2));
        let b = ndarray::Array1::<f64>::zeros(2);
        let e = BasicRnn::new(Activation::Tanh, k.view(), b.view()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "kernel: expected shape [I + 2, 2] (I >= 0, H = 2 from bias), got shape [1, 2]"
        );
    }

    #[test]
    fn backward_by_hand() {
        let h = [0.5f64, -0.25, 0.0, 0.9];
        let dh = [1.0, 2.0, -1.0, 0.5];
        let mut dz = [0.0; 4];
        let mut db = [10.0, 20.0];
        step_backward(Activation::Tanh, &mut dz, &dh, &h, &mut db);
        let want = [1.0 * 0.75, 2.0 * (1.0 - 0.0625), -1.0, 0.5 * (1.0 - 0.81)];
        for (g, w) in dz.iter().zip(want) {
            assert!((g - w).abs() < 1e-15);
        }
        assert!((db[0] - (10.0 + want[0] + want[2])).abs() < 1e-15);
        assert!((db[1] - (20.0 + want[1] + want[3])).abs() < 1e-15);
    }
}
