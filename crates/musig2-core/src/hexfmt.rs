//! Lowercase hex for `Display` and `FromStr` of the public byte-string types.

use core::fmt;

use crate::error::Error;

pub(crate) fn write(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes exactly `N` bytes of hex (either case).
pub(crate) fn decode_array<const N: usize>(s: &str, what: &'static str) -> Result<[u8; N], Error> {
    let raw = s.as_bytes();
    if raw.len() != 2 * N {
        return Err(Error::InvalidLength {
            what,
            expected: N,
            got: raw.len() / 2,
        });
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(raw.chunks_exact(2)) {
        let (hi, lo) = match pair {
            [h, l] => (nibble(*h), nibble(*l)),
            _ => (None, None),
        };
        *o = match (hi, lo) {
            (Some(h), Some(l)) => (h << 4) | l,
            _ => {
                return Err(Error::InvalidLength {
                    what,
                    expected: N,
                    got: 0,
                });
            }
        };
    }
    Ok(out)
}
