//! lotus-sdk's `MuSigSessionManager` runs (`tests/vectors/lotus/musig2_lotus.json`,
//! `session_manager_cases`: plain, explicit sighash `0x41`, Taproot), read at
//! run time:
//!
//! * the sighash type of the final signature
//!   ([`SigningMetadata::final_sighash_type`]) is lotus-sdk's `nhashtype`;
//!   the Taproot run aborted in lotus-sdk (its partial signatures are checked
//!   with the Taproot verifier but made without the tweak, see the vectors'
//!   README), so it has no `nhashtype`, and the rule its README quotes from
//!   `session.ts:696-710` (Taproot → `0x61`) is what is checked;
//! * the session id ([`lotus_sdk_session_id`]), the key order, each input's
//!   signer index and the aggregate key are lotus-sdk's;
//! * a completed run's final signature verifies under the aggregate key, as
//!   lotus-sdk says, and its transaction encoding is the signature followed
//!   by the sighash byte.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail, ensure};
use musig2_core::{KeyAggContext, Lotus, PublicKey, SecretKey, Signature, key_sort, schnorr};
use musig2_security::{InputScriptType, SigningMetadata, lotus_sdk_session_id};
use serde_json::Value;

fn load() -> Result<Value> {
    // The package directory as of this run, not of compilation (a test
    // binary may be reused from a shared target directory).
    let package =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let path = PathBuf::from(package).join("../../tests/vectors/lotus/musig2_lotus.json");
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    Ok(serde_json::from_str(&text)?)
}

fn text(v: &Value) -> Result<&str> {
    v.as_str().ok_or_else(|| anyhow!("not a string: {v}"))
}

fn unhex(v: &Value) -> Result<Vec<u8>> {
    let s = text(v)?;
    hex::decode(s).map_err(|e| anyhow!("{s}: {e}"))
}

fn keys(v: &Value) -> Result<Vec<PublicKey>> {
    v.as_array()
        .context("key list")?
        .iter()
        .map(|k| text(k)?.parse().map_err(|e| anyhow!("{k}: {e}")))
        .collect()
}

/// lotus-sdk's metadata object as ours; an unknown field is an error.
fn metadata(v: &Value) -> Result<SigningMetadata> {
    let mut m = SigningMetadata::default();
    let Some(fields) = v.as_object() else {
        ensure!(v.is_null(), "metadata {v}");
        return Ok(m);
    };
    for (name, value) in fields {
        match name.as_str() {
            "sighashType" => {
                m.sighash_type = Some(u8::try_from(value.as_u64().context("sighashType")?)?)
            }
            "inputScriptType" => {
                m.input_script_type = Some(match text(value)? {
                    "taproot" => InputScriptType::Taproot,
                    "pubkeyhash" => InputScriptType::PubKeyHash,
                    "scripthash" => InputScriptType::ScriptHash,
                    other => bail!("inputScriptType {other}"),
                })
            }
            other => bail!("unknown metadata field {other}"),
        }
    }
    Ok(m)
}

#[test]
fn lotus_sdk_session_manager_cases() -> Result<()> {
    let v = load()?;
    let mut checked = Vec::new();
    for case in v["session_manager_cases"]
        .as_array()
        .context("session_manager_cases")?
    {
        let name = text(&case["name"])?;
        let input = keys(&case["input_pubkeys"])?;
        for (i, sk) in case["input_privkeys"]
            .as_array()
            .context("privkeys")?
            .iter()
            .enumerate()
        {
            let sk = SecretKey::from_slice(&unhex(sk)?)?;
            ensure!(Some(&sk.public_key()) == input.get(i), "{name}: key {i}");
        }
        let sorted = key_sort(&input);
        ensure!(
            sorted == keys(&case["sorted_pubkeys"])?,
            "{name}: key order"
        );
        for (i, index) in case["my_index_per_input"]
            .as_array()
            .context("my_index_per_input")?
            .iter()
            .enumerate()
        {
            let ours = input
                .get(i)
                .and_then(|k| sorted.iter().position(|s| s == k));
            ensure!(
                ours.map(|p| p as u64) == index.as_u64(),
                "{name}: index of input {i}"
            );
        }
        let msg = unhex(&case["msg32"])?;
        ensure!(
            lotus_sdk_session_id(&input, &msg) == text(&case["session_id"])?,
            "{name}: session id"
        );
        let aggregate = KeyAggContext::<Lotus>::new_sorted(&input)?.aggregate_pubkey();
        ensure!(
            aggregate.to_string() == text(&case["aggregated_pubkey"])?,
            "{name}: aggregate key"
        );

        let sighash = metadata(&case["metadata"])?.final_sighash_type();
        match case.get("nhashtype") {
            Some(expected) => {
                let expected = expected.as_u64().map(u8::try_from).transpose()?;
                ensure!(
                    sighash == expected,
                    "{name}: sighash {sighash:?} ≠ {expected:?}"
                );
                let sig = Signature::from_slice(&unhex(&case["final_sig64"])?)?;
                let verified = schnorr::verify(&aggregate, &msg, &sig).is_ok();
                ensure!(
                    Some(verified) == case["schnorr_verify_with_aggregated_pubkey"].as_bool(),
                    "{name}: verdict on lotus-sdk's signature"
                );
                let tx = sighash.map(|t| hex::encode(sig.to_tx_bytes(t)));
                ensure!(
                    tx.as_deref() == case["tx_format_hex"].as_str(),
                    "{name}: transaction encoding"
                );
            }
            None => {
                // lotus-sdk aborted this run before a final signature.
                let phases = case["phase_after"].as_array().context("phase_after")?;
                ensure!(phases.iter().all(|p| p == "aborted"), "{name}: phases");
                ensure!(
                    case["metadata"]["inputScriptType"] == "taproot",
                    "{name}: only the Taproot run aborts"
                );
                ensure!(sighash == Some(0x61), "{name}: Taproot sighash {sighash:?}");
            }
        }
        checked.push(name.to_owned());
    }
    ensure!(
        checked == ["plain", "explicit-sighash", "taproot"],
        "cases checked: {checked:?}"
    );
    Ok(())
}
