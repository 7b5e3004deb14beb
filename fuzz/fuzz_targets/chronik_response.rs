//! Chronik answers (protobuf, `musig2_identity::chronik`), decoded as the
//! client decodes them: `GET /blockchain-info` (`decode_blockchain_info`),
//! `GET /tx/{txid}` (`decode_tx_response`: network, txid and recomputed txid
//! checked; and `transaction_from_proto`, the conversion inside it), and the
//! error body of a non-200 answer (`decode_error_body`).
//!
//! Input: one byte choosing the answer (0 blockchain-info, 1 tx, 2 error
//! body), then the body.
//!
//! Asserts: each decoded message survives prost encode → decode; an accepted
//! tip carries the message's hash and height; an accepted transaction has
//! the requested txid, serializes and parses back to itself, and converts to
//! a Chronik message and back unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use musig2_identity::chronik::{
    decode_blockchain_info, decode_error_body, decode_tx_response, proto, transaction_from_proto,
};
use musig2_identity::{Network, Transaction, TxId};
use prost::Message;

fn round_trip<M: Message + Default + PartialEq + core::fmt::Debug>(msg: &M) {
    let again = M::decode(msg.encode_to_vec().as_slice()).ok();
    assert_eq!(again.as_ref(), Some(msg), "prost round trip");
}

fn check_transaction(tx: &Transaction) {
    // The Chronik path checks values only for sign; the raw parser also
    // bounds them by the money supply, so only in-range transactions parse.
    match Transaction::parse(&tx.serialize()) {
        Ok(parsed) => assert_eq!(&parsed, tx),
        Err(e) => assert!(
            matches!(e, lotus_tx::DecodeError::ValueOutOfRange { .. }),
            "a Chronik transaction does not parse back: {e}"
        ),
    }
    let msg = proto::Tx::from_transaction(tx, None, Network::Xpi);
    assert_eq!(transaction_from_proto(&msg).as_ref(), Ok(tx));
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector {
        0 => {
            let decoded = proto::BlockchainInfo::decode(body);
            let tip = decode_blockchain_info(body);
            assert_eq!(
                decoded.is_ok(),
                tip.is_ok()
                    || tip.as_ref().is_err_and(|e| {
                        matches!(e, musig2_identity::ChronikError::MalformedResponse { .. })
                    })
            );
            if let Ok(info) = decoded {
                round_trip(&info);
                if let Ok(tip) = tip {
                    assert_eq!(i64::from(tip.height), i64::from(info.tip_height));
                    assert_eq!(tip.hash.as_slice(), info.tip_hash.as_slice());
                }
            }
        }
        1 => {
            let Ok(msg) = proto::Tx::decode(body) else {
                assert!(
                    decode_tx_response(body, &TxId::from_internal_bytes([0; 32]), Network::Xpi)
                        .is_err()
                );
                return;
            };
            round_trip(&msg);
            if let Ok(tx) = transaction_from_proto(&msg) {
                assert_eq!(tx.inputs.len(), msg.inputs.len());
                assert_eq!(tx.outputs.len(), msg.outputs.len());
                check_transaction(&tx);
            }
            // Ask for the txid the message claims, as a client that asked
            // for it would: only then can the answer be accepted.
            let requested = <[u8; 32]>::try_from(msg.txid.as_slice())
                .map(TxId::from_internal_bytes)
                .unwrap_or(TxId::from_internal_bytes([0; 32]));
            for network in [Network::Xpi, Network::Xec] {
                if let Ok(indexed) = decode_tx_response(body, &requested, network) {
                    assert_eq!(msg.network, network as i32);
                    assert_eq!(indexed.txid, requested);
                    assert_eq!(indexed.tx.txid(), requested);
                    assert_eq!(indexed.block_height.is_some(), msg.block.is_some());
                    check_transaction(&indexed.tx);
                }
            }
        }
        2 => {
            let (code, message) = decode_error_body(body);
            match proto::Error::decode(body) {
                Ok(e) => {
                    round_trip(&e);
                    assert_eq!((code, message), (e.error_code, e.msg));
                }
                Err(_) => assert!(code.is_empty() && message.starts_with("undecodable")),
            }
        }
        _ => {}
    }
});
