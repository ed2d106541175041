//! The general matrix multiply: the hoisted input projections, the deferred
//! weight-gradient products, `d inputs`, and any product too small or oddly
//! laid out for the packed step kernel. (The time loops' per-step products
//! run over weights packed once, in [`super::packed`].)
//!
//! Backend choice (`cargo bench --bench gemm_backends`; figures in
//! `benches/README.md`): the `gemm` crate, with its run-time-chosen AVX-512
//! kernels (`x86-v4` feature), for everything but tiny products, where its
//! dispatch overhead dominates and `matrixmultiply` (through ndarray) wins.
//!
//! Threading: [`par_gemm`] lets the `gemm` crate spread one product over the
//! current pool. It splits only the output among threads and blocks `K` by
//! cache sizes alone, so every output element is computed by the same
//! instructions in the same order whatever the pool size — results are
//! bitwise identical for any thread count (tested below). Cutting the output
//! into our own tiles instead cost 25% on the long-`K` weight gradients (each
//! tile repacks the shared operand).

use super::rows::try_uninit;
use super::scalar::Scalar;
use crate::error::Result;
use crate::pool;
use ndarray::{linalg::general_mat_mul, Array2, ArrayView1, ArrayView2, ArrayViewMut2};
use std::mem::MaybeUninit;

/// Products with at most this many multiply-adds use `matrixmultiply`.
const TINY_FLOPS: usize = 16 * 16 * 16;
/// Products with fewer multiply-adds than this stay on one thread.
const SPLIT_FLOPS: usize = 1 << 18;

/// `c = c + a @ b` when `accumulate`, else `c = a @ b`, single-threaded.
/// Views may have any strides (pass `x.t()` for a transpose).
pub fn gemm<T: Scalar>(accumulate: bool, a: ArrayView2<T>, b: ArrayView2<T>, c: ArrayViewMut2<T>) {
    gemm_with(accumulate, a, b, c, 1)
}

fn gemm_with<T: Scalar>(
    accumulate: bool,
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    mut c: ArrayViewMut2<T>,
    threads: usize,
) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert!(k == k2 && c.dim() == (m, n), "gemm: shape mismatch");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(T::zero());
        }
        return;
    }
    if m * n * k <= TINY_FLOPS {
        let beta = if accumulate { T::one() } else { T::zero() };
        general_mat_mul(T::one(), &a, &b, beta, &mut c);
        return;
    }
    let [c_rs, c_cs] = strides(c.strides());
    // SAFETY: the pointer and strides come from a live, mutably borrowed
    // view of shape `[m, n]`, which cannot alias `a` or `b`.
    unsafe { gemm_raw(accumulate, a, b, c.as_mut_ptr(), [c_rs, c_cs], threads) }
}

/// `c (+)= a @ b` through the gemm crate, `c` given as a pointer and strides.
/// With `accumulate` false `c` is only written, never read.
///
/// # Safety
/// `c` with `c_strides` addresses `[a.nrows(), b.ncols()]` elements that are
/// valid for writes (and initialised when `accumulate`) and alias neither
/// operand; `a.ncols() == b.nrows() > 0`.
unsafe fn gemm_raw<T: Scalar>(
    accumulate: bool,
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    c: *mut T,
    [c_rs, c_cs]: [isize; 2],
    threads: usize,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    let [a_rs, a_cs] = strides(a.strides());
    let [b_rs, b_cs] = strides(b.strides());
    // SAFETY: the caller's contract; `a` and `b` are live views.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
            c_cs,
            c_rs,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            T::one(),
            T::one(),
            false,
            false,
            false,
            if threads > 1 {
                gemm::Parallelism::Rayon(threads)
            } else {
                gemm::Parallelism::None
            },
        )
    }
}

fn strides(s: &[isize]) -> [isize; 2] {
    [s[0], s[1]]
}

/// Like [`gemm()`], but on every thread of the current rayon pool (inline
/// when called from outside one). The `gemm` crate splits only the output's
/// rows and columns among threads, never `K`, and sizes its cache blocks from
/// the shape alone, so each element is summed in the same order whatever the
/// thread count: results are bitwise identical (tested below over many
/// shapes and thread counts).
pub fn par_gemm<T: Scalar>(
    accumulate: bool,
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    c: ArrayViewMut2<T>,
) {
    let threads = split_threads(a.nrows(), b.ncols(), a.ncols());
    gemm_with(accumulate, a, b, c, threads)
}

/// [`par_gemm`] when `parallel`, else [`gemm()`]: the same result either way
/// (for callers that already run on a thread of their own, such as a group's
/// time loop, while other groups use the other threads).
pub fn gemm_on<T: Scalar>(
    parallel: bool,
    accumulate: bool,
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    c: ArrayViewMut2<T>,
) {
    if parallel {
        par_gemm(accumulate, a, b, c)
    } else {
        gemm(accumulate, a, b, c)
    }
}

