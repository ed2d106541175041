//! CRC-32C for the TF 1.x checkpoint reader and writer
//! (`rnnrs.convert.tf1_checkpoint`): their `.index` blocks and tensor
//! entries carry CRC-32C (Castagnoli) checksums.

use pyo3::prelude::*;

/// Inputs at least this long are checksummed with the GIL released.
const DETACH_BYTES: usize = 1 << 16;

/// The CRC-32C (Castagnoli polynomial 0x1EDC6F41, reflected, initial and final
/// XOR 0xFFFFFFFF: the checksum of iSCSI, LevelDB and TensorFlow) of `data`,
/// as an unsigned 32-bit integer, *unmasked* (LevelDB's and TensorFlow's
/// stored "masked" form is computed from it in Python). Hardware CRC
/// instructions (SSE4.2, ARMv8) are used where the CPU has them.
#[pyfunction]
fn crc32c(py: Python<'_>, data: &[u8]) -> u32 {
    if data.len() >= DETACH_BYTES {
        py.detach(|| ::crc32c::crc32c(data))
    } else {
        ::crc32c::crc32c(data)
    }
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(self::crc32c, m)?)
}
