//! The pieces of a softmax over a row of logits, vectorised: a branch-free
//! `exp` for `f32` ([`exp_f32`]; `f64` uses [`exp_f64`]), a row's largest
//! entry ([`max`]), the sum of its shifted exponentials ([`sum_exp`]) and
//! the index of its first maximum ([`argmax`]), and [`vectorized`], which
//! runs work compiled for the CPU's widest vectors.
//!
//! Every reduction runs over [`LANES`] accumulators (element `i` into
//! accumulator `i % LANES`) combined in a fixed order, so a result depends
//! on the row alone: never on the vector width or the thread count.

use crate::kernels::packed::Isa;
use crate::kernels::scalar::{exp_f64, Scalar};
use std::any::TypeId;

/// The accumulators of a reduction (one AVX-512 vector of `f32`).
pub const LANES: usize = 16;

/// `exp(x)` for `f32`, after Cephes' `expf` (relative error below 3e-7),
/// branch-free so that loops over it vectorise. NaN stays NaN, `+inf` and
/// anything above 88.72 give `+inf`; `x < -86.6` gives 0 (the true value is
/// below 2.5e-38, the smallest normal number's order).
// Coefficients as published; comparisons written so NaN passes (not clamp).
#[allow(clippy::excessive_precision, clippy::manual_clamp)]
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_375;
    const C2: f32 = -2.121_944_4e-4;
    // Adding 1.5·2^23 rounds to an integer held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    const HI: f32 = 88.72;
    const LO: f32 = -86.6;
    let xc = if x > HI {
        HI
    } else if x < LO {
        LO
    } else {
        x
    };
    // Fused multiply-adds throughout (see `tanh_f32`).
    let t = xc.mul_add(LOG2E, ROUND);
    let n = t - ROUND;
    let r = (-n).mul_add(C2, (-n).mul_add(C1, xc));
    let p = 1.987_569_15e-4_f32
        .mul_add(r, 1.398_199_95e-3)
        .mul_add(r, 8.333_451_9e-3)
        .mul_add(r, 4.166_579_6e-2)
        .mul_add(r, 1.666_666_55e-1)
        .mul_add(r, 5.000_000_1e-1);
    let e = p.mul_add(r * r, r) + 1.0;
    // 2^(n-1) (n in [-125, 128]: the biased exponent n + 126 is in [1, 254]),
    // then × 2.
    let scale = f32::from_bits((t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(126)) << 23);
    let y = e * scale * 2.0;
    if x > HI {
        f32::INFINITY
    } else if x < LO {
        0.0
    } else {
        y
    }
}

/// `exp(x)`: [`exp_f32`] or [`exp_f64`].
#[inline(always)]
pub fn exp<T: Scalar>(x: T) -> T {
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        // SAFETY: `T` is `f32` (checked just above), so both copies are of
        // the same type.
        let y = exp_f32(unsafe { std::mem::transmute_copy::<T, f32>(&x) });
        // SAFETY: as above.
        unsafe { std::mem::transmute_copy::<f32, T>(&y) }
    } else {
        // `Scalar` is sealed to f32 and f64: here `T` is `f64`.
        // SAFETY: `T` is `f64`, so both copies are of the same type.
        let y = exp_f64(unsafe { std::mem::transmute_copy::<T, f64>(&x) });
        // SAFETY: as above.
        unsafe { std::mem::transmute_copy::<f64, T>(&y) }
    }
}

/// The largest entry of `row`, NaNs skipped (`-inf` when there is none).
#[inline(always)]
pub fn max<T: Scalar>(row: &[T]) -> T {
    let lowest = T::from_f64(f64::NEG_INFINITY);
    let mut acc = [lowest; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            if v > *a {
                *a = v;
            }
        }
    }
    let mut m = lowest;
    for &v in acc.iter().chain(tail) {
        if v > m {
            m = v;
        }
    }
    m
}

