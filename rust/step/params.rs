//! The weight protocol: named arrays in, named gradients out, and named
//! options, for every cell. Names are TensorFlow 1.x's (`kernel`,
//! `gates/bias`, `projection/kernel`, …), as in the Python cells'
//! `get_weights()`.

use crate::error::{Error, Result};
use ndarray::{ArrayD, ArrayView1, ArrayView2, ArrayViewD, Ix1, Ix2};

/// Named owned arrays (weight gradients), in the cell's weight order.
pub type Named<T> = Vec<(String, ArrayD<T>)>;

/// Borrowed weights by name; a cell takes what it needs and
/// [`Weights::finish`] rejects whatever is left.
#[derive(Debug, Clone)]
pub struct Weights<'a, T> {
    items: Vec<(&'a str, ArrayViewD<'a, T>)>,
    taken: Vec<bool>,
}

impl<'a, T> Weights<'a, T> {
    /// Weights from `(name, array)` pairs.
    pub fn new(items: Vec<(&'a str, ArrayViewD<'a, T>)>) -> Self {
        let taken = vec![false; items.len()];
        Weights { items, taken }
    }

    fn find(&mut self, name: &str) -> Option<ArrayViewD<'a, T>> {
        let i = self.items.iter().position(|(n, _)| *n == name)?;
        self.taken[i] = true;
        Some(self.items[i].1.clone())
    }

    fn keys(&self) -> String {
        let names: Vec<_> = self.items.iter().map(|(n, _)| format!("{n:?}")).collect();
        format!("[{}]", names.join(", "))
    }

    fn missing(&self, name: &str) -> Error {
        Error::invalid(
            "weights",
            format!("an entry {name:?}"),
            format!("none (keys: {})", self.keys()),
        )
    }

    /// Whether an entry `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.items.iter().any(|(n, _)| *n == name)
    }

    /// The 2-d array `name`.
    pub fn matrix(&mut self, name: &'static str) -> Result<ArrayView2<'a, T>> {
        let a = self.find(name).ok_or_else(|| self.missing(name))?;
        let ndim = a.ndim();
        a.into_dimensionality::<Ix2>()
            .map_err(|_| Error::invalid(name, "a 2-d array", format!("a {ndim}-d array")))
    }

    /// The 1-d array `name`.
    pub fn vector(&mut self, name: &'static str) -> Result<ArrayView1<'a, T>> {
        let a = self.find(name).ok_or_else(|| self.missing(name))?;
        let ndim = a.ndim();
        a.into_dimensionality::<Ix1>()
            .map_err(|_| Error::invalid(name, "a 1-d array", format!("a {ndim}-d array")))
    }

    /// Fails when an entry was never taken: a name the cell does not have.
    pub fn finish(self, cell: &str) -> Result<()> {
        untaken(
            "weights",
            cell,
            self.items.iter().map(|(n, _)| *n),
            &self.taken,
        )
    }
}

/// Fails naming the `names` not `taken` as unknown `arg` of `cell`.
fn untaken<'a>(
    arg: &str,
    cell: &str,
    names: impl Iterator<Item = &'a str>,
    taken: &[bool],
) -> Result<()> {
    let extra: Vec<_> = names
        .zip(taken)
        .filter(|(_, &t)| !t)
        .map(|(n, _)| format!("{n:?}"))
        .collect();
    if extra.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid(
            arg,
            format!("only the {arg} of this {cell}"),
            format!("unknown [{}]", extra.join(", ")),
        ))
    }
}

/// An option's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Absent (`None` in Python).
    None,
    /// A flag.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A number.
    Float(f64),
    /// A name (an activation).
    Str(String),
}

impl Value {
    fn describe(&self) -> String {
        match self {
            Value::None => "no value".into(),
            Value::Bool(b) => format!("the flag {b}"),
            Value::Int(i) => format!("the integer {i}"),
            Value::Float(x) => format!("the number {x}"),
            Value::Str(s) => format!("{s:?}"),
        }
    }
}

/// A cell's options by name (`activation`, `forget_bias`, …); a cell takes
/// what it knows, with its defaults, and [`Options::finish`] rejects the
/// rest.
#[derive(Debug, Clone, Default)]
pub struct Options {
    items: Vec<(String, Value)>,
    taken: Vec<bool>,
}

impl Options {
    /// Options from `(name, value)` pairs.
    pub fn new(items: Vec<(String, Value)>) -> Self {
        let taken = vec![false; items.len()];
        Options { items, taken }
    }

