//! `lotus_tx::Transaction::parse`, the workspace's one raw Lotus transaction
//! parser (also what `musig2-identity` re-exports for burn and rotation
//! proofs).
//!
//! Asserts: the parser refuses non-canonical CompactSizes and trailing
//! bytes, so an accepted transaction serializes to exactly its input; its
//! hash is `SHA256d` of those bytes; its txid does not depend on the input
//! scripts (Lotus txids leave them out); the output total is the sum of the
//! values, each within the money supply.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lotus_tx::{MAX_MONEY_SATS, Transaction, sha256d};

fuzz_target!(|data: &[u8]| {
    let Ok(tx) = Transaction::parse(data) else {
        return;
    };
    assert_eq!(tx.serialize(), data, "accepted bytes are not canonical");
    assert_eq!(tx.hash().internal_bytes(), sha256d(data));
    assert!(!tx.inputs.is_empty() && !tx.outputs.is_empty());
    assert!(tx.outputs.iter().all(|o| o.value <= MAX_MONEY_SATS));
    let total: u128 = tx.outputs.iter().map(|o| u128::from(o.value)).sum();
    assert_eq!(
        tx.total_output_value().map(u128::from),
        u64::try_from(total).ok().map(u128::from)
    );
    let mut stripped = tx.clone();
    for input in &mut stripped.inputs {
        input.script_sig.clear();
    }
    assert_eq!(
        stripped.txid(),
        tx.txid(),
        "the txid depends on a script_sig"
    );
});
