//! The attention loop against a naive reference (one batch row, one step,
//! one number at a time, straight from the module's equations; the inner
//! cell steps through [`Prepared::step`], whose own references are in
//! `cell/reference/`), every gradient against float64 central finite
//! differences of a random linear loss, and bitwise equality across thread
//! counts.

use super::*;
use crate::cell;
use crate::error::Uninterrupted;
use crate::step::params::{Options, Value};
use crate::step::Prepared;
use ndarray::{Array3, ArrayD, ArrayView2, Axis, IxDyn};

/// A small deterministic generator (numbers in `[-scale, scale]`).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    fn array(&mut self, shape: &[usize], scale: f64) -> ArrayD<f64> {
        ArrayD::from_shape_fn(IxDyn(shape), |_| self.next() * scale)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Basic,
    Lstm,
    /// Peepholes and a projection (`P = units`, `H = units + 1`).
    LstmFull,
    Gru,
    GruResetAfter,
}

/// One problem: every array by name (the call's inputs, `cell/<name>` for
/// the cell's weights, the mechanism's weights by their own names).
#[derive(Clone)]
struct Case {
    kind: Kind,
    config: Config,
    lengths: Vec<i64>,
    memory_lengths: Option<Vec<i64>>,
    arrays: Vec<(String, ArrayD<f64>)>,
}

struct Sizes {
    batch: usize,
    time: usize,
    input: usize,
    units: usize,
    memory_time: usize,
    depth: usize,
    attention_units: usize,
    layer: Option<usize>,
}

const SMALL: Sizes = Sizes {
    batch: 4,
    time: 4,
    input: 2,
    units: 3,
    memory_time: 4,
    depth: 3,
    attention_units: 3,
    layer: Some(2),
};

impl Case {
    fn new(kind: Kind, config: Config, z: &Sizes, lengths: Vec<i64>, seed: u64) -> Case {
        let mut rng = Rng(seed);
        let (b, h, dm) = (z.batch, z.units, z.depth);
        let u = match config.score {
            Score::Luong { .. } => h,
            Score::Bahdanau { .. } => z.attention_units,
        };
        let a = z.layer.unwrap_or(dm);
        let ci = z.input + a;
        let mut arrays = vec![
            ("inputs".to_string(), rng.array(&[b, z.time, z.input], 1.0)),
            ("initial_attention".into(), rng.array(&[b, a], 0.5)),
            ("memory".into(), rng.array(&[b, z.memory_time, dm], 1.0)),
        ];
        let parts: &[usize] = match kind {
            Kind::Lstm => &[h, h],
            Kind::LstmFull => &[h + 1, h],
            _ => &[h],
        };
        for (i, &w) in parts.iter().enumerate() {
            arrays.push((format!("initial_state.{i}"), rng.array(&[b, w], 0.5)));
        }
        let cell_weights: Vec<(&str, Vec<usize>)> = match kind {
            Kind::Basic => vec![("kernel", vec![ci + h, h]), ("bias", vec![h])],
            Kind::Lstm => vec![("kernel", vec![ci + h, 4 * h]), ("bias", vec![4 * h])],
            Kind::LstmFull => vec![
                ("kernel", vec![ci + h, 4 * (h + 1)]),
                ("bias", vec![4 * (h + 1)]),
                ("w_i_diag", vec![h + 1]),
                ("w_f_diag", vec![h + 1]),
                ("w_o_diag", vec![h + 1]),
                ("projection/kernel", vec![h + 1, h]),
            ],
            Kind::Gru => vec![
                ("gates/kernel", vec![ci + h, 2 * h]),
                ("gates/bias", vec![2 * h]),
                ("candidate/kernel", vec![ci + h, h]),
                ("candidate/bias", vec![h]),
            ],
            Kind::GruResetAfter => vec![
                ("gates/kernel", vec![ci + h, 2 * h]),
                ("gates/bias", vec![2 * h]),
                ("candidate/input_kernel", vec![ci, h]),
                ("candidate/hidden_kernel", vec![h, h]),
                ("candidate/input_bias", vec![h]),
                ("candidate/hidden_bias", vec![h]),
            ],
        };
        for (name, shape) in cell_weights {
            arrays.push((format!("cell/{name}"), rng.array(&shape, 0.6)));
        }
        arrays.push((MEMORY_KERNEL.into(), rng.array(&[dm, u], 0.7)));
        match config.score {
            Score::Bahdanau { normalize } => {
                arrays.push((QUERY_KERNEL.into(), rng.array(&[h, u], 0.7)));
                arrays.push((ATTENTION_V.into(), rng.array(&[u], 1.0)));
                if normalize {
                    arrays.push((ATTENTION_G.into(), rng.array(&[], 1.0) + 1.5));
                    arrays.push((ATTENTION_B.into(), rng.array(&[u], 0.3)));
                }
            }
            Score::Luong { scale } => {
                if scale {
                    arrays.push((ATTENTION_G.into(), rng.array(&[], 0.5) + 1.0));
                }
            }
        }
        if let Some(a) = z.layer {
            arrays.push((ATTENTION_KERNEL.into(), rng.array(&[h + dm, a], 0.7)));
        }
        Case {
            kind,
            config,
            lengths,
            memory_lengths: None,
            arrays,
        }
    }

