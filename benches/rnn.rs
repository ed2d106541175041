//! Criterion benches of the core API: `BasicRNNCell` forward and
//! forward + BPTT at the project's reference sizes, full and ragged batches.
//!
//! `cargo bench --bench rnn` (filter with e.g. `-- medium`).
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::{Array1, Array2, Array3};
use rnnrs::{basic_rnn_backward, basic_rnn_forward, time_major_view, Activation};

struct Problem {
    x: Array3<f32>,
    h0: Array2<f32>,
    kernel: Array2<f32>,
    bias: Array1<f32>,
    dy: Array3<f32>,
    lengths: Option<Vec<i64>>,
}

fn lcg(seed: &mut u64) -> f32 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

fn problem(b: usize, t: usize, i: usize, h: usize, ragged: bool) -> Problem {
    let mut s = 42u64;
    let scale = (1.0 / (i + h) as f32).sqrt();
    Problem {
        x: Array3::from_shape_fn((b, t, i), |_| lcg(&mut s)),
        h0: Array2::zeros((b, h)),
        kernel: Array2::from_shape_fn((i + h, h), |_| lcg(&mut s) * scale),
        bias: Array1::zeros(h),
        dy: Array3::from_shape_fn((b, t, h), |_| lcg(&mut s)),
        // lengths uniform in [T/4, T]
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

fn bench(c: &mut Criterion) {
    let sizes = [
        ("tiny", 4, 2, 3, 5),
        ("small", 32, 50, 32, 64),
        ("medium", 64, 100, 128, 256),
    ];
    let mut g = c.benchmark_group("basic_rnn_f32");
    for &(name, b, t, i, h) in &sizes {
        for ragged in [false, true] {
            let p = problem(b, t, i, h, ragged);
            let id = format!("{name}_{}", if ragged { "ragged" } else { "full" });
            let tokens = p
                .lengths
                .as_ref()
                .map_or(b * t, |l| l.iter().sum::<i64>() as usize);
            g.throughput(Throughput::Elements(tokens as u64));
            let fwd = || {
                basic_rnn_forward(
                    time_major_view(p.x.view(), false),
                    p.h0.view(),
                    p.kernel.view(),
                    p.bias.view(),
                    p.lengths.as_deref(),
                    Activation::Tanh,
                    false,
                )
                .unwrap()
            };
            g.bench_function(BenchmarkId::new("forward", &id), |bch| bch.iter(fwd));
            g.bench_function(BenchmarkId::new("train", &id), |bch| {
                bch.iter(|| {
                    let f = fwd();
                    basic_rnn_backward(
                        &f.cache,
                        p.kernel.view(),
                        Some(time_major_view(p.dy.view(), false)),
                        None,
                    )
                    .unwrap()
                })
            });
        }
    }
    g.finish();
}

/// `LSTMCell` (tanh, forget_bias 1) at the same sizes: plain, and with every
/// option (peepholes, cell clip, projection to H/2 with clip).
fn bench_lstm(c: &mut Criterion) {
    use rnnrs::{lstm_backward, lstm_forward, LstmOptions, LstmWeights, Peepholes};
    let sizes: [(&str, usize, usize, usize, usize); 3] = [
        ("tiny", 4, 2, 3, 5),
        ("small", 32, 50, 32, 64),
        ("medium", 64, 100, 128, 256),
    ];
    let mut g = c.benchmark_group("lstm_f32");
    for &(name, b, t, i, h) in &sizes {
        for full in [false, true] {
            let p_out = if full { h.div_ceil(2) } else { h };
            let mut s = 7u64;
            let scale = (1.0 / (i + p_out) as f32).sqrt();
            let x = Array3::from_shape_fn((b, t, i), |_| lcg(&mut s));
            let dy = Array3::from_shape_fn((b, t, p_out), |_| lcg(&mut s));
            let (c0, m0) = (
                Array2::<f32>::zeros((b, h)),
                Array2::<f32>::zeros((b, p_out)),
            );
            let kernel = Array2::from_shape_fn((i + p_out, 4 * h), |_| lcg(&mut s) * scale);
            let bias = Array1::<f32>::zeros(4 * h);
            let peep: Vec<Array1<f32>> = (0..3)
                .map(|_| Array1::from_shape_fn(h, |_| lcg(&mut s) * 0.1))
                .collect();
            let proj = Array2::from_shape_fn((h, p_out), |_| lcg(&mut s) * scale);
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
            let id = format!("{name}_{}", if full { "all_options" } else { "plain" });
            g.throughput(Throughput::Elements((b * t) as u64));
            let fwd = || {
                let xv = time_major_view(x.view(), false);
                lstm_forward(xv, c0.view(), m0.view(), &weights, None, options, false).unwrap()
            };
            g.bench_function(BenchmarkId::new("forward", &id), |bch| bch.iter(fwd));
            g.bench_function(BenchmarkId::new("train", &id), |bch| {
                bch.iter(|| {
                    let f = fwd();
                    let dyv = Some(time_major_view(dy.view(), false));
                    lstm_backward(&f.cache, &weights, dyv, None, None).unwrap()
                })
            });
        }
    }
    g.finish();
}

/// `GRUCell`, both forms, at the same sizes (full batches): forward and
/// forward + BPTT.
fn bench_gru(c: &mut Criterion) {
    use ndarray::s;
    use rnnrs::{gru_backward, gru_forward, GruWeights};
    let mut g = c.benchmark_group("gru_f32");
    for &(name, b, t, i, h) in &[
        ("tiny", 4, 2, 3, 5),
        ("small", 32, 50, 32, 64),
        ("medium", 64, 100, 128, 256),
    ] {
        let p = problem(b, t, i, h, false);
        let mut seed = 7u64;
        let scale = (1.0 / (i + h) as f32).sqrt();
        let mut rand2 =
            |r: usize, c: usize| Array2::from_shape_fn((r, c), |_| lcg(&mut seed) * scale);
        let (gk, ck, hk) = (rand2(i + h, 2 * h), rand2(i + h, h), rand2(h, h));
        let (gb, cb) = (Array1::<f32>::ones(2 * h), Array1::<f32>::zeros(h));
        let forms = [
            GruWeights::ResetBefore {
                gates_kernel: gk.view(),
                gates_bias: gb.view(),
                candidate_kernel: ck.view(),
                candidate_bias: cb.view(),
            },
            GruWeights::ResetAfter {
                gates_kernel: gk.view(),
                gates_bias: gb.view(),
                input_kernel: ck.slice(s![..i, ..]),
                hidden_kernel: hk.view(),
                input_bias: cb.view(),
                hidden_bias: cb.view(),
            },
        ];
        g.throughput(Throughput::Elements((b * t) as u64));
        for w in forms {
            let id = format!(
                "{name}_{}",
                if w.reset_after() {
                    "reset_after"
                } else {
                    "tf1"
                }
            );
            let fwd = || {
                let x = time_major_view(p.x.view(), false);
                gru_forward(x, p.h0.view(), w, None, Activation::Tanh, false).unwrap()
            };
            g.bench_function(BenchmarkId::new("forward", &id), |bch| bch.iter(fwd));
            g.bench_function(BenchmarkId::new("train", &id), |bch| {
                bch.iter(|| {
                    let f = fwd();
                    let dy = Some(time_major_view(p.dy.view(), false));
                    gru_backward(&f.cache, w, dy, None).unwrap()
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench, bench_lstm, bench_gru
}
criterion_main!(benches);
