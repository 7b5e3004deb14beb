//! Bitcoin's CompactSize and a bounds-checked reader.

use alloc::vec::Vec;

use crate::error::DecodeError;

/// The largest CompactSize value accepted (Bitcoin's `MAX_SIZE`, 32 MiB).
pub const MAX_COMPACT_SIZE: u64 = 0x0200_0000;

/// Writes a CompactSize in its canonical (shortest) form.
pub fn write_compact_size(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=0xfc => out.push(n as u8),
        0xfd..=0xffff => {
            out.push(0xfd);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xfe);
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        _ => {
            out.push(0xff);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

/// Writes `CompactSize(len) ‖ bytes`.
pub(crate) fn write_var_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_compact_size(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Reads fields from a byte slice; every read is bounds-checked.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let truncated = DecodeError::Truncated {
            what,
            offset: self.pos,
            needed: n,
            available: self.remaining(),
        };
        let end = self.pos.checked_add(n).ok_or(truncated.clone())?;
        let slice = self.bytes.get(self.pos..end).ok_or(truncated)?;
        self.pos = end;
        Ok(slice)
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub(crate) fn compact_size(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let offset = self.pos;
        let [first] = self.array::<1>(what)?;
        let (value, min) = match first {
            0xfd => (u64::from(u16::from_le_bytes(self.array(what)?)), 0xfd),
            0xfe => (u64::from(u32::from_le_bytes(self.array(what)?)), 0x1_0000),
            0xff => (u64::from_le_bytes(self.array(what)?), 0x1_0000_0000),
            n => (u64::from(n), 0),
        };
        if value < min {
            return Err(DecodeError::NonCanonicalCompactSize { what, offset });
        }
        if value > MAX_COMPACT_SIZE {
            return Err(DecodeError::OversizedCompactSize {
                what,
                offset,
                value,
            });
        }
        Ok(value)
    }

    /// A count of items each at least `min_len` bytes long, checked against the
    /// bytes left so that a hostile count cannot make us allocate.
    pub(crate) fn count(
        &mut self,
        what: &'static str,
        min_len: usize,
    ) -> Result<usize, DecodeError> {
        let offset = self.pos;
        let count = self.compact_size(what)?;
        let available = self.remaining();
        let too_many = DecodeError::TooManyItems {
            what,
            count,
            offset,
            available,
        };
        let count = usize::try_from(count).map_err(|_| too_many.clone())?;
        match count.checked_mul(min_len) {
            Some(need) if need <= available => Ok(count),
            _ => Err(too_many),
        }
    }

    pub(crate) fn var_bytes(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let offset = self.pos;
        let len = self.compact_size(what)?;
        // MAX_COMPACT_SIZE fits in any usize of 32 bits or more.
        let len = usize::try_from(len).map_err(|_| DecodeError::Truncated {
            what,
            offset,
            needed: usize::MAX,
            available: self.remaining(),
        })?;
        self.take(len, what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_size_boundaries_round_trip() {
        for n in [0u64, 0xfc, 0xfd, 0xffff, 0x1_0000, MAX_COMPACT_SIZE] {
            let mut out = Vec::new();
            write_compact_size(&mut out, n);
            let mut r = Reader::new(&out);
            assert_eq!(r.compact_size("n"), Ok(n));
            assert_eq!(r.remaining(), 0);
        }
    }

    #[test]
    fn non_canonical_compact_sizes() {
        for bytes in [
            &[0xfd, 0xfc, 0x00][..],
            &[0xfe, 0xff, 0xff, 0x00, 0x00],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0],
        ] {
            assert_eq!(
                Reader::new(bytes).compact_size("n"),
                Err(DecodeError::NonCanonicalCompactSize {
                    what: "n",
                    offset: 0
                })
            );
        }
    }
}
