//! The floating-point trait every kernel is generic over (`f32`, `f64`).

use std::fmt::Debug;
use std::ops::{AddAssign, Neg};

mod sealed {
    /// Only `f32` and `f64` are [`super::Scalar`]s: the SIMD kernels exist
    /// for exactly those two.
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A float the numeric core computes in: `f32` or `f64` (sealed).
pub trait Scalar:
    ndarray::LinalgScalar
    + sealed::Sealed
    + Debug
    + Default
    + PartialOrd
    + Neg<Output = Self>
    + AddAssign
    + Send
    + Sync
    + 'static
{
    /// The type's name as NumPy spells it.
    const NAME: &'static str;
    /// Converts a literal.
    fn from_f64(x: f64) -> Self;
    /// Hyperbolic tangent, NaN-preserving and branch-free so that loops over
    /// it vectorise: `f32` a rational approximation (max abs error below
    /// 1e-6), `f64` Cephes' (relative error below 1e-15).
    fn tanh(self) -> Self;
    /// Logistic sigmoid `1 / (1 + exp(-x))`, NaN-preserving.
    fn sigmoid(self) -> Self;
}

impl Scalar for f32 {
    const NAME: &'static str = "float32";
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        tanh_f32(self)
    }
    #[inline(always)]
    fn sigmoid(self) -> Self {
        // 0.5·t is exact, so the fused form rounds as the unfused one.
        tanh_f32(0.5 * self).mul_add(0.5, 0.5)
    }
}

impl Scalar for f64 {
    const NAME: &'static str = "float64";
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        tanh_f64(self)
    }
    #[inline(always)]
    fn sigmoid(self) -> Self {
        1.0 / (1.0 + exp_f64(-self))
    }
}

/// Rational (13/6) minimax approximation of tanh on [-c, c], as in Eigen's
/// `generic_fast_tanh_float`; saturates to ±1 outside. Branch-free so that
/// loops over it vectorise; comparisons are written so NaN passes through.
///
/// The polynomials are evaluated with `mul_add` (as are those of
/// [`exp_f64`], [`tanh_f64`] and `softmax::exp_f32`): call them from a
/// multiversioned kernel or [`super::softmax::vectorized`], where each is one
/// FMA instruction. Compiled for the baseline x86-64 target, each `mul_add`
/// is a call to a software FMA: the same value, many times slower.
// Not `clamp`: `f32::clamp` would turn NaN into a bound; these comparisons
// let it through. The coefficients are kept as published.
#[allow(clippy::manual_clamp, clippy::excessive_precision)]
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    const CLAMP: f32 = 7.998_811_7;
    let xc = if x > CLAMP {
        CLAMP
    } else if x < -CLAMP {
        -CLAMP
    } else {
        x
    };
    let x2 = xc * xc;
    // Horner steps as fused multiply-adds: one instruction each in the
    // kernels compiled for FMA (all the multiversioned ones), and bitwise the
    // same result elsewhere (`mul_add` rounds once by definition).
    let mut p = -2.760_768_5e-16_f32;
    p = p.mul_add(x2, 2.000_187_9e-13);
    p = p.mul_add(x2, -8.604_671_5e-11);
    p = p.mul_add(x2, 5.122_297e-8);
    p = p.mul_add(x2, 1.485_722_4e-5);
    p = p.mul_add(x2, 6.372_619_3e-4);
    p = p.mul_add(x2, 4.893_524_6e-3);
    p *= xc;
    let mut q = 1.198_258_4e-6_f32;
    q = q.mul_add(x2, 1.185_347e-4);
    q = q.mul_add(x2, 2.268_434_6e-3);
    q = q.mul_add(x2, 4.893_525e-3);
    let y = p / q;
    // Below 4e-4 tanh(x) == x to f32 precision, and from 9 on it rounds to
    // ±1: return those exactly.
    let ax = x.abs();
    if ax < 4e-4 {
        x
    } else if ax >= 9.0 {
        1.0f32.copysign(x)
    } else {
        y
    }
}

/// `exp(x)` for `f64`, after Cephes' `exp`: `x = n·ln2 + r` with
/// `|r| <= ln2/2`, `exp(r)` from a rational function, `2^n` put into the
/// exponent bits. Relative error below 5e-16; `+inf` above 709.78, `0` below
/// -708 (where the true value is subnormal); NaN passes through. Branch-free
/// (selects only) so that loops over it vectorise.
// Coefficients as published; comparisons written so NaN passes (not clamp).
#[allow(clippy::excessive_precision, clippy::manual_clamp)]
#[inline(always)]
pub fn exp_f64(x: f64) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    const C1: f64 = 6.931_457_519_531_25e-1;
    const C2: f64 = 1.428_606_820_309_417_232_12e-6;
    // Adding 1.5·2^52 rounds to an integer held in the low mantissa bits.
    const ROUND: f64 = 6_755_399_441_055_744.0;
    let xc = if x > 709.78 {
        709.78
    } else if x < -708.0 {
        -708.0
    } else {
        x
    };
    // Fused multiply-adds throughout, as in `tanh_f32`.
    let t = xc.mul_add(LOG2E, ROUND);
    let n = t - ROUND;
    let r = (-n).mul_add(C2, (-n).mul_add(C1, xc));
    let rr = r * r;
    let px = r * 1.261_771_930_748_105_908_78e-4_f64
        .mul_add(rr, 3.029_944_077_074_419_613e-2)
        .mul_add(rr, 9.999_999_999_999_999_999_1e-1);
    let q = 3.001_985_051_386_644_550_42e-6_f64
        .mul_add(rr, 2.524_483_403_496_841_041_92e-3)
        .mul_add(rr, 2.272_655_482_081_550_287_66e-1)
        .mul_add(rr, 2.000_000_000_000_000_000_09);
    let e = 1.0 + 2.0 * (px / (q - px));
    // 2^(n-1): n = the low bits of t (two's complement), n - 1 + 1023 in the
    // exponent (n reaches 1024, one above the largest exponent); then × 2.
    let scale =
        f64::from_bits((t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(1022)) << 52);
    let y = e * scale * 2.0;
    if x > 709.78 {
        f64::INFINITY
    } else if x < -708.0 {
        0.0
    } else {
        y
    }
}

