//! The LSTM's naive reference (one row, one step, one unit at a time,
//! straight from the equations) and the driver's tests against it: every
//! option combination, finite differences in f64, thread-count determinism.

use crate::cell::lstm::{Lstm, LstmOptions, LstmWeights, Peepholes};
use crate::error::Result;
use crate::kernels::activation::Activation;
use crate::kernels::scalar::Scalar;
use crate::sequence::{self, time_major_view, Cache};
use ndarray::{s, Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayView3, Axis};

// --------------------------------------------------------------------------
// The driver on an `Lstm`, in the shape of the calls these tests were
// written for (`m` is the output state `h`)
// --------------------------------------------------------------------------

#[derive(Debug)]
struct LstmForward<T: Scalar> {
    outputs: Array3<T>,
    c: Array2<T>,
    m: Array2<T>,
    cache: (Lstm<T>, Cache<T>),
}

/// Peephole gradients, each `[H]`.
#[derive(Debug, Clone, PartialEq)]
struct PeepholeGrads<T> {
    w_i_diag: Array1<T>,
    w_f_diag: Array1<T>,
    w_o_diag: Array1<T>,
}

#[derive(Debug)]
struct LstmGrads<T> {
    inputs: Array3<T>,
    initial_c: Array2<T>,
    initial_m: Array2<T>,
    kernel: Array2<T>,
    bias: Array1<T>,
    peepholes: Option<PeepholeGrads<T>>,
    projection: Option<Array2<T>>,
}

fn forward<T: Scalar>(
    x: ArrayView3<T>,
    c0: ArrayView2<T>,
    m0: ArrayView2<T>,
    weights: &LstmWeights<T>,
    lengths: Option<&[i64]>,
    options: LstmOptions<T>,
    time_major: bool,
) -> Result<LstmForward<T>> {
    let cell = Lstm::new(weights, options)?;
    let out = sequence::forward(&cell, x, &[c0, m0], lengths, time_major)?;
    Ok(LstmForward {
        outputs: out.outputs,
        c: out.state[0].clone(),
        m: out.state[1].clone(),
        cache: (cell, out.cache),
    })
}

/// The forward pass's cell is in the cache: `_weights` is not read.
fn backward<T: Scalar>(
    cache: &(Lstm<T>, Cache<T>),
    _weights: &LstmWeights<T>,
    d_outputs: Option<ArrayView3<T>>,
    d_c: Option<ArrayView2<T>>,
    d_m: Option<ArrayView2<T>>,
) -> Result<LstmGrads<T>> {
    let (cell, cache) = cache;
    let zeros_c;
    let zeros_m;
    let ds = match (d_c, d_m) {
        (None, None) => None,
        (c, m) => {
            let batch = cache.plan.batch;
            let dims = cell.dims();
            zeros_c = Array2::zeros((batch, dims.units));
            zeros_m = Array2::zeros((batch, dims.output));
            Some(vec![
                c.unwrap_or(zeros_c.view()),
                m.unwrap_or(zeros_m.view()),
            ])
        }
    };
    let g = sequence::backward(cell, cache, d_outputs, ds.as_deref())?;
    let w = |name: &str| {
        g.weights
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a.clone())
    };
    let m = |name: &str| w(name).map(|a| a.into_dimensionality::<ndarray::Ix2>().unwrap());
    let v = |name: &str| w(name).map(|a| a.into_dimensionality::<ndarray::Ix1>().unwrap());
    Ok(LstmGrads {
        inputs: g.inputs,
        initial_c: g.initial_state[0].clone(),
        initial_m: g.initial_state[1].clone(),
        kernel: m("kernel").unwrap(),
        bias: v("bias").unwrap(),
        peepholes: v("w_i_diag").map(|w_i_diag| PeepholeGrads {
            w_i_diag,
            w_f_diag: v("w_f_diag").unwrap(),
            w_o_diag: v("w_o_diag").unwrap(),
        }),
        projection: m("projection/kernel"),
    })
}

// --------------------------------------------------------------------------
// Naive reference
// --------------------------------------------------------------------------

/// Owned weights of a test problem (f64).
#[derive(Debug, Clone)]
struct Weights {
    kernel: Array2<f64>,
    bias: Array1<f64>,
    peepholes: Option<[Array1<f64>; 3]>,
    projection: Option<Array2<f64>>,
}

