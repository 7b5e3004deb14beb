//! The hashes of Lotus transactions: SHA256d, HASH160 and the Lotus Merkle tree.

use alloc::vec::Vec;

use bitcoin_hashes::{hash160, sha256d as bh_sha256d};

/// `SHA256(SHA256(data))`.
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    bh_sha256d::Hash::hash(data).to_byte_array()
}

/// `RIPEMD160(SHA256(data))`.
pub fn hash160(data: &[u8]) -> [u8; 20] {
    hash160::Hash::hash(data).to_byte_array()
}

/// The Lotus Merkle root and height of `leaves`
/// (`sighash.ts:81-108`, `transaction.ts:370-401`):
///
/// * no leaves: root `0^32`, height 0;
/// * one leaf: the leaf itself, height 1;
/// * otherwise each level pads an odd count with `0^32` (not with a copy of
///   the last node, as Bitcoin does), pairs are hashed with
///   `SHA256d(left ‖ right)`, and the height grows by one per level.
///
/// Heights saturate at 255 (a tree that tall would need 2^254 leaves).
pub fn merkle_root(leaves: &[[u8; 32]]) -> ([u8; 32], u8) {
    let Some(first) = leaves.first() else {
        return ([0u8; 32], 0);
    };
    if leaves.len() == 1 {
        return (*first, 1);
    }
    let mut level: Vec<[u8; 32]> = leaves.to_vec();
    let mut height: u8 = 1;
    while level.len() > 1 {
        height = height.saturating_add(1);
        if level.len() % 2 == 1 {
            level.push([0u8; 32]);
        }
        level = level
            .chunks_exact(2)
            .map(|pair| {
                let mut data = [0u8; 64];
                for (dst, src) in data.iter_mut().zip(pair.iter().flatten()) {
                    *dst = *src;
                }
                sha256d(&data)
            })
            .collect();
    }
    let root = level.first().copied().unwrap_or([0u8; 32]);
    (root, height)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merkle_padding_is_zero_not_duplicate() {
        let a = [1u8; 32];
        let b = [2u8; 32];
        let c = [3u8; 32];
        let mut ab = a.to_vec();
        ab.extend_from_slice(&b);
        let mut c0 = c.to_vec();
        c0.extend_from_slice(&[0u8; 32]);
        let mut top = sha256d(&ab).to_vec();
        top.extend_from_slice(&sha256d(&c0));
        assert_eq!(merkle_root(&[a, b, c]), (sha256d(&top), 3));
        assert_eq!(merkle_root(&[a]), (a, 1));
        assert_eq!(merkle_root(&[]), ([0u8; 32], 0));
    }
}