    fn get(&self, name: &str) -> &ArrayD<f64> {
        &self.arrays.iter().find(|(n, _)| n == name).unwrap().1
    }

    fn dims(&self) -> (usize, usize) {
        let x = self.get("inputs");
        (x.shape()[0], x.shape()[1])
    }

    fn prepared(&self) -> Prepared<f64> {
        let views: Vec<_> = self
            .arrays
            .iter()
            .filter_map(|(n, a)| n.strip_prefix("cell/").map(|n| (n, a.view())))
            .collect();
        let weights = crate::step::params::Weights::new(views);
        let cell = match self.kind {
            Kind::Basic => cell::basic_rnn::build(Options::default(), weights),
            Kind::Lstm | Kind::LstmFull => cell::lstm::build(Options::default(), weights),
            Kind::Gru => cell::gru::build(Options::default(), weights),
            Kind::GruResetAfter => cell::gru::build(
                Options::default().with("reset_after", Value::Bool(true)),
                weights,
            ),
        };
        Prepared::new(cell.unwrap())
    }

    fn attention_weights(&self) -> Weights<f64> {
        let names = [
            MEMORY_KERNEL,
            QUERY_KERNEL,
            ATTENTION_V,
            ATTENTION_G,
            ATTENTION_B,
            ATTENTION_KERNEL,
        ];
        let items: Vec<_> = self
            .arrays
            .iter()
            .filter(|(n, _)| names.contains(&n.as_str()))
            .map(|(n, a)| (n.as_str(), a.view()))
            .collect();
        Weights::from_named(self.config.score, &items).unwrap()
    }

    fn state_parts(&self) -> Vec<ArrayView2<'_, f64>> {
        (0..2)
            .filter_map(|i| {
                let name = format!("initial_state.{i}");
                self.arrays.iter().find(|(n, _)| *n == name)
            })
            .map(|(_, a)| a.view().into_dimensionality().unwrap())
            .collect()
    }

    fn run(&self, cell: &Prepared<f64>) -> Output<f64> {
        let parts = self.state_parts();
        let inputs = Inputs {
            x: self.get("inputs").view().into_dimensionality().unwrap(),
            lengths: Some(&self.lengths),
            initial_state: &parts,
            initial_attention: self
                .get("initial_attention")
                .view()
                .into_dimensionality()
                .unwrap(),
            memory: self.get("memory").view().into_dimensionality().unwrap(),
            memory_lengths: self.memory_lengths.as_deref(),
        };
        forward(
            cell,
            inputs,
            self.attention_weights(),
            self.config,
            &Uninterrupted,
        )
        .unwrap()
    }

    fn memory_len(&self, b: usize) -> usize {
        let tm = self.get("memory").shape()[1];
        self.memory_lengths.as_ref().map_or(tm, |l| l[b] as usize)
    }
}

/// What the naive reference computes.
struct Naive {
    outputs: Array3<f64>,
    state: Vec<Array2<f64>>,
    attention: Array2<f64>,
    alignments: Array2<f64>,
    history: Array3<f64>,
}

