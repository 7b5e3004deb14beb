//! `musig2-net`'s direct-message frame codec (`FrameCodec::read_frame`), fed a
//! whole inbound stream: frames are read one after another, as on the
//! long-lived per-peer stream, until the first error.
//!
//! Input: one byte choosing the frame limit (even: the production 100 000
//! bytes, odd: 16 bytes, so the limit is easy to reach), then the stream.
//!
//! Asserts: every frame read re-encodes (`write_frame`) to exactly the bytes
//! it was read from; the first error is `InvalidData` (bad length or version)
//! or `UnexpectedEof` (truncation) and is raised exactly when the bytes are
//! not a well-formed frame.

#![no_main]

use std::io;

use futures::executor::block_on;
use futures::io::Cursor;
use libfuzzer_sys::fuzz_target;
use musig2_net::codec::{FrameCodec, WIRE_VERSION};

/// What a well-formed frame at the start of `rest` would be: `Some(total
/// length)`, or `None` if the codec must refuse it.
fn expected_frame(rest: &[u8], max: usize) -> Option<usize> {
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    if len == 0 || len > max + 1 || *rest.get(4)? != WIRE_VERSION || rest.len() < 4 + len {
        return None;
    }
    Some(4 + len)
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, stream)) = data.split_first() else {
        return;
    };
    let max = if selector % 2 == 0 { 100_000 } else { 16 };
    let codec = FrameCodec::new(max);
    let mut cursor = Cursor::new(stream);
    let mut offset = 0usize;
    loop {
        let rest = stream.get(offset..).unwrap_or_default();
        let expected = expected_frame(rest, max);
        match block_on(codec.read_frame(&mut cursor)) {
            Ok(payload) => {
                let Some(total) = expected else {
                    panic!("accepted a frame it should refuse at offset {offset}");
                };
                assert_eq!(total, 5 + payload.len());
                assert!(payload.len() <= max);
                let mut written = Vec::new();
                block_on(codec.write_frame(&mut Cursor::new(&mut written), &payload))
                    .unwrap_or_else(|e| panic!("an accepted payload does not write: {e}"));
                assert_eq!(
                    written.as_slice(),
                    &rest[..total],
                    "frame does not re-encode"
                );
                offset += total;
            }
            Err(e) => {
                assert!(
                    expected.is_none(),
                    "refused a well-formed frame at offset {offset}: {e}"
                );
                assert!(
                    matches!(
                        e.kind(),
                        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
                    ),
                    "unexpected error kind {:?}",
                    e.kind()
                );
                return;
            }
        }
    }
});
