//! `BasicRNNCell`: `h' = act([x, h] @ kernel + bias)`; output = state = `h'`.
//!
//! The layer computes `acc = h @ W_h` (rows of the recurrent product) and
//! hands this file the hoisted `x @ W_x` rows; everything else of a step is
//! one fused pass here.

use super::{with_activation, Activation};
use crate::scalar::Scalar;

/// Forward element-wise pass of one step, for `rows` rows of `H` units:
/// `h[r, j] = act(h[r, j] + xw[r, j] + bias[j])`, where `h` holds
/// `h_prev @ W_h` on entry and the new state on exit.
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