/// The wrapper, one row and one step at a time.
fn naive(case: &Case) -> Naive {
    let cell = case.prepared();
    let layout = cell.cell().layout().clone();
    let x = case.get("inputs");
    let memory = case.get("memory");
    let a0 = case.get("initial_attention");
    let wm = case.get(MEMORY_KERNEL);
    let (batch, time) = case.dims();
    let (tm, dm) = (memory.shape()[1], memory.shape()[2]);
    let u = wm.shape()[1];
    let a_w = a0.shape()[1];
    let q = layout.output_width();
    let get = |n: &str| case.arrays.iter().find(|(k, _)| k == n).map(|(_, a)| a);
    let g = get(ATTENTION_G).map(|g| g[[]]);
    let out_w = if case.config.output_attention { a_w } else { q };
    let mut outputs = Array3::zeros((batch, time, out_w));
    let mut history = Array3::zeros((time, batch, tm));
    let parts0 = case.state_parts();
    let mut state: Vec<Array2<f64>> = parts0.iter().map(|p| p.to_owned()).collect();
    let mut attention = Array2::zeros((batch, a_w));
    let mut alignments = Array2::zeros((batch, tm));
    for b in 0..batch {
        let m = case.memory_len(b);
        // keys of the masked memory
        let mut keys = vec![vec![0.0; u]; tm];
        for (j, kj) in keys.iter_mut().enumerate().take(m) {
            for (uu, k) in kj.iter_mut().enumerate() {
                for d in 0..dm {
                    *k += memory[[b, j, d]] * wm[[d, uu]];
                }
            }
        }
        let mut st: Vec<Array2<f64>> = parts0
            .iter()
            .map(|p| p.slice(s![b..b + 1, ..]).to_owned())
            .collect();
        let mut a_prev: Vec<f64> = (0..a_w).map(|k| a0[[b, k]]).collect();
        for t in 0..case.lengths[b] as usize {
            let mut inp: Vec<f64> = (0..x.shape()[2]).map(|i| x[[b, t, i]]).collect();
            inp.extend(&a_prev);
            let inp = Array2::from_shape_vec((1, inp.len()), inp).unwrap();
            let views: Vec<_> = st.iter().map(|p| p.view()).collect();
            let out = cell.step(inp.view(), &views).unwrap();
            st = out.state;
            let h: Vec<f64> = out.output.row(0).to_vec();
            let mut s = vec![0.0; m];
            match case.config.score {
                Score::Luong { .. } => {
                    for (j, sj) in s.iter_mut().enumerate() {
                        let raw: f64 = (0..u).map(|k| h[k] * keys[j][k]).sum();
                        *sj = g.unwrap_or(1.0) * raw;
                    }
                }
                Score::Bahdanau { normalize } => {
                    let wq = get(QUERY_KERNEL).unwrap();
                    let v = get(ATTENTION_V).unwrap();
                    let norm: f64 = v.iter().map(|x| x * x).sum::<f64>().sqrt();
                    for (j, sj) in s.iter_mut().enumerate() {
                        for k in 0..u {
                            let mut pq: f64 = (0..q).map(|i| h[i] * wq[[i, k]]).sum();
                            let mut vk = v[[k]];
                            if normalize {
                                pq += get(ATTENTION_B).unwrap()[[k]];
                                vk = g.unwrap() * vk / norm;
                            }
                            *sj += vk * (keys[j][k] + pq).tanh();
                        }
                    }
                }
            }
            let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = s.iter().map(|v| (v - mx).exp()).sum();
            let alpha: Vec<f64> = s.iter().map(|v| (v - mx).exp() / total).collect();
            let c: Vec<f64> = (0..dm)
                .map(|d| (0..m).map(|j| alpha[j] * memory[[b, j, d]]).sum())
                .collect();
            let a_t: Vec<f64> = match get(ATTENTION_KERNEL) {
                Some(w) => {
                    let hc: Vec<f64> = h.iter().chain(&c).cloned().collect();
                    (0..a_w)
                        .map(|k| hc.iter().enumerate().map(|(i, v)| v * w[[i, k]]).sum())
                        .collect()
                }
                None => c.clone(),
            };
            let out = if case.config.output_attention {
                &a_t
            } else {
                &h
            };
            for (k, &v) in out.iter().enumerate() {
                outputs[[b, t, k]] = v;
            }
            for j in 0..tm {
                let al = if j < m { alpha[j] } else { 0.0 };
                history[[t, b, j]] = al;
                alignments[[b, j]] = al;
            }
            a_prev = a_t;
        }
        for (dst, src) in state.iter_mut().zip(&st) {
            dst.row_mut(b).assign(&src.row(0));
        }
        for (k, &v) in a_prev.iter().enumerate() {
            attention[[b, k]] = v;
        }
    }
    Naive {
        outputs,
        state,
        attention,
        alignments,
        history,
    }
}

fn close(a: &ArrayD<f64>, b: &ArrayD<f64>, tol: f64, what: &str) {
    assert_eq!(a.shape(), b.shape(), "{what}: shapes");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{what}[{i}]: {x} vs {y}"
        );
    }
}

