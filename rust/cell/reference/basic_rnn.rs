//! `BasicRNNCell`'s naive reference and the driver's tests against it.

use crate::kernels::activation::Activation;
use crate::kernels::scalar::Scalar;
use ndarray::{s, Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayView3};

/// `BasicRNNCell` over `x [B, T, I]` (batch-major) with TF1 masking;
/// returns `(outputs [B, T, H], final state [B, H])`.
pub fn basic_rnn_forward<T: Scalar>(
    x: ArrayView3<T>,
    h0: ArrayView2<T>,
    kernel: ArrayView2<T>,
    bias: ArrayView1<T>,
    lengths: &[usize],
    act: Activation,
) -> (Array3<T>, Array2<T>) {
    let (batch, time, input) = x.dim();
    let units = bias.len();
    let mut out = Array3::zeros((batch, time, units));
    let mut state = h0.to_owned();
    for b in 0..batch {
        for t in 0..lengths[b] {
            let mut h = Array1::<T>::zeros(units);
            for j in 0..units {
                let mut z = bias[j];
                for i in 0..input {
                    z += x[[b, t, i]] * kernel[[i, j]];
                }
                for k in 0..units {
                    z += state[[b, k]] * kernel[[input + k, j]];
                }
                h[j] = act.apply(z);
            }
            out.slice_mut(s![b, t, ..]).assign(&h);
            state.row_mut(b).assign(&h);
        }
    }
    (out, state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::basic_rnn::BasicRnn;
    use crate::error::Result;
    use crate::sequence::{self, time_major_view, Cache};

    // The driver on a `BasicRnn`, in the shape of the calls these tests were
    // written for: the cell built from `kernel` and `bias`, the state one part.
    #[derive(Debug)]
    struct RnnForward<T: Scalar> {
        outputs: Array3<T>,
        state: Array2<T>,
        cache: (BasicRnn<T>, Cache<T>),
    }

    #[derive(Debug)]
    struct RnnGrads<T> {
        inputs: Array3<T>,
        initial_state: Array2<T>,
        kernel: Array2<T>,
        bias: Array1<T>,
    }

    fn fast_forward<T: Scalar>(
        x: ArrayView3<T>,
        h0: ArrayView2<T>,
        kernel: ArrayView2<T>,
        bias: ArrayView1<T>,
        lengths: Option<&[i64]>,
        act: Activation,
        time_major: bool,
    ) -> Result<RnnForward<T>> {
        let cell = BasicRnn::new(act, kernel, bias)?;
        let out = sequence::forward(&cell, x, &[h0], lengths, time_major)?;
        Ok(RnnForward {
            outputs: out.outputs,
            state: out.state[0].clone(),
            cache: (cell, out.cache),
        })
    }

    fn basic_rnn_backward<T: Scalar>(
        cache: &(BasicRnn<T>, Cache<T>),
        _kernel: ArrayView2<T>,
        d_outputs: Option<ArrayView3<T>>,
        d_state: Option<ArrayView2<T>>,
    ) -> Result<RnnGrads<T>> {
        let ds = d_state.map(|d| vec![d]);
        let g = sequence::backward(&cache.0, &cache.1, d_outputs, ds.as_deref())?;
        let w = |name: &str| g.weights.iter().find(|(n, _)| n == name).unwrap().1.clone();
        Ok(RnnGrads {
            inputs: g.inputs,
            initial_state: g.initial_state[0].clone(),
            kernel: w("kernel").into_dimensionality().unwrap(),
            bias: w("bias").into_dimensionality().unwrap(),
        })
    }

    fn rand3(d: (usize, usize, usize), seed: u64) -> Array3<f64> {
        let mut s = seed;
        Array3::from_shape_fn(d, |_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
    }

    fn rand2(d: (usize, usize), seed: u64) -> Array2<f64> {
        rand3((1, d.0, d.1), seed).index_axis_move(ndarray::Axis(0), 0)
    }

    struct Case {
        x: Array3<f64>,
        h0: Array2<f64>,
        kernel: Array2<f64>,
        bias: Array1<f64>,
        lengths: Vec<i64>,
    }

    fn case(batch: usize, time: usize, input: usize, units: usize, lengths: Vec<i64>) -> Case {
        Case {
            x: rand3((batch, time, input), 1),
            h0: rand2((batch, units), 2),
            kernel: rand2((input + units, units), 3) * 0.6,
            bias: rand2((1, units), 4).row(0).to_owned(),
            lengths,
        }
    }

    fn loss(c: &Case, act: Activation, dy: &Array3<f64>, ds: &Array2<f64>) -> f64 {
        let l: Vec<usize> = c.lengths.iter().map(|&v| v as usize).collect();
        let (y, st) = basic_rnn_forward(
            c.x.view(),
            c.h0.view(),
            c.kernel.view(),
            c.bias.view(),
            &l,
            act,
        );
        (&y * dy).sum() + (&st * ds).sum()
    }

    #[test]
    fn fast_forward_matches_naive_ragged_and_time_major() {
        // 70 rows → 2 groups; lengths include 0 and T
        let lengths: Vec<i64> = (0..70).map(|i| (i * 5 % 8) as i64).collect();
        let c = case(70, 7, 3, 6, lengths.clone());
        let l: Vec<usize> = lengths.iter().map(|&v| v as usize).collect();
        for act in [
            Activation::Tanh,
            Activation::Relu,
            Activation::Sigmoid,
            Activation::Identity,
        ] {
            let (want_y, want_s) = basic_rnn_forward(
                c.x.view(),
                c.h0.view(),
                c.kernel.view(),
                c.bias.view(),
                &l,
                act,
            );
            for time_major in [false, true] {
                let xv = if time_major {
                    c.x.view().permuted_axes([1, 0, 2]).to_owned()
                } else {
                    c.x.clone()
                };
                let got = fast_forward(
                    time_major_view(xv.view(), time_major),
                    c.h0.view(),
                    c.kernel.view(),
                    c.bias.view(),
                    Some(&lengths),
                    act,
                    time_major,
                )
                .unwrap();
                let y = if time_major {
                    got.outputs.view().permuted_axes([1, 0, 2]).to_owned()
                } else {
                    got.outputs.clone()
                };
                assert!(
                    (&y - &want_y).iter().all(|d| d.abs() < 1e-12),
                    "{act:?} {time_major}"
                );
                assert!((&got.state - &want_s).iter().all(|d| d.abs() < 1e-12));
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let lengths = vec![3, 0, 5, 1, 5];
        let c = case(5, 5, 3, 4, lengths.clone());
        let dy = rand3((5, 5, 4), 7);
        let ds = rand2((5, 4), 8);
        for act in [Activation::Tanh, Activation::Sigmoid, Activation::Identity] {
            let fwd = fast_forward(
                time_major_view(c.x.view(), false),
                c.h0.view(),
                c.kernel.view(),
                c.bias.view(),
                Some(&lengths),
                act,
                false,
            )
            .unwrap();
            let g = basic_rnn_backward(
                &fwd.cache,
                c.kernel.view(),
                Some(time_major_view(dy.view(), false)),
                Some(ds.view()),
            )
            .unwrap();
            let eps = 1e-6;
            let check = |name: &str, analytic: f64, perturb: &dyn Fn(&mut Case, f64)| {
                let mut cp = Case {
                    x: c.x.clone(),
                    h0: c.h0.clone(),
                    kernel: c.kernel.clone(),
                    bias: c.bias.clone(),
                    lengths: c.lengths.clone(),
                };
                perturb(&mut cp, eps);
                let up = loss(&cp, act, &dy, &ds);
                perturb(&mut cp, -2.0 * eps);
                let down = loss(&cp, act, &dy, &ds);
                let fd = (up - down) / (2.0 * eps);
                assert!(
                    (fd - analytic).abs() < 1e-7 * (1.0 + fd.abs()),
                    "{act:?} {name}: fd {fd} vs {analytic}"
                );
            };
            for &(b, t, i) in &[(0, 1, 2), (2, 4, 0), (1, 0, 1), (3, 0, 0), (0, 4, 1)] {
                check("x", g.inputs[[b, t, i]], &|cp, e| cp.x[[b, t, i]] += e);
            }
            for &(b, j) in &[(0, 0), (1, 3), (3, 2), (4, 1)] {
                check("h0", g.initial_state[[b, j]], &|cp, e| cp.h0[[b, j]] += e);
            }
            for &(r, j) in &[(0, 0), (2, 3), (3, 1), (6, 2)] {
                check("kernel", g.kernel[[r, j]], &|cp, e| cp.kernel[[r, j]] += e);
            }
            for j in 0..4 {
                check("bias", g.bias[j], &|cp, e| cp.bias[j] += e);
            }
            // padded positions get exactly zero input gradient
            assert!(g.inputs.slice(s![1, .., ..]).iter().all(|&v| v == 0.0));
            assert!(g.inputs.slice(s![0, 3.., ..]).iter().all(|&v| v == 0.0));
            // a zero-length row passes d_state straight to its initial state
            assert_eq!(g.initial_state.row(1), ds.row(1));
        }
    }

    #[test]
    fn small_batches_split_by_units_bitwise_as_one_thread() {
        // A batch of one group runs its steps split by units over the pool
        // (`sequence::segment::split_units`); the split must change nothing.
        crate::pool::set_parallel_work(Some(0));
        for (batch, units, lengths) in [(5, 128, vec![0, 30, 1, 23, 30]), (1, 256, vec![29])] {
            let c = case(batch, 30, 24, units, lengths.clone());
            let dy = rand3((batch, 30, units), 9);
            let ds = rand2((batch, units), 10);
            let run = |threads: usize| {
                crate::pool::set_num_threads(threads).unwrap();
                let f = fast_forward(
                    time_major_view(c.x.view(), false),
                    c.h0.view(),
                    c.kernel.view(),
                    c.bias.view(),
                    Some(&lengths),
                    Activation::Tanh,
                    false,
                )
                .unwrap();
                let f32 = fast_forward(
                    time_major_view(c.x.mapv(|v| v as f32).view(), false),
                    c.h0.mapv(|v| v as f32).view(),
                    c.kernel.mapv(|v| v as f32).view(),
                    c.bias.mapv(|v| v as f32).view(),
                    Some(&lengths),
                    Activation::Relu,
                    false,
                )
                .unwrap();
                let g = basic_rnn_backward(
                    &f.cache,
                    c.kernel.view(),
                    Some(time_major_view(dy.view(), false)),
                    Some(ds.view()),
                )
                .unwrap();
                let g32 = basic_rnn_backward(
                    &f32.cache,
                    c.kernel.mapv(|v| v as f32).view(),
                    Some(time_major_view(dy.mapv(|v| v as f32).view(), false)),
                    None,
                )
                .unwrap();
                (
                    (f.outputs, f.state, f32.outputs, f32.state),
                    (g.inputs, g.initial_state, g.kernel, g.bias),
                    (g32.inputs, g32.initial_state, g32.kernel, g32.bias),
                )
            };
            let one = run(1);
            for threads in [2, 3] {
                assert!(one == run(threads), "{batch} {units} {threads}");
            }
        }
        // the cases above do take the split path
        let c = case(1, 4, 3, 512, vec![]);
        let cell = BasicRnn::new(Activation::Tanh, c.kernel.view(), c.bias.view()).unwrap();
        let splits = crate::cell::reference::steps::splits_in_two(&cell);
        assert_eq!(splits, [true; 2]);
    }

    #[test]
    fn bitwise_identical_across_thread_counts() {
        let lengths: Vec<i64> = (0..64).map(|i| 10 + (i * 7 % 31) as i64).collect();
        let c = case(64, 40, 24, 48, lengths.clone());
        let c32 = (
            c.x.mapv(|v| v as f32),
            c.h0.mapv(|v| v as f32),
            c.kernel.mapv(|v| v as f32),
            c.bias.mapv(|v| v as f32),
        );
        let dy = rand3((64, 40, 48), 9).mapv(|v| v as f32);
        let run = |threads: usize| {
            crate::pool::set_num_threads(threads).unwrap();
            let f = fast_forward(
                time_major_view(c32.0.view(), false),
                c32.1.view(),
                c32.2.view(),
                c32.3.view(),
                Some(&lengths),
                Activation::Tanh,
                false,
            )
            .unwrap();
            let g = basic_rnn_backward(
                &f.cache,
                c32.2.view(),
                Some(time_major_view(dy.view(), false)),
                None,
            )
            .unwrap();
            (
                f.outputs,
                f.state,
                g.inputs,
                g.initial_state,
                g.kernel,
                g.bias,
            )
        };
        let one = run(1);
        let two = run(2);
        let three = run(3);
        assert!(one == two && one == three);
    }

    #[test]
    fn empty_shapes() {
        let c = case(3, 0, 2, 4, vec![0, 0, 0]);
        let f = fast_forward(
            time_major_view(c.x.view(), false),
            c.h0.view(),
            c.kernel.view(),
            c.bias.view(),
            None,
            Activation::Tanh,
            false,
        )
        .unwrap();
        assert_eq!(f.outputs.dim(), (3, 0, 4));
        assert_eq!(f.state, c.h0);
        let g = basic_rnn_backward(&f.cache, c.kernel.view(), None, None).unwrap();
        assert_eq!(g.kernel, Array2::<f64>::zeros((6, 4)));
        let c = case(0, 3, 2, 4, vec![]);
        let f = fast_forward(
            time_major_view(c.x.view(), false),
            c.h0.view(),
            c.kernel.view(),
            c.bias.view(),
            None,
            Activation::Tanh,
            false,
        )
        .unwrap();
        assert_eq!(f.outputs.dim(), (0, 3, 4));
    }

    #[test]
    fn shape_errors_name_the_argument() {
        let c = case(2, 3, 2, 4, vec![3, 3]);
        let bad_h0 = Array2::<f64>::zeros((3, 4));
        let e = fast_forward(
            time_major_view(c.x.view(), false),
            bad_h0.view(),
            c.kernel.view(),
            c.bias.view(),
            None,
            Activation::Tanh,
            false,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "initial_state: expected shape [2, 4], got shape [3, 4]"
        );
        // a kernel for inputs of size 1, run on inputs of size 2
        let bad_k = Array2::<f64>::zeros((5, 4));
        let e = fast_forward(
            time_major_view(c.x.view(), false),
            c.h0.view(),
            bad_k.view(),
            c.bias.view(),
            None,
            Activation::Tanh,
            false,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "inputs: expected shape [B, T, 1] (I = 1, the cell's input size), got shape [2, 3, 2]"
        );
        let bad_k = Array2::<f64>::zeros((3, 4));
        let e = BasicRnn::new(Activation::Tanh, bad_k.view(), c.bias.view()).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("kernel: expected shape [I + 4, 4]"));
    }
}
