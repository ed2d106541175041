//! `BasicRNNCell`: `h' = act([x, h] @ kernel + bias)`; output = state = `h'`.
//!
//! Weights: `kernel [I+H, H]` (rows `[x; h]`), `bias [H]`. The forward pass
//! caches exactly the gathered inputs `X` and every state `S` (the local
//! derivative is computed from the output: `act'(z) = f(h)`).

use super::{with_activation, Activation};
use crate::bptt::{add_step_outputs, check_d_outputs, initial_state_grads, seed_finished_rows};
use crate::error::{check_shape, Error, Result};
use crate::gemm::{par_gemm, par_product};
use crate::layer::{
    block, fill_initial, final_state, gather_inputs, global_block, mat, mat_mut, scatter,
    split_groups, worth_parallel, Slot,
};
use crate::mask::Plan;
use crate::packed::PackedB;
use crate::pool;
use crate::scalar::Scalar;
use ndarray::{s, Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayView3, Axis};

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

/// What the forward pass keeps for backpropagation.
#[derive(Debug, Clone)]
pub struct RnnCache<T> {
    /// Where each (row, step) lives.
    pub plan: Plan,
    /// Gathered inputs `[R, I]`.
    pub x: Array2<T>,
    /// States `[R, H]`: block `k` is the state after step `k-1`.
    pub s: Array2<T>,
    /// The activation used.
    pub activation: Activation,
    /// Whether the caller's arrays are `[T, B, …]`.
    pub time_major: bool,
}

/// Result of [`forward`].
#[derive(Debug, Clone)]
pub struct RnnForward<T> {
    /// `[B, T, H]` (or `[T, B, H]` when time-major); zero past each length.
    pub outputs: Array3<T>,
    /// `[B, H]`: each row's state after its last step.
    pub state: Array2<T>,
    /// Everything backpropagation needs.
    pub cache: RnnCache<T>,
}

/// Gradients of a [`forward`] call.
#[derive(Debug, Clone)]
pub struct RnnGrads<T> {
    /// `d inputs`, in the forward call's layout; zero past each length.
    pub inputs: Array3<T>,
    /// `d initial_state` `[B, H]`.
    pub initial_state: Array2<T>,
    /// `d kernel` `[I+H, H]`.
    pub kernel: Array2<T>,
    /// `d bias` `[H]`.
    pub bias: Array1<T>,
}

fn check_weights<T>(kernel: &ArrayView2<T>, bias: &ArrayView1<T>, input: usize) -> Result<usize> {
    let units = bias.len();
    if units == 0 {
        return Err(Error::invalid("bias", "at least 1 unit", "shape [0]"));
    }
    check_shape("kernel", kernel.shape(), &[input + units, units])?;
    Ok(units)
}

/// Runs `BasicRNNCell` over a batch of sequences.
///
/// `x` is `[T, B, I]` (any strides; see [`crate::layer::time_major_view`]), `h0` `[B, H]`,
/// `kernel` `[I+H, H]` (rows `[x; h]`), `bias` `[H]`. `time_major` chooses
/// the layout of the returned outputs.
pub fn forward<T: Scalar>(
    x: ArrayView3<T>,
    h0: ArrayView2<T>,
    kernel: ArrayView2<T>,
    bias: ArrayView1<T>,
    lengths: Option<&[i64]>,
    activation: Activation,
    time_major: bool,
) -> Result<RnnForward<T>> {
    let (time, batch, input) = x.dim();
    let units = check_weights(&kernel, &bias, input)?;
    let plan = Plan::new(batch, time, lengths)?;
    crate::layer::check_state("initial_state", &h0, &plan, units)?;
    let (w_x, w_h) = kernel.split_at(Axis(0), input);
    let parallel = worth_parallel(&plan, (input + units) * units);
    let bias = bias.as_standard_layout();
    let bias = bias.as_slice().expect("standard layout");

    let (xs, s) = pool::run(parallel, || {
        let w_h = PackedB::new(w_h);
        let xs = gather_inputs(&plan, x);
        let z = par_product(xs.view(), w_x);
        let mut s = Array2::<T>::zeros((plan.rows, units));
        let groups: Vec<_> = plan
            .groups
            .iter()
            .zip(split_groups(&plan, &mut s))
            .collect();
        pool::for_each(groups, |(g, s_g)| {
            fill_initial(g, s_g, &h0);
            for (t, &a) in g.active.iter().enumerate() {
                let (prev, next) = s_g.split_at_mut(block(g, t + 1, 0, units).start);
                let h = &mut next[..a * units];
                w_h.gemm(
                    false,
                    mat(&prev[block(g, t, a, units)], units),
                    mat_mut(h, units),
                );
                step_forward(activation, h, global_block(&z, g, t, a), bias);
            }
        });
        (xs, s)
    });
    let outputs = pool::run(parallel, || scatter(&plan, &s, time_major, Slot::State));
    let state = final_state(&plan, &s, h0);
    Ok(RnnForward {
        outputs,
        state,
        cache: RnnCache {
            plan,
            x: xs,
            s,
            activation,
            time_major,
        },
    })
}