fn configs() -> Vec<Config> {
    let mut out = Vec::new();
    for score in [
        Score::Bahdanau { normalize: false },
        Score::Bahdanau { normalize: true },
        Score::Luong { scale: false },
        Score::Luong { scale: true },
    ] {
        for output_attention in [true, false] {
            out.push(Config {
                score,
                output_attention,
                alignment_history: true,
            });
        }
    }
    out
}

const KINDS: [Kind; 5] = [
    Kind::Basic,
    Kind::Lstm,
    Kind::LstmFull,
    Kind::Gru,
    Kind::GruResetAfter,
];

#[test]
fn forward_matches_the_naive_reference() {
    let mut seed = 1;
    for kind in KINDS {
        for config in configs() {
            for layer in [Some(2), None] {
                seed += 1;
                let z = Sizes { layer, ..SMALL };
                let mut case = Case::new(kind, config, &z, vec![4, 0, 2, 3], seed);
                case.memory_lengths = Some(vec![4, 2, 1, 3]);
                let want = naive(&case);
                let cell = case.prepared();
                let got = case.run(&cell);
                let what = format!("{kind:?} {config:?} layer {layer:?}");
                close(
                    &got.outputs.into_dyn(),
                    &want.outputs.into_dyn(),
                    1e-12,
                    &format!("{what} outputs"),
                );
                for (g, w) in got.state.iter().zip(&want.state) {
                    close(
                        &g.clone().into_dyn(),
                        &w.clone().into_dyn(),
                        1e-12,
                        &format!("{what} state"),
                    );
                }
                close(
                    &got.attention.into_dyn(),
                    &want.attention.into_dyn(),
                    1e-12,
                    &format!("{what} attention"),
                );
                close(
                    &got.alignments.into_dyn(),
                    &want.alignments.into_dyn(),
                    1e-12,
                    &format!("{what} alignments"),
                );
                close(
                    &got.history.unwrap().into_dyn(),
                    &want.history.into_dyn(),
                    1e-12,
                    &format!("{what} history"),
                );
            }
        }
    }
}

/// The random linear loss's weights, one per result.
struct Loss {
    outputs: ArrayD<f64>,
    state: Vec<ArrayD<f64>>,
    attention: ArrayD<f64>,
    alignments: ArrayD<f64>,
}

impl Loss {
    fn new(out: &Output<f64>, seed: u64) -> Loss {
        let mut rng = Rng(seed);
        Loss {
            outputs: rng.array(out.outputs.shape(), 1.0),
            state: out
                .state
                .iter()
                .map(|p| rng.array(p.shape(), 1.0))
                .collect(),
            attention: rng.array(out.attention.shape(), 1.0),
            alignments: rng.array(out.alignments.shape(), 1.0),
        }
    }

    fn value(&self, out: &Output<f64>) -> f64 {
        let dot = |a: &ArrayD<f64>, b: ArrayD<f64>| (a * &b).sum();
        dot(&self.outputs, out.outputs.clone().into_dyn())
            + self
                .state
                .iter()
                .zip(&out.state)
                .map(|(w, s)| dot(w, s.clone().into_dyn()))
                .sum::<f64>()
            + dot(&self.attention, out.attention.clone().into_dyn())
            + dot(&self.alignments, out.alignments.clone().into_dyn())
    }
}

/// The analytic gradient of every array of `case` under `loss`, by name.
fn analytic(case: &Case, loss: &Loss) -> Vec<(String, ArrayD<f64>)> {
    let cell = case.prepared();
    let out = case.run(&cell);
    let d_state: Vec<ArrayView2<f64>> = loss
        .state
        .iter()
        .map(|a| a.view().into_dimensionality().unwrap())
        .collect();
    let g = backward(
        &cell,
        &out.tape,
        Incoming {
            outputs: Some(loss.outputs.view().into_dimensionality().unwrap()),
            state: Some(&d_state),
            attention: Some(loss.attention.view().into_dimensionality().unwrap()),
            alignments: Some(loss.alignments.view().into_dimensionality().unwrap()),
        },
        &Uninterrupted,
    )
    .unwrap();
    let mut named = vec![
        ("inputs".to_string(), g.inputs.into_dyn()),
        ("initial_attention".into(), g.initial_attention.into_dyn()),
        ("memory".into(), g.memory.into_dyn()),
    ];
    for (i, p) in g.initial_state.into_iter().enumerate() {
        named.push((format!("initial_state.{i}"), p.into_dyn()));
    }
    let cell_names: Vec<String> = case
        .arrays
        .iter()
        .filter_map(|(n, _)| n.strip_prefix("cell/").map(String::from))
        .collect();
    for (n, a) in g.weights {
        let name = if cell_names.contains(&n) {
            format!("cell/{n}")
        } else {
            n
        };
        named.push((name, a));
    }
    named
}

