//! Criterion benches of the core API at the project's reference sizes:
//! every cell's forward pass and forward + BPTT (full and ragged batches for
//! the BasicRNNCell, every LSTM option, both GRU forms), and single steps at
//! B = 1 (the decoders' loop). Cells are built once, outside the timed loop,
//! as the Python cells build them once per set of weights.
//!
//! `cargo bench --bench rnn` (filter with e.g. `-- medium` or `-- step`).
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::{s, Array1, Array2, Array3, ArrayD};
use rnnrs::cell::gru::{GruWeights, ResetAfter, ResetBefore};
use rnnrs::cell::lstm::{Lstm, LstmOptions, LstmWeights, Peepholes};
use rnnrs::cell::{basic_rnn, basic_rnn::BasicRnn, gru, lstm};
use rnnrs::step::params::{Options, Value, Weights};
use rnnrs::{backward, forward, time_major_view, Activation, Cell, Prepared};

const SIZES: [(&str, usize, usize, usize, usize); 3] = [
    ("tiny", 4, 2, 3, 5),
    ("small", 32, 50, 32, 64),
    ("medium", 64, 100, 128, 256),
];

fn lcg(seed: &mut u64) -> f32 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

fn rand2(r: usize, c: usize, scale: f32, seed: &mut u64) -> Array2<f32> {
    Array2::from_shape_fn((r, c), |_| lcg(seed) * scale)
}

/// Inputs, output gradients and lengths (uniform in `[T/4, T]` when ragged).
struct Problem {
    x: Array3<f32>,
    dy: Array3<f32>,
    lengths: Option<Vec<i64>>,
}

fn problem(b: usize, t: usize, i: usize, out: usize, ragged: bool) -> Problem {
    let mut s = 42u64;
    Problem {
        x: Array3::from_shape_fn((b, t, i), |_| lcg(&mut s)),
        dy: Array3::from_shape_fn((b, t, out), |_| lcg(&mut s)),
        lengths: ragged.then(|| {
            (0..b)
                .map(|_| {
                    let u = (lcg(&mut s) + 1.0) / 2.0;
                    (t / 4) as i64 + ((t - t / 4) as f32 * u).round() as i64
                })
                .collect()
        }),
    }
}

/// Times `forward` and `forward + backward` of `cell` on `p`, from zero states.
fn bench_cell(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: &str,
    cell: &dyn Cell<f32>,
    p: &Problem,
) {
    let batch = p.x.dim().0;
    let h0: Vec<Array2<f32>> = cell
        .layout()
        .state
        .iter()
        .map(|part| Array2::zeros((batch, part.width)))
        .collect();
    let h0: Vec<_> = h0.iter().map(|a| a.view()).collect();
    let fwd = || {
        let x = time_major_view(p.x.view(), false);
        forward(cell, x, &h0, p.lengths.as_deref(), false).unwrap()
    };
    g.bench_function(BenchmarkId::new("forward", id), |bch| bch.iter(fwd));
    g.bench_function(BenchmarkId::new("train", id), |bch| {
        bch.iter(|| {
            let f = fwd();
            let dy = Some(time_major_view(p.dy.view(), false));
            backward(cell, &f.cache, dy, None).unwrap()
        })
    });
}

fn tokens(p: &Problem) -> u64 {
    let (b, t, _) = p.x.dim();
    p.lengths
        .as_ref()
        .map_or(b * t, |l| l.iter().sum::<i64>() as usize) as u64
}

/// `BasicRNNCell` (tanh), full and ragged batches.
fn bench_basic_rnn(c: &mut Criterion) {
    let mut g = c.benchmark_group("basic_rnn_f32");
    for &(name, b, t, i, h) in &SIZES {
        let mut s = 3u64;
        let kernel = rand2(i + h, h, (1.0 / (i + h) as f32).sqrt(), &mut s);
        let bias = Array1::<f32>::zeros(h);
        let cell = BasicRnn::new(Activation::Tanh, kernel.view(), bias.view()).unwrap();
        for ragged in [false, true] {
            let p = problem(b, t, i, h, ragged);
            g.throughput(Throughput::Elements(tokens(&p)));
            let id = format!("{name}_{}", if ragged { "ragged" } else { "full" });
            bench_cell(&mut g, &id, &cell, &p);
        }
    }
    g.finish();
}

/// `LSTMCell` (tanh, forget_bias 1): plain, and with every option
/// (peepholes, cell clip, projection to H/2 with clip).
fn bench_lstm(c: &mut Criterion) {
    let mut g = c.benchmark_group("lstm_f32");
    for &(name, b, t, i, h) in &SIZES {
        for full in [false, true] {
            let p_out = if full { h.div_ceil(2) } else { h };
            let mut s = 7u64;
            let scale = (1.0 / (i + p_out) as f32).sqrt();
            let kernel = rand2(i + p_out, 4 * h, scale, &mut s);
            let bias = Array1::<f32>::zeros(4 * h);
            let peep: Vec<Array1<f32>> = (0..3)
                .map(|_| Array1::from_shape_fn(h, |_| lcg(&mut s) * 0.1))
                .collect();
            let proj = rand2(h, p_out, scale, &mut s);
            let weights = LstmWeights {
                kernel: kernel.view(),
                bias: bias.view(),
                peepholes: full.then(|| Peepholes {
                    w_i_diag: peep[0].view(),
                    w_f_diag: peep[1].view(),
                    w_o_diag: peep[2].view(),
                }),
                projection: full.then(|| proj.view()),
            };
            let options = LstmOptions {
                cell_clip: full.then_some(3.0),
                proj_clip: full.then_some(3.0),
                ..LstmOptions::default()
            };
            let cell = Lstm::new(&weights, options).unwrap();
            let p = problem(b, t, i, p_out, false);
            g.throughput(Throughput::Elements(tokens(&p)));
            let id = format!("{name}_{}", if full { "all_options" } else { "plain" });
            bench_cell(&mut g, &id, &cell, &p);
        }
    }
    g.finish();
}

