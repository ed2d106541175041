//! The bottom layer: element types, activations, the element-wise helpers
//! and the matrix products. It knows nothing of cells, sequences or Python,
//! and it holds every `unsafe` block of the crate (each `unsafe fn` with a
//! `# Safety` section, each block with a `SAFETY:` comment); the layers above
//! are compiled with `unsafe_code` denied.
//!
//! * [`scalar`]: the [`Scalar`](scalar::Scalar) trait (`f32`, `f64`), fast
//!   vectorisable `tanh`, `exp` and sigmoid.
//! * [`activation`]: [`Activation`](activation::Activation) and the macro that
//!   specialises a loop per activation.
//! * [`gemm`]: the general product (`gemm`, `par_gemm`, `par_product`).
//! * [`packed`]: the time loop's product over a right-hand side packed once
//!   ([`PackedB`](packed::PackedB)), with AVX-512 and AVX2 micro-kernels.
//! * [`rows`]: arrays assembled row by row, each element written once.
//! * [`filling`]: buffers the time loop fills front to back, never zeroed
//!   first ([`Unfilled`](filling::Unfilled), [`Filling`](filling::Filling)).
//! * [`split`]: a group's time steps split by hidden units over threads,
//!   meeting once per step, forward ([`run`](split::run)) and backward
//!   ([`run_back`](split::run_back)).
//! * [`softmax`]: a vectorised `exp`, the max, sum of exponentials and
//!   argmax of a row, and [`vectorized`](softmax::vectorized).

pub mod activation;
#[cfg(all(test, not(feature = "python")))]
pub mod counting;
pub mod filling;
pub mod gemm;
pub mod packed;
pub mod rows;
pub mod scalar;
pub mod softmax;
pub mod split;