/// Checks every gradient of `case` against central differences.
fn check_gradients(case: &Case, seed: u64) {
    let cell = case.prepared();
    let out = case.run(&cell);
    let loss = Loss::new(&out, seed);
    let grads = analytic(case, &loss);
    let what = format!(
        "{:?} {:?} lengths {:?} memory {:?}",
        case.kind, case.config, case.lengths, case.memory_lengths
    );
    // every array has a gradient, and only those
    let mut names: Vec<_> = case.arrays.iter().map(|(n, _)| n.clone()).collect();
    let mut got: Vec<_> = grads.iter().map(|(n, _)| n.clone()).collect();
    names.sort();
    got.sort();
    assert_eq!(names, got, "{what}");
    let eps = 1e-6;
    for (name, grad) in &grads {
        let idx = case.arrays.iter().position(|(n, _)| n == name).unwrap();
        let shape = case.arrays[idx].1.shape().to_vec();
        assert_eq!(grad.shape(), &shape[..], "{what} {name}");
        for (flat, g) in grad.iter().enumerate() {
            let mut fd = 0.0;
            for (sign, step) in [(1.0, eps), (-1.0, -eps)] {
                let mut c = case.clone();
                let a = c.arrays[idx].1.as_slice_mut().unwrap();
                a[flat] += step;
                let cell = c.prepared();
                fd += sign * loss.value(&c.run(&cell));
            }
            fd /= 2.0 * eps;
            assert!(
                (fd - g).abs() <= 1e-6 * (1.0 + fd.abs()),
                "{what}: d {name}[{flat}]: analytic {g}, finite differences {fd}"
            );
        }
    }
}

#[test]
fn gradients_match_finite_differences_for_every_cell_and_score() {
    let mut seed = 100;
    for kind in KINDS {
        for config in configs() {
            seed += 1;
            let layer = if seed % 2 == 0 { Some(2) } else { None };
            let z = Sizes { layer, ..SMALL };
            let mut case = Case::new(kind, config, &z, vec![3, 0, 4, 2], seed);
            case.memory_lengths = Some(vec![2, 4, 1, 3]);
            check_gradients(&case, seed);
        }
    }
}

#[test]
fn gradients_with_and_without_the_attention_layer() {
    for (i, layer) in [Some(3), None].into_iter().enumerate() {
        for config in configs().into_iter().step_by(3) {
            let z = Sizes {
                layer,
                batch: 3,
                ..SMALL
            };
            let case = Case::new(Kind::Lstm, config, &z, vec![4, 4, 1], 7 + i as u64);
            check_gradients(&case, 9);
        }
    }
}

#[test]
fn rows_past_their_length_keep_their_state_and_output_zeros() {
    let config = configs()[0];
    let mut case = Case::new(Kind::Lstm, config, &SMALL, vec![0, 1, 4, 2], 5);
    case.memory_lengths = Some(vec![1, 4, 2, 3]);
    let cell = case.prepared();
    let out = case.run(&cell);
    // a row of length 0 returns its initial state and attention, zero alignments
    for (p, i) in out.state.iter().zip(case.state_parts()) {
        assert_eq!(p.row(0), i.row(0));
    }
    let a0 = case.get("initial_attention");
    assert_eq!(out.attention.row(0).into_dyn(), a0.index_axis(Axis(0), 0));
    assert!(out.alignments.row(0).iter().all(|&v| v == 0.0));
    assert!(out.outputs.index_axis(Axis(0), 0).iter().all(|&v| v == 0.0));
    // row 3 stops after two steps
    assert!(out.outputs.slice(s![3, 2.., ..]).iter().all(|&v| v == 0.0));
    let h = out.history.unwrap();
    assert!(h.slice(s![2.., 3, ..]).iter().all(|&v| v == 0.0));
    // masked memory positions get exactly zero weight, the rest sum to 1
    assert!(h.slice(s![.., 2, 2..]).iter().all(|&v| v == 0.0));
    for t in 0..4 {
        let sum: f64 = h.slice(s![t, 2, ..]).sum();
        assert!((sum - 1.0).abs() < 1e-12);
    }
    assert_eq!(out.alignments.row(3), h.slice(s![1, 3, ..]));
}

