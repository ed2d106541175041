//! Naive references of every cell, kept beside the fast path: one batch row,
//! one step, one unit at a time, straight from the equations. The tests here
//! run the driver ([`crate::sequence`]) and the single-step API
//! ([`crate::step::Prepared`]) on each cell against them: outputs, states and
//! (by finite differences) every gradient, ragged and time-major, and
//! bitwise equality across thread counts, and checkpointed backpropagation
//! against the plain one. They are never used for real work.

mod basic_rnn;
mod checkpoint;
mod example;
mod gru;
mod lstm;
mod steps;
