//! The attention wrapper's teacher-forced time loop and its backpropagation
//! through time: TensorFlow 1.15's `tf.contrib.seq2seq.AttentionWrapper`
//! around one [`Prepared`](crate::step::Prepared) cell, with `BahdanauAttention` or
//! `LuongAttention`, run over whole sequences under `dynamic_rnn`'s masking
//! (batch-major).
//!
//! Shape letters beyond the crate's: `A` the attention width (the
//! attention layer's units, or `Dm` without one), `Tm` memory time, `Dm`
//! memory depth, `U` the mechanism's units, `Q` the cell's output width (the
//! query).
//!
//! ```text
//! per call:   V[b, j] = memory[b, j] if j < mlen[b] else 0        values
//!             K = V @ memory_layer/kernel                          keys [B, Tm, U], once
//! per step t, rows with t < len[b] (others keep every state field):
//!   1. h_t, cell state = cell([x_t, a_{t-1}], cell state)
//!   2. Luong     s_j = h_t · K[b, j]            (× attention_g when scale)
//!      Bahdanau  s_j = Σ_u v_u tanh(K[b, j, u] + (h_t @ query_layer/kernel)_u)
//!                (normalize: v = attention_g · v / ‖v‖, and + attention_b inside tanh)
//!   3. α = softmax over j < mlen[b]             (masked j: exactly 0)
//!   4. c = Σ_j α_j V[b, j]                      [Dm]
//!   5. a_t = [h_t, c] @ attention_layer/kernel  (no bias), or c without one
//!   6. output_t = a_t if output_attention else h_t
//! ```
//!
//! The loop reuses the sequence driver's plan and slot layout
//! ([`crate::sequence::plan`]): rows sorted by length and dealt into groups
//! by the batch size alone, each group running its whole loop (the cell
//! step and its rows' attention) on one thread; the input projection
//! `x @ W_x[:I]` is hoisted out of the loop and only `a_{t-1} @ W_x[I:]`
//! is added per step. Backward runs the reverse loop per group and leaves
//! the big weight-gradient products to the cell's
//! [`Cell::deferred`] (over the concatenated
//! cell inputs) and to a few products over every token at the end.
//! Nothing is allocated inside a loop; every reduction runs in a fixed
//! order, so results are bitwise identical for any thread count.

mod backward;
mod forward;
pub(crate) mod score;
#[cfg(test)]
mod tests;

pub use backward::{backward, Grads, Incoming};
pub(crate) use forward::memory_lengths;
pub use forward::{forward, Inputs, Output, Tape};

use crate::error::{check_shape, Error, Result};
use crate::kernels::packed::PackedB;
use crate::kernels::scalar::Scalar;
use crate::step::Cell;
use ndarray::{s, Array1, Array2, ArrayViewD, Ix1, Ix2};
use std::any::Any;

/// `memory_layer/kernel` `[Dm, U]`.
pub const MEMORY_KERNEL: &str = "memory_layer/kernel";
/// `query_layer/kernel` `[Q, U]` (Bahdanau).
pub const QUERY_KERNEL: &str = "query_layer/kernel";
/// `attention_v` `[U]` (Bahdanau).
pub const ATTENTION_V: &str = "attention_v";
/// `attention_g`, a scalar (Bahdanau with `normalize`, Luong with `scale`).
pub const ATTENTION_G: &str = "attention_g";
/// `attention_b` `[U]` (Bahdanau with `normalize`).
pub const ATTENTION_B: &str = "attention_b";
/// `attention_layer/kernel` `[Q + Dm, A]` (optional).
pub const ATTENTION_KERNEL: &str = "attention_layer/kernel";

/// The score function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Score {
    /// `BahdanauAttention(normalize=…)`.
    Bahdanau {
        /// Weight-normalised `v` and a bias inside the `tanh`.
        normalize: bool,
    },
    /// `LuongAttention(scale=…)`.
    Luong {
        /// Scores multiplied by `attention_g`.
        scale: bool,
    },
}