#[test]
fn masked_memory_gets_zero_gradient_and_changes_nothing() {
    let config = configs()[2];
    let mut case = Case::new(Kind::Gru, config, &SMALL, vec![4, 3, 2, 1], 11);
    case.memory_lengths = Some(vec![2, 4, 1, 3]);
    let cell = case.prepared();
    let before = case.run(&cell).outputs;
    let loss = Loss::new(&case.run(&cell), 3);
    let grads = analytic(&case, &loss);
    let dm = &grads.iter().find(|(n, _)| n == "memory").unwrap().1;
    assert!(dm.slice(s![0, 2.., ..]).iter().all(|&v| v == 0.0));
    assert!(dm.slice(s![2, 1.., ..]).iter().all(|&v| v == 0.0));
    let mut other = case.clone();
    let m = other
        .arrays
        .iter_mut()
        .find(|(n, _)| n == "memory")
        .unwrap();
    m.1.slice_mut(s![0, 2.., ..]).fill(123.0);
    assert_eq!(other.run(&cell).outputs, before);
}

/// The benchmark's shape, scaled down, in f32: results never depend on the
/// thread count.
#[test]
fn bitwise_identical_across_thread_counts() {
    crate::pool::set_parallel_work(Some(0));
    let lengths: Vec<i64> = (0..70).map(|i| (i * 7 % 13) as i64).collect();
    let memory_lengths: Vec<i64> = (0..70).map(|i| 1 + (i * 5 % 9) as i64).collect();
    for (kind, config) in [
        (Kind::Lstm, configs()[1]),
        (Kind::Gru, configs()[2]),
        (Kind::GruResetAfter, configs()[7]),
    ] {
        let z = Sizes {
            batch: 70,
            time: 12,
            input: 5,
            units: 24,
            memory_time: 9,
            depth: 7,
            attention_units: 24,
            layer: Some(6),
        };
        let mut case = Case::new(kind, config, &z, lengths.clone(), 3);
        case.memory_lengths = Some(memory_lengths.clone());
        let f32s: Vec<(String, ArrayD<f32>)> = case
            .arrays
            .iter()
            .map(|(n, a)| (n.clone(), a.mapv(|v| v as f32)))
            .collect();
        let get = |n: &str| &f32s.iter().find(|(k, _)| k == n).unwrap().1;
        let cell_views: Vec<_> = f32s
            .iter()
            .filter_map(|(n, a)| n.strip_prefix("cell/").map(|n| (n, a.view())))
            .collect();
        let weights = crate::step::params::Weights::new(cell_views);
        let options = match kind {
            Kind::GruResetAfter => Options::default().with("reset_after", Value::Bool(true)),
            _ => Options::default(),
        };
        let built = match kind {
            Kind::Lstm => cell::lstm::build(options, weights),
            _ => cell::gru::build(options, weights),
        };
        let cell = Prepared::new(built.unwrap());
        let att: Vec<_> = f32s
            .iter()
            .filter(|(n, _)| {
                !n.starts_with("cell/")
                    && !n.starts_with("initial")
                    && n != "inputs"
                    && n != "memory"
            })
            .map(|(n, a)| (n.as_str(), a.view()))
            .collect();
        let parts: Vec<ArrayView2<f32>> = f32s
            .iter()
            .filter(|(n, _)| n.starts_with("initial_state."))
            .map(|(_, a)| a.view().into_dimensionality().unwrap())
            .collect();
        let mut rng = Rng(8);
        let run = |threads: usize| {
            crate::pool::set_num_threads(threads).unwrap();
            let inputs = Inputs {
                x: get("inputs").view().into_dimensionality().unwrap(),
                lengths: Some(&lengths),
                initial_state: &parts,
                initial_attention: get("initial_attention")
                    .view()
                    .into_dimensionality()
                    .unwrap(),
                memory: get("memory").view().into_dimensionality().unwrap(),
                memory_lengths: Some(&memory_lengths),
            };
            let w = Weights::from_named(config.score, &att).unwrap();
            let f = forward(&cell, inputs, w, config, &Uninterrupted).unwrap();
            (
                f.outputs.clone(),
                f.state.clone(),
                f.attention.clone(),
                f.alignments.clone(),
                f,
            )
        };
        let (o1, s1, a1, al1, f1) = run(1);
        let d_out = rng.array(o1.shape(), 1.0).mapv(|v| v as f32);
        let d_att = rng.array(a1.shape(), 1.0).mapv(|v| v as f32);
        let d_al = rng.array(al1.shape(), 1.0).mapv(|v| v as f32);
        let d_state: Vec<Array2<f32>> = s1
            .iter()
            .map(|p| {
                rng.array(p.shape(), 1.0)
                    .mapv(|v| v as f32)
                    .into_dimensionality()
                    .unwrap()
            })
            .collect();
        let d_views: Vec<_> = d_state.iter().map(|p| p.view()).collect();
        let back = |threads: usize, f: &Output<f32>| {
            crate::pool::set_num_threads(threads).unwrap();
            backward(
                &cell,
                &f.tape,
                Incoming {
                    outputs: Some(d_out.view().into_dimensionality().unwrap()),
                    state: Some(&d_views),
                    attention: Some(d_att.view().into_dimensionality().unwrap()),
                    alignments: Some(d_al.view().into_dimensionality().unwrap()),
                },
                &Uninterrupted,
            )
            .unwrap()
        };
        let g1 = back(1, &f1);
        for threads in [2, 3, 4] {
            let (o, s, a, al, f) = run(threads);
            assert!(
                o == o1 && s == s1 && a == a1 && al == al1,
                "{kind:?} forward, {threads} threads"
            );
            let g = back(threads, &f);
            assert!(
                g.inputs == g1.inputs
                    && g.initial_state == g1.initial_state
                    && g.initial_attention == g1.initial_attention
                    && g.memory == g1.memory,
                "{kind:?} backward, {threads} threads"
            );
            for ((n, x), (_, y)) in g.weights.iter().zip(&g1.weights) {
                assert!(x == y, "{kind:?} d {n}, {threads} threads");
            }
        }
    }
    crate::pool::set_parallel_work(None);
}

