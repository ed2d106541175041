//! The matrix-multiply seam: every product in the crate goes through here.
//!
//! Backend choice, measured with `cargo bench --bench gemm_backends` on the
//! project's 2-core AVX2/FMA machine (f32, one thread, GFLOP/s):
//!
//! | shape (m×k×n)            | matrixmultiply | gemm crate |
//! |--------------------------|---------------:|-----------:|
//! | 4×5×5 (tiny step)        |  2.1 (95 ns)   | 0.86 (232 ns) |
//! | 32×64×64 (small step)    | 77             | 96         |
//! | 64×256×256 (medium step) | 86             | 93         |
//! | 64×256×1024 (LSTM step)  | 73             | 89         |
//! | 6400×128×256 (hoisted)   | 90             | 98         |
//! | 256×6400×256 (dW, long K)| 81             | 90         |
//!
//! So the `gemm` crate runs everything except tiny products, where its
//! dispatch overhead dominates and `matrixmultiply` (through ndarray) wins.
//!
//! Threading is ours, not the backend's: [`par_gemm`] cuts the output into
//! tiles whose boundaries depend only on the shape, never on the thread
//! count, and each tile is a single-threaded product. Every output element
//! is therefore computed by the same instructions in the same order whatever
//! the pool size — results are bitwise identical for any thread count.

use crate::pool;
use crate::scalar::Scalar;
use ndarray::{linalg::general_mat_mul, s, ArrayView2, ArrayViewMut2, Axis};

/// Products with at most this many multiply-adds use `matrixmultiply`.
const TINY_FLOPS: usize = 16 * 16 * 16;
/// Products with fewer multiply-adds than this are not split into tiles.
const SPLIT_FLOPS: usize = 1 << 18;

/// `c = c + a @ b` when `accumulate`, else `c = a @ b`, single-threaded.
/// Views may have any strides (pass `x.t()` for a transpose).
pub fn gemm<T: Scalar>(
    accumulate: bool,
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    mut c: ArrayViewMut2<T>,
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
    let [a_rs, a_cs] = strides(a.strides());
    let [b_rs, b_cs] = strides(b.strides());
    let [c_rs, c_cs] = strides(c.strides());
    // SAFETY: the pointers and strides come from live ndarray views of the
    // stated shapes; `c` is borrowed mutably and cannot alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
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
            gemm::Parallelism::None,
        )
    }
}

fn strides(s: &[isize]) -> [isize; 2] {
    [s[0], s[1]]
}

/// Tile edge along a dimension of size `len`: about a quarter of it, rounded
/// up to a multiple of 16 (the kernels' register-tile granularity).
fn tile_edge(len: usize) -> usize {
    (len.div_ceil(4)).next_multiple_of(16).max(16)
}

/// Like [`gemm`], but split into shape-determined tiles that run on the
/// current rayon pool. Splits rows when there are many (the hoisted input
/// projection, `dX`), else columns (weight gradients, whose long `K` must
/// never be split: that would change the summation order).
pub fn par_gemm<T: Scalar>(
    accumulate: bool,
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    mut c: ArrayViewMut2<T>,
) {
    let (m, k) = a.dim();
    let n = b.dim().1;
    if m * n * k < SPLIT_FLOPS {
        return gemm(accumulate, a, b, c);
    }
    if m >= 64 {
        let edge = tile_edge(m);
        let tiles: Vec<_> = c.axis_chunks_iter_mut(Axis(0), edge).enumerate().collect();
        pool::for_each(tiles, |(i, c_tile)| {
            let rows = c_tile.nrows();
            gemm(
                accumulate,
                a.slice(s![i * edge..i * edge + rows, ..]),
                b,
                c_tile,
            )
        });
    } else {
        let edge = tile_edge(n);
        let tiles: Vec<_> = c.axis_chunks_iter_mut(Axis(1), edge).enumerate().collect();
        pool::for_each(tiles, |(j, c_tile)| {
            let cols = c_tile.ncols();
            gemm(
                accumulate,
                a,
                b.slice(s![.., j * edge..j * edge + cols]),
                c_tile,
            )
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

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
