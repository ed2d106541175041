//! # rnnrs — the numeric core
//!
//! Recurrent layers of TensorFlow 1.x's RNN toolbox, forward and
//! backpropagation through time, generic over `f32` and `f64`. This crate
//! knows nothing of Python; the PyO3 edge lives in `py` behind the `python`
//! feature.
//!
//! ## Shape letters
//!
//! `B` batch, `T` time (padded), `I` input size, `H` units, `G` gate width
//! (`H` for `BasicRNNCell`), `R` slot rows (see [`mask`]).
//!
//! ## Weight layout
//!
//! TensorFlow 1.x: `kernel [I+H, G]` multiplies `[x, h]` (rows for `x` first),
//! `bias [G]`.
//!
//! ## Masking
//!
//! ```text
//! (output, state)(b, t) = t >= len[b] ? (0, state(b, len[b]-1)) : cell(x(b, t), state(b, t-1))
//! ```
//!
//! A row of length 0 returns its initial state.
//!
//! ## Determinism
//!
//! Work is split into pieces fixed by the shapes alone; results are bitwise
//! identical for any thread count.

pub mod bptt;
pub mod cell;
pub mod error;
pub mod gemm;
pub mod layer;
pub mod mask;
pub mod naive;
pub mod packed;
pub mod pool;
pub mod scalar;

#[cfg(feature = "python")]
mod py;

pub use cell::basic_rnn::{
    backward as basic_rnn_backward, forward as basic_rnn_forward, RnnCache, RnnForward, RnnGrads,
};
pub use cell::gru::{
    backward as gru_backward, forward as gru_forward, GruCache, GruForward, GruGrads,
    GruWeightGrads, GruWeights,
};
pub use cell::lstm::{
    backward as lstm_backward, forward as lstm_forward, LstmCache, LstmForward, LstmGrads,
    LstmOptions, LstmWeights, Peepholes,
};
pub use cell::Activation;
pub use error::{Error, Result};
pub use layer::time_major_view;
pub use scalar::Scalar;