#[test]
fn errors_name_the_argument() {
    let config = configs()[0];
    let case = Case::new(Kind::Basic, config, &SMALL, vec![4, 4, 4, 4], 2);
    let cell = case.prepared();
    let parts = case.state_parts();
    let x = case.get("inputs").view().into_dimensionality().unwrap();
    let a0 = case
        .get("initial_attention")
        .view()
        .into_dimensionality()
        .unwrap();
    let memory = case.get("memory").view().into_dimensionality().unwrap();
    let base = Inputs {
        x,
        lengths: None,
        initial_state: &parts,
        initial_attention: a0,
        memory,
        memory_lengths: None,
    };
    let err = |inputs: Inputs<'_, f64>, w: Weights<f64>| {
        forward(&cell, inputs, w, config, &Uninterrupted)
            .unwrap_err()
            .to_string()
    };
    let w = case.attention_weights();
    let e = err(
        Inputs {
            memory_lengths: Some(&[1, 0, 2, 2]),
            ..base
        },
        w.clone(),
    );
    assert!(
        e.starts_with("memory_sequence_length: expected values in [1, 4]")
            && e.contains("0 at index 1"),
        "{e}"
    );
    let e = err(
        Inputs {
            lengths: Some(&[1, 5, 2, 2]),
            ..base
        },
        w.clone(),
    );
    assert!(e.starts_with("sequence_length:"), "{e}");
    let e = err(
        Inputs {
            initial_attention: a0.slice_move(s![.., ..1]),
            ..base
        },
        w.clone(),
    );
    assert!(
        e.starts_with("initial_attention: expected shape [4, 2]"),
        "{e}"
    );
    let e = err(
        Inputs {
            x: x.slice_move(s![.., .., ..1]),
            ..base
        },
        w.clone(),
    );
    assert!(e.starts_with("inputs: expected shape [4, 4, 2]"), "{e}");
    let e = err(
        Inputs {
            memory: memory.slice_move(s![..2, .., ..]),
            ..base
        },
        w.clone(),
    );
    assert!(e.starts_with("memory: expected shape [4, Tm, Dm]"), "{e}");
    let mut bad = w.clone();
    bad.query_kernel = Some(Array2::zeros((2, 3)));
    let e = err(base, bad);
    assert_eq!(
        e,
        "query_layer/kernel: expected shape [3, 3], got shape [2, 3]"
    );
    let mut bad = w.clone();
    bad.memory_kernel = Array2::zeros((2, 3));
    let e = err(base, bad);
    assert!(
        e.starts_with("memory_layer/kernel: expected shape [3, U]"),
        "{e}"
    );
    // names: missing, unknown, wrong rank
    let k = Array2::<f64>::zeros((3, 3));
    let v = ndarray::Array1::<f64>::zeros(3);
    let e = Weights::from_named(config.score, &[(MEMORY_KERNEL, k.view().into_dyn())])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("weights: expected an entry \"query_layer/kernel\""),
        "{e}"
    );
    let e = Weights::<f64>::from_named(
        Score::Luong { scale: false },
        &[
            (MEMORY_KERNEL, k.view().into_dyn()),
            (ATTENTION_V, v.view().into_dyn()),
        ],
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "weights: expected only the weights of a LuongAttention (and its cell), got unknown [\"attention_v\"]"
    );
    let e = Weights::<f64>::from_named(
        Score::Luong { scale: true },
        &[
            (MEMORY_KERNEL, k.view().into_dyn()),
            (ATTENTION_G, v.view().into_dyn()),
        ],
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "attention_g: expected a 0-d array (a scalar), got shape [3]"
    );
    // Luong needs U == Q
    let luong = Config {
        score: Score::Luong { scale: false },
        ..config
    };
    let k2 = Array2::<f64>::zeros((3, 2));
    let w = Weights::from_named(luong.score, &[(MEMORY_KERNEL, k2.view().into_dyn())]).unwrap();
    let e = forward(&cell, base, w, luong, &Uninterrupted)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("memory_layer/kernel: expected shape [3, 3] (LuongAttention"),
        "{e}"
    );
}

