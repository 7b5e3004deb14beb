//! Hex for `Display` and `FromStr` of the crate's byte-string types.

use core::fmt;

/// A hex string that does not encode the expected number of bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: expected {expected} bytes of hex, got {got:?}")]
#[non_exhaustive]
pub struct ParseHexError {
    /// What was being parsed.
    pub what: &'static str,
    /// The number of bytes expected.
    pub expected: usize,
    /// The string given (truncated to 80 characters).
    pub got: String,
}

pub(crate) fn write(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

/// Decodes exactly `N` bytes of hex (either case).
pub(crate) fn decode_array<const N: usize>(
    s: &str,
    what: &'static str,
) -> Result<[u8; N], ParseHexError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|_| ParseHexError {
        what,
        expected: N,
        got: s.chars().take(80).collect(),
    })?;
    Ok(out)
}
