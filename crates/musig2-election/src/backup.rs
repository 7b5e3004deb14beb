//! Backup coordinators and the failover priority list, in sorted index space.

use musig2_core::PublicKey;

use crate::elect::elect_coordinator;
use crate::method::ElectionMethod;

/// The backup after the coordinator at sorted position `current`, or `None`
/// when the method has no further backup (or `current` is not a position in a
/// list of at least two signers).
///
/// Both the argument and the result are positions in the **sorted** signer
/// list, the space [`elect_coordinator`] returns:
///
/// | method | backup of `i` |
/// | --- | --- |
/// | `lexicographic` | `(i + 1) mod n` |
/// | `hash-based` | `(i + 1) mod n` |
/// | `first-signer` | `i + 1`, none after `n − 1` |
/// | `last-signer` | `i − 1`, none after `0` |
///
/// lotus-sdk's `getBackupCoordinator` computes the lexicographic backup in the
/// *input* index space while its election returns a sorted index; for unsorted
/// input it therefore names the wrong signer. This function does not copy that
/// defect: for sorted input (what lotus-sdk's coordinator passes) the two
/// agree, and for any input this equals lotus-sdk's answer on the sorted list.
pub fn backup_coordinator(
    signers: &[PublicKey],
    current: usize,
    method: ElectionMethod,
) -> Option<usize> {
    backup_index(signers.len(), current, method)
}

pub(crate) fn backup_index(n: usize, current: usize, method: ElectionMethod) -> Option<usize> {
    if n <= 1 || current >= n {
        return None;
    }
    match method {
        ElectionMethod::Lexicographic | ElectionMethod::HashBased => Some((current + 1) % n),
        ElectionMethod::FirstSigner => Some(current + 1).filter(|&next| next < n),
        ElectionMethod::LastSigner => current.checked_sub(1),
    }
}

/// The coordinators in failover order: the elected one, then its backup, the
/// backup's backup, … until a method has none left or an index repeats.
///
/// Positions are in the sorted signer list. The list is a permutation of
/// `0..n` for every method (empty for no signers): `lexicographic` gives
/// `0, 1, …, n−1`; `hash-based` starts at the drawn index and wraps;
/// `first-signer` gives `0, …, n−1`; `last-signer` gives `n−1, …, 0`.
pub fn coordinator_priority_list(signers: &[PublicKey], method: ElectionMethod) -> Vec<usize> {
    let Ok(election) = elect_coordinator(signers, method) else {
        return Vec::new();
    };
    let n = signers.len();
    let mut seen = vec![false; n];
    let mut list = Vec::with_capacity(n);
    let mut current = election.coordinator_index;
    loop {
        match seen.get_mut(current) {
            Some(seen) if !*seen => *seen = true,
            _ => break,
        }
        list.push(current);
        match backup_index(n, current, method) {
            Some(next) => current = next,
            None => break,
        }
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;
    use musig2_core::SecretKey;

    fn keys(n: u8) -> Vec<PublicKey> {
        (1..=n)
            .map(|i| {
                let mut b = [7u8; 32];
                b[31] = i;
                SecretKey::from_bytes(&b).unwrap().public_key()
            })
            .collect()
    }

    #[test]
    fn backups_per_method() {
        use ElectionMethod::*;
        let k = keys(4);
        assert_eq!(backup_coordinator(&k, 3, Lexicographic), Some(0));
        assert_eq!(backup_coordinator(&k, 3, HashBased), Some(0));
        assert_eq!(backup_coordinator(&k, 2, FirstSigner), Some(3));
        assert_eq!(backup_coordinator(&k, 3, FirstSigner), None);
        assert_eq!(backup_coordinator(&k, 1, LastSigner), Some(0));
        assert_eq!(backup_coordinator(&k, 0, LastSigner), None);
        for method in ElectionMethod::ALL {
            assert_eq!(backup_coordinator(&k, 4, method), None, "{method}");
            assert_eq!(backup_coordinator(&k[..1], 0, method), None, "{method}");
            assert_eq!(backup_coordinator(&[], 0, method), None, "{method}");
        }
    }

    #[test]
    fn priority_lists_are_permutations() {
        for n in 0..=9u8 {
            let k = keys(n);
            for method in ElectionMethod::ALL {
                let list = coordinator_priority_list(&k, method);
                let mut sorted = list.clone();
                sorted.sort_unstable();
                assert_eq!(
                    sorted,
                    (0..usize::from(n)).collect::<Vec<_>>(),
                    "{method} n={n}"
                );
                if let Ok(e) = elect_coordinator(&k, method) {
                    assert_eq!(list.first(), Some(&e.coordinator_index));
                }
            }
        }
        let k = keys(5);
        assert_eq!(
            coordinator_priority_list(&k, ElectionMethod::LastSigner),
            vec![4, 3, 2, 1, 0]
        );
        assert_eq!(
            coordinator_priority_list(&k, ElectionMethod::FirstSigner),
            vec![0, 1, 2, 3, 4]
        );
    }
}