#[test]
fn empty_batches_and_zero_steps() {
    let config = configs()[2];
    let z = Sizes {
        batch: 2,
        time: 0,
        ..SMALL
    };
    let case = Case::new(Kind::Lstm, config, &z, vec![0, 0], 4);
    let cell = case.prepared();
    let out = case.run(&cell);
    assert_eq!(out.outputs.dim(), (2, 0, 2));
    assert_eq!(out.history.as_ref().unwrap().dim(), (0, 2, 4));
    let g = backward(&cell, &out.tape, Incoming::default(), &Uninterrupted).unwrap();
    assert_eq!(g.memory.dim(), (2, 4, 3));
    assert!(g.memory.iter().all(|&v| v == 0.0));
    let z = Sizes { batch: 0, ..SMALL };
    let case = Case::new(Kind::Basic, config, &z, vec![], 4);
    let cell = case.prepared();
    let out = case.run(&cell);
    assert_eq!(out.outputs.dim(), (0, 4, 2));
    let g = backward(&cell, &out.tape, Incoming::default(), &Uninterrupted).unwrap();
    assert_eq!(g.inputs.dim(), (0, 4, 2));
}

/// The caller's hook is polled between steps: its error stops a long
/// forward and a long backward pass.
#[test]
fn the_interrupt_hook_stops_forward_and_backward() {
    // long enough for the hook's period (it is polled at most every 200 ms)
    // in either profile: about a second
    let (time, memory_time, attention_units) = if cfg!(debug_assertions) {
        (20_000, 4, 32)
    } else {
        (40_000, 64, 256)
    };
    let z = Sizes {
        batch: 1,
        time,
        input: 1,
        units: 64,
        memory_time,
        depth: 4,
        attention_units,
        layer: None,
    };
    let case = Case::new(Kind::Basic, configs()[0], &z, vec![time as i64], 6);
    let cell = case.prepared();
    let parts = case.state_parts();
    let inputs = Inputs {
        x: case.get("inputs").view().into_dimensionality().unwrap(),
        lengths: None,
        initial_state: &parts,
        initial_attention: case
            .get("initial_attention")
            .view()
            .into_dimensionality()
            .unwrap(),
        memory: case.get("memory").view().into_dimensionality().unwrap(),
        memory_lengths: None,
    };
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let stop = || {
        calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Err(crate::Error::Interrupted)
    };
    let w = case.attention_weights();
    let e = forward(&cell, inputs, w.clone(), case.config, &stop).unwrap_err();
    assert_eq!(e, crate::Error::Interrupted);
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);
    let f = forward(&cell, inputs, w, case.config, &Uninterrupted).unwrap();
    let dy = f.outputs.clone();
    let incoming = Incoming {
        outputs: Some(dy.view()),
        ..Incoming::default()
    };
    let e = backward(&cell, &f.tape, incoming, &stop).unwrap_err();
    assert_eq!(e, crate::Error::Interrupted);
}
