//! Coordinator election, exactly as lotus-sdk's `lib/p2p/musig2/election.ts` computes it.

use musig2_core::PublicKey;
use musig2_core::hash::sha256;

use crate::error::ElectionError;
use crate::method::ElectionMethod;

/// The outcome of [`elect_coordinator`].
///
/// Every index is a position in [`sorted_signers`](Self::sorted_signers), the
/// signers' 33-byte compressed keys in bytewise order (the order `musig2-core`'s
/// `key_sort` and lotus-sdk's `musigKeyAgg` use, so a coordinator index is also
/// that signer's MuSig2 signer index).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ElectionResult {
    /// Position of the coordinator in `sorted_signers`.
    pub coordinator_index: usize,
    /// The coordinator's public key (`sorted_signers[coordinator_index]`).
    pub coordinator_pubkey: PublicKey,
    /// The signers in bytewise order of their compressed keys (stable: equal
    /// keys keep their input order).
    pub sorted_signers: Vec<PublicKey>,
    /// `index_mapping[original] = sorted`: where each input key went.
    pub index_mapping: Vec<usize>,
    /// Lowercase hex of lotus-sdk's election proof (see [`election_proof`]).
    pub election_proof: String,
}

impl ElectionResult {
    /// The number of signers.
    pub fn len(&self) -> usize {
        self.sorted_signers.len()
    }

    /// Whether there are no signers (never true for a result of [`elect_coordinator`]).
    pub fn is_empty(&self) -> bool {
        self.sorted_signers.is_empty()
    }

    /// The sorted position of the key that was at `original` in the input.
    pub fn sorted_index(&self, original: usize) -> Option<usize> {
        self.index_mapping.get(original).copied()
    }

    /// The input position of the key at `sorted` in the sorted list (the
    /// first one, if the input held the same key twice).
    pub fn original_index(&self, sorted: usize) -> Option<usize> {
        self.index_mapping.iter().position(|&s| s == sorted)
    }

    /// The sorted position of `key`, if it is a signer.
    pub fn position_of(&self, key: &PublicKey) -> Option<usize> {
        self.sorted_signers.iter().position(|k| k == key)
    }
}

/// Elects the coordinator of `signers` with `method`.
///
/// Rules (lotus-sdk 0.1.49, reproduced byte for byte and checked against its
/// vectors in `tests/vectors/lotus/election.json`):
///
/// * the keys are sorted bytewise (stable);
/// * `lexicographic` and `first-signer` elect sorted index 0, `last-signer`
///   elects `n − 1`;
/// * `hash-based` elects `u32be(SHA256(utf8(hex(P_0) ‖ … ‖ hex(P_{n−1})))[0..4]) mod n`
///   over the sorted keys as lowercase hex;
/// * the election proof is `hex(SHA256(…))` of the same string (see [`election_proof`]).
///
/// The input order does not change the coordinator's key, the sorted list or
/// the proof; it only changes `index_mapping`.
pub fn elect_coordinator(
    signers: &[PublicKey],
    method: ElectionMethod,
) -> Result<ElectionResult, ElectionError> {
    if signers.is_empty() {
        return Err(ElectionError::NoSigners);
    }
    let n = signers.len();

    // (bytes, original index, key), sorted by bytes; `sort_by_key` is stable, as
    // JavaScript's `Array.prototype.sort` is, so duplicate keys map the same way.
    let mut indexed: Vec<([u8; 33], usize, PublicKey)> = signers
        .iter()
        .enumerate()
        .map(|(i, key)| (key.to_bytes(), i, *key))
        .collect();
    indexed.sort_by_key(|entry| entry.0);

    let mut index_mapping = vec![0usize; n];
    for (sorted, (_, original, _)) in indexed.iter().enumerate() {
        if let Some(slot) = index_mapping.get_mut(*original) {
            *slot = sorted;
        }
    }
    let sorted_signers: Vec<PublicKey> = indexed.iter().map(|(_, _, key)| *key).collect();

    let digest = sorted_hex_digest(&sorted_signers);
    let coordinator_index = match method {
        ElectionMethod::Lexicographic | ElectionMethod::FirstSigner => 0,
        ElectionMethod::LastSigner => n - 1,
        ElectionMethod::HashBased => hash_draw(&digest, n),
    };
    let coordinator_pubkey = match sorted_signers.get(coordinator_index) {
        Some(key) => *key,
        None => return Err(ElectionError::NoSigners),
    };

    Ok(ElectionResult {
        coordinator_index,
        coordinator_pubkey,
        sorted_signers,
        index_mapping,
        election_proof: hex::encode(digest),
    })
}

/// lotus-sdk's election proof: lowercase hex of
/// `SHA256(utf8(concatenation of the keys' lowercase hex, sorted as strings)))`.
///
/// Independent of the input order. For 66-character lowercase hex strings,
/// string order equals the bytewise order of the keys, so this is also the
/// digest that the hash-based method draws from.
pub fn election_proof(signers: &[PublicKey]) -> String {
    let mut sorted = signers.to_vec();
    sorted.sort();
    hex::encode(sorted_hex_digest(&sorted))
}

