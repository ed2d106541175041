//! The sequence driver: runs any [`Cell`](crate::step::Cell) over a batch of
//! sequences, forward ([`forward()`]) and backward through time
//! ([`backward()`]), written once for every cell.
//!
//! * [`plan`]: rows sorted by length and grouped; the slot layout every
//!   buffer of a call shares.
//! * [`slots`]: gathers and scatters between the caller's arrays and the
//!   slot layout; a step's block in a buffer.
//! * [`segment`]: one group's forward steps over a range of steps, with the
//!   input projection chunk by chunk (the forward loop, and the backward
//!   pass's recomputation of a checkpointed segment).
//! * [`forward()`]: the forward time loop, keeping every step for backward
//!   or, with a [`Checkpoint`], only the states at the start of each
//!   segment ([`forward_checkpointed`]).
//! * [`backward()`]: the reverse loop (recomputing each checkpointed
//!   segment first), and the cell's deferred products chunk by chunk.
//!
//! Groups run their loops concurrently with no per-step synchronisation;
//! nothing is allocated inside a loop; work is cut by the shapes alone, so
//! results are bitwise identical for any thread count.

pub mod backward;
pub mod forward;
pub mod plan;
pub mod segment;
pub mod slots;

pub use backward::{backward, backward_interruptible, Grads};
pub use forward::{forward, forward_checkpointed, forward_prepared, Cache, Checkpoints, Output};
pub use plan::Checkpoint;
pub use slots::time_major_view;