impl Weights {
    fn view(&self) -> LstmWeights<'_, f64> {
        LstmWeights {
            kernel: self.kernel.view(),
            bias: self.bias.view(),
            peepholes: self.peepholes.as_ref().map(|[i, f, o]| Peepholes {
                w_i_diag: i.view(),
                w_f_diag: f.view(),
                w_o_diag: o.view(),
            }),
            projection: self.projection.as_ref().map(|p| p.view()),
        }
    }

    fn cast32(&self) -> Weights32 {
        Weights32 {
            kernel: self.kernel.mapv(|v| v as f32),
            bias: self.bias.mapv(|v| v as f32),
            peepholes: self
                .peepholes
                .as_ref()
                .map(|ws| ws.clone().map(|w| w.mapv(|v| v as f32))),
            projection: self.projection.as_ref().map(|p| p.mapv(|v| v as f32)),
        }
    }
}

struct Weights32 {
    kernel: Array2<f32>,
    bias: Array1<f32>,
    peepholes: Option<[Array1<f32>; 3]>,
    projection: Option<Array2<f32>>,
}

impl Weights32 {
    fn view(&self) -> LstmWeights<'_, f32> {
        LstmWeights {
            kernel: self.kernel.view(),
            bias: self.bias.view(),
            peepholes: self.peepholes.as_ref().map(|[i, f, o]| Peepholes {
                w_i_diag: i.view(),
                w_f_diag: f.view(),
                w_o_diag: o.view(),
            }),
            projection: self.projection.as_ref().map(|p| p.view()),
        }
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// What the naive forward pass returns.
struct Naive {
    /// `[B, T, P]`, zero past each length.
    outputs: Array3<f64>,
    c: Array2<f64>,
    m: Array2<f64>,
    /// Smallest distance of any kink argument (relu at 0, clips at ±limit)
    /// to its kink: finite differences are valid when it is well above eps.
    margin: f64,
}

/// The LSTM over `x [B, T, I]` (batch-major) with TF1 masking.
fn naive_forward(
    x: &Array3<f64>,
    c0: &Array2<f64>,
    m0: &Array2<f64>,
    w: &Weights,
    lengths: &[usize],
    o: &LstmOptions<f64>,
) -> Naive {
    let (batch, time, input) = x.dim();
    let h = w.bias.len() / 4;
    let p = w.projection.as_ref().map_or(h, |p| p.ncols());
    let act = |v: f64| o.activation.apply(v);
    let mut margin = f64::INFINITY;
    let mut kink = |v: f64, at: f64| margin = margin.min((v - at).abs());
    let mut outputs = Array3::zeros((batch, time, p));
    let mut c = c0.clone();
    let mut m = m0.clone();
    for b in 0..batch {
        for t in 0..lengths[b] {
            // z = [x, m_prev] @ kernel + bias
            let mut z = w.bias.clone();
            for (col, zc) in z.iter_mut().enumerate() {
                for i in 0..input {
                    *zc += x[[b, t, i]] * w.kernel[[i, col]];
                }
                for k in 0..p {
                    *zc += m[[b, k]] * w.kernel[[input + k, col]];
                }
            }
            let mut c_new = Array1::<f64>::zeros(h);
            let mut m_raw = Array1::<f64>::zeros(h);
            for u in 0..h {
                let c_prev = c[[b, u]];
                let (mut i, j, mut f, mut og) = (z[u], z[h + u], z[2 * h + u], z[3 * h + u]);
                if let Some([wi, wf, _]) = &w.peepholes {
                    i += wi[u] * c_prev;
                    f += wf[u] * c_prev;
                }
                if o.activation == Activation::Relu {
                    kink(j, 0.0);
                }
                let mut cu = sigmoid(f + o.forget_bias) * c_prev + sigmoid(i) * act(j);
                if let Some(limit) = o.cell_clip {
                    kink(cu, limit);
                    kink(cu, -limit);
                    cu = cu.clamp(-limit, limit);
                }
                if let Some([_, _, wo]) = &w.peepholes {
                    og += wo[u] * cu;
                }
                if o.activation == Activation::Relu {
                    kink(cu, 0.0);
                }
                c_new[u] = cu;
                m_raw[u] = sigmoid(og) * act(cu);
            }
            let m_new = match &w.projection {
                None => m_raw,
                Some(proj) => {
                    let mut mp = Array1::<f64>::zeros(p);
                    for k in 0..p {
                        for u in 0..h {
                            mp[k] += m_raw[u] * proj[[u, k]];
                        }
                        if let Some(limit) = o.proj_clip {
                            kink(mp[k], limit);
                            kink(mp[k], -limit);
                            mp[k] = mp[k].clamp(-limit, limit);
                        }
                    }
                    mp
                }
            };
            outputs.slice_mut(s![b, t, ..]).assign(&m_new);
            c.row_mut(b).assign(&c_new);
            m.row_mut(b).assign(&m_new);
        }
    }
    Naive {
        outputs,
        c,
        m,
        margin,
    }
}

// --------------------------------------------------------------------------
// Problems
// --------------------------------------------------------------------------

fn rand3(d: (usize, usize, usize), seed: u64) -> Array3<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    Array3::from_shape_fn(d, |_| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    })
}

