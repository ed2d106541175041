//! The crate's one error type. Every message names the argument and says
//! "expected …, got …" (or, for memory, what could not be allocated); the
//! Python edge maps it to `ValueError`, `MemoryError`, `RuntimeError` or
//! the exception that interrupted the call. Also here: the checked size
//! arithmetic of a call's buffers ([`Budget`]) and the hook through which a
//! caller stops a long call ([`Interrupt`]).

use std::fmt::Display;
use std::sync::OnceLock;

/// Errors raised by the numeric core when its inputs are inconsistent, its
/// buffers cannot be allocated, or its caller stops it.
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
    /// A buffer the call needs is larger than the address space, than the
    /// machine's memory, or than the allocator could give. Nothing was
    /// computed.
    #[error("{arg}: the call needs {need} for {what}, more than can be allocated")]
    OutOfMemory {
        /// The argument whose sizes make the call this large (`inputs`).
        arg: String,
        /// The buffer (or buffers) that could not be allocated.
        what: String,
        /// How much it needs, e.g. `4.00 TiB`.
        need: String,
    },
    /// The thread pool could not be built (the old pool stays).
    #[error("num_threads: {0}")]
    ThreadPool(String),
    /// The caller's [`Interrupt`] hook stopped the call.
    #[error("interrupted")]
    Interrupted,
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

    /// An [`Error::OutOfMemory`] for `bytes` bytes (`None`: more than the
    /// arithmetic holds) of `what`.
    pub fn out_of_memory(arg: &str, what: impl Display, bytes: Option<u128>) -> Self {
        Error::OutOfMemory {
            arg: arg.into(),
            what: what.to_string(),
            need: match bytes {
                Some(b) => human_bytes(b),
                None => "more than 2**128 bytes".into(),
            },
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

/// `bytes` for people: `512 B`, `1.50 KiB`, …, `4.00 TiB`.
pub fn human_bytes(bytes: u128) -> String {
    const UNITS: [&str; 7] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.2} {}", UNITS[unit])
}

/// The bytes of a `dims` array of `elem`-byte elements, `None` past `u128`.
pub fn bytes_of(dims: &[usize], elem: usize) -> Option<u128> {
    dims.iter()
        .try_fold(elem as u128, |acc, &d| acc.checked_mul(d as u128))
}

/// The machine's memory (RAM and swap, from `/proc/meminfo`), read once;
/// `None` where it cannot be read.
fn machine_bytes() -> Option<u128> {
    static MACHINE: OnceLock<Option<u128>> = OnceLock::new();
    *MACHINE.get_or_init(|| {
        let info = std::fs::read_to_string("/proc/meminfo").ok()?;
        let kib = |key: &str| -> Option<u128> {
            let line = info.lines().find(|l| l.starts_with(key))?;
            line[key.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        };
        Some((kib("MemTotal:")? + kib("SwapTotal:").unwrap_or(0)) * 1024)
    })
}

/// The big buffers of one call, sized with checked arithmetic before any of
/// them is allocated: [`Budget::check`] fails with [`Error::OutOfMemory`]
/// (naming the largest) when their sum does not fit in the address space or
/// exceeds the machine's memory (RAM and swap), so an absurd call is refused
/// at once instead of aborting the process, or spinning, halfway through.
/// Buffers that pass are then allocated fallibly
/// ([`crate::kernels::rows::try_zeros`] and friends), which catches a
/// smaller limit (`ulimit -v`).
#[derive(Debug)]
pub struct Budget {
    arg: &'static str,
    /// `None` once the sum overflowed.
    total: Option<u128>,
    /// The largest buffer: bytes, name, dims (at most 3) and their number.
    largest: Option<(u128, &'static str, [usize; 3], usize)>,
}

impl Budget {
    /// An empty budget; errors name `arg`.
    pub fn new(arg: &'static str) -> Self {
        Budget {
            arg,
            total: Some(0),
            largest: None,
        }
    }

    /// Adds a `dims` buffer of `elem`-byte elements, called `what` in errors.
    /// At most three dims.
    pub fn add(&mut self, what: &'static str, dims: &[usize], elem: usize) {
        let bytes = bytes_of(dims, elem);
        self.total = self.total.zip(bytes).and_then(|(a, b)| a.checked_add(b));
        let b = bytes.unwrap_or(u128::MAX);
        if self.largest.as_ref().is_none_or(|l| b > l.0) {
            let mut d = [0; 3];
            let n = dims.len().min(3);
            d[..n].copy_from_slice(&dims[..n]);
            self.largest = Some((b, what, d, n));
        }
    }

    /// The total, in bytes (`None` past `u128`).
    pub fn total(&self) -> Option<u128> {
        self.total
    }

    /// Fails when the total does not fit in the address space
    /// (`isize::MAX` bytes) or exceeds the machine's memory.
    pub fn check(&self) -> Result<()> {
        self.check_against(machine_bytes())
    }

    fn check_against(&self, machine: Option<u128>) -> Result<()> {
        let limit = machine.map_or(isize::MAX as u128, |m| m.min(isize::MAX as u128));
        match self.total {
            Some(t) if t <= limit => Ok(()),
            total => {
                let what = match &self.largest {
                    Some((_, w, d, n)) => format!("its buffers (the largest: {w} {:?})", &d[..*n]),
                    None => "its buffers".into(),
                };
                Err(Error::out_of_memory(self.arg, what, total))
            }
        }
    }
}

/// The way the caller of a long call (a forward or backward pass) stops it:
/// the driver calls [`Interrupt::check`] between time steps, on the thread
/// that made the call only, at most every [`INTERRUPT_PERIOD`], and stops
/// with the error it returns (the Python edge checks for Ctrl-C there).
pub trait Interrupt: Sync {
    /// `Ok` to go on; an error (usually [`Error::Interrupted`]) to stop.
    fn check(&self) -> Result<()>;
}

/// An [`Interrupt`] that never stops anything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Uninterrupted;

impl Interrupt for Uninterrupted {
    fn check(&self) -> Result<()> {
        Ok(())
    }
}

/// Closures are hooks too.
impl<F: Fn() -> Result<()> + Sync> Interrupt for F {
    fn check(&self) -> Result<()> {
        self()
    }
}

/// Least time between two calls of an [`Interrupt`] hook. A Python hook
/// takes the GIL, which another thread may hold for up to its switch
/// interval (5 ms), so checking more often could cost a busy program time;
/// this often still stops a call well within a second.
pub const INTERRUPT_PERIOD: std::time::Duration = std::time::Duration::from_millis(200);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked_before_anything_is_allocated() {
        assert_eq!(bytes_of(&[2, 3, 4], 4), Some(96));
        assert_eq!(bytes_of(&[usize::MAX, usize::MAX, 2], 8), None);
        let mut b = Budget::new("inputs");
        b.add("states", &[10, 10], 4);
        assert_eq!(b.total(), Some(400));
        assert!(b.check_against(Some(1 << 30)).is_ok());
        assert!(b.check_against(Some(100)).is_err());
        b.add("outputs", &[1, 1 << 40, 1], 4);
        // within the address space, so only a machine's memory limits it
        assert!(b.check_against(None).is_ok());
        assert!(b.check_against(Some(1 << 50)).is_ok());
        let e = b.check_against(Some(1 << 34)).unwrap_err();
        assert!(matches!(e, Error::OutOfMemory { .. }));
        let e = e.to_string();
        assert!(
            e.starts_with("inputs: the call needs 4.00 TiB")
                && e.contains("outputs [1, 1099511627776, 1]"),
            "{e}"
        );
        // past the address space
        b.add("more", &[1 << 62, 1, 1], 4);
        assert!(b.check_against(None).is_err());
        // past u128: still an error, never a wrap-around
        b.add("huge", &[usize::MAX, usize::MAX, usize::MAX], 8);
        assert_eq!(b.total(), None);
        let e = b.check_against(None).unwrap_err().to_string();
        assert!(
            e.contains("more than 2**128 bytes") && e.contains("huge"),
            "{e}"
        );
    }

    #[test]
    fn bytes_for_people() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(1 << 42), "4.00 TiB");
    }
}