/// Threads an `[m, k] @ [k, n]` product is split over: the current pool's,
/// when called from it and the product is worth splitting, else one.
fn split_threads(m: usize, n: usize, k: usize) -> usize {
    if pool::in_pool() && m.saturating_mul(n).saturating_mul(k) >= SPLIT_FLOPS {
        rayon::current_num_threads()
    } else {
        1
    }
}

/// `a @ b` as a new standard-layout array, on every thread of the current
/// pool (like [`par_gemm`]). The result is written once, never zeroed first:
/// for the layer's large products (the hoisted input projection, `dX`) the
/// zeroing pass cost as much as a tenth of the forward pass.
pub fn par_product<T: Scalar>(a: ArrayView2<T>, b: ArrayView2<T>) -> Array2<T> {
    product_into(a, b, Array2::uninit((a.nrows(), b.ncols())))
}

/// [`par_product`] with the result allocated fallibly:
/// [`crate::Error::OutOfMemory`] naming `arg` and `what` when it cannot be.
pub fn try_par_product<T: Scalar>(
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    arg: &str,
    what: &str,
) -> Result<Array2<T>> {
    let c = try_uninit(a.nrows(), b.ncols(), arg, what)?;
    Ok(product_into(a, b, c))
}

/// `a @ b + bias` (each row plus `bias` `[n]`, when given) as a new
/// standard-layout array, on every thread of the current pool (like
/// [`par_gemm`]): a dense layer's forward product. The rows start as `bias`
/// and the product accumulates onto them, so the result is written in one
/// pass after the bias rows; each element is `bias + Σ`, rounded as
/// [`par_gemm`] rounds, whatever the thread count. Allocated fallibly
/// ([`crate::Error::OutOfMemory`] naming `arg` and `what`).
pub fn try_affine<T: Scalar>(
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    bias: Option<ArrayView1<T>>,
    arg: &str,
    what: &str,
) -> Result<Array2<T>> {
    let Some(bias) = bias else {
        return try_par_product(a, b, arg, what);
    };
    let n = b.ncols();
    assert_eq!(bias.len(), n, "gemm: bias length mismatch");
    let mut c = try_uninit(a.nrows(), n, arg, what)?;
    for mut row in c.rows_mut() {
        row.iter_mut()
            .zip(bias.iter())
            .for_each(|(c, &v)| *c = MaybeUninit::new(v));
    }
    // SAFETY: every element was just written (each row is a copy of `bias`).
    let mut c = unsafe { c.assume_init() };
    par_gemm(true, a, b, c.view_mut());
    Ok(c)
}

/// `a @ b` written into `c` (`[a.nrows(), b.ncols()]` in standard layout,
/// uninitialised), bitwise as [`gemm_on`]`(parallel, false, …)` writes it
/// into an initialised buffer; returns `c`, initialised.
pub fn product_into_uninit<'c, T: Scalar>(
    parallel: bool,
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    c: &'c mut [MaybeUninit<T>],
) -> &'c mut [T] {
    let (m, k) = a.dim();
    let n = b.ncols();
    assert_eq!(k, b.nrows(), "gemm: shape mismatch");
    assert_eq!(c.len(), m * n, "gemm: output length mismatch");
    let small = m.saturating_mul(n).saturating_mul(k) <= TINY_FLOPS || k == 0;
    if small {
        c.fill(MaybeUninit::new(T::zero()));
    } else {
        let threads = if parallel { split_threads(m, n, k) } else { 1 };
        // SAFETY: `c` holds `m * n` elements (checked above), addressed as
        // `[m, n]` with row stride `n`; it is a unique borrow, so it aliases
        // neither operand; `k > 0`. With `accumulate` false the gemm crate
        // writes every element without reading any.
        unsafe {
            gemm_raw(
                false,
                a,
                b,
                c.as_mut_ptr().cast::<T>(),
                [n as isize, 1],
                threads,
            );
        }
    }
    // SAFETY: every element was written above (zeros, or the product).
    let c = unsafe { std::slice::from_raw_parts_mut(c.as_mut_ptr().cast::<T>(), m * n) };
    if small {
        let view = ArrayViewMut2::from_shape((m, n), &mut *c).expect("m * n elements");
        gemm_on(parallel, false, a, b, view);
    }
    c
}