fn rand2(d: (usize, usize), seed: u64) -> Array2<f64> {
    rand3((1, d.0, d.1), seed).index_axis_move(Axis(0), 0)
}

fn rand1(n: usize, seed: u64) -> Array1<f64> {
    rand2((1, n), seed).index_axis_move(Axis(0), 0)
}

/// Which optional parts a problem has.
#[derive(Debug, Clone, Copy)]
struct Flags {
    peepholes: bool,
    cell_clip: bool,
    projection: bool,
    proj_clip: bool,
}

fn all_flags() -> Vec<Flags> {
    let mut out = vec![];
    for bits in 0..16u32 {
        out.push(Flags {
            peepholes: bits & 1 != 0,
            cell_clip: bits & 2 != 0,
            projection: bits & 4 != 0,
            proj_clip: bits & 8 != 0,
        });
    }
    out
}

#[derive(Debug, Clone)]
struct Case {
    x: Array3<f64>,
    c0: Array2<f64>,
    m0: Array2<f64>,
    w: Weights,
    lengths: Vec<i64>,
    options: LstmOptions<f64>,
}

impl Case {
    fn lengths(&self) -> Vec<usize> {
        self.lengths.iter().map(|&v| v as usize).collect()
    }

    fn naive(&self) -> Naive {
        naive_forward(
            &self.x,
            &self.c0,
            &self.m0,
            &self.w,
            &self.lengths(),
            &self.options,
        )
    }

    fn fast(&self, time_major: bool) -> LstmForward<f64> {
        let xv = if time_major {
            self.x.view().permuted_axes([1, 0, 2]).to_owned()
        } else {
            self.x.clone()
        };
        forward(
            time_major_view(xv.view(), time_major),
            self.c0.view(),
            self.m0.view(),
            &self.w.view(),
            Some(&self.lengths),
            self.options,
            time_major,
        )
        .unwrap()
    }
}

