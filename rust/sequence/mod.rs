//! The sequence driver: runs any [`Cell`](crate::step::Cell) over a batch of
//! sequences, forward ([`forward()`]) and backward through time
//! ([`backward()`]), written once for every cell.
//!
//! * [`plan`]: rows sorted by length and grouped; the slot layout every
//!   buffer of a call shares.
//! * [`slots`]: gathers and scatters between the caller's arrays and the
//!   slot layout; a step's block in a buffer.
//! * [`forward()`]: the hoisted input projection and the forward time loop.
//! * [`backward()`]: the reverse loop, then the cell's deferred products.
//!
//! Groups run their loops concurrently with no per-step synchronisation;
//! nothing is allocated inside a loop; work is cut by the shapes alone, so
//! results are bitwise identical for any thread count.

pub mod backward;
pub mod forward;
pub mod plan;
pub mod slots;

pub use backward::{backward, backward_interruptible, Grads};
pub use forward::{forward, forward_prepared, Cache, Output};
pub use slots::time_major_view;
