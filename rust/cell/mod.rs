//! The cells: one file per cell, each implementing the step trait
//! ([`crate::step::Cell`]) — its weights, one step forward beside one step
//! backward, the deferred weight-gradient products — with unit tests
//! against hand-computed values. Each file also has a `build` function that
//! makes the cell from named options and weights (the protocol of
//! [`crate::step::params`]); the Python edge registers it by name.
//!
//! [`reference`] holds naive references of every cell (one row, one step,
//! one unit at a time) and the tests that run the driver against them.

pub mod basic_rnn;
pub mod gru;
pub mod lstm;

#[cfg(test)]
mod reference;

use crate::error::{Error, Result};
use crate::kernels::activation::Activation;
use crate::step::params::Options;

/// The `activation` option (default `"tanh"`).
pub(crate) fn activation_option(options: &mut Options) -> Result<Activation> {
    Activation::parse(&options.name("activation", "tanh")?)
}

/// `H` from a bias of `H * per_unit` entries named `name`; at least 1 unit.
pub(crate) fn units_from(name: &str, len: usize, per_unit: usize) -> Result<usize> {
    if len == 0 || !len.is_multiple_of(per_unit) {
        let what = if per_unit == 1 {
            "at least 1 unit".to_string()
        } else {
            format!("a positive multiple of {per_unit} entries (H >= 1)")
        };
        return Err(Error::invalid(name, what, format!("shape [{len}]")));
    }
    Ok(len / per_unit)
}
