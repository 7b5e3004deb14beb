//! Properties: parse ∘ serialize is the identity, no decoder panics on any
//! input (including large ones), and a flipped signature bit fails verification.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use lotus_tx::script;
use lotus_tx::{
    Address, MAX_MONEY_SATS, OutPoint, SighashType, Transaction, TxId, TxInput, TxOutput,
    VerifyError,
};
use proptest::prelude::*;
use serde_json::Value;

fn vectors() -> Value {
    let package =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let full = PathBuf::from(package).join("../../tests/vectors/lotus/transactions.json");
    serde_json::from_str(&std::fs::read_to_string(full).unwrap()).unwrap()
}

/// (signed transaction, spent outputs) of every vector case, read once.
fn signed_cases() -> &'static [(Transaction, Vec<TxOutput>)] {
    static CASES: std::sync::OnceLock<Vec<(Transaction, Vec<TxOutput>)>> =
        std::sync::OnceLock::new();
    CASES.get_or_init(read_signed_cases)
}

fn read_signed_cases() -> Vec<(Transaction, Vec<TxOutput>)> {
    vectors()["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let tx =
                Transaction::parse(&hex::decode(c["signed_tx_hex"].as_str().unwrap()).unwrap())
                    .unwrap();
            let spent = c["spent_outputs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| {
                    TxOutput::new(
                        o["amount"].as_u64().unwrap(),
                        hex::decode(o["script_pubkey_hex"].as_str().unwrap()).unwrap(),
                    )
                })
                .collect();
            (tx, spent)
        })
        .collect()
}

fn script_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..40),
        // Lengths around the CompactSize boundaries (252/253, 65535/65536).
        (250usize..260).prop_map(|n| vec![0x51; n]),
        Just(vec![0x6a; max]),
    ]
}

fn arb_input() -> impl Strategy<Value = TxInput> {
    (
        any::<[u8; 32]>(),
        any::<u32>(),
        script_bytes(300),
        any::<u32>(),
    )
        .prop_map(|(txid, vout, script_sig, sequence)| TxInput {
            prev_out: OutPoint::new(TxId::from_internal_bytes(txid), vout),
            script_sig,
            sequence,
        })
}

fn arb_output() -> impl Strategy<Value = TxOutput> {
    (0..=MAX_MONEY_SATS, script_bytes(70_000))
        .prop_map(|(value, script)| TxOutput { value, script })
}

fn arb_tx() -> impl Strategy<Value = Transaction> {
    (
        any::<i32>(),
        proptest::collection::vec(arb_input(), 1..6),
        proptest::collection::vec(arb_output(), 1..6),
        any::<u32>(),
    )
        .prop_map(|(version, inputs, outputs, lock_time)| Transaction {
            version,
            inputs,
            outputs,
            lock_time,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn parse_serialize_is_identity(tx in arb_tx()) {
        let raw = tx.serialize();
        let parsed = Transaction::parse(&raw).unwrap();
        prop_assert_eq!(&parsed, &tx);
        prop_assert_eq!(parsed.serialize(), raw);
        prop_assert_eq!(parsed.txid(), tx.txid());
        // Every sighash type is an answer or a typed error, never a panic.
        let spent: Vec<TxOutput> = tx.inputs.iter().map(|_| TxOutput::new(1, vec![0x51])).collect();
        for byte in 0..=255u8 {
            let _ = tx.sighash(0, &spent, SighashType::from_u8(byte));
        }
        let _ = tx.verify(&spent);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = Transaction::parse(&bytes);
        let _ = script::pushes(&bytes);
        let _ = script::ScriptKind::of(&bytes);
    }

    #[test]
    fn large_inputs_never_panic(len in 0usize..2_000_000, fill in any::<u8>(), head in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut bytes = head;
        bytes.resize(len.max(bytes.len()), fill);
        let _ = Transaction::parse(&bytes);
        let _ = script::pushes(&bytes);
    }

    #[test]
    fn mutated_vector_transactions_never_panic(case in 0usize..31, flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
        let (tx, spent) = &signed_cases()[case];
        let mut raw = tx.serialize();
        for (at, byte) in flips {
            let i = at.index(raw.len());
            raw[i] ^= byte;
        }
        if let Ok(parsed) = Transaction::parse(&raw) {
            prop_assert_eq!(parsed.serialize(), raw.clone());
            let _ = parsed.verify(spent);
        }
        let _ = Transaction::parse(&raw[..cut.index(raw.len())]);
    }

    #[test]
    fn addresses_never_panic(s in "\\PC{0,200}", tail in "[1-9A-HJ-NP-Za-km-z]{0,120}") {
        let _ = Address::decode(&s);
        let _ = Address::decode(&format!("lotus_{tail}"));
        let _ = Address::decode(&format!("lotusT{tail}"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any one flipped bit of any input's signature (hash type byte included)
    /// makes the transaction invalid, and the error names that input.
    #[test]
    fn flipped_signature_bit_fails_verify(case in 0usize..31, input in any::<prop::sample::Index>(), bit in any::<prop::sample::Index>()) {
        let (tx, spent) = &signed_cases()[case];
        let index = input.index(tx.inputs.len());
        let script_sig = &tx.inputs[index].script_sig;
        let pushes = script::pushes(script_sig).unwrap();
        let sig = pushes[0];
        // The signature is the first push: it starts after its one-byte opcode.
        let bit = bit.index(sig.len() * 8);
        let mut flipped = tx.clone();
        flipped.inputs[index].script_sig[1 + bit / 8] ^= 1 << (bit % 8);
        let result = flipped.verify(spent);
        prop_assert!(
            matches!(result, Err(VerifyError::Input { index: i, .. }) if i == index),
            "{result:?}"
        );
        prop_assert!(tx.verify(spent).is_ok());
    }
}