/// `SHA256(utf8(hex(P_0) ‖ … ‖ hex(P_{n−1})))` over already-sorted keys.
fn sorted_hex_digest(sorted: &[PublicKey]) -> [u8; 32] {
    let mut text = String::with_capacity(sorted.len() * 66);
    for key in sorted {
        text.push_str(&hex::encode(key.to_bytes()));
    }
    sha256(text.as_bytes())
}

/// `u32be(digest[0..4]) mod n` (`n ≥ 1`).
fn hash_draw(digest: &[u8; 32], n: usize) -> usize {
    let draw = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    // `n ≥ 1` and the remainder is below `n`, so it fits in `usize`.
    (u64::from(draw) % n.max(1) as u64) as usize
}

/// Re-runs the election and checks that `result` is exactly what it gives.
///
/// lotus-sdk's `verifyElectionResult` compares only the coordinator index and
/// the proof; this compares every field (so it also accepts every result that
/// lotus-sdk's own election produces, and rejects a result whose key list or
/// mapping was tampered with).
pub fn verify_election_result(
    signers: &[PublicKey],
    result: &ElectionResult,
    method: ElectionMethod,
) -> bool {
    elect_coordinator(signers, method).is_ok_and(|expected| expected == *result)
}

/// Whether the signer at `sorted_index` (a position in the sorted list) is
/// the elected coordinator. Out-of-range indexes are never the coordinator.
pub fn is_coordinator(signers: &[PublicKey], sorted_index: usize, method: ElectionMethod) -> bool {
    elect_coordinator(signers, method).is_ok_and(|e| e.coordinator_index == sorted_index)
}

/// The elected coordinator's public key.
pub fn coordinator_public_key(
    signers: &[PublicKey],
    method: ElectionMethod,
) -> Result<PublicKey, ElectionError> {
    elect_coordinator(signers, method).map(|e| e.coordinator_pubkey)
}

#[cfg(test)]
mod tests {
    use super::*;
    use musig2_core::SecretKey;

    fn key(seed: u8) -> PublicKey {
        let mut bytes = [0u8; 32];
        bytes[31] = seed;
        bytes[0] = 0x11;
        SecretKey::from_bytes(&bytes).unwrap().public_key()
    }

    #[test]
    fn empty_signer_list_is_an_error() {
        for method in ElectionMethod::ALL {
            assert_eq!(
                elect_coordinator(&[], method),
                Err(ElectionError::NoSigners)
            );
            assert_eq!(
                coordinator_public_key(&[], method),
                Err(ElectionError::NoSigners)
            );
            assert!(!is_coordinator(&[], 0, method));
        }
    }

    #[test]
    fn one_signer_is_its_own_coordinator() {
        let k = key(1);
        for method in ElectionMethod::ALL {
            let e = elect_coordinator(&[k], method).unwrap();
            assert_eq!(e.coordinator_index, 0);
            assert_eq!(e.coordinator_pubkey, k);
            assert_eq!(e.index_mapping, vec![0]);
            assert_eq!(e.election_proof, election_proof(&[k]));
        }
    }

    #[test]
    fn duplicate_keys_keep_input_order() {
        let (a, b) = (key(1), key(2));
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        let e = elect_coordinator(&[hi, lo, hi, lo], ElectionMethod::LastSigner).unwrap();
        assert_eq!(e.sorted_signers, vec![lo, lo, hi, hi]);
        assert_eq!(e.index_mapping, vec![2, 0, 3, 1]);
        assert_eq!(e.coordinator_index, 3);
        assert_eq!(e.original_index(3), Some(2));
        assert_eq!(e.sorted_index(1), Some(0));
        assert_eq!(e.position_of(&hi), Some(2));
    }

    #[test]
    fn verification_rejects_tampering() {
        let keys = [key(1), key(2), key(3), key(4)];
        for method in ElectionMethod::ALL {
            let e = elect_coordinator(&keys, method).unwrap();
            assert!(verify_election_result(&keys, &e, method));
            let mut wrong = e.clone();
            wrong.coordinator_index = (wrong.coordinator_index + 1) % keys.len();
            assert!(!verify_election_result(&keys, &wrong, method));
            let mut wrong = e.clone();
            wrong.election_proof = "00".repeat(32);
            assert!(!verify_election_result(&keys, &wrong, method));
            let mut wrong = e.clone();
            wrong.index_mapping.reverse();
            assert!(!verify_election_result(&keys, &wrong, method));
            assert!(!verify_election_result(&keys[..3], &e, method));
        }
    }

    #[test]
    fn result_serializes_with_hex_keys() {
        let keys = [key(3), key(1)];
        let e = elect_coordinator(&keys, ElectionMethod::HashBased).unwrap();
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["coordinator_pubkey"], e.coordinator_pubkey.to_string());
        assert_eq!(json["election_proof"], e.election_proof);
        let back: ElectionResult = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
    }
}
