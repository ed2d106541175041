//! Chooses the GEMM seam's backend with figures: ndarray's default
//! (`matrixmultiply`) against the `gemm` crate, single-threaded, on the shapes
//! the RNN layer issues (the hoisted input projection, the small-M recurrent
//! step, and the deferred weight-gradient GEMM with a long K).
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::{linalg::general_mat_mul, Array2};

fn gemm_crate(a: &Array2<f32>, b: &Array2<f32>, c: &mut Array2<f32>) {
    let (m, k) = a.dim();
    let n = b.dim().1;
    // SAFETY: the three arrays are standard-layout and sized m×k, k×n, m×n.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// `C [m, n] = A [m, k] @ B [k, n]` computed as `Cᵀ = Bᵀ @ Aᵀ` by the gemm
/// crate (the same row-major buffers, strides swapped): the recurrent step
/// with the weights' wide side as the kernel's M.
fn gemm_crate_transposed(a: &Array2<f32>, b: &Array2<f32>, c: &mut Array2<f32>) {
    let (m, k) = a.dim();
    let n = b.dim().1;
    // SAFETY: as in `gemm_crate`, read through transposed strides.
    unsafe {
        gemm::gemm(
            n,
            m,
            k,
            c.as_mut_ptr(),
            n as isize,
            1,
            false,
            b.as_ptr(),
            n as isize,
            1,
            a.as_ptr(),
            k as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

fn bench_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("recurrent_step_f32");
    for &(m, k, n) in &[
        (16, 256, 256),
        (32, 256, 256),
        (64, 256, 256),
        (16, 256, 1024),
        (32, 256, 1024),
        (64, 256, 1024),
    ] {
        let a = Array2::<f32>::from_shape_fn((m, k), |(i, j)| ((i * 7 + j * 3) % 11) as f32 * 0.1);
        let b = Array2::<f32>::from_shape_fn((k, n), |(i, j)| ((i * 5 + j) % 13) as f32 * 0.1);
        let mut out = Array2::<f32>::zeros((m, n));
        let mut out2 = Array2::<f32>::zeros((m, n));
        gemm_crate(&a, &b, &mut out);
        gemm_crate_transposed(&a, &b, &mut out2);
        assert_eq!(out, out2);
        let name = format!("{m}x{k}x{n}");
        g.throughput(Throughput::Elements((2 * m * k * n) as u64));
        g.bench_with_input(BenchmarkId::new("gemm", &name), &(), |bch, _| {
            bch.iter(|| gemm_crate(&a, &b, &mut out))
        });
        g.bench_with_input(BenchmarkId::new("gemm_transposed", &name), &(), |bch, _| {
            bch.iter(|| gemm_crate_transposed(&a, &b, &mut out))
        });
        g.bench_with_input(BenchmarkId::new("matrixmultiply", &name), &(), |bch, _| {
            bch.iter(|| general_mat_mul(1.0, &a, &b, 0.0, &mut out))
        });
        // the weights packed once per layer call (rnnrs::kernels::packed), as the time loop runs them
        let packed = rnnrs::kernels::packed::PackedB::new(b.view());
        g.bench_with_input(BenchmarkId::new("packed", &name), &(), |bch, _| {
            bch.iter(|| packed.gemm(false, a.view(), out.view_mut()))
        });
        // the backward step's `dZ @ W_hᵀ`: the weights read through a transposed view
        let b_t = b.t().to_owned();
        g.bench_with_input(
            BenchmarkId::new("seam_rhs_transposed_view", &name),
            &(),
            |bch, _| {
                bch.iter(|| rnnrs::kernels::gemm::gemm(false, a.view(), b_t.t(), out.view_mut()))
            },
        );
        g.bench_with_input(
            BenchmarkId::new("seam_rhs_contiguous", &name),
            &(),
            |bch, _| {
                bch.iter(|| rnnrs::kernels::gemm::gemm(false, a.view(), b.view(), out.view_mut()))
            },
        );
    }
    g.finish();
}

fn bench(c: &mut Criterion) {
    // (name, m, k, n)
    let shapes = [
        ("tiny_step", 4, 5, 5),
        ("small_step", 32, 64, 64),
        ("medium_step", 64, 256, 256),
        ("medium_step_lstm", 64, 256, 1024),
        ("small_hoisted", 1600, 32, 64),
        ("medium_hoisted", 6400, 128, 256),
        ("medium_dw_longk_T", 256, 6400, 256),
    ];
    let mut g = c.benchmark_group("gemm_f32");
    for &(name, m, k, n) in &shapes {
        let a = Array2::<f32>::from_shape_fn((m, k), |(i, j)| ((i * 7 + j * 3) % 11) as f32 * 0.1);
        let b = Array2::<f32>::from_shape_fn((k, n), |(i, j)| ((i * 5 + j) % 13) as f32 * 0.1);
        let mut out = Array2::<f32>::zeros((m, n));
        g.throughput(Throughput::Elements((2 * m * k * n) as u64));
        g.bench_with_input(BenchmarkId::new("matrixmultiply", name), &(), |bch, _| {
            bch.iter(|| general_mat_mul(1.0, &a, &b, 0.0, &mut out))
        });
        g.bench_with_input(BenchmarkId::new("gemm", name), &(), |bch, _| {
            bch.iter(|| gemm_crate(&a, &b, &mut out))
        });
    }
    g.finish();
}

/// The packed step kernel in f64 against the gemm crate (through the seam).
fn bench_step_f64(c: &mut Criterion) {
    let mut g = c.benchmark_group("recurrent_step_f64");
    for &(m, k, n) in &[(16, 256, 256), (32, 256, 1024), (64, 256, 256)] {
        let a = Array2::<f64>::from_shape_fn((m, k), |(i, j)| ((i * 7 + j * 3) % 11) as f64 * 0.1);
        let b = Array2::<f64>::from_shape_fn((k, n), |(i, j)| ((i * 5 + j) % 13) as f64 * 0.1);
        let mut out = Array2::<f64>::zeros((m, n));
        let name = format!("{m}x{k}x{n}");
        g.throughput(Throughput::Elements((2 * m * k * n) as u64));
        g.bench_with_input(BenchmarkId::new("seam", &name), &(), |bch, _| {
            bch.iter(|| rnnrs::kernels::gemm::gemm(false, a.view(), b.view(), out.view_mut()))
        });
        let packed = rnnrs::kernels::packed::PackedB::new(b.view());
        g.bench_with_input(BenchmarkId::new("packed", &name), &(), |bch, _| {
            bch.iter(|| packed.gemm(false, a.view(), out.view_mut()))
        });
    }
    g.finish();
}

/// The LSTM backward's deferred products at the medium size (B64 T100 I128
/// H256, 6400 tokens), through `par_gemm` in a pool of 1 and of 2 threads.
fn bench_deferred(c: &mut Criterion) {
    let mut g = c.benchmark_group("deferred_f32");
    let r = 6400;
    let dz = Array2::<f32>::from_shape_fn((r, 1024), |(i, j)| ((i * 7 + j * 3) % 11) as f32 * 0.1);
    let m = Array2::<f32>::from_shape_fn((r, 256), |(i, j)| ((i * 5 + j) % 13) as f32 * 0.1);
    let w_x = Array2::<f32>::from_shape_fn((128, 1024), |(i, j)| ((i + j) % 7) as f32 * 0.1);
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut dw = Array2::<f32>::zeros((256, 1024));
        g.throughput(Throughput::Elements((2 * 256 * r * 1024) as u64));
        g.bench_function(BenchmarkId::new("dW_h=Mt_dZ", threads), |bch| {
            bch.iter(|| {
                pool.install(|| {
                    rnnrs::kernels::gemm::par_gemm(false, m.t(), dz.view(), dw.view_mut())
                })
            })
        });
        let mut dx = Array2::<f32>::zeros((r, 128));
        g.throughput(Throughput::Elements((2 * 128 * r * 1024) as u64));
        g.bench_function(BenchmarkId::new("dX=dZ_Wxt", threads), |bch| {
            bch.iter(|| {
                pool.install(|| {
                    rnnrs::kernels::gemm::par_gemm(false, dz.view(), w_x.t(), dx.view_mut())
                })
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(300)).measurement_time(std::time::Duration::from_secs(1));
    targets = bench, bench_step, bench_step_f64, bench_deferred
}
criterion_main!(benches);
