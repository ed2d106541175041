//! `GRUCell`'s naive reference, both forms (see [`crate::cell::gru`]), and the
//! driver's tests against it.

use crate::cell::gru::GruWeights;
use crate::kernels::activation::Activation;
use crate::kernels::scalar::Scalar;
use ndarray::{s, Array1, Array2, Array3, ArrayView3};

/// `GRUCell` over `x [B, T, I]` (batch-major) with TF1 masking; the form is
/// the variant of `weights`. Returns `(outputs [B, T, H], final state [B, H])`.
pub fn gru_forward<T: Scalar>(
    x: ArrayView3<T>,
    h0: ndarray::ArrayView2<T>,
    weights: GruWeights<T>,
    lengths: &[usize],
    act: Activation,
) -> (Array3<T>, Array2<T>) {
    let (batch, time, input) = x.dim();
    let units = h0.ncols();
    let mut out = Array3::zeros((batch, time, units));
    let mut state = h0.to_owned();
    for b in 0..batch {
        for t in 0..lengths[b] {
            let xt = x.slice(s![b, t, ..]);
            let h = state.row(b).to_owned();
            // gates: σ([x, h] @ gates/kernel + gates/bias), r then u
            let (gk, gb) = match weights {
                GruWeights::ResetBefore {
                    gates_kernel,
                    gates_bias,
                    ..
                }
                | GruWeights::ResetAfter {
                    gates_kernel,
                    gates_bias,
                    ..
                } => (gates_kernel, gates_bias),
            };
            let mut gate = Array1::<T>::zeros(2 * units);
            for j in 0..2 * units {
                let mut z = gb[j];
                for i in 0..input {
                    z += xt[i] * gk[[i, j]];
                }
                for k in 0..units {
                    z += h[k] * gk[[input + k, j]];
                }
                gate[j] = z.sigmoid();
            }
            let r = gate.slice(s![..units]);
            let u = gate.slice(s![units..]);
            let mut c = Array1::<T>::zeros(units);
            match weights {
                GruWeights::ResetBefore {
                    candidate_kernel: ck,
                    candidate_bias: cb,
                    ..
                } => {
                    // c = act([x, r*h] @ candidate/kernel + candidate/bias)
                    for j in 0..units {
                        let mut z = cb[j];
                        for i in 0..input {
                            z += xt[i] * ck[[i, j]];
                        }
                        for k in 0..units {
                            z += r[k] * h[k] * ck[[input + k, j]];
                        }
                        c[j] = act.apply(z);
                    }
                }
                GruWeights::ResetAfter {
                    input_kernel: ik,
                    hidden_kernel: hk,
                    input_bias: ib,
                    hidden_bias: hb,
                    ..
                } => {
                    // c = act(x @ input_kernel + input_bias + r*(h @ hidden_kernel + hidden_bias))
                    for j in 0..units {
                        let mut zx = ib[j];
                        for i in 0..input {
                            zx += xt[i] * ik[[i, j]];
                        }
                        let mut zh = hb[j];
                        for k in 0..units {
                            zh += h[k] * hk[[k, j]];
                        }
                        c[j] = act.apply(zx + r[j] * zh);
                    }
                }
            }
            for j in 0..units {
                let hn = u[j] * h[j] + (T::one() - u[j]) * c[j];
                out[[b, t, j]] = hn;
                state[[b, j]] = hn;
            }
        }
    }
    (out, state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::gru::{ResetAfter, ResetBefore};
    use crate::error::Result;
    use crate::sequence::{self, time_major_view, Cache};
    use crate::step::Cell;
    use ndarray::{Array1, ArrayView2};

    // The driver on a GRU of either form, in the shape of the calls these
    // tests were written for.
    #[derive(Debug)]
    struct GruForward<T: Scalar> {
        outputs: Array3<T>,
        state: Array2<T>,
        cache: (Box<dyn Cell<T>>, Cache<T>),
    }

    /// Gradients of the weights, in the form of the forward pass.
    #[derive(Debug, Clone, PartialEq)]
    enum GruWeightGrads<T> {
        ResetBefore {
            gates_kernel: Array2<T>,
            gates_bias: Array1<T>,
            candidate_kernel: Array2<T>,
            candidate_bias: Array1<T>,
        },
        ResetAfter {
            gates_kernel: Array2<T>,
            gates_bias: Array1<T>,
            input_kernel: Array2<T>,
            hidden_kernel: Array2<T>,
            input_bias: Array1<T>,
            hidden_bias: Array1<T>,
        },
    }

    #[derive(Debug, Clone, PartialEq)]
    struct GruGrads<T> {
        inputs: Array3<T>,
        initial_state: Array2<T>,
        weights: GruWeightGrads<T>,
    }

    fn forward<T: Scalar>(
        x: ndarray::ArrayView3<T>,
        h0: ArrayView2<T>,
        weights: GruWeights<T>,
        lengths: Option<&[i64]>,
        act: Activation,
        time_major: bool,
    ) -> Result<GruForward<T>> {
        let cell: Box<dyn Cell<T>> = if weights.reset_after() {
            Box::new(ResetAfter::new(act, weights)?)
        } else {
            Box::new(ResetBefore::new(act, weights)?)
        };
        let out = sequence::forward(cell.as_ref(), x, &[h0], lengths, time_major)?;
        Ok(GruForward {
            outputs: out.outputs,
            state: out.state[0].clone(),
            cache: (cell, out.cache),
        })
    }

    /// The forward pass's cell is in the cache: `_weights` is not read.
    fn backward<T: Scalar>(
        cache: &(Box<dyn Cell<T>>, Cache<T>),
        _weights: GruWeights<T>,
        d_outputs: Option<ndarray::ArrayView3<T>>,
        d_state: Option<ArrayView2<T>>,
    ) -> Result<GruGrads<T>> {
        let ds = d_state.map(|d| vec![d]);
        let g = sequence::backward(cache.0.as_ref(), &cache.1, d_outputs, ds.as_deref())?;
        let w = |name: &str| g.weights.iter().find(|(n, _)| n == name).unwrap().1.clone();
        let m = |name: &str| w(name).into_dimensionality::<ndarray::Ix2>().unwrap();
        let v = |name: &str| w(name).into_dimensionality::<ndarray::Ix1>().unwrap();
        let weights = if g.weights.iter().any(|(n, _)| n == "candidate/kernel") {
            GruWeightGrads::ResetBefore {
                gates_kernel: m("gates/kernel"),
                gates_bias: v("gates/bias"),
                candidate_kernel: m("candidate/kernel"),
                candidate_bias: v("candidate/bias"),
            }
        } else {
            GruWeightGrads::ResetAfter {
                gates_kernel: m("gates/kernel"),
                gates_bias: v("gates/bias"),
                input_kernel: m("candidate/input_kernel"),
                hidden_kernel: m("candidate/hidden_kernel"),
                input_bias: v("candidate/input_bias"),
                hidden_bias: v("candidate/hidden_bias"),
            }
        };
        Ok(GruGrads {
            inputs: g.inputs,
            initial_state: g.initial_state[0].clone(),
            weights,
        })
    }

    const ACTIVATIONS: [Activation; 4] = [
        Activation::Tanh,
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Identity,
    ];

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

    fn rand1(n: usize, seed: u64) -> Array1<f64> {
        rand2((1, n), seed).row(0).to_owned()
    }

    /// Owned weights of either form. Reset before: `k1` = candidate/kernel,
    /// `b1` = candidate/bias (`k2`, `b2` empty). Reset after: `k1` =
    /// input_kernel, `k2` = hidden_kernel, `b1` = input_bias, `b2` = hidden_bias.
    #[derive(Clone)]
    struct Weights {
        reset_after: bool,
        gk: Array2<f64>,
        gb: Array1<f64>,
        k1: Array2<f64>,
        k2: Array2<f64>,
        b1: Array1<f64>,
        b2: Array1<f64>,
    }

    impl Weights {
        fn random(reset_after: bool, input: usize, units: usize, seed: u64) -> Weights {
            let (k1_rows, k2) = if reset_after {
                (input, rand2((units, units), seed + 3) * 0.8)
            } else {
                (input + units, Array2::zeros((0, 0)))
            };
            Weights {
                reset_after,
                gk: rand2((input + units, 2 * units), seed) * 0.8,
                gb: rand1(2 * units, seed + 1) * 0.5,
                k1: rand2((k1_rows, units), seed + 2) * 0.8,
                k2,
                b1: rand1(units, seed + 4) * 0.5,
                b2: if reset_after {
                    rand1(units, seed + 5) * 0.5
                } else {
                    Array1::zeros(0)
                },
            }
        }

        fn view(&self) -> GruWeights<'_, f64> {
            if self.reset_after {
                GruWeights::ResetAfter {
                    gates_kernel: self.gk.view(),
                    gates_bias: self.gb.view(),
                    input_kernel: self.k1.view(),
                    hidden_kernel: self.k2.view(),
                    input_bias: self.b1.view(),
                    hidden_bias: self.b2.view(),
                }
            } else {
                GruWeights::ResetBefore {
                    gates_kernel: self.gk.view(),
                    gates_bias: self.gb.view(),
                    candidate_kernel: self.k1.view(),
                    candidate_bias: self.b1.view(),
                }
            }
        }

        fn to_f32(&self) -> Weights32 {
            Weights32 {
                reset_after: self.reset_after,
                gk: self.gk.mapv(|v| v as f32),
                gb: self.gb.mapv(|v| v as f32),
                k1: self.k1.mapv(|v| v as f32),
                k2: self.k2.mapv(|v| v as f32),
                b1: self.b1.mapv(|v| v as f32),
                b2: self.b2.mapv(|v| v as f32),
            }
        }
    }

    struct Weights32 {
        reset_after: bool,
        gk: Array2<f32>,
        gb: Array1<f32>,
        k1: Array2<f32>,
        k2: Array2<f32>,
        b1: Array1<f32>,
        b2: Array1<f32>,
    }

    impl Weights32 {
        fn view(&self) -> GruWeights<'_, f32> {
            if self.reset_after {
                GruWeights::ResetAfter {
                    gates_kernel: self.gk.view(),
                    gates_bias: self.gb.view(),
                    input_kernel: self.k1.view(),
                    hidden_kernel: self.k2.view(),
                    input_bias: self.b1.view(),
                    hidden_bias: self.b2.view(),
                }
            } else {
                GruWeights::ResetBefore {
                    gates_kernel: self.gk.view(),
                    gates_bias: self.gb.view(),
                    candidate_kernel: self.k1.view(),
                    candidate_bias: self.b1.view(),
                }
            }
        }
    }

    /// `(gk, gb, k1, k2, b1, b2)`, like [`Weights`]; `k2`, `b2` only for reset after.
    type GradParts<'a> = (
        &'a Array2<f64>,
        &'a Array1<f64>,
        &'a Array2<f64>,
        Option<&'a Array2<f64>>,
        &'a Array1<f64>,
        Option<&'a Array1<f64>>,
    );

    /// The weight gradients as [`GradParts`].
    fn split_grads(g: &GruWeightGrads<f64>) -> GradParts<'_> {
        match g {
            GruWeightGrads::ResetBefore {
                gates_kernel,
                gates_bias,
                candidate_kernel,
                candidate_bias,
            } => (
                gates_kernel,
                gates_bias,
                candidate_kernel,
                None,
                candidate_bias,
                None,
            ),
            GruWeightGrads::ResetAfter {
                gates_kernel,
                gates_bias,
                input_kernel,
                hidden_kernel,
                input_bias,
                hidden_bias,
            } => (
                gates_kernel,
                gates_bias,
                input_kernel,
                Some(hidden_kernel),
                input_bias,
                Some(hidden_bias),
            ),
        }
    }

    #[derive(Clone)]
    struct Case {
        x: Array3<f64>,
        h0: Array2<f64>,
        w: Weights,
        lengths: Vec<i64>,
    }

    fn case(
        reset_after: bool,
        batch: usize,
        time: usize,
        input: usize,
        units: usize,
        lengths: Vec<i64>,
    ) -> Case {
        Case {
            x: rand3((batch, time, input), 1),
            h0: rand2((batch, units), 2),
            w: Weights::random(reset_after, input, units, 10),
            lengths,
        }
    }

    fn usize_lengths(l: &[i64]) -> Vec<usize> {
        l.iter().map(|&v| v as usize).collect()
    }

    fn naive(c: &Case, act: Activation) -> (Array3<f64>, Array2<f64>) {
        gru_forward(
            c.x.view(),
            c.h0.view(),
            c.w.view(),
            &usize_lengths(&c.lengths),
            act,
        )
    }

    fn max_abs_diff<D: ndarray::Dimension>(
        a: &ndarray::Array<f64, D>,
        b: &ndarray::Array<f64, D>,
    ) -> f64 {
        assert_eq!(a.shape(), b.shape());
        a.iter()
            .zip(b.iter())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn fast_forward_matches_naive_ragged_and_time_major() {
        // 70 rows → 2 groups; lengths include 0 and T
        let lengths: Vec<i64> = (0..70).map(|i| (i * 5 % 8) as i64).collect();
        for reset_after in [false, true] {
            let c = case(reset_after, 70, 7, 3, 6, lengths.clone());
            for act in ACTIVATIONS {
                let (want_y, want_s) = naive(&c, act);
                for time_major in [false, true] {
                    let xv = if time_major {
                        c.x.view().permuted_axes([1, 0, 2]).to_owned()
                    } else {
                        c.x.clone()
                    };
                    let got = forward(
                        time_major_view(xv.view(), time_major),
                        c.h0.view(),
                        c.w.view(),
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
                    let what = format!("reset_after={reset_after} {act:?} time_major={time_major}");
                    assert!(max_abs_diff(&y, &want_y) < 1e-12, "{what}");
                    assert!(max_abs_diff(&got.state, &want_s) < 1e-12, "{what}");
                    // rows of length 0 keep their initial state exactly
                    assert_eq!(got.state.row(0), c.h0.row(0));
                }
            }
        }
    }

    /// Every element of every input, weight and the initial state, against
    /// central differences of the naive forward pass.
    /// The `p`-th parameter of `analytic` below, as a flat slice.
    fn param_slice(c: &mut Case, p: usize) -> &mut [f64] {
        let slice = match p {
            0 => c.x.as_slice_mut(),
            1 => c.h0.as_slice_mut(),
            2 => c.w.gk.as_slice_mut(),
            3 => c.w.gb.as_slice_mut(),
            4 => c.w.k1.as_slice_mut(),
            5 => c.w.b1.as_slice_mut(),
            6 => c.w.k2.as_slice_mut(),
            _ => c.w.b2.as_slice_mut(),
        };
        slice.expect("standard layout")
    }

    #[test]
    fn gradients_match_finite_differences_everywhere() {
        let lengths = vec![3, 0, 5, 1, 5];
        let dy = rand3((5, 5, 4), 7);
        let ds = rand2((5, 4), 8);
        for reset_after in [false, true] {
            let c = case(reset_after, 5, 5, 3, 4, lengths.clone());
            for act in ACTIVATIONS {
                let fwd = forward(
                    time_major_view(c.x.view(), false),
                    c.h0.view(),
                    c.w.view(),
                    Some(&lengths),
                    act,
                    false,
                )
                .unwrap();
                let g = backward(
                    &fwd.cache,
                    c.w.view(),
                    Some(time_major_view(dy.view(), false)),
                    Some(ds.view()),
                )
                .unwrap();
                let (gk, gb, k1, k2, b1, b2) = split_grads(&g.weights);
                let mut analytic: Vec<(&str, Vec<f64>)> = vec![
                    ("inputs", g.inputs.iter().copied().collect()),
                    ("initial_state", g.initial_state.iter().copied().collect()),
                    ("gates/kernel", gk.iter().copied().collect()),
                    ("gates/bias", gb.iter().copied().collect()),
                    ("k1", k1.iter().copied().collect()),
                    ("b1", b1.iter().copied().collect()),
                ];
                assert_eq!(k2.is_some(), reset_after);
                if let (Some(k2), Some(b2)) = (k2, b2) {
                    analytic.push(("hidden_kernel", k2.iter().copied().collect()));
                    analytic.push(("hidden_bias", b2.iter().copied().collect()));
                }
                let loss = |cp: &Case| {
                    let (y, st) = naive(cp, act);
                    (&y * &dy).sum() + (&st * &ds).sum()
                };
                let eps = 1e-6;
                let mut cp = c.clone();
                for (p, (name, want)) in analytic.iter().enumerate() {
                    for (i, &an) in want.iter().enumerate() {
                        let saved = param_slice(&mut cp, p)[i];
                        param_slice(&mut cp, p)[i] = saved + eps;
                        let up = loss(&cp);
                        param_slice(&mut cp, p)[i] = saved - eps;
                        let down = loss(&cp);
                        param_slice(&mut cp, p)[i] = saved;
                        let fd = (up - down) / (2.0 * eps);
                        assert!(
                            (fd - an).abs() < 1e-7 * (1.0 + fd.abs()),
                            "reset_after={reset_after} {act:?} {name}[{i}]: fd {fd} vs {an}"
                        );
                    }
                }
                // padded positions get exactly zero input gradient
                assert!(g.inputs.slice(s![1, .., ..]).iter().all(|&v| v == 0.0));
                assert!(g.inputs.slice(s![0, 3.., ..]).iter().all(|&v| v == 0.0));
                // a zero-length row passes d_state straight to its initial state
                assert_eq!(g.initial_state.row(1), ds.row(1));
            }
        }
    }

    #[test]
    fn bitwise_identical_across_thread_counts() {
        // every parallel path, however small the problem (results never depend on it)
        crate::pool::set_parallel_work(Some(0));
        let lengths: Vec<i64> = (0..64).map(|i| 10 + (i * 7 % 31) as i64).collect();
        for reset_after in [false, true] {
            let c = case(reset_after, 64, 40, 24, 48, lengths.clone());
            let x = c.x.mapv(|v| v as f32);
            let h0 = c.h0.mapv(|v| v as f32);
            let w = c.w.to_f32();
            let dy = rand3((64, 40, 48), 9).mapv(|v| v as f32);
            let ds = rand2((64, 48), 11).mapv(|v| v as f32);
            let run = |threads: usize| {
                crate::pool::set_num_threads(threads).unwrap();
                let f = forward(
                    time_major_view(x.view(), false),
                    h0.view(),
                    w.view(),
                    Some(&lengths),
                    Activation::Tanh,
                    false,
                )
                .unwrap();
                let g = backward(
                    &f.cache,
                    w.view(),
                    Some(time_major_view(dy.view(), false)),
                    Some(ds.view()),
                )
                .unwrap();
                (f.outputs, f.state, g)
            };
            let one = run(1);
            let two = run(2);
            let three = run(3);
            assert!(one == two && one == three, "reset_after={reset_after}");
        }
    }

    #[test]
    fn small_batches_split_by_units_bitwise_as_one_thread() {
        // A batch of one group runs its steps split by units over the pool
        // (`sequence::segment::split_units`, `split_units_back`; for the
        // reset-before form two phases per forward step, three per backward
        // step); the split must change nothing.
        crate::pool::set_parallel_work(Some(0));
        for (batch, units, lengths) in [
            (5, 96, vec![0, 30, 1, 23, 30]),
            (1, 160, vec![29]),
            (3, 64, vec![30, 0, 17]),
        ] {
            for reset_after in [false, true] {
                let c = case(reset_after, batch, 30, 24, units, lengths.clone());
                let dy = rand3((batch, 30, units), 9);
                let ds = rand2((batch, units), 10);
                let run = |threads: usize| {
                    crate::pool::set_num_threads(threads).unwrap();
                    let f = forward(
                        time_major_view(c.x.view(), false),
                        c.h0.view(),
                        c.w.view(),
                        Some(&lengths),
                        Activation::Tanh,
                        false,
                    )
                    .unwrap();
                    let w32 = c.w.to_f32();
                    let f32 = forward(
                        time_major_view(c.x.mapv(|v| v as f32).view(), false),
                        c.h0.mapv(|v| v as f32).view(),
                        w32.view(),
                        Some(&lengths),
                        Activation::Tanh,
                        false,
                    )
                    .unwrap();
                    let g = backward(
                        &f.cache,
                        c.w.view(),
                        Some(time_major_view(dy.view(), false)),
                        Some(ds.view()),
                    )
                    .unwrap();
                    let g32 = backward(
                        &f32.cache,
                        w32.view(),
                        Some(time_major_view(dy.mapv(|v| v as f32).view(), false)),
                        None,
                    )
                    .unwrap();
                    let kept = (f.cache.1.gates.clone(), f.cache.1.aux.clone());
                    ((f.outputs, f.state, kept), (f32.outputs, f32.state), g, g32)
                };
                let one = run(1);
                for threads in [2, 3] {
                    let other = run(threads);
                    assert!(one == other, "{batch} {units} {reset_after} {threads}");
                }
            }
        }
        // the cases above do take the split path
        for reset_after in [false, true] {
            let c = case(reset_after, 1, 4, 3, 256, vec![]);
            let cell: Box<dyn Cell<f64>> = if reset_after {
                Box::new(ResetAfter::new(Activation::Tanh, c.w.view()).unwrap())
            } else {
                Box::new(ResetBefore::new(Activation::Tanh, c.w.view()).unwrap())
            };
            // both forms split forward and backward
            let splits = crate::cell::reference::steps::splits_in_two(cell.as_ref());
            assert_eq!(splits, [true, true], "{reset_after}");
        }
    }

    #[test]
    fn empty_shapes() {
        for reset_after in [false, true] {
            let c = case(reset_after, 3, 0, 2, 4, vec![]);
            let f = forward(
                time_major_view(c.x.view(), false),
                c.h0.view(),
                c.w.view(),
                None,
                Activation::Tanh,
                false,
            )
            .unwrap();
            assert_eq!(f.outputs.dim(), (3, 0, 4));
            assert_eq!(f.state, c.h0);
            let ds = rand2((3, 4), 5);
            let g = backward(&f.cache, c.w.view(), None, Some(ds.view())).unwrap();
            assert_eq!(g.initial_state, ds);
            let (gk, gb, ..) = split_grads(&g.weights);
            assert_eq!(gk, &Array2::<f64>::zeros((6, 8)));
            assert_eq!(gb, &Array1::<f64>::zeros(8));
            let c = case(reset_after, 0, 3, 2, 4, vec![]);
            let f = forward(
                time_major_view(c.x.view(), false),
                c.h0.view(),
                c.w.view(),
                None,
                Activation::Tanh,
                false,
            )
            .unwrap();
            assert_eq!(f.outputs.dim(), (0, 3, 4));
            let g = backward(&f.cache, c.w.view(), None, None).unwrap();
            assert_eq!(g.inputs.dim(), (0, 3, 2));
            // input size 0: only the recurrence
            let c = case(reset_after, 2, 3, 0, 4, vec![3, 1]);
            let f = forward(
                time_major_view(c.x.view(), false),
                c.h0.view(),
                c.w.view(),
                Some(&c.lengths),
                Activation::Tanh,
                false,
            )
            .unwrap();
            let (y, st) = naive(&c, Activation::Tanh);
            assert!(max_abs_diff(&f.outputs, &y) < 1e-12);
            assert!(max_abs_diff(&f.state, &st) < 1e-12);
        }
    }

    fn forward_err(c: &Case, w: GruWeights<f64>, h0: ArrayView2<f64>) -> String {
        forward(
            time_major_view(c.x.view(), false),
            h0,
            w,
            None,
            Activation::Tanh,
            false,
        )
        .unwrap_err()
        .to_string()
    }

    #[test]
    fn shape_errors_name_the_argument() {
        // I = 2, H = 4
        let tf1 = case(false, 2, 3, 2, 4, vec![3, 3]);
        let ra = case(true, 2, 3, 2, 4, vec![3, 3]);
        let bad_h0 = Array2::<f64>::zeros((3, 4));
        assert_eq!(
            forward_err(&tf1, tf1.w.view(), bad_h0.view()),
            "initial_state: expected shape [2, 4], got shape [3, 4]"
        );
        let mut w = tf1.w.clone();
        w.gk = Array2::zeros((6, 7));
        assert_eq!(
            forward_err(&tf1, w.view(), tf1.h0.view()),
            "gates/kernel: expected shape [I + 4, 8] (I >= 0, H = 4 from candidate/bias), got shape [6, 7]"
        );
        let mut w = tf1.w.clone();
        w.gb = Array1::zeros(4);
        assert!(forward_err(&tf1, w.view(), tf1.h0.view()).starts_with("gates/bias: expected"));
        let mut w = tf1.w.clone();
        w.k1 = Array2::zeros((5, 4));
        assert_eq!(
            forward_err(&tf1, w.view(), tf1.h0.view()),
            "candidate/kernel: expected shape [6, 4], got shape [5, 4]"
        );
        let mut w = ra.w.clone();
        w.k1 = Array2::zeros((3, 4));
        assert_eq!(
            forward_err(&ra, w.view(), ra.h0.view()),
            "candidate/input_kernel: expected shape [2, 4], got shape [3, 4]"
        );
        let mut w = ra.w.clone();
        w.k2 = Array2::zeros((4, 5));
        assert!(forward_err(&ra, w.view(), ra.h0.view())
            .starts_with("candidate/hidden_kernel: expected shape [4, 4]"));
        let mut w = ra.w.clone();
        w.b1 = Array1::zeros(5);
        assert!(forward_err(&ra, w.view(), ra.h0.view())
            .starts_with("candidate/input_bias: expected shape [4]"));
        let mut w = ra.w.clone();
        w.b2 = Array1::zeros(0);
        assert!(forward_err(&ra, w.view(), ra.h0.view())
            .starts_with("candidate/hidden_bias: expected at least 1 unit"));

        // backward: the cache holds the forward pass's cell (its form and
        // shapes), so only the gradients' shapes can be wrong
        let f = forward(
            time_major_view(tf1.x.view(), false),
            tf1.h0.view(),
            tf1.w.view(),
            None,
            Activation::Tanh,
            false,
        )
        .unwrap();
        let bad_dy = Array3::<f64>::zeros((2, 3, 5));
        let e = backward(
            &f.cache,
            tf1.w.view(),
            Some(time_major_view(bad_dy.view(), false)),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("d_outputs: expected shape [2, 3, 4]"), "{e}");
        let bad_ds = Array2::<f64>::zeros((2, 3));
        let e = backward(&f.cache, tf1.w.view(), None, Some(bad_ds.view()))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("d_state: expected shape [2, 4]"), "{e}");
    }
}
