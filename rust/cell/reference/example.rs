//! The cell that `docs/architecture.md` adds as its example of "how to add a
//! cell": IndRNN (Li et al. 2018), `h' = act(x @ input_kernel +
//! recurrent_kernel * h + bias)`. It is compiled and tested here, against a
//! naive reference, so that the page's code stays true; `tests/test_docs.py`
//! checks the page shows the code below unchanged (from the first `use` to
//! the end marker). It is not registered at the Python edge.

use crate::cell::units_from;
use crate::error::{check_shape, Result};
use crate::kernels::activation::{with_activation, Activation};
use crate::kernels::gemm::{par_gemm, par_product};
use crate::kernels::scalar::Scalar;
use crate::step::params::{Options, Weights};
use crate::step::{Backward, Cell, Deferred, Forward, Layout, StatePart, WeightGrads};
use ndarray::{s, Array2, ArrayView2};

/// A built IndRNN cell: `h' = act(x @ input_kernel + recurrent_kernel * h + bias)`.
#[derive(Debug)]
pub struct IndRnn<T: Scalar> {
    layout: Layout,
    activation: Activation,
    /// `input_kernel [I, H]`.
    w_x: Array2<T>,
    /// `recurrent_kernel [H]`.
    u: Vec<T>,
    /// `bias [H]`.
    bias: Vec<T>,
}

/// Builds the cell from its options (`activation`, default relu) and weights
/// (`input_kernel [I, H]`, `recurrent_kernel [H]`, `bias [H]`).
pub fn build<T: Scalar>(
    mut options: Options,
    mut weights: Weights<'_, T>,
) -> Result<Box<dyn Cell<T>>> {
    let activation = Activation::parse(&options.name("activation", "relu")?)?;
    options.finish("IndRNNCell")?;
    let w_x = weights.matrix("input_kernel")?;
    let u = weights.vector("recurrent_kernel")?;
    let bias = weights.vector("bias")?;
    weights.finish("IndRNNCell")?;
    let (input, h) = (w_x.nrows(), units_from("bias", bias.len(), 1)?);
    check_shape("input_kernel", w_x.shape(), &[input, h])?;
    check_shape("recurrent_kernel", u.shape(), &[h])?;
    let layout = Layout {
        input,
        state: vec![StatePart { name: "", width: h }],
        output: 0,
        gates: h, // x @ input_kernel
        keep_gates: false,
        aux: 0,
        d_gates: h, // dz = dh' * act'(z)
        d_aux: 0,
        scratch: 0,
        d_params: 2 * h, // d recurrent_kernel, d bias
        work_per_token: (input + 1) * h,
    };
    Ok(Box::new(IndRnn {
        layout,
        activation,
        w_x: w_x.to_owned(),
        u: u.to_vec(),
        bias: bias.to_vec(),
    }))
}

