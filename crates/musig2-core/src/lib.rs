#![doc = include_str!("../README.md")]
#![no_std]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod arith;
pub mod commitment;
pub mod error;
pub mod evidence;
pub mod flavor;
pub mod hash;
mod hexfmt;
pub mod key_agg;
pub mod keys;
pub mod nonce;
pub mod schnorr;
pub mod session;
pub mod signature;

pub use commitment::NonceCommitment;
pub use error::{Contribution, Error};
pub use evidence::{EquivocationProof, ProofError, SignedContribution, Statement};
pub use flavor::{Bip340, Flavor, Lotus};
pub use key_agg::{KeyAggContext, key_agg, key_sort, parse_pubkeys};
pub use keys::{Keypair, PublicKey, SecretKey};
pub use nonce::{
    AggNonce, NonceGenInputs, PublicNonce, SecretNonce, nonce_agg, nonce_gen, parse_pubnonces,
};
pub use session::{
    PartialSignature, SessionContext, aggregate_and_verify, parse_partial_sigs, partial_sig_agg,
    partial_sig_verify, sign, verify, verify_all_and_aggregate,
};
pub use signature::Signature;

#[cfg(feature = "danger-test-vectors")]
pub use nonce::dangerous_nonce_gen_with_rand;

impl<F: Flavor> KeyAggContext<F> {
    /// The aggregate-key bytes that [`NonceGenInputs::aggregate_pubkey`] expects
    /// for this flavor (Lotus: 33 bytes; BIP340: 32 bytes x-only).
    pub fn nonce_gen_agg_pk(&self) -> alloc::vec::Vec<u8> {
        F::nonce_gen_agg_pk(self.q())
    }
}