/// `tanh(x)` for `f64`, after Cephes' `tanh`: a rational function below
/// |x| = 0.625, `1 - 2/(exp(2|x|) + 1)` above. Relative error below 1e-15;
/// NaN passes through; branch-free so that loops over it vectorise.
#[allow(clippy::excessive_precision)]
#[inline(always)]
pub fn tanh_f64(x: f64) -> f64 {
    let ax = x.abs();
    let z = x * x;
    let p = (-9.643_991_794_250_522_386_28e-1_f64)
        .mul_add(z, -9.928_772_310_019_185_865_64e1)
        .mul_add(z, -1.614_687_684_417_084_479_52e3);
    let q = (z + 1.128_116_784_916_329_314_02e2)
        .mul_add(z, 2.235_488_390_601_004_485_83e3)
        .mul_add(z, 4.844_063_053_251_254_860_48e3);
    let small = (x * z).mul_add(p / q, x);
    let large = (1.0 - 2.0 / (exp_f64(2.0 * ax) + 1.0)).copysign(x);
    if ax <= 0.625 {
        small
    } else {
        large
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_tanh_f32_is_accurate() {
        let mut worst = 0.0f64;
        let n = 200_000;
        for i in 0..=n {
            let x = -12.0 + 24.0 * i as f64 / n as f64;
            let got = tanh_f32(x as f32) as f64;
            worst = worst.max((got - x.tanh()).abs());
        }
        assert!(worst < 1e-6, "max abs error {worst}");
        assert_eq!(tanh_f32(0.0), 0.0);
        assert_eq!(tanh_f32(1e-5), 1e-5);
        assert_eq!(tanh_f32(100.0), 1.0);
        assert_eq!(tanh_f32(-100.0), -1.0);
        assert_eq!(tanh_f32(f32::INFINITY), 1.0);
        assert_eq!(tanh_f32(f32::NEG_INFINITY), -1.0);
    }

    /// Relative error against libm over a dense grid, in units of 1e-16.
    fn worst_rel(f: fn(f64) -> f64, g: fn(f64) -> f64, lo: f64, hi: f64) -> f64 {
        let n = 400_000;
        (0..=n)
            .map(|i| lo + (hi - lo) * i as f64 / n as f64)
            .map(|x| {
                let (got, want) = (f(x), g(x));
                if want == 0.0 {
                    got.abs() * 1e16
                } else {
                    ((got - want) / want).abs() * 1e16
                }
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn exp_f64_is_accurate() {
        let worst = worst_rel(exp_f64, f64::exp, -708.0, 709.7);
        assert!(worst < 5.0, "max relative error {worst}e-16");
        let worst = worst_rel(exp_f64, f64::exp, -2.0, 2.0);
        assert!(worst < 5.0, "max relative error {worst}e-16");
        assert_eq!(exp_f64(0.0), 1.0);
        assert_eq!(exp_f64(1000.0), f64::INFINITY);
        assert_eq!(exp_f64(f64::INFINITY), f64::INFINITY);
        assert_eq!(exp_f64(-1000.0), 0.0);
        assert_eq!(exp_f64(f64::NEG_INFINITY), 0.0);
        assert!(exp_f64(f64::NAN).is_nan());
    }

    #[test]
    fn tanh_f64_is_accurate() {
        for (lo, hi) in [(-30.0, 30.0), (-1.0, 1.0), (-1e-3, 1e-3)] {
            let worst = worst_rel(tanh_f64, f64::tanh, lo, hi);
            assert!(worst < 10.0, "[{lo}, {hi}]: max relative error {worst}e-16");
        }
        assert_eq!(tanh_f64(0.0), 0.0);
        assert_eq!(tanh_f64(1e-300), 1e-300);
        assert_eq!(tanh_f64(30.0), 1.0);
        assert_eq!(tanh_f64(-1e10), -1.0);
        assert_eq!(tanh_f64(f64::INFINITY), 1.0);
        assert_eq!(tanh_f64(f64::NEG_INFINITY), -1.0);
        assert!(tanh_f64(f64::NAN).is_nan());
    }

    #[test]
    fn nan_passes_through() {
        assert!(tanh_f32(f32::NAN).is_nan());
        assert!(Scalar::sigmoid(f32::NAN).is_nan());
        assert!(Scalar::sigmoid(f64::NAN).is_nan());
        assert!(Scalar::tanh(f64::NAN).is_nan());
    }

    #[test]
    fn sigmoid_matches_definition() {
        for i in -80..=80 {
            let x = i as f64 * 0.25;
            let want = 1.0 / (1.0 + (-x).exp());
            assert!((Scalar::sigmoid(x) - want).abs() < 1e-15);
            assert!(((Scalar::sigmoid(x as f32) as f64) - want).abs() < 1e-6);
        }
    }
}
