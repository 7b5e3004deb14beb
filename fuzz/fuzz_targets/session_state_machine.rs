//! The session state machine, stateful: three signers' sessions fed an
//! arbitrary sequence of local steps, deliveries (in any order), duplicates,
//! misdirected copies and garbage contributions, decoded from the input
//! (`musig2_coordinator::fuzzing::run`).
//!
//! Asserts (inside the harness, after every step): no panic; at most one
//! partial signature per signer and session; a session's phase only moves
//! forward; a final signature verifies under the aggregate key; no signer
//! blames itself.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    musig2_coordinator::fuzzing::run(data);
});