/// `GRUCell`, both forms, full batches.
fn bench_gru(c: &mut Criterion) {
    let mut g = c.benchmark_group("gru_f32");
    for &(name, b, t, i, h) in &SIZES {
        let mut seed = 7u64;
        let scale = (1.0 / (i + h) as f32).sqrt();
        let gk = rand2(i + h, 2 * h, scale, &mut seed);
        let ck = rand2(i + h, h, scale, &mut seed);
        let hk = rand2(h, h, scale, &mut seed);
        let (gb, cb) = (Array1::<f32>::ones(2 * h), Array1::<f32>::zeros(h));
        let tf1 = GruWeights::ResetBefore {
            gates_kernel: gk.view(),
            gates_bias: gb.view(),
            candidate_kernel: ck.view(),
            candidate_bias: cb.view(),
        };
        let after = GruWeights::ResetAfter {
            gates_kernel: gk.view(),
            gates_bias: gb.view(),
            input_kernel: ck.slice(s![..i, ..]),
            hidden_kernel: hk.view(),
            input_bias: cb.view(),
            hidden_bias: cb.view(),
        };
        let cells: [(&str, Box<dyn Cell<f32>>); 2] = [
            (
                "tf1",
                Box::new(ResetBefore::new(Activation::Tanh, tf1).unwrap()),
            ),
            (
                "reset_after",
                Box::new(ResetAfter::new(Activation::Tanh, after).unwrap()),
            ),
        ];
        let p = problem(b, t, i, h, false);
        g.throughput(Throughput::Elements(tokens(&p)));
        for (form, cell) in &cells {
            bench_cell(&mut g, &format!("{name}_{form}"), cell.as_ref(), &p);
        }
    }
    g.finish();
}

/// One step at B = 1 (I = H) of every cell, through the stepper that holds
/// the state and buffers: what a greedy decoder's loop costs per step.
fn bench_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("step_f32");
    for h in [64usize, 256] {
        let i = h;
        let mut s = 11u64;
        let scale = (1.0 / (i + h) as f32).sqrt();
        let mut arr = |shape: &[usize]| -> ArrayD<f32> {
            ArrayD::from_shape_fn(shape, |_| lcg(&mut s) * scale)
        };
        let rnn = [("kernel", arr(&[i + h, h])), ("bias", arr(&[h]))];
        let lstm_w = [("kernel", arr(&[i + h, 4 * h])), ("bias", arr(&[4 * h]))];
        let gru_w = [
            ("gates/kernel", arr(&[i + h, 2 * h])),
            ("gates/bias", arr(&[2 * h])),
            ("candidate/input_kernel", arr(&[i, h])),
            ("candidate/hidden_kernel", arr(&[h, h])),
            ("candidate/input_bias", arr(&[h])),
            ("candidate/hidden_bias", arr(&[h])),
        ];
        let cells: [(&str, Box<dyn Cell<f32>>); 3] = [
            (
                "rnn",
                basic_rnn::build(Options::default(), named(&rnn)).unwrap(),
            ),
            (
                "lstm",
                lstm::build(Options::default(), named(&lstm_w)).unwrap(),
            ),
            (
                "gru",
                gru::build(
                    Options::default().with("reset_after", Value::Bool(true)),
                    named(&gru_w),
                )
                .unwrap(),
            ),
        ];
        let x = Array2::from_shape_fn((1, i), |_| lcg(&mut s));
        for (name, cell) in cells {
            let prepared = Prepared::new(cell);
            let zeros: Vec<Array2<f32>> = prepared
                .cell()
                .layout()
                .state
                .iter()
                .map(|p| Array2::zeros((1, p.width)))
                .collect();
            let views: Vec<_> = zeros.iter().map(|a| a.view()).collect();
            let mut stepper = prepared.stepper("state", &views).unwrap();
            g.bench_function(BenchmarkId::new(name, format!("B1_H{h}")), |bch| {
                bch.iter(|| {
                    stepper.step(x.view()).unwrap();
                })
            });
        }
    }
    g.finish();
}

/// Borrowed named weights.
fn named<'a>(w: &'a [(&'static str, ArrayD<f32>)]) -> Weights<'a, f32> {
    Weights::new(w.iter().map(|(n, a)| (*n, a.view())).collect())
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench_basic_rnn, bench_lstm, bench_gru, bench_step
}
criterion_main!(benches);