/// `a @ b` written into `c` (`[m, n]`, standard layout, uninitialised).
fn product_into<T: Scalar>(
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    mut c: Array2<MaybeUninit<T>>,
) -> Array2<T> {
    assert_eq!(
        c.dim(),
        (a.nrows(), b.ncols()),
        "gemm: output shape mismatch"
    );
    let data = c.as_slice_mut().expect("gemm: output not standard layout");
    product_into_uninit(true, a, b, data);
    // SAFETY: `product_into_uninit` wrote every element of `c`'s data.
    unsafe { c.assume_init() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
        let (m, k) = a.dim();
        let n = b.ncols();
        Array2::from_shape_fn((m, n), |(i, j)| (0..k).map(|p| a[[i, p]] * b[[p, j]]).sum())
    }

    fn filled(m: usize, n: usize, seed: usize) -> Array2<f64> {
        Array2::from_shape_fn((m, n), |(i, j)| {
            (((i * 31 + j * 17 + seed) % 23) as f64 - 11.0) / 7.0
        })
    }

    #[test]
    fn affine_adds_the_bias_to_the_product() {
        for &(m, k, n) in &[(3, 4, 5), (300, 70, 90), (0, 3, 4), (5, 0, 2)] {
            let a = filled(m, k, 1);
            let b = filled(k, n, 2);
            let bias = ndarray::Array1::from_shape_fn(n, |j| j as f64 - 1.5);
            let want = naive(&a, &b) + &bias;
            let got = try_affine(a.view(), b.view(), Some(bias.view()), "x", "z").expect("small");
            assert!((&got - &want).iter().all(|d| d.abs() < 1e-9), "{m}x{k}x{n}");
            let plain = try_affine(a.t().to_owned().t(), b.view(), None, "x", "z").expect("small");
            assert!(
                (&plain - &naive(&a, &b)).iter().all(|d| d.abs() < 1e-9),
                "{m}x{k}x{n}"
            );
        }
    }

    #[test]
    fn matches_naive_product_for_all_paths_and_strides() {
        for &(m, k, n) in &[
            (3, 4, 5),
            (40, 30, 20),
            (300, 70, 90),
            (20, 500, 300),
            (1, 1, 1),
        ] {
            let a = filled(m, k, 1);
            let b = filled(k, n, 2);
            let want = naive(&a, &b);
            let mut c = Array2::zeros((m, n));
            par_gemm(false, a.view(), b.view(), c.view_mut());
            assert!((&c - &want).iter().all(|d| d.abs() < 1e-9), "{m}x{k}x{n}");
            // accumulate, with transposed operands
            let at = a.t().to_owned();
            let bt = b.t().to_owned();
            par_gemm(true, at.t(), bt.t(), c.view_mut());
            assert!(
                (&c - &(2.0 * &want)).iter().all(|d| d.abs() < 1e-9),
                "acc {m}x{k}x{n}"
            );
        }
    }

    #[test]
    fn empty_k_clears_or_keeps() {
        let a = Array2::<f64>::zeros((3, 0));
        let b = Array2::<f64>::zeros((0, 2));
        let mut c = Array2::<f64>::ones((3, 2));
        gemm(true, a.view(), b.view(), c.view_mut());
        assert_eq!(c, Array2::<f64>::ones((3, 2)));
        gemm(false, a.view(), b.view(), c.view_mut());
        assert_eq!(c, Array2::<f64>::zeros((3, 2)));
    }

    #[test]
    fn results_are_independent_of_thread_count_over_many_shapes() {
        let mut seed = 1u64;
        let mut next = |hi: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            1 + (seed >> 33) as usize % hi
        };
        let pools: Vec<_> = (1..=4)
            .map(|n| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .unwrap()
            })
            .collect();
        for case in 0..120 {
            // shapes of the hoisted projection, the recurrent step and the long-K weight gradient
            let (m, k, n) = match case % 3 {
                0 => (64 * next(40), next(300), next(600)),
                1 => (next(70), next(600), next(1100)),
                _ => (next(300), 200 * next(40), next(600)),
            };
            let a = Array2::from_shape_fn((m, k), |(i, j)| {
                ((i * 31 + j * 17 + case) % 23) as f32 / 7.0 - 1.5
            });
            let b = Array2::from_shape_fn((k, n), |(i, j)| {
                ((i * 13 + j * 29 + case) % 19) as f32 / 5.0 - 1.8
            });
            let at = a.t().to_owned();
            let results: Vec<_> = pools
                .iter()
                .map(|p| {
                    let mut c = Array2::<f32>::zeros((m, n));
                    p.install(|| par_gemm(false, at.t(), b.view(), c.view_mut()));
                    p.install(|| par_gemm(true, a.view(), b.view(), c.view_mut()));
                    c
                })
                .collect();
            for r in &results[1..] {
                assert!(*r == results[0], "{m}x{k}x{n} differs across thread counts");
            }
        }
    }

    #[test]
    fn tiles_are_independent_of_thread_count() {
        let a = filled(700, 64, 3).mapv(|x| x as f32);
        let b = filled(64, 200, 4).mapv(|x| x as f32);
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut c = Array2::<f32>::zeros((700, 200));
            pool.install(|| par_gemm(false, a.view(), b.view(), c.view_mut()));
            c
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(3));
    }
}
