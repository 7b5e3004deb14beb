//! `POST /broadcast-tx` through the real Chronik client against the
//! Chronik-format test server on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::Ordering;

use common::*;
use musig2_identity::chronik::decode_broadcast_response;
use musig2_identity::{ChronikClient, ChronikError, Transaction};

async fn server_and_client() -> (TestServer, ChronikClient) {
    let server = TestServer::start(ServerState::new(ChainHandle::new(100))).await;
    let client = ChronikClient::new(test_config(vec![server.url.clone()])).unwrap();
    (server, client)
}

#[tokio::test]
async fn broadcast_returns_the_txid_of_the_posted_bytes() {
    let (server, client) = server_and_client().await;
    let raw = burn_tx(&pubkey(3), 5 * XPI, 42);
    let expected = Transaction::parse(&raw).unwrap().txid();

    let txid = client.broadcast_tx(&raw).await.unwrap();
    assert_eq!(txid, expected);

    // The server received exactly those bytes, with token checks on.
    let received = server.state.broadcasts.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].raw_tx, raw);
    assert!(!received[0].skip_token_checks);

    // The indexer now serves it from its mempool.
    let indexed = client.tx(&txid).await.unwrap();
    assert_eq!(indexed.tx.serialize(), raw);
    assert_eq!(indexed.block_height, None);
}

#[tokio::test]
async fn a_txid_other_than_the_posted_transactions_is_refused() {
    let (server, client) = server_and_client().await;
    server.state.tamper.store(true, Ordering::SeqCst);
    let raw = burn_tx(&pubkey(4), 5 * XPI, 43);
    let expected = Transaction::parse(&raw).unwrap().txid();
    match client.broadcast_tx(&raw).await {
        Err(ChronikError::TxIdMismatch { requested, found }) => {
            assert_eq!(requested, expected);
            assert_ne!(found, expected);
        }
        other => panic!("expected TxIdMismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn bytes_that_are_not_a_transaction_are_not_sent() {
    let (server, client) = server_and_client().await;
    let mut raw = burn_tx(&pubkey(5), 5 * XPI, 44);
    raw.push(0);
    assert!(matches!(
        client.broadcast_tx(&raw).await,
        Err(ChronikError::InvalidTransaction(_))
    ));
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn an_unavailable_server_is_asked_again() {
    let (server, client) = server_and_client().await;
    server.state.fail_next.store(1, Ordering::SeqCst);
    let raw = burn_tx(&pubkey(6), 5 * XPI, 45);
    let txid = client.broadcast_tx(&raw).await.unwrap();
    assert_eq!(txid, Transaction::parse(&raw).unwrap().txid());
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn a_body_that_is_not_a_broadcast_response_is_refused() {
    let (server, client) = server_and_client().await;
    server.state.garbage.store(true, Ordering::SeqCst);
    let raw = burn_tx(&pubkey(7), 5 * XPI, 46);
    assert!(matches!(
        client.broadcast_tx(&raw).await,
        Err(ChronikError::BadProtobuf { .. } | ChronikError::MalformedResponse { .. })
    ));
    // The decoder alone: a short txid is malformed.
    let expected = Transaction::parse(&raw).unwrap().txid();
    let short = musig2_identity::chronik::proto::BroadcastTxResponse { txid: vec![1; 31] };
    assert!(matches!(
        decode_broadcast_response(&prost::Message::encode_to_vec(&short), &expected),
        Err(ChronikError::MalformedResponse { .. })
    ));
}
