//! # rnnrs — the numeric core
//!
//! Recurrent layers of TensorFlow 1.x's RNN toolbox, forward and
//! backpropagation through time, generic over `f32` and `f64`. This crate
//! knows nothing of Python; the PyO3 edge lives in `py` behind the `python`
//! feature.
//!
//! ## Shape letters
//!
//! `B` batch, `T` time (padded), `I` input size, `H` units, `P` an LSTM's
//! output width, `W` a state row's width (a state's parts side by side), `G`
//! gate width (`H` for `BasicRNNCell`), `R` slot rows (see
//! [`sequence::plan`]).
//!
//! ## Layers
//!
//! Lowest first; each imports only those below it (`docs/architecture.md`
//! walks through them):
//!
//! * [`error`], [`pool`]: the error type; the thread pool and the rules that
//!   cut work by shapes alone.
//! * [`kernels`]: element types, activations, SIMD element-wise helpers, the
//!   GEMM and the packed step product. All `unsafe` code lives here.
//! * [`step`]: the step trait [`step::Cell`] every cell implements, the
//!   weight protocol (named weights, options and gradients), and single
//!   steps on a built cell ([`step::Prepared`]).
//! * [`sequence`]: the driver — plan, forward time loop, backpropagation
//!   through time — written once for every cell.
//! * [`cell`]: the cells, one file each.
//! * [`decode`]: the decoding loops (greedy, sampled, beam search) over a
//!   stack of [`step::Prepared`] cells, or an attention wrapper around one
//!   (Bahdanau or Luong, the per-row code of [`attention`]).
//! * [`attention`]: the attention wrapper's teacher-forced time loop and its
//!   backpropagation (Bahdanau and Luong) around one [`step::Prepared`]
//!   cell.
//! * [`loss`]: the fused softmax cross-entropy of class ids (per-row loss
//!   and the logits' gradient in one pass).
//! * `py` (feature `python`): the PyO3 edge.
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

#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod kernels;

pub mod attention;
pub mod cell;
pub mod decode;
pub mod error;
pub mod loss;
pub mod pool;
pub mod sequence;
pub mod step;

#[cfg(feature = "python")]
mod py;

pub use error::{Error, Result};
pub use kernels::activation::Activation;
pub use kernels::scalar::Scalar;
pub use sequence::{backward, forward, time_major_view};
pub use step::{Cell, Prepared};