/// Backpropagates `d_outputs` (`[T, B, H]` view, see [`crate::layer::time_major_view`])
/// and `d_state` (`[B, H]`) through the forward pass that filled `cache`.
/// Either may be `None` (zeros). `kernel` must be the forward pass's.
pub fn backward<T: Scalar>(
    cache: &RnnCache<T>,
    kernel: ArrayView2<T>,
    d_outputs: Option<ArrayView3<T>>,
    d_state: Option<ArrayView2<T>>,
) -> Result<RnnGrads<T>> {
    let plan = &cache.plan;
    let (input, units) = (cache.x.ncols(), cache.s.ncols());
    if kernel.dim() != (input + units, units) {
        return Err(Error::invalid(
            "kernel",
            format!("shape [{}, {units}] (the forward pass's)", input + units),
            format!("{:?}", kernel.shape()),
        ));
    }
    if let Some(d) = &d_outputs {
        check_d_outputs(d, plan, units, cache.time_major)?;
    }
    if let Some(d) = &d_state {
        crate::layer::check_state("d_state", d, plan, units)?;
    }
    let (w_x, w_h) = kernel.split_at(Axis(0), input);
    let parallel = worth_parallel(plan, (input + units) * units);
    let activation = cache.activation;

    Ok(pool::run(parallel, || {
        let w_h_t = PackedB::new(w_h.t());
        let mut dz = Array2::<T>::zeros((plan.rows, units));
        let mut per_group: Vec<(Array1<T>, Array2<T>)> = plan
            .groups
            .iter()
            .map(|g| {
                (
                    Array1::zeros(units),
                    Array2::zeros((g.first_active(), units)),
                )
            })
            .collect();
        let work: Vec<_> = plan
            .groups
            .iter()
            .zip(split_groups(plan, &mut dz))
            .zip(per_group.iter_mut())
            .collect();
        pool::for_each(work, |((g, dz_g), (d_bias, dh))| {
            for t in (0..g.steps()).rev() {
                let a = g.active[t];
                let mut dh_a = dh.slice_mut(s![..a, ..]);
                seed_finished_rows(g, t, &mut dh_a, d_state.as_ref());
                add_step_outputs(g, t, &mut dh_a, d_outputs.as_ref());
                let dz_t = &mut dz_g[block(g, t, a, units)];
                step_backward(
                    activation,
                    dz_t,
                    dh_a.as_slice().expect("standard layout"),
                    global_block(&cache.s, g, t + 1, a),
                    d_bias.as_slice_mut().expect("standard layout"),
                );
                w_h_t.gemm(false, mat(dz_t, units), dh_a);
            }
        });
        let d_bias = per_group
            .iter()
            .fold(Array1::zeros(units), |acc, (db, _)| acc + db);
        let dhs: Vec<_> = per_group.iter().map(|(_, dh)| dh).collect();
        let d_h0 = initial_state_grads(plan, &dhs, d_state.as_ref(), units);

        let mut d_kernel = Array2::<T>::zeros((input + units, units));
        {
            let (dk_x, dk_h) = d_kernel.view_mut().split_at(Axis(0), input);
            par_gemm(false, cache.x.t(), dz.view(), dk_x);
            par_gemm(false, cache.s.t(), dz.view(), dk_h);
        }
        let dx = par_product(dz.view(), w_x.t());
        RnnGrads {
            inputs: scatter(plan, &dx, cache.time_major, Slot::Token),
            initial_state: d_h0,
            kernel: d_kernel,
            bias: d_bias,
        }
    }))
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
        let x = ndarray::Array3::<f64>::zeros((3, 2, 2));
        let e = forward(
            x.view(),
            ndarray::Array2::zeros((2, 0)).view(),
            ndarray::Array2::zeros((2, 0)).view(),
            Array1::zeros(0).view(),
            None,
            Activation::Tanh,
            false,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "bias: expected at least 1 unit, got shape [0]"
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
