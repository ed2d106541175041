//! The crate's one error type. Every message names the argument and says
//! "expected …, got …"; the Python edge maps it to `ValueError`.

/// Errors raised by the numeric core when its inputs are inconsistent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An array or value does not have the shape or value the call needs.
    #[error("{arg}: expected {expected}, got {got}")]
    Invalid {
        /// The argument's public name (`inputs`, `sequence_length`,
        /// `initial_state.c`, …).
        arg: String,
        /// What the call needs.
        expected: String,
        /// What it was given.
        got: String,
    },
    /// The thread pool could not be built.
    #[error("thread pool: {0}")]
    ThreadPool(String),
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(
        arg: impl Into<String>,
        expected: impl Into<String>,
        got: impl Into<String>,
    ) -> Self {
        Error::Invalid {
            arg: arg.into(),
            expected: expected.into(),
            got: got.into(),
        }
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Fails with "expected {expected:?}, got {got:?}" when two shapes differ.
pub fn check_shape(arg: &str, got: &[usize], expected: &[usize]) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(Error::invalid(
            arg,
            format!("shape {expected:?}"),
            format!("shape {got:?}"),
        ))
    }
}