    /// Sets `name` (builder style, for Rust callers).
    pub fn with(mut self, name: &str, value: Value) -> Self {
        self.items.push((name.to_string(), value));
        self.taken.push(false);
        self
    }

    fn take(&mut self, name: &str) -> Value {
        match self.items.iter().position(|(n, _)| n == name) {
            Some(i) => {
                self.taken[i] = true;
                self.items[i].1.clone()
            }
            None => Value::None,
        }
    }

    /// A number, or `default` when absent.
    pub fn float(&mut self, name: &'static str, default: f64) -> Result<f64> {
        Ok(self.optional_float(name)?.unwrap_or(default))
    }

    /// A number, or `None`.
    pub fn optional_float(&mut self, name: &'static str) -> Result<Option<f64>> {
        match self.take(name) {
            Value::None => Ok(None),
            Value::Float(x) => Ok(Some(x)),
            Value::Int(i) => Ok(Some(i as f64)),
            other => Err(Error::invalid(name, "a number", other.describe())),
        }
    }

    /// A flag, or `default` when absent.
    pub fn flag(&mut self, name: &'static str, default: bool) -> Result<bool> {
        match self.take(name) {
            Value::None => Ok(default),
            Value::Bool(b) => Ok(b),
            other => Err(Error::invalid(
                name,
                "a flag (true or false)",
                other.describe(),
            )),
        }
    }

    /// A name, or `default` when absent.
    pub fn name(&mut self, name: &'static str, default: &str) -> Result<String> {
        match self.take(name) {
            Value::None => Ok(default.to_string()),
            Value::Str(s) => Ok(s),
            other => Err(Error::invalid(name, "a name", other.describe())),
        }
    }

    /// Fails when an option was never taken: one the cell does not have.
    pub fn finish(self, cell: &str) -> Result<()> {
        untaken(
            "options",
            cell,
            self.items.iter().map(|(n, _)| n.as_str()),
            &self.taken,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array2};

    #[test]
    fn weights_by_name_with_errors_that_name_them() {
        let k = Array2::<f64>::zeros((3, 2));
        let b = Array1::<f64>::zeros(2);
        let mut w = Weights::new(vec![
            ("kernel", k.view().into_dyn()),
            ("bias", b.view().into_dyn()),
        ]);
        assert!(w.has("bias") && !w.has("gates/bias"));
        assert_eq!(w.matrix("kernel").unwrap().dim(), (3, 2));
        let e = w.matrix("bias").unwrap_err().to_string();
        assert_eq!(e, "bias: expected a 2-d array, got a 1-d array");
        let e = w.vector("gates/bias").unwrap_err().to_string();
        assert_eq!(
            e,
            "weights: expected an entry \"gates/bias\", got none (keys: [\"kernel\", \"bias\"])"
        );
        w.finish("cell").unwrap();

        let mut w = Weights::new(vec![
            ("kernel", k.view().into_dyn()),
            ("extra", b.view().into_dyn()),
        ]);
        w.matrix("kernel").unwrap();
        let e = w.finish("BasicRNNCell").unwrap_err().to_string();
        assert_eq!(
            e,
            "weights: expected only the weights of this BasicRNNCell, got unknown [\"extra\"]"
        );
    }

    #[test]
    fn options_with_defaults_and_type_errors() {
        let mut o = Options::default()
            .with("forget_bias", Value::Int(2))
            .with("cell_clip", Value::None)
            .with("activation", Value::Str("relu".into()));
        assert_eq!(o.float("forget_bias", 1.0).unwrap(), 2.0);
        assert_eq!(o.optional_float("cell_clip").unwrap(), None);
        assert_eq!(o.optional_float("proj_clip").unwrap(), None);
        assert_eq!(o.name("activation", "tanh").unwrap(), "relu");
        assert!(o.flag("reset_after", false).is_ok());
        o.finish("LSTMCell").unwrap();
        let mut o = Options::default().with("reset_after", Value::Float(1.0));
        let e = o.flag("reset_after", false).unwrap_err().to_string();
        assert_eq!(
            e,
            "reset_after: expected a flag (true or false), got the number 1"
        );
        let o = Options::default().with("units", Value::Int(3));
        let e = o.finish("GRUCell").unwrap_err().to_string();
        assert_eq!(
            e,
            "options: expected only the options of this GRUCell, got unknown [\"units\"]"
        );
    }
}