impl Score {
    /// The mechanism's name in error messages.
    fn name(self) -> &'static str {
        match self {
            Score::Bahdanau { normalize: false } => "BahdanauAttention",
            Score::Bahdanau { normalize: true } => "BahdanauAttention(normalize=True)",
            Score::Luong { scale: false } => "LuongAttention",
            Score::Luong { scale: true } => "LuongAttention(scale=True)",
        }
    }

    fn is_bahdanau(self) -> bool {
        matches!(self, Score::Bahdanau { .. })
    }

    /// Whether the mechanism has `attention_g`.
    fn has_g(self) -> bool {
        matches!(
            self,
            Score::Bahdanau { normalize: true } | Score::Luong { scale: true }
        )
    }
}

/// The wrapper's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The score function.
    pub score: Score,
    /// Each step outputs the attention (`true`, TF's default) or the cell's
    /// output.
    pub output_attention: bool,
    /// Whether to return every step's alignments (`[T, B, Tm]`).
    pub alignment_history: bool,
}

/// The mechanism's and the attention layer's weights, copied (they are
/// small) so that a [`Tape`] keeps them for backward.
#[derive(Debug, Clone)]
pub struct Weights<T> {
    /// `[Dm, U]`.
    pub memory_kernel: Array2<T>,
    /// `[Q, U]` (Bahdanau).
    pub query_kernel: Option<Array2<T>>,
    /// `[U]` (Bahdanau).
    pub v: Option<Array1<T>>,
    /// `attention_g` (Bahdanau with `normalize`, Luong with `scale`).
    pub g: Option<T>,
    /// `[U]` (Bahdanau with `normalize`).
    pub b: Option<Array1<T>>,
    /// `[Q + Dm, A]` (optional).
    pub attention_kernel: Option<Array2<T>>,
}

impl<T: Scalar> Weights<T> {
    /// The weights of `score` by name (the names above; `attention_g` a 0-d
    /// array), each taken once; missing, unknown or repeated names and
    /// arrays of the wrong rank fail naming them. Shapes are checked
    /// against the call's by [`forward()`].
    pub fn from_named(score: Score, items: &[(&str, ArrayViewD<'_, T>)]) -> Result<Self> {
        let mut taken = vec![false; items.len()];
        let keys = || {
            let names: Vec<_> = items.iter().map(|(n, _)| format!("{n:?}")).collect();
            format!("[{}]", names.join(", "))
        };
        let mut find = |name: &str, required: bool| -> Result<Option<ArrayViewD<'_, T>>> {
            let mut found = None;
            for (i, (n, a)) in items.iter().enumerate() {
                if *n == name {
                    if found.is_some() {
                        return Err(Error::invalid(
                            "weights",
                            format!("one entry {name:?}"),
                            "two",
                        ));
                    }
                    taken[i] = true;
                    found = Some(a.view());
                }
            }
            if found.is_none() && required {
                return Err(Error::invalid(
                    "weights",
                    format!("an entry {name:?} (a {} weight)", score.name()),
                    format!("none (keys: {})", keys()),
                ));
            }
            Ok(found)
        };
        let memory_kernel = matrix(MEMORY_KERNEL, find(MEMORY_KERNEL, true)?)?;
        let bahdanau = score.is_bahdanau();
        let normalize = matches!(score, Score::Bahdanau { normalize: true });
        let query_kernel = match bahdanau {
            true => Some(matrix(QUERY_KERNEL, find(QUERY_KERNEL, true)?)?),
            false => None,
        };
        let v = match bahdanau {
            true => Some(vector(ATTENTION_V, find(ATTENTION_V, true)?)?),
            false => None,
        };
        let g = match score.has_g() {
            true => Some(scalar(ATTENTION_G, find(ATTENTION_G, true)?)?),
            false => None,
        };
        let b = match normalize {
            true => Some(vector(ATTENTION_B, find(ATTENTION_B, true)?)?),
            false => None,
        };
        let attention_kernel = find(ATTENTION_KERNEL, false)?
            .map(|a| matrix(ATTENTION_KERNEL, Some(a)))
            .transpose()?;
        let extra: Vec<_> = items
            .iter()
            .zip(&taken)
            .filter(|(_, &t)| !t)
            .map(|((n, _), _)| format!("{n:?}"))
            .collect();
        if !extra.is_empty() {
            return Err(Error::invalid(
                "weights",
                format!("only the weights of a {} (and its cell)", score.name()),
                format!("unknown [{}]", extra.join(", ")),
            ));
        }
        Ok(Weights {
            memory_kernel,
            query_kernel,
            v,
            g,
            b,
            attention_kernel,
        })
    }
}

fn matrix<T: Scalar>(name: &str, a: Option<ArrayViewD<'_, T>>) -> Result<Array2<T>> {
    let a = a.expect("a required entry");
    let ndim = a.ndim();
    a.into_dimensionality::<Ix2>()
        .map(|a| a.to_owned())
        .map_err(|_| Error::invalid(name, "a 2-d array", format!("a {ndim}-d array")))
}

fn vector<T: Scalar>(name: &str, a: Option<ArrayViewD<'_, T>>) -> Result<Array1<T>> {
    let a = a.expect("a required entry");
    let ndim = a.ndim();
    a.into_dimensionality::<Ix1>()
        .map(|a| a.to_owned())
        .map_err(|_| Error::invalid(name, "a 1-d array", format!("a {ndim}-d array")))
}

fn scalar<T: Scalar>(name: &str, a: Option<ArrayViewD<'_, T>>) -> Result<T> {
    let a = a.expect("a required entry");
    if a.ndim() != 0 {
        return Err(Error::invalid(
            name,
            "a 0-d array (a scalar)",
            format!("shape {:?}", a.shape()),
        ));
    }
    Ok(*a.iter().next().expect("a 0-d array has one element"))
}

/// The sizes of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// `B`.
    pub batch: usize,
    /// `T`.
    pub time: usize,
    /// `I`: the width of `inputs` (the cell's input is `I + A`).
    pub input: usize,
    /// `A`: the attention's width.
    pub attention: usize,
    /// `Tm`.
    pub memory_time: usize,
    /// `Dm`.
    pub memory_depth: usize,
    /// `U`.
    pub units: usize,
    /// `Q`: the cell's output width.
    pub query: usize,
}