/// A random problem; `units` H, projection width `proj` when projecting.
#[allow(clippy::too_many_arguments)]
fn case(
    batch: usize,
    time: usize,
    input: usize,
    units: usize,
    proj: usize,
    flags: Flags,
    lengths: Vec<i64>,
    seed: u64,
) -> Case {
    let p = if flags.projection { proj } else { units };
    let options = LstmOptions {
        forget_bias: 0.7,
        activation: Activation::Tanh,
        // Small enough that some c and m are clipped.
        cell_clip: flags.cell_clip.then_some(0.3),
        proj_clip: flags.proj_clip.then_some(0.15),
    };
    Case {
        x: rand3((batch, time, input), seed),
        c0: rand2((batch, units), seed + 1) * 0.8,
        m0: rand2((batch, p), seed + 2) * 0.8,
        w: Weights {
            kernel: rand2((input + p, 4 * units), seed + 3) * 0.9,
            bias: rand1(4 * units, seed + 4) * 0.5,
            peepholes: flags.peepholes.then(|| {
                [
                    rand1(units, seed + 5),
                    rand1(units, seed + 6),
                    rand1(units, seed + 7),
                ]
            }),
            projection: flags
                .projection
                .then(|| rand2((units, proj), seed + 8) * 0.8),
        },
        lengths,
        options,
    }
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

const ACTIVATIONS: [Activation; 4] = [
    Activation::Tanh,
    Activation::Relu,
    Activation::Sigmoid,
    Activation::Identity,
];

// --------------------------------------------------------------------------
// Fast path vs naive, every option combination
// --------------------------------------------------------------------------

#[test]
fn fast_forward_matches_naive_for_every_option() {
    // 70 rows → 2 groups; lengths include 0 and T.
    let lengths: Vec<i64> = (0..70).map(|i| (i * 5 % 8) as i64).collect();
    for (n, flags) in all_flags().into_iter().enumerate() {
        let mut c = case(70, 7, 3, 5, 3, flags, lengths.clone(), 10 + n as u64);
        for act in ACTIVATIONS {
            c.options.activation = act;
            let want = c.naive();
            for time_major in [false, true] {
                let got = c.fast(time_major);
                let y = if time_major {
                    got.outputs.view().permuted_axes([1, 0, 2]).to_owned()
                } else {
                    got.outputs.clone()
                };
                let what = format!("{flags:?} {act:?} time_major={time_major}");
                assert!(max_abs_diff(&y, &want.outputs) < 1e-12, "outputs {what}");
                assert!(max_abs_diff(&got.c, &want.c) < 1e-12, "c {what}");
                assert!(max_abs_diff(&got.m, &want.m) < 1e-12, "m {what}");
                // padded outputs are exactly zero
                for (b, &len) in lengths.iter().enumerate() {
                    for t in len as usize..7 {
                        assert!(y.slice(s![b, t, ..]).iter().all(|&v| v == 0.0));
                    }
                }
            }
        }
        if flags.cell_clip {
            let clipped = c.naive().c.iter().filter(|v| v.abs() == 0.3).count();
            assert!(clipped > 0, "{flags:?}: the cell clip is never active");
        }
        if flags.projection && flags.proj_clip {
            let clipped = c.naive().m.iter().filter(|v| v.abs() == 0.15).count();
            assert!(
                clipped > 0,
                "{flags:?}: the projection clip is never active"
            );
        }
    }
}

#[test]
fn f32_matches_naive() {
    let lengths: Vec<i64> = vec![6, 0, 3, 6, 1];
    for flags in all_flags() {
        let c = case(5, 6, 4, 6, 4, flags, lengths.clone(), 3);
        let want = c.naive();
        let w32 = c.w.cast32();
        let x32 = c.x.mapv(|v| v as f32);
        let got = forward(
            time_major_view(x32.view(), false),
            c.c0.mapv(|v| v as f32).view(),
            c.m0.mapv(|v| v as f32).view(),
            &w32.view(),
            Some(&lengths),
            LstmOptions {
                forget_bias: 0.7,
                activation: Activation::Tanh,
                cell_clip: c.options.cell_clip.map(|v| v as f32),
                proj_clip: c.options.proj_clip.map(|v| v as f32),
            },
            false,
        )
        .unwrap();
        let y = got.outputs.mapv(|v| v as f64);
        assert!(max_abs_diff(&y, &want.outputs) < 2e-5, "{flags:?}");
        assert!(max_abs_diff(&got.c.mapv(|v| v as f64), &want.c) < 2e-5);
    }
}

// --------------------------------------------------------------------------
// Finite differences (f64) of every weight, input and initial-state part
// --------------------------------------------------------------------------

fn loss(c: &Case, dy: &Array3<f64>, dc: &Array2<f64>, dm: &Array2<f64>) -> f64 {
    let n = c.naive();
    (&n.outputs * dy).sum() + (&n.c * dc).sum() + (&n.m * dm).sum()
}

/// Central differences of `loss` w.r.t. every element `get` selects.
fn fd_check(
    name: &str,
    c: &Case,
    analytic: ArrayView1<f64>,
    get: &dyn Fn(&mut Case) -> &mut [f64],
    upstream: (&Array3<f64>, &Array2<f64>, &Array2<f64>),
) {
    let eps = 1e-6;
    let mut cp = c.clone();
    let n = get(&mut cp).len();
    assert_eq!(n, analytic.len(), "{name}");
    for k in 0..n {
        let saved = get(&mut cp)[k];
        get(&mut cp)[k] = saved + eps;
        let up = loss(&cp, upstream.0, upstream.1, upstream.2);
        get(&mut cp)[k] = saved - eps;
        let down = loss(&cp, upstream.0, upstream.1, upstream.2);
        get(&mut cp)[k] = saved;
        let fd = (up - down) / (2.0 * eps);
        let an = analytic[k];
        assert!(
            (fd - an).abs() < 1e-7 * (1.0 + fd.abs()),
            "{name}[{k}]: fd {fd} vs analytic {an}"
        );
    }
}

fn flat<D: ndarray::Dimension>(a: &ndarray::Array<f64, D>) -> Array1<f64> {
    a.iter().copied().collect()
}

#[test]
fn gradients_match_finite_differences_for_every_option() {
    let lengths = vec![3, 0, 4, 1, 4];
    for (n, flags) in all_flags().into_iter().enumerate() {
        for act in [
            Activation::Tanh,
            Activation::Sigmoid,
            Activation::Identity,
            Activation::Relu,
        ] {
            let mut c = case(5, 4, 3, 3, 2, flags, lengths.clone(), 100 + n as u64);
            c.options.activation = act;
            let margin = c.naive().margin;
            assert!(
                margin > 1e-4,
                "{flags:?} {act:?}: a kink at {margin}, pick another seed"
            );
            let p = c.m0.ncols();
            let dy = rand3((5, 4, p), 7);
            let dc = rand2((5, 3), 8);
            let dm = rand2((5, p), 9);
            for time_major in [false, true] {
                let fwd = c.fast(time_major);
                let dyv = if time_major {
                    dy.view().permuted_axes([1, 0, 2]).to_owned()
                } else {
                    dy.clone()
                };
                let g = backward(
                    &fwd.cache,
                    &c.w.view(),
                    Some(time_major_view(dyv.view(), time_major)),
                    Some(dc.view()),
                    Some(dm.view()),
                )
                .unwrap();
                let d_x = if time_major {
                    g.inputs.view().permuted_axes([1, 0, 2]).to_owned()
                } else {
                    g.inputs.clone()
                };
                let up = (&dy, &dc, &dm);
                let tag = |w: &str| format!("{flags:?} {act:?} tm={time_major} {w}");
                fd_check(
                    &tag("x"),
                    &c,
                    flat(&d_x).view(),
                    &|c| c.x.as_slice_mut().unwrap(),
                    up,
                );
                fd_check(
                    &tag("c0"),
                    &c,
                    flat(&g.initial_c).view(),
                    &|c| c.c0.as_slice_mut().unwrap(),
                    up,
                );
                fd_check(
                    &tag("m0"),
                    &c,
                    flat(&g.initial_m).view(),
                    &|c| c.m0.as_slice_mut().unwrap(),
                    up,
                );
                fd_check(
                    &tag("kernel"),
                    &c,
                    flat(&g.kernel).view(),
                    &|c| c.w.kernel.as_slice_mut().unwrap(),
                    up,
                );
                fd_check(
                    &tag("bias"),
                    &c,
                    g.bias.view(),
                    &|c| c.w.bias.as_slice_mut().unwrap(),
                    up,
                );
                match &g.peepholes {
                    Some(pg) => {
                        for (k, (name, d)) in [
                            ("w_i_diag", &pg.w_i_diag),
                            ("w_f_diag", &pg.w_f_diag),
                            ("w_o_diag", &pg.w_o_diag),
                        ]
                        .into_iter()
                        .enumerate()
                        {
                            fd_check(
                                &tag(name),
                                &c,
                                d.view(),
                                &move |c| {
                                    c.w.peepholes.as_mut().unwrap()[k].as_slice_mut().unwrap()
                                },
                                up,
                            );
                        }
                    }
                    None => assert!(!flags.peepholes),
                }
                match &g.projection {
                    Some(dp) => fd_check(
                        &tag("projection"),
                        &c,
                        flat(dp).view(),
                        &|c| c.w.projection.as_mut().unwrap().as_slice_mut().unwrap(),
                        up,
                    ),
                    None => assert!(!flags.projection),
                }
                assert_eq!(g.peepholes.is_some(), flags.peepholes);
                assert_eq!(g.projection.is_some(), flags.projection);
                // padded positions get exactly zero input gradient
                assert!(d_x.slice(s![1, .., ..]).iter().all(|&v| v == 0.0));
                assert!(d_x.slice(s![0, 3.., ..]).iter().all(|&v| v == 0.0));
                // a zero-length row passes d_state straight to its initial state
                assert_eq!(g.initial_c.row(1), dc.row(1));
                assert_eq!(g.initial_m.row(1), dm.row(1));
            }
        }
    }
}

#[test]
fn forget_bias_is_not_a_weight() {
    // Shifting forget_bias by δ equals shifting the f block of the bias by δ.
    let flags = all_flags()[5];
    let mut a = case(4, 3, 2, 3, 2, flags, vec![3, 2, 0, 1], 5);
    let mut b = a.clone();
    a.options.forget_bias = 1.5;
    b.options.forget_bias = 0.0;
    b.w.bias.slice_mut(s![6..9]).mapv_inplace(|v| v + 1.5);
    let (fa, fb) = (a.fast(false), b.fast(false));
    assert!(max_abs_diff(&fa.outputs, &fb.outputs) < 1e-14);
    assert!(max_abs_diff(&fa.c, &fb.c) < 1e-14);
}

#[test]
fn clipped_rows_stop_the_gradient() {
    // A huge forget gate and c0 drive c far past a small clip at every step:
    // nothing flows back through c, so d c0 must be exactly zero.
    let flags = Flags {
        peepholes: false,
        cell_clip: true,
        projection: false,
        proj_clip: false,
    };
    let mut c = case(2, 3, 2, 2, 2, flags, vec![3, 3], 1);
    c.c0.fill(50.0);
    c.w.bias.slice_mut(s![4..6]).fill(30.0); // f block
    c.w.bias.slice_mut(s![0..2]).fill(30.0); // i block: σ(i) ≈ 1
    c.options.cell_clip = Some(1e-3);
    let f = c.fast(false);
    assert!(f.c.iter().all(|v| v.abs() == 1e-3));
    let g = backward(
        &f.cache,
        &c.w.view(),
        None,
        Some(Array2::ones((2, 2)).view()),
        None,
    )
    .unwrap();
    assert!(g.initial_c.iter().all(|&v| v == 0.0), "{:?}", g.initial_c);
}

// --------------------------------------------------------------------------
// Threads, shapes, errors
// --------------------------------------------------------------------------

#[test]
fn bitwise_identical_across_thread_counts() {
    // every parallel path, however small the problem (results never depend on it)
    crate::pool::set_parallel_work(Some(0));
    let lengths: Vec<i64> = (0..64).map(|i| 10 + (i * 7 % 31) as i64).collect();
    for flags in [all_flags()[0], all_flags()[15]] {
        let c = case(64, 40, 24, 48, 20, flags, lengths.clone(), 77);
        let w32 = c.w.cast32();
        let x32 = c.x.mapv(|v| v as f32);
        let c0 = c.c0.mapv(|v| v as f32);
        let m0 = c.m0.mapv(|v| v as f32);
        let p = m0.ncols();
        let dy = rand3((64, 40, p), 9).mapv(|v| v as f32);
        let dc = rand2((64, 48), 10).mapv(|v| v as f32);
        let options = LstmOptions {
            forget_bias: 1.0f32,
            activation: Activation::Tanh,
            cell_clip: flags.cell_clip.then_some(0.5),
            proj_clip: flags.proj_clip.then_some(0.3),
        };
        let run = |threads: usize| {
            crate::pool::set_num_threads(threads).unwrap();
            let f = forward(
                time_major_view(x32.view(), false),
                c0.view(),
                m0.view(),
                &w32.view(),
                Some(&lengths),
                options,
                false,
            )
            .unwrap();
            let g = backward(
                &f.cache,
                &w32.view(),
                Some(time_major_view(dy.view(), false)),
                Some(dc.view()),
                None,
            )
            .unwrap();
            (
                (f.outputs, f.c, f.m),
                (g.inputs, g.initial_c, g.initial_m, g.kernel, g.bias),
                (g.peepholes, g.projection),
            )
        };
        let one = run(1);
        let two = run(2);
        let three = run(3);
        assert!(one == two && one == three, "{flags:?}");
    }
}

#[test]
fn small_batches_split_by_units_bitwise_as_one_thread() {
    // A batch of one group runs its steps split by units over the pool
    // (`sequence::segment::split_units`); the split must change nothing.
    crate::pool::set_parallel_work(Some(0));
    for (batch, units, lengths) in [
        (5, 96, vec![0, 40, 1, 23, 40]),
        (1, 128, vec![31]),
        (3, 64, vec![40, 0, 17]),
    ] {
        for flags in [all_flags()[0], all_flags()[3]] {
            let c = case(batch, 40, 24, units, units, flags, lengths.clone(), 5);
            let dy = rand3((batch, 40, units), 6);
            let (dc, dm) = (rand2((batch, units), 7), rand2((batch, units), 8));
            let run = |threads: usize| {
                crate::pool::set_num_threads(threads).unwrap();
                let f = forward(
                    time_major_view(c.x.view(), false),
                    c.c0.view(),
                    c.m0.view(),
                    &c.w.view(),
                    Some(&lengths),
                    c.options,
                    false,
                )
                .unwrap();
                let f32 = forward(
                    time_major_view(c.x.mapv(|v| v as f32).view(), false),
                    c.c0.mapv(|v| v as f32).view(),
                    c.m0.mapv(|v| v as f32).view(),
                    &c.w.cast32().view(),
                    Some(&lengths),
                    LstmOptions {
                        forget_bias: c.options.forget_bias as f32,
                        activation: c.options.activation,
                        cell_clip: c.options.cell_clip.map(|v| v as f32),
                        proj_clip: None,
                    },
                    false,
                )
                .unwrap();
                let g = backward(
                    &f.cache,
                    &c.w.view(),
                    Some(time_major_view(dy.view(), false)),
                    Some(dc.view()),
                    Some(dm.view()),
                )
                .unwrap();
                let g32 = backward(
                    &f32.cache,
                    &c.w.cast32().view(),
                    Some(time_major_view(dy.mapv(|v| v as f32).view(), false)),
                    None,
                    None,
                )
                .unwrap();
                (
                    (f.outputs, f.c, f.m, f.cache.1.gates, f.cache.1.states),
                    (f32.outputs, f32.c, f32.m),
                    (
                        g.inputs,
                        g.initial_c,
                        g.initial_m,
                        g.kernel,
                        g.bias,
                        g.peepholes,
                    ),
                    (g32.inputs, g32.kernel, g32.bias, g32.peepholes),
                )
            };
            let one = run(1);
            for threads in [2, 3] {
                assert!(one == run(threads), "{batch} {units} {flags:?} {threads}");
            }
        }
    }
    // the cases above do take the split path
    let c = case(1, 4, 3, 256, 256, all_flags()[0], vec![4], 1);
    let cell = Lstm::new(&c.w.view(), c.options).unwrap();
    assert_eq!(super::steps::splits_in_two(&cell), [true; 2]);
}

#[test]
fn empty_shapes() {
    for flags in [all_flags()[0], all_flags()[15]] {
        let c = case(3, 0, 2, 4, 3, flags, vec![0, 0, 0], 1);
        let f = forward(
            time_major_view(c.x.view(), false),
            c.c0.view(),
            c.m0.view(),
            &c.w.view(),
            None,
            c.options,
            false,
        )
        .unwrap();
        let p = c.m0.ncols();
        assert_eq!(f.outputs.dim(), (3, 0, p));
        assert_eq!(f.c, c.c0);
        assert_eq!(f.m, c.m0);
        let ds = Array2::ones((3, 4));
        let g = backward(&f.cache, &c.w.view(), None, Some(ds.view()), None).unwrap();
        assert_eq!(g.kernel, Array2::<f64>::zeros((2 + p, 16)));
        assert_eq!(g.initial_c, ds);
        assert_eq!(g.initial_m, Array2::<f64>::zeros((3, p)));
        if let Some(d) = g.projection {
            assert_eq!(d, Array2::<f64>::zeros((4, p)));
        }
        let c = case(0, 3, 2, 4, 3, flags, vec![], 1);
        let f = forward(
            time_major_view(c.x.view(), false),
            c.c0.view(),
            c.m0.view(),
            &c.w.view(),
            None,
            c.options,
            false,
        )
        .unwrap();
        assert_eq!(f.outputs.dim(), (0, 3, p));
        let g = backward(&f.cache, &c.w.view(), None, None, None).unwrap();
        assert_eq!(g.inputs.dim(), (0, 3, 2));
    }
}

fn fwd_err(c: &Case, w: &LstmWeights<f64>, c0: &Array2<f64>, m0: &Array2<f64>) -> String {
    forward(
        time_major_view(c.x.view(), false),
        c0.view(),
        m0.view(),
        w,
        None,
        c.options,
        false,
    )
    .unwrap_err()
    .to_string()
}

#[test]
fn shape_errors_name_the_argument() {
    let flags = all_flags()[15];
    let c = case(2, 3, 2, 4, 3, flags, vec![3, 3], 1);
    let w = c.w.view();
    // initial state parts
    let e = fwd_err(&c, &w, &Array2::zeros((2, 3)), &c.m0);
    assert_eq!(
        e,
        "initial_state.c: expected shape [2, 4], got shape [2, 3]"
    );
    let e = fwd_err(&c, &w, &c.c0, &Array2::zeros((2, 4)));
    assert_eq!(
        e,
        "initial_state.h: expected shape [2, 3], got shape [2, 4]"
    );
    // kernel
    // a kernel for inputs of size 3 (P = 3), run on inputs of size 2
    let bad = Array2::zeros((6, 16));
    let e = fwd_err(
        &c,
        &LstmWeights {
            kernel: bad.view(),
            ..w
        },
        &c.c0,
        &c.m0,
    );
    assert_eq!(
        e,
        "inputs: expected shape [B, T, 3] (I = 3, the cell's input size), got shape [2, 3, 2]"
    );
    let bad = Array2::zeros((2, 16));
    let e = fwd_err(
        &c,
        &LstmWeights {
            kernel: bad.view(),
            ..w
        },
        &c.c0,
        &c.m0,
    );
    assert_eq!(
        e,
        "kernel: expected shape [I + 3, 16] (I >= 0, P = 3), got shape [2, 16]"
    );
    let bad = Array2::zeros((5, 15));
    let e = fwd_err(
        &c,
        &LstmWeights {
            kernel: bad.view(),
            ..w
        },
        &c.c0,
        &c.m0,
    );
    assert!(e.starts_with("kernel: expected shape [I+P, 4H]"), "{e}");
    // bias
    let bad = Array1::zeros(15);
    let e = fwd_err(
        &c,
        &LstmWeights {
            bias: bad.view(),
            ..w
        },
        &c.c0,
        &c.m0,
    );
    assert_eq!(e, "bias: expected shape [16], got shape [15]");
    // peepholes
    let bad = Array1::zeros(5);
    let mut peep = w.peepholes.unwrap();
    peep.w_f_diag = bad.view();
    let e = fwd_err(
        &c,
        &LstmWeights {
            peepholes: Some(peep),
            ..w
        },
        &c.c0,
        &c.m0,
    );
    assert_eq!(e, "w_f_diag: expected shape [4], got shape [5]");
    // projection
    let bad = Array2::zeros((5, 3));
    let e = fwd_err(
        &c,
        &LstmWeights {
            projection: Some(bad.view()),
            ..w
        },
        &c.c0,
        &c.m0,
    );
    assert!(
        e.starts_with("projection/kernel: expected shape [4, P]"),
        "{e}"
    );
    // options
    for bad in [0.0, -1.0, f64::NAN] {
        let mut c2 = c.clone();
        c2.options.cell_clip = Some(bad);
        let e = fwd_err(&c2, &w, &c.c0, &c.m0);
        assert!(e.starts_with("cell_clip: expected a number > 0"), "{e}");
        c2.options.cell_clip = None;
        c2.options.proj_clip = Some(bad);
        let e = fwd_err(&c2, &w, &c.c0, &c.m0);
        assert!(e.starts_with("proj_clip: expected a number > 0"), "{e}");
    }
    // sequence_length
    let e = forward(
        time_major_view(c.x.view(), false),
        c.c0.view(),
        c.m0.view(),
        &w,
        Some(&[1, 4]),
        c.options,
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("sequence_length: expected values in [0, 3]"),
        "{e}"
    );

    // backward: the gradients' shapes
    let f = c.fast(false);
    let bw = |w: &LstmWeights<f64>,
              dy: Option<ArrayView3<f64>>,
              dc: Option<ArrayView2<f64>>,
              dm: Option<ArrayView2<f64>>| {
        backward(&f.cache, w, dy, dc, dm).unwrap_err().to_string()
    };
    let dy = Array3::zeros((3, 2, 4));
    assert_eq!(
        bw(&w, Some(time_major_view(dy.view(), false)), None, None),
        "d_outputs: expected shape [2, 3, 3], got shape [3, 2, 4]"
    );
    let d = Array2::zeros((2, 3));
    assert_eq!(
        bw(&w, None, Some(d.view()), None),
        "d_state.c: expected shape [2, 4], got shape [2, 3]"
    );
    let d = Array2::zeros((2, 4));
    assert_eq!(
        bw(&w, None, None, Some(d.view())),
        "d_state.h: expected shape [2, 3], got shape [2, 4]"
    );
    // (the cache holds the forward pass's cell: the weights cannot differ)
}

#[test]
fn proj_clip_without_projection_is_ignored() {
    let flags = all_flags()[0];
    let mut c = case(3, 4, 2, 3, 3, flags, vec![4, 2, 0], 9);
    let plain = c.fast(false);
    c.options.proj_clip = Some(1e-3);
    let with = c.fast(false);
    assert_eq!(plain.outputs, with.outputs);
    assert_eq!(with.cache.0.options().proj_clip, None);
}

#[test]
fn nan_propagates_without_panicking() {
    let flags = all_flags()[15];
    let mut c = case(3, 4, 2, 3, 2, flags, vec![4, 2, 0], 9);
    c.x[[0, 1, 0]] = f64::NAN;
    let f = c.fast(false);
    assert!(f.outputs.slice(s![0, 1.., ..]).iter().all(|v| v.is_nan()));
    assert!(f
        .outputs
        .slice(s![1, ..2, ..])
        .iter()
        .all(|v| v.is_finite()));
    let g = backward(
        &f.cache,
        &c.w.view(),
        None,
        Some(Array2::ones((3, 3)).view()),
        None,
    )
    .unwrap();
    assert!(g.initial_c.row(1).iter().all(|v| v.is_finite()));
}