/// `Σ exp(row[i] - shift)`, in a fixed order (see the module).
#[inline(always)]
pub fn sum_exp<T: Scalar>(row: &[T], shift: T) -> T {
    let mut acc = [T::zero(); LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += exp(v - shift);
        }
    }
    let mut width = LANES / 2;
    while width > 0 {
        for i in 0..width {
            let upper = acc[i + width];
            acc[i] += upper;
        }
        width /= 2;
    }
    let mut sum = acc[0];
    for &v in tail {
        sum += exp(v - shift);
    }
    sum
}

/// The index of the first maximum of `row` (NumPy's `argmax`: the first
/// NaN when there is one; 0 for an empty row).
#[inline(always)]
pub fn argmax<T: Scalar>(row: &[T]) -> usize {
    let mut nan = false;
    for c in row.chunks(LANES) {
        let mut any = false;
        for &v in c {
            any |= v.partial_cmp(&v).is_none();
        }
        nan |= any;
    }
    if nan {
        return row
            .iter()
            .position(|v| v.partial_cmp(v).is_none())
            .unwrap_or(0);
    }
    let m = max(row);
    row.iter().position(|&v| v == m).unwrap_or(0)
}

/// Work to compile for the CPU's widest vectors (see [`vectorized`]): its
/// `run` must be `#[inline(always)]`, and so must every function it calls
/// in its hot loops, so that they are compiled inside the vector entry.
pub trait Vectorized {
    /// What the work returns.
    type Output;
    /// Does the work.
    fn run(self) -> Self::Output;
}

/// Runs `work` compiled for the CPU's widest vectors (AVX-512F or AVX2 when
/// present). Its results must not depend on the vector width: plain
/// arithmetic qualifies (rustc never fuses a multiply and an add by itself).
#[inline]
pub fn vectorized<W: Vectorized>(work: W) -> W::Output {
    match Isa::detect() {
        // SAFETY: this CPU has AVX-512F (detected).
        Isa::Avx512 => unsafe { on_avx512(work) },
        // SAFETY: this CPU has AVX2 and FMA (detected).
        Isa::Avx2 => unsafe { on_avx2(work) },
        Isa::Generic => work.run(),
    }
}

/// # Safety
/// The CPU has AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn on_avx512<W: Vectorized>(work: W) -> W::Output {
    work.run()
}

/// # Safety
/// The CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn on_avx2<W: Vectorized>(work: W) -> W::Output {
    work.run()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_f32_is_accurate() {
        let mut worst = 0.0f64;
        let mut x = -86.0f32;
        while x < 88.5 {
            let want = (x as f64).exp();
            let got = exp_f32(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.000_37;
        }
        assert!(worst < 3e-7, "max relative error {worst}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-0.0), 1.0);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-100.0), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
    }

    #[test]
    fn reductions_match_plain_loops() {
        for n in [0usize, 1, 15, 16, 17, 100, 5000] {
            let row: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let m = max(&row);
            let want = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(m, want);
            let s = sum_exp(&row, m) as f64;
            let exact: f64 = row.iter().map(|&v| ((v - m) as f64).exp()).sum();
            assert!(
                (s - exact).abs() <= 1e-5 * exact.max(1.0),
                "{n}: {s} vs {exact}"
            );
            let first = (0..n).find(|&i| row[i] == want).unwrap_or(0);
            assert_eq!(argmax(&row), first);
            let r64: Vec<f64> = row.iter().map(|&v| v as f64).collect();
            assert_eq!(argmax(&r64), first);
            // the same bits on every instruction set
            struct Sum<'a>(&'a [f32], f32);
            impl Vectorized for Sum<'_> {
                type Output = f32;
                #[inline(always)]
                fn run(self) -> f32 {
                    sum_exp(self.0, self.1)
                }
            }
            assert_eq!(
                vectorized(Sum(&row, m)).to_bits(),
                sum_exp(&row, m).to_bits()
            );
        }
    }

    #[test]
    fn argmax_takes_the_first_nan_and_the_first_tie() {
        let mut row = vec![0.0f32; 40];
        row[7] = 2.0;
        row[30] = 2.0;
        assert_eq!(argmax(&row), 7);
        row[20] = f32::NAN;
        row[35] = f32::NAN;
        assert_eq!(argmax(&row), 20);
        assert_eq!(max(&row), 2.0);
    }
}