impl Dims {
    /// `I + A`: the cell's input width.
    pub fn cell_input(&self) -> usize {
        self.input + self.attention
    }

    /// `Q + Dm`: the attention layer's input width.
    pub fn hc(&self) -> usize {
        self.query + self.memory_depth
    }

    /// The width of each step's output.
    pub fn output(&self, config: &Config) -> usize {
        if config.output_attention {
            self.attention
        } else {
            self.query
        }
    }
}

/// Checks `weights` against the memory's depth and the cell (output width
/// `Q`, input width `I + A`), and returns `(U, A)`.
pub(crate) fn check_weights<T: Scalar>(
    score: Score,
    weights: &Weights<T>,
    depth: usize,
    query: usize,
    cell_input: usize,
) -> Result<(usize, usize)> {
    let mk = &weights.memory_kernel;
    if mk.nrows() != depth || mk.ncols() == 0 {
        return Err(Error::invalid(
            MEMORY_KERNEL,
            format!("shape [{depth}, U] (Dm = {depth} from memory, U >= 1)"),
            format!("shape {:?}", mk.shape()),
        ));
    }
    let units = mk.ncols();
    if let Score::Luong { .. } = score {
        if units != query {
            return Err(Error::invalid(
                MEMORY_KERNEL,
                format!(
                    "shape [{depth}, {query}] (LuongAttention: U equals the cell's output width)"
                ),
                format!("shape {:?}", mk.shape()),
            ));
        }
    }
    if let Some(q) = &weights.query_kernel {
        check_shape(QUERY_KERNEL, q.shape(), &[query, units])?;
    }
    if let Some(v) = &weights.v {
        check_shape(ATTENTION_V, v.shape(), &[units])?;
    }
    if let Some(b) = &weights.b {
        check_shape(ATTENTION_B, b.shape(), &[units])?;
    }
    let attention = match &weights.attention_kernel {
        Some(k) => {
            if k.nrows() != query + depth || k.ncols() == 0 {
                return Err(Error::invalid(
                    ATTENTION_KERNEL,
                    format!(
                        "shape [{}, A] (Q + Dm = {query} + {depth}: the cell's output and the memory's depth; A >= 1)",
                        query + depth
                    ),
                    format!("shape {:?}", k.shape()),
                ));
            }
            k.ncols()
        }
        None => depth,
    };
    if cell_input < attention {
        return Err(Error::invalid(
            "cell",
            format!("a cell of input size I + A >= {attention} (A = {attention}, the attention's width)"),
            format!("input size {cell_input}"),
        ));
    }
    Ok((units, attention))
}

