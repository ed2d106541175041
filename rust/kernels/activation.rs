//! Element-wise activation functions, and the macro that specialises a loop
//! for each of them.

use crate::error::{Error, Result};
use crate::kernels::scalar::Scalar;

/// An element-wise activation function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `tanh(x)`
    Tanh,
    /// `max(x, 0)` (NaN stays NaN)
    Relu,
    /// `1 / (1 + exp(-x))`
    Sigmoid,
    /// `x`
    Identity,
}

impl Activation {
    /// Parses the public name (`"tanh"`, `"relu"`, `"sigmoid"`, `"identity"`).
    pub fn parse(name: &str) -> Result<Activation> {
        match name {
            "tanh" => Ok(Activation::Tanh),
            "relu" => Ok(Activation::Relu),
            "sigmoid" => Ok(Activation::Sigmoid),
            "identity" | "linear" => Ok(Activation::Identity),
            other => Err(Error::invalid(
                "activation",
                "one of 'tanh', 'relu', 'sigmoid', 'identity'",
                format!("{other:?}"),
            )),
        }
    }

    /// `act(x)`.
    #[inline(always)]
    pub fn apply<T: Scalar>(self, x: T) -> T {
        match self {
            Activation::Tanh => x.tanh(),
            Activation::Relu => {
                if x < T::zero() {
                    T::zero()
                } else {
                    x
                }
            }
            Activation::Sigmoid => x.sigmoid(),
            Activation::Identity => x,
        }
    }

    /// `act'(x)` expressed through the output `y = act(x)`.
    #[inline(always)]
    pub fn grad_from_output<T: Scalar>(self, y: T) -> T {
        match self {
            Activation::Tanh => T::one() - y * y,
            Activation::Relu => {
                if y > T::zero() {
                    T::one()
                } else {
                    T::zero()
                }
            }
            Activation::Sigmoid => y * (T::one() - y),
            Activation::Identity => T::one(),
        }
    }
}

/// Calls `$body` with `$act` bound to a `const`-like copy of the activation
/// in each match arm, so the compiler emits one specialised (vectorisable)
/// loop per activation instead of a branch per element.
macro_rules! with_activation {
    ($a:expr, |$act:ident| $body:expr) => {
        match $a {
            $crate::kernels::activation::Activation::Tanh => {
                let $act = $crate::kernels::activation::Activation::Tanh;
                $body
            }
            $crate::kernels::activation::Activation::Relu => {
                let $act = $crate::kernels::activation::Activation::Relu;
                $body
            }
            $crate::kernels::activation::Activation::Sigmoid => {
                let $act = $crate::kernels::activation::Activation::Sigmoid;
                $body
            }
            $crate::kernels::activation::Activation::Identity => {
                let $act = $crate::kernels::activation::Activation::Identity;
                $body
            }
        }
    };
}
pub(crate) use with_activation;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names() {
        assert_eq!(Activation::parse("relu").unwrap(), Activation::Relu);
        let e = Activation::parse("gelu").unwrap_err().to_string();
        assert!(e.starts_with("activation: expected one of"), "{e}");
    }

    #[test]
    fn derivatives_match_finite_differences() {
        for act in [
            Activation::Tanh,
            Activation::Relu,
            Activation::Sigmoid,
            Activation::Identity,
        ] {
            for &x in &[-2.3f64, -0.7, 0.4, 1.9] {
                let h = 1e-6;
                let fd = (act.apply(x + h) - act.apply(x - h)) / (2.0 * h);
                let an = act.grad_from_output(act.apply(x));
                assert!((fd - an).abs() < 1e-8, "{act:?} at {x}: {fd} vs {an}");
            }
        }
    }

    #[test]
    fn relu_keeps_nan() {
        assert!(Activation::Relu.apply(f64::NAN).is_nan());
    }
}