impl<T: Scalar> Cell<T> for IndRnn<T> {
    fn name(&self) -> &'static str {
        "IndRNNCell"
    }

    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn input_kernel(&self) -> ArrayView2<'_, T> {
        self.w_x.view()
    }

    fn forward_step(&self, step: Forward<'_, T>) {
        let h = self.bias.len();
        with_activation!(self.activation, |act| {
            let rows = step.next.chunks_exact_mut(h);
            for ((next, prev), xw) in rows
                .zip(step.prev.chunks_exact(h))
                .zip(step.gates.chunks_exact(h))
            {
                let weights = self.u.iter().zip(&self.bias);
                for (((n, &p), &xw), (&u, &b)) in next.iter_mut().zip(prev).zip(xw).zip(weights) {
                    *n = act.apply(xw + u * p + b);
                }
            }
        })
    }

    fn backward_step(&self, step: Backward<'_, T>) {
        let h = self.bias.len();
        let (d_u, d_bias) = step.d_params.split_at_mut(h);
        with_activation!(self.activation, |act| {
            let rows = step.d_state.chunks_exact_mut(h);
            for (((dh, dz), next), prev) in rows
                .zip(step.d_gates.chunks_exact_mut(h))
                .zip(step.next.chunks_exact(h))
                .zip(step.prev.chunks_exact(h))
            {
                let sums = d_u.iter_mut().zip(d_bias.iter_mut()).zip(&self.u);
                for ((((dh, dz), &n), &p), ((du, db), &u)) in
                    dh.iter_mut().zip(dz).zip(next).zip(prev).zip(sums)
                {
                    *dz = *dh * act.grad_from_output(n);
                    *du += *dz * p;
                    *db += *dz;
                    *dh = *dz * u; // the gradient of the state before the step
                }
            }
        })
    }

    fn deferred(&self, d: Deferred<'_, T>) -> WeightGrads<T> {
        let h = self.bias.len();
        let mut d_w_x = Array2::zeros(self.w_x.dim());
        par_gemm(false, d.x.t(), d.d_gates, d_w_x.view_mut());
        let d_u = d.d_params.slice(s![..h]).to_owned();
        let d_bias = d.d_params.slice(s![h..]).to_owned();
        WeightGrads {
            weights: vec![
                ("input_kernel".into(), d_w_x.into_dyn()),
                ("recurrent_kernel".into(), d_u.into_dyn()),
                ("bias".into(), d_bias.into_dyn()),
            ],
            inputs: par_product(d.d_gates, self.w_x.t()),
        }
    }
}
// ---- end of the example in docs/architecture.md ----

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sequence::{self, time_major_view};
    use ndarray::{Array1, Array3, ArrayD};

    fn rand(shape: &[usize], seed: u64) -> ArrayD<f64> {
        let mut s = seed;
        ArrayD::from_shape_fn(shape, |_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
    }

    struct Case {
        x: Array3<f64>,
        h0: Array2<f64>,
        w_x: Array2<f64>,
        u: Array1<f64>,
        bias: Array1<f64>,
        lengths: Vec<i64>,
    }

    fn case(batch: usize, time: usize, input: usize, units: usize, lengths: Vec<i64>) -> Case {
        let d2 = |a: ArrayD<f64>| a.into_dimensionality().unwrap();
        Case {
            x: rand(&[batch, time, input], 1)
                .into_dimensionality()
                .unwrap(),
            h0: d2(rand(&[batch, units], 2)),
            w_x: d2(rand(&[input, units], 3)) * 0.7,
            u: rand(&[units], 4).into_dimensionality().unwrap(),
            bias: rand(&[units], 5).into_dimensionality().unwrap() * 0.5,
            lengths,
        }
    }

    fn cell(c: &Case, act: &str) -> Box<dyn Cell<f64>> {
        let w = [
            ("input_kernel", c.w_x.view().into_dyn()),
            ("recurrent_kernel", c.u.view().into_dyn()),
            ("bias", c.bias.view().into_dyn()),
        ];
        let o = Options::default().with("activation", crate::step::params::Value::Str(act.into()));
        build(o, Weights::new(w.to_vec())).unwrap()
    }

    /// One row, one step, one unit at a time, with TF1 masking.
    fn naive(c: &Case, act: Activation) -> (Array3<f64>, Array2<f64>) {
        let (batch, time, input) = c.x.dim();
        let h = c.bias.len();
        let mut out = Array3::zeros((batch, time, h));
        let mut state = c.h0.clone();
        for b in 0..batch {
            for t in 0..c.lengths[b] as usize {
                let prev = state.row(b).to_owned();
                for j in 0..h {
                    let mut z = c.bias[j] + c.u[j] * prev[j];
                    for i in 0..input {
                        z += c.x[[b, t, i]] * c.w_x[[i, j]];
                    }
                    out[[b, t, j]] = act.apply(z);
                    state[[b, j]] = out[[b, t, j]];
                }
            }
        }
        (out, state)
    }

    #[test]
    fn the_driver_matches_the_naive_reference() {
        let lengths: Vec<i64> = (0..40).map(|i| (i * 3 % 7) as i64).collect();
        let c = case(40, 6, 3, 5, lengths.clone());
        for (name, act) in [("relu", Activation::Relu), ("tanh", Activation::Tanh)] {
            let (want_y, want_s) = naive(&c, act);
            let cell = cell(&c, name);
            let f = sequence::forward(
                cell.as_ref(),
                time_major_view(c.x.view(), false),
                &[c.h0.view()],
                Some(&lengths),
                false,
            )
            .unwrap();
            assert!((&f.outputs - &want_y).iter().all(|d| d.abs() < 1e-12));
            assert!((&f.state[0] - &want_s).iter().all(|d| d.abs() < 1e-12));
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let lengths = vec![4, 0, 2];
        let c = case(3, 4, 2, 3, lengths.clone());
        let dy: Array3<f64> = rand(&[3, 4, 3], 7).into_dimensionality().unwrap();
        let ds: Array2<f64> = rand(&[3, 3], 8).into_dimensionality().unwrap();
        let loss = |c: &Case| {
            let (y, s) = naive(c, Activation::Tanh);
            (&y * &dy).sum() + (&s * &ds).sum()
        };
        let cell = cell(&c, "tanh");
        let x = time_major_view(c.x.view(), false);
        let f = sequence::forward(cell.as_ref(), x, &[c.h0.view()], Some(&lengths), false).unwrap();
        let dyv = Some(time_major_view(dy.view(), false));
        let g = sequence::backward(cell.as_ref(), &f.cache, dyv, Some(&[ds.view()])).unwrap();
        let grad = |name: &str| g.weights.iter().find(|(n, _)| n == name).unwrap().1.clone();
        let eps = 1e-6;
        let check = |what: &str, analytic: f64, bump: &dyn Fn(&mut Case, f64)| {
            let (mut up, mut down) = (
                case(3, 4, 2, 3, lengths.clone()),
                case(3, 4, 2, 3, lengths.clone()),
            );
            bump(&mut up, eps);
            bump(&mut down, -eps);
            let fd = (loss(&up) - loss(&down)) / (2.0 * eps);
            assert!(
                (fd - analytic).abs() < 1e-7 * (1.0 + fd.abs()),
                "{what}: {fd} vs {analytic}"
            );
        };
        for (i, j) in [(0, 0), (1, 2)] {
            check("input_kernel", grad("input_kernel")[[i, j]], &|c, e| {
                c.w_x[[i, j]] += e
            });
        }
        for j in 0..3 {
            check(
                "recurrent_kernel",
                grad("recurrent_kernel")[[j]],
                &|c, e| c.u[j] += e,
            );
            check("bias", grad("bias")[[j]], &|c, e| c.bias[j] += e);
            check("h0", g.initial_state[0][[0, j]], &|c, e| c.h0[[0, j]] += e);
        }
        check("x", g.inputs[[2, 1, 1]], &|c, e| c.x[[2, 1, 1]] += e);
        assert_eq!(g.initial_state[0].row(1), ds.row(1));
    }
}
