//! lotus-sdk's session vectors (`tests/vectors/lotus/session.json`):
//!
//! * `session_ids`: [`lotus_sdk_session_id`] reproduces
//!   `MuSigSessionManager._generateSessionId` for 32-byte and 5-byte messages,
//!   from keys in input and in sorted order;
//! * `discovery_advertisements`: lotus-sdk's one signed P2P structure is signed
//!   the way our announcements are (Lotus Schnorr over `SHA256(canonical
//!   bytes)`); signing its bytes with `musig2-core` reproduces lotus-sdk's
//!   signature byte for byte, and it verifies.

use anyhow::{Result, anyhow, ensure};
use musig2_core::hash::sha256;
use musig2_core::{PublicKey, SecretKey, Signature, schnorr};
use musig2_security::lotus_sdk_session_id;
use serde::Deserialize;

const SESSION_JSON: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/vectors/lotus/session.json"
));

#[derive(Deserialize)]
struct File {
    session_ids: Vec<SessionCase>,
    discovery_advertisements: Vec<AdvertisementCase>,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct SessionCase {
    input_pubkeys: Vec<String>,
    sorted_pubkeys: Vec<String>,
    message: String,
    session_id: String,
    announcement_messageHash: String,
}

#[derive(Deserialize)]
struct AdvertisementCase {
    signing_privkey: String,
    signing_pubkey: String,
    signed_message_hex: String,
    sha256_of_message: String,
    signature64: String,
    schnorr_verify: bool,
}

fn unhex(s: &str) -> Result<Vec<u8>> {
    hex::decode(s).map_err(|e| anyhow!("{s}: {e}"))
}

fn keys(hex: &[String]) -> Result<Vec<PublicKey>> {
    hex.iter()
        .map(|h| h.parse().map_err(|e| anyhow!("{h}: {e}")))
        .collect()
}

#[test]
fn lotus_sdk_session_ids() -> Result<()> {
    let file: File = serde_json::from_str(SESSION_JSON)?;
    let mut checked = 0;
    for case in &file.session_ids {
        let message = unhex(&case.message)?;
        for order in [&case.input_pubkeys, &case.sorted_pubkeys] {
            let id = lotus_sdk_session_id(&keys(order)?, &message);
            ensure!(id == case.session_id, "{} != {}", id, case.session_id);
        }
        ensure!(hex::encode(sha256(&message)) == case.announcement_messageHash);
        checked += 1;
    }
    assert_eq!(checked, 6);
    Ok(())
}

#[test]
fn lotus_sdk_signs_advertisements_as_we_sign_announcements() -> Result<()> {
    let file: File = serde_json::from_str(SESSION_JSON)?;
    let mut checked = 0;
    for case in &file.discovery_advertisements {
        let secret = SecretKey::from_slice(&unhex(&case.signing_privkey)?)?;
        let public: PublicKey = case
            .signing_pubkey
            .parse()
            .map_err(|e| anyhow!("pubkey: {e}"))?;
        ensure!(secret.public_key() == public);
        let digest = sha256(&unhex(&case.signed_message_hex)?);
        ensure!(hex::encode(digest) == case.sha256_of_message);
        let signature = schnorr::sign(&secret, &digest);
        let expected = Signature::from_slice(&unhex(&case.signature64)?)?;
        ensure!(signature == expected, "signature differs");
        ensure!(schnorr::verify(&public, &digest, &expected).is_ok() == case.schnorr_verify);
        checked += 1;
    }
    assert_eq!(checked, 3);
    Ok(())
}