/// How a step's `d_gates` give the gradient of the cell's inputs: `d_in =
/// d_gates[:, ..rows] @ M`, with `M` (`[rows, I + A]`) made from the cell's
/// input kernel. The reverse loop needs the attention columns per step
/// (the cell's [`Cell::deferred`] makes the whole `dX` only after the
/// loop); the step trait has no per-step product for it, so the cells this
/// loop accepts are named here, each with its `d_gates` layout (checked by
/// finite differences in the tests).
fn input_grad_map<T: Scalar>(cell: &dyn Cell<T>, input: usize) -> Result<Array2<T>> {
    let layout = cell.layout();
    let w_x = cell.input_kernel(); // [I + A, G]
    let w_a = w_x.slice(s![input.., ..]);
    match cell.name() {
        // d_gates is the gradient of x @ W_x, column for column
        "BasicRNNCell" | "LSTM" | "GRUCell" if layout.d_gates == layout.gates => {
            Ok(w_a.t().to_owned())
        }
        // reset-after GRU: W_x columns r | u | c, d_gates c | r | u | hc
        "GRUCell" if layout.gates % 3 == 0 && layout.d_gates == layout.gates / 3 * 4 => {
            let h = layout.gates / 3;
            let mut m = Array2::zeros((3 * h, w_a.nrows()));
            m.slice_mut(s![..h, ..])
                .assign(&w_a.slice(s![.., 2 * h..]).t());
            m.slice_mut(s![h.., ..])
                .assign(&w_a.slice(s![.., ..2 * h]).t());
            Ok(m)
        }
        name => Err(Error::invalid(
            "cell",
            "a BasicRNNCell, LSTM or GRUCell core (the cells the attention loop knows the input gradient of)",
            name.to_string(),
        )),
    }
}

/// `x.sqrt()` (the `Scalar` trait has none; it is sealed to `f32` and
/// `f64`).
fn sqrt<T: Scalar>(x: T) -> T {
    let any: &dyn Any = &x;
    if let Some(v) = any.downcast_ref::<f32>() {
        T::from_f64(f64::from(v.sqrt()))
    } else if let Some(v) = any.downcast_ref::<f64>() {
        T::from_f64(v.sqrt())
    } else {
        unreachable!("Scalar is f32 or f64")
    }
}

/// The `v` the Bahdanau scores use: `attention_v`, or with `normalize`
/// `attention_g · attention_v / ‖attention_v‖`; empty for Luong.
pub(crate) fn effective_v<T: Scalar>(weights: &Weights<T>) -> Vec<T> {
    let Some(v) = &weights.v else {
        return Vec::new();
    };
    match weights.g.filter(|_| weights.b.is_some()) {
        Some(g) => {
            let norm = sqrt(v.iter().fold(T::zero(), |acc, &x| acc + x * x));
            v.iter().map(|&x| g * x / norm).collect()
        }
        None => v.to_vec(),
    }
}

/// The per-call packed weights of the forward loop.
struct Packed<T> {
    /// `W_x[I:]` `[A, G]`: the attention's part of the cell's input kernel.
    cell_attention: PackedB<T>,
    /// `[Q, U]` (Bahdanau).
    query: Option<PackedB<T>>,
    /// `[Q + Dm, A]`.
    attention: Option<PackedB<T>>,
}
