//! Every participant that feeds the election the same signer set, in any
//! order, computes the same coordinator, the same backups and the same
//! failover sequence.

use musig2_core::{PublicKey, SecretKey};
use musig2_election::{
    ElectionError, ElectionMethod, Failover, FailoverStep, backup_coordinator,
    coordinator_priority_list, elect_coordinator, verify_election_result,
};
use proptest::prelude::*;

fn signer_set(max: usize) -> impl Strategy<Value = Vec<PublicKey>> {
    prop::collection::vec(any::<[u8; 32]>(), 1..=max).prop_map(|seeds| {
        seeds
            .iter()
            .filter_map(|s| SecretKey::from_bytes(s).ok())
            .map(|sk| sk.public_key())
            .collect::<Vec<_>>()
    })
}

/// A signer set (possibly with a duplicate key) and two independent orders of it.
fn two_orders() -> impl Strategy<Value = (Vec<PublicKey>, Vec<PublicKey>)> {
    (signer_set(12), any::<bool>())
        .prop_filter("at least one valid key", |(keys, _)| !keys.is_empty())
        .prop_map(|(mut keys, duplicate)| {
            if duplicate {
                let first = keys[0];
                keys.push(first);
            }
            keys
        })
        .prop_flat_map(|keys| (Just(keys.clone()).prop_shuffle(), Just(keys).prop_shuffle()))
}

fn method() -> impl Strategy<Value = ElectionMethod> {
    prop::sample::select(ElectionMethod::ALL.to_vec())
}

/// The coordinators' keys in failover order, as one participant computes them.
fn failover_keys(
    signers: &[PublicKey],
    method: ElectionMethod,
) -> Result<Vec<PublicKey>, ElectionError> {
    let election = elect_coordinator(signers, method)?;
    let mut failover = Failover::for_signers(signers, method)?;
    let mut out: Vec<PublicKey> = failover
        .current()
        .and_then(|i| election.sorted_signers.get(i).copied())
        .into_iter()
        .collect();
    while let FailoverStep::Next { coordinator, .. } = failover.coordinator_failed() {
        out.extend(election.sorted_signers.get(coordinator).copied());
    }
    Ok(out)
}

proptest! {
    #[test]
    fn election_agrees_across_input_orders((a, b) in two_orders(), method in method()) {
        let ea = elect_coordinator(&a, method).unwrap();
        let eb = elect_coordinator(&b, method).unwrap();
        prop_assert_eq!(ea.coordinator_pubkey, eb.coordinator_pubkey);
        prop_assert_eq!(ea.coordinator_index, eb.coordinator_index);
        prop_assert_eq!(&ea.sorted_signers, &eb.sorted_signers);
        prop_assert_eq!(&ea.election_proof, &eb.election_proof);
        prop_assert_eq!(
            coordinator_priority_list(&a, method),
            coordinator_priority_list(&b, method)
        );
        for i in 0..a.len() {
            prop_assert_eq!(backup_coordinator(&a, i, method), backup_coordinator(&b, i, method));
        }
        // The mapping says where each input key went.
        for (original, key) in a.iter().enumerate() {
            prop_assert_eq!(ea.sorted_signers[ea.index_mapping[original]], *key);
        }
        let mut mapped = ea.index_mapping.clone();
        mapped.sort_unstable();
        prop_assert_eq!(mapped, (0..a.len()).collect::<Vec<_>>());
        // Everything but the index mapping is equal (above), so a's result
        // verifies against b's input order exactly when the mappings agree.
        prop_assert_eq!(
            verify_election_result(&b, &ea, method),
            ea.index_mapping == eb.index_mapping
        );
        prop_assert!(verify_election_result(&a, &ea, method));
    }

    #[test]
    fn failover_agrees_across_input_orders((a, b) in two_orders(), method in method()) {
        let ka = failover_keys(&a, method)?;
        let kb = failover_keys(&b, method)?;
        prop_assert_eq!(&ka, &kb);
        // Every signer gets exactly one turn: N attempts, N − 1 failures survived.
        prop_assert_eq!(ka.len(), a.len());
    }

    #[test]
    fn failover_survives_n_minus_one_failures(
        keys in signer_set(12).prop_filter("non-empty", |k| !k.is_empty()),
        method in method(),
        confirm_after in any::<prop::sample::Index>(),
    ) {
        let n = keys.len();
        let mut f = Failover::for_signers(&keys, method).unwrap();
        for failure in 1..n {
            match f.coordinator_failed() {
                FailoverStep::Next { attempt, .. } => prop_assert_eq!(attempt, failure + 1),
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
        prop_assert_eq!(f.coordinator_failed(), FailoverStep::Exhausted { attempts: n });

        // Confirming at any point stops failover for good.
        let mut g = Failover::for_signers(&keys, method).unwrap();
        let stop = confirm_after.index(n);
        for _ in 0..stop {
            let _ = g.coordinator_failed();
        }
        let before = g.current();
        prop_assert!(g.broadcast_confirmed());
        prop_assert_eq!(g.coordinator_failed(), FailoverStep::AlreadyConfirmed);
        prop_assert_eq!(g.current(), before);
        prop_assert!(g.is_confirmed());
    }
}
