//! The floating-point trait every kernel is generic over (`f32`, `f64`).

use std::fmt::Debug;
use std::ops::{AddAssign, Neg};

/// A float the numeric core computes in.
pub trait Scalar:
    ndarray::LinalgScalar
    + crate::packed::PackedScalar
    + Debug
    + Default
    + PartialOrd
    + Neg<Output = Self>
    + AddAssign
    + Send
    + Sync
{
    /// The type's name as NumPy spells it.
    const NAME: &'static str;
    /// Converts a literal.
    fn from_f64(x: f64) -> Self;
    /// Hyperbolic tangent. `f32` uses a rational approximation (max abs error
    /// below 1e-6, NaN-preserving) that vectorises; `f64` uses libm.
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
        0.5 * tanh_f32(0.5 * self) + 0.5
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
        f64::tanh(self)
    }
    #[inline(always)]
    fn sigmoid(self) -> Self {
        1.0 / (1.0 + (-self).exp())
    }
}

/// Rational (13/6) minimax approximation of tanh on [-c, c], as in Eigen's
/// `generic_fast_tanh_float`; saturates to ±1 outside. Branch-free so that
/// loops over it vectorise; comparisons are written so NaN passes through.
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
    let mut p = -2.760_768_5e-16_f32;
    p = p * x2 + 2.000_187_9e-13;
    p = p * x2 + -8.604_671_5e-11;
    p = p * x2 + 5.122_297e-8;
    p = p * x2 + 1.485_722_4e-5;
    p = p * x2 + 6.372_619_3e-4;
    p = p * x2 + 4.893_524_6e-3;
    p *= xc;
    let mut q = 1.198_258_4e-6_f32;
    q = q * x2 + 1.185_347e-4;
    q = q * x2 + 2.268_434_6e-3;
    q = q * x2 + 4.893_525e-3;
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
