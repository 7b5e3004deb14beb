//! The direct-message codec: a length-prefixed, versioned frame around an
//! opaque payload (the coordinator's postcard-encoded messages).
//!
//! Frame: `u32` big-endian length of what follows, then one wire-version byte,
//! then the payload. A frame longer than the configured maximum, or with an
//! unknown version, is rejected **before** its payload is read or decoded.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use serde::{Deserialize, Serialize};

/// The protocol id of direct messages. lotus-sdk's JSON protocol is
/// `/lotus/musig2/1.0.0`; this postcard wire format is a different protocol.
/// (`2.0.0` was the same frames with one exchange per stream.)
pub const DIRECT_PROTOCOL: StreamProtocol = StreamProtocol::new("/lotus/musig2/3.0.0");

/// The only wire version this build speaks.
pub const WIRE_VERSION: u8 = 1;

/// The answer to a direct message: delivery, not application, semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ack {
    /// Handed to the application.
    Accepted,
    /// The receiver's queue is full; try again later.
    Busy,
}

/// A postcard codec with a size cap and a wire version.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_frame: usize,
}

impl FrameCodec {
    /// A codec that refuses frames longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self { max_frame }
    }

    /// The largest payload this codec reads or writes.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Reads one frame and returns its payload. The length and the version
    /// are checked before the payload is read.
    pub async fn read_frame<T: AsyncRead + Unpin>(&self, io: &mut T) -> io::Result<Vec<u8>> {
        let mut len = [0u8; 4];
        io.read_exact(&mut len).await?;
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 || len > self.max_frame + 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("frame of {len} bytes (limit {})", self.max_frame),
            ));
        }
        let mut version = [0u8; 1];
        io.read_exact(&mut version).await?;
        if version[0] != WIRE_VERSION {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unknown wire version {}", version[0]),
            ));
        }
        let mut payload = vec![0u8; len - 1];
        io.read_exact(&mut payload).await?;
        Ok(payload)
    }

    /// Writes one frame (a single write, then a flush).
    pub async fn write_frame<T: AsyncWrite + Unpin>(
        &self,
        io: &mut T,
        payload: &[u8],
    ) -> io::Result<()> {
        if payload.len() > self.max_frame {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "payload of {} bytes (limit {})",
                    payload.len(),
                    self.max_frame
                ),
            ));
        }
        let len = u32::try_from(payload.len() + 1)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "payload too large"))?;
        // One buffer, one write: one muxer frame on the wire.
        let mut frame = Vec::with_capacity(5 + payload.len());
        frame.extend_from_slice(&len.to_be_bytes());
        frame.push(WIRE_VERSION);
        frame.extend_from_slice(payload);
        io.write_all(&frame).await?;
        io.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;

    fn block<F: std::future::Future>(f: F) -> F::Output {
        futures::executor::block_on(f)
    }

    #[test]
    fn round_trip_and_limits() {
        let codec = FrameCodec::new(16);
        let mut buf = Vec::new();
        block(codec.write_frame(&mut Cursor::new(&mut buf), b"hello")).unwrap();
        assert_eq!(
            block(codec.read_frame(&mut Cursor::new(&buf))).unwrap(),
            b"hello"
        );

        // Oversize payloads are refused on both sides, before reading the body.
        assert!(block(codec.write_frame(&mut Cursor::new(&mut Vec::new()), &[0u8; 17])).is_err());
        let mut oversize = 1_000_000u32.to_be_bytes().to_vec();
        oversize.push(WIRE_VERSION);
        let err = block(codec.read_frame(&mut Cursor::new(&oversize))).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);

        // Unknown versions are refused.
        let mut wrong = buf.clone();
        wrong[4] = 9;
        let err = block(codec.read_frame(&mut Cursor::new(&wrong))).unwrap_err();
        assert!(err.to_string().contains("unknown wire version 9"));

        // Truncated frames are errors, not panics.
        assert!(block(codec.read_frame(&mut Cursor::new(&buf[..6]))).is_err());
        assert!(block(codec.read_frame(&mut Cursor::new(&[0u8, 0, 0, 0]))).is_err());
    }
}
