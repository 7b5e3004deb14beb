//! The canonical byte encoding of signed objects.
//!
//! It is the postcard 1.x encoding of the same fields (proven by the tests in
//! `announcement`), written by hand so that producing it cannot fail and does
//! not depend on a serializer's configuration:
//!
//! * `u8`: one byte; `u64` and lengths: unsigned LEB128 (postcard "varint");
//! * `[u8; N]`: the N bytes; byte strings and UTF-8 strings: varint length,
//!   then the bytes; a public key is a 33-byte byte string (`0x21` + 33 bytes);
//! * `Vec<T>`: varint count, then each element;
//! * `Option<T>`: `0x00`, or `0x01` then the value;
//! * fieldless enums: the variant index as a varint.

pub(crate) struct Writer(Vec<u8>);

impl Writer {
    pub(crate) fn with_tag(tag: &[u8]) -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(tag);
        Self(buf)
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.0
    }

    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    pub(crate) fn varint(&mut self, mut v: u64) -> &mut Self {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(byte);
                return self;
            }
            self.0.push(byte | 0x80);
        }
    }

    pub(crate) fn len(&mut self, n: usize) -> &mut Self {
        self.varint(n as u64)
    }

    pub(crate) fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend_from_slice(bytes);
        self
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.len(bytes.len()).raw(bytes)
    }

    pub(crate) fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    pub(crate) fn strs(&mut self, items: &[String]) -> &mut Self {
        self.len(items.len());
        for s in items {
            self.str(s);
        }
        self
    }

    pub(crate) fn option<T>(
        &mut self,
        value: Option<T>,
        write: impl FnOnce(&mut Self, T),
    ) -> &mut Self {
        match value {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                write(self, v);
                self
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_postcard() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            1_764_000_000_000,
            u64::MAX,
        ] {
            let mut w = Writer::with_tag(b"");
            w.varint(v);
            assert_eq!(w.finish(), postcard::to_allocvec(&v).unwrap(), "{v}");
        }
    }
}
