//! Burn identities on the live path: four real daemons on loopback with
//! `[identity] enabled`, checking one another's burns against a loopback
//! Chronik server (musig2-identity's test server, over a chain of real Lotus
//! burn transactions). A and B burned enough, long enough ago; C's burn is
//! too recent; D's burn was never mined.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use lotus_musig2::identity::identity::sign_registration;
use lotus_musig2::identity::{IdentityId, KeyRotation, OutPoint, TxId};
use serde_json::json;

#[path = "../../musig2-identity/tests/common/mod.rs"]
mod chain;
mod support;

use support::*;

/// Registration burns need 144 confirmations (the reference's maturation).
const TIP: u32 = 1000;

fn identity_table(url: &str, burn: &OutPoint) -> String {
    format!("[identity]\nenabled = true\nchronik_urls = [{url:?}]\nburn = \"{burn}\"\n")
}

#[test]
fn advertised_identities_are_checked_and_their_reputation_follows_sessions() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ledger = chain::ChainHandle::new(TIP);
    let server = runtime.block_on(chain::TestServer::start(chain::ServerState::new(
        ledger.clone(),
    )));
    let key = |i: u8| keypair(i).public_key();
    let burns = [
        ledger.burn(&key(0), 1000 * chain::XPI, 800, 1),
        ledger.burn(&key(1), 1000 * chain::XPI, 800, 2),
        // 11 confirmations of the 144 required.
        ledger.burn(&key(2), 1000 * chain::XPI, TIP - 10, 3),
        // Never mined, never seen.
        OutPoint::new(TxId::from_internal_bytes([0x99; 32]), 0),
    ];
    let id_a = IdentityId::derive(&burns[0]).to_string();

    let dir = tempfile::tempdir().unwrap();
    let mut children = Children(Vec::new());
    let config = |i: u8, bootstrap: &[String], top: &str, tables: &str| {
        let tables = format!(
            "{}{tables}",
            identity_table(&server.url, &burns[usize::from(i)])
        );
        write_config(dir.path(), i, bootstrap, top, &tables)
    };
    let (dir_a, config_a) = config(0, &[], "approve = \"auto\"", "");
    let a = start(&mut children, &dir_a, &config_a);
    let bootstrap = addrs(&a);
    // B looks for a key 3 s at most, and signs only for reputable identities.
    let (dir_b, config_b) = config(
        1,
        &bootstrap,
        "discovery_timeout_secs = 3",
        "[approve]\nmin_identity_reputation = 50\n",
    );
    let b = start(&mut children, &dir_b, &config_b);
    let events_b = b.events(&mut children);
    let (dir_c, config_c) = config(2, &bootstrap, "", "");
    start(&mut children, &dir_c, &config_c);
    let (dir_d, config_d) = config(3, &bootstrap, "", "");
    let d = start(&mut children, &dir_d, &config_d);

    // --- C's immature burn and D's unmined one are refused --------------------------
    // B looks their keys up to deliver a request: each advertisement it finds
    // is refused, so the key is never found and the session fails.
    for (i, why) in [(2u8, "confirmations"), (3u8, "not found")] {
        let (code, out) = request(&b, &[1, i], &format!("{i:02x}").repeat(32));
        assert_eq!(code, 0, "{out}");
        let refused = wait_for(&events_b, "the identity refusal", |v| {
            v["event"] == "identity-refused" && v["pubkey"] == key(i).to_string()
        });
        let reason = refused["reason"].as_str().unwrap();
        assert!(reason.contains(why), "{reason}");
        let failed = b.session_when(out["session_id"].as_str().unwrap(), |s| {
            !s["error"].is_null()
        });
        assert!(failed["signature"].is_null(), "{failed}");
    }

    // Refusing them was the indexer's word: no peer was penalised for it.
    for p in b.rpc_ok(&["peers"]).as_array().unwrap() {
        assert_eq!(p["reputation"]["invalid_signatures"], 0, "{p}");
        assert_eq!(p["reputation"]["spam_count"], 0, "{p}");
    }

    // --- B signs with A: A's identity checks out and gains 2 ------------------------
    let (code, out) = request(&b, &[0, 1], &"0b".repeat(32));
    assert_eq!(code, 0, "{out}");
    let session = out["session_id"].as_str().unwrap().to_string();
    let moved = wait_for(&events_b, "A's reputation", |v| {
        v["event"] == "identity-reputation" && v["pubkey"] == key(0).to_string()
    });
    assert_eq!(
        (moved["identity_id"].as_str(), moved["score"].as_u64()),
        (Some(id_a.as_str()), Some(52))
    );
    assert_eq!(
        b.session_when(&session, |s| s["signature"].is_string())["phase"],
        "COMPLETE"
    );
    let identity = b.rpc_ok(&["identity", &id_a]);
    assert_eq!(identity["current_key"], key(0).to_string());
    assert_eq!(identity["reputation"]["completed_signings"], 1);

    // --- A asks B: B's rule finds A reputable enough and signs -----------------------
    let (code, out) = request(&a, &[0, 1], &"0a".repeat(32));
    assert_eq!(code, 0, "{out}");
    let session = out["session_id"].as_str().unwrap().to_string();
    let received = wait_for(&events_b, "A's request on B", |v| {
        v["event"] == "request-received" && v["request_id"] == out["request_id"]
    });
    assert_eq!(received["consent"], "approved", "{received}");
    b.session_when(&session, |s| s["signature"].is_string());
    // The credit follows the signature (the event says when it is written).
    let moved = wait_for(&events_b, "A's reputation after the second signing", |v| {
        v["event"] == "identity-reputation" && v["pubkey"] == key(0).to_string()
    });
    assert_eq!(moved["score"], 54, "{moved}");
    let score = || b.rpc_ok(&["identity", &id_a])["reputation"]["score"].clone();
    assert_eq!(score(), 54);

    // --- D, whose identity B refused, is refused by B's consent rule ------------------
    let (code, out) = request(&d, &[1, 3], &"0d".repeat(32));
    assert_eq!(code, 0, "D found B, whose identity checks out: {out}");
    let received = wait_for(&events_b, "D's request on B", |v| {
        v["event"] == "request-received" && v["request_id"] == out["request_id"]
    });
    assert_eq!(received["consent"]["refused"], "identity", "{received}");

    // --- the API registers an identity and rotates its key (on A) ----------------------
    let (old, new) = (chain::secret(0x55), chain::secret(0x66));
    let e_burn = ledger.burn(&old.public_key(), 1000 * chain::XPI, 700, 5);
    let e_id = IdentityId::derive(&e_burn);
    let register = json!({
        "burn_txid": e_burn.txid.to_string(),
        "vout": e_burn.vout,
        "public_key": old.public_key().to_string(),
        "ownership_signature": sign_registration(&old, &e_id).to_string(),
    });
    let token = a.token();
    let (status, body) = http(
        &a.api,
        "POST",
        "/v1/identities",
        Some(&token),
        Some(&register),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["identity_id"], e_id.to_string());
    assert_eq!(body["reputation"]["score"], 50);
    let (status, body) = http(
        &a.api,
        "POST",
        "/v1/identities",
        Some(&token),
        Some(&register),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
    let r_burn = ledger.burn(&new.public_key(), 500 * chain::XPI, 800, 6);
    let rotation = KeyRotation::sign(e_id, &old, &new, r_burn);
    let rotate = json!({
        "old_key": rotation.old_key.to_string(),
        "new_key": rotation.new_key.to_string(),
        "old_key_signature": hex::encode(&rotation.old_key_signature),
        "new_key_signature": hex::encode(&rotation.new_key_signature),
        "burn_txid": r_burn.txid.to_string(),
        "vout": 0,
    });
    let path = format!("/v1/identities/{e_id}/rotate");
    let forged = {
        let mut f = rotate.clone();
        f["new_key_signature"] = json!(hex::encode(&rotation.old_key_signature));
        f
    };
    let (status, body) = http(&a.api, "POST", &path, Some(&token), Some(&forged));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );
    let (status, body) = http(&a.api, "POST", &path, Some(&token), Some(&rotate));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["current_key"], new.public_key().to_string());
    assert_eq!(body["key_history"].as_array().unwrap().len(), 2);
    let (status, _) = http(&a.api, "POST", &path, Some(&token), Some(&rotate));
    assert_eq!(status, 409, "the old key is no longer current");

    // --- kill -9 and restart B: the reputation it recorded is still there --------------
    children.0[1].kill().unwrap();
    children.0[1].wait().unwrap();
    let b2 = start(&mut children, &b.dir, &b.config);
    assert_eq!(b2.rpc_ok(&["identity", &id_a])["reputation"]["score"], 54);
    let (code, out) = b2.rpc(&["identity", &IdentityId::derive(&burns[2]).to_string()]);
    assert_eq!(
        (code, out["error"]["code"].as_str()),
        (1, Some("not_found"))
    );
}
