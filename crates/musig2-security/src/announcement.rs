//! Signed announcements: what a session announcement and a signer
//! advertisement sign, and how to sign and check them.
//!
//! Each object signs `digest = SHA256(tag ‖ body)`, where `tag` is a
//! NUL-terminated domain string with the version in it and `body` is the
//! canonical encoding of every field but the signature, in declaration order
//! (the postcard encoding of those fields; see `docs/ANNOUNCEMENTS.md`). The
//! signature is Lotus Schnorr (`musig2_core::schnorr`) over the 32-byte digest,
//! as lotus-sdk signs its DHT advertisements. Because the signature is the last
//! field, a postcard-encoded object on the wire is exactly `body ‖ signature`.
//!
//! lotus-sdk 0.1.49's `SessionAnnouncement` is not signed at all and its
//! advertisements sign an ambiguous concatenation of strings; these formats
//! are ours, versioned, and domain-separated, so a signature made for one can
//! never verify as the other.

use core::fmt;
use core::str::FromStr;

use musig2_core::hash::sha256;
use musig2_core::{Keypair, PublicKey, Signature, schnorr};

use crate::encoding::Writer;
use crate::identity_claim::IdentityClaim;
use crate::ids::{PeerId, SessionId};
use crate::rule::{Malformation, SignedObject, Violation};
use crate::time::Millis;

/// The version of [`SessionAnnouncement`] this build speaks.
pub const SESSION_ANNOUNCEMENT_VERSION: u8 = 3;
/// The version of [`SignerAdvertisement`] this build speaks.
pub const SIGNER_ADVERTISEMENT_VERSION: u8 = 2;

/// Domain tag of a session announcement's signed bytes.
pub const SESSION_ANNOUNCEMENT_TAG: &[u8] = b"lotus-musig2/session-announcement/v3\0";
/// Domain tag of a signer advertisement's signed bytes.
pub const SIGNER_ADVERTISEMENT_TAG: &[u8] = b"lotus-musig2/signer-advertisement/v2\0";
/// Domain tag of a signing request id.
pub const REQUEST_ID_TAG: &[u8] = b"lotus-musig2/request-id/v1\0";
/// Domain tag of a session id.
pub const SESSION_ID_TAG: &[u8] = b"lotus-musig2/session-id/v2\0";

/// What a signer offers to sign (lotus-sdk `TransactionType`). The variant
/// order is part of the wire format: never reorder, only append.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum TransactionType {
    /// A standard spend.
    Spend,
    /// An atomic swap.
    Swap,
    /// A CoinJoin.
    Coinjoin,
    /// A custody (multisig wallet) transaction.
    Custody,
    /// An escrow transaction.
    Escrow,
    /// A payment channel transaction.
    Channel,
}

impl TransactionType {
    /// Every type, in wire order.
    pub const ALL: [TransactionType; 6] = [
        Self::Spend,
        Self::Swap,
        Self::Coinjoin,
        Self::Custody,
        Self::Escrow,
        Self::Channel,
    ];

    /// The lotus-sdk name (`spend`, `swap`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Spend => "spend",
            Self::Swap => "swap",
            Self::Coinjoin => "coinjoin",
            Self::Custody => "custody",
            Self::Escrow => "escrow",
            Self::Channel => "channel",
        }
    }

    /// The GossipSub topic where signers of this type advertise
    /// (`musig2:signers:spend`, …).
    pub const fn topic(self) -> &'static str {
        match self {
            Self::Spend => "musig2:signers:spend",
            Self::Swap => "musig2:signers:swap",
            Self::Coinjoin => "musig2:signers:coinjoin",
            Self::Custody => "musig2:signers:custody",
            Self::Escrow => "musig2:signers:escrow",
            Self::Channel => "musig2:signers:channel",
        }
    }

    /// The type whose topic is `topic`.
    pub fn from_topic(topic: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.topic() == topic)
    }

    const fn wire_index(self) -> u64 {
        self as u64
    }
}

impl fmt::Display for TransactionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a transaction type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown transaction type {0:?}")]
pub struct UnknownTransactionType(pub String);

impl FromStr for TransactionType {
    type Err = UnknownTransactionType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownTransactionType(s.to_owned()))
    }
}

/// The script type of the input being signed (lotus-sdk
/// `metadata.inputScriptType`). Wire order: never reorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputScriptType {
    /// A Lotus Taproot key-path spend (sighash `SIGHASH_ALL | SIGHASH_LOTUS` by default).
    Taproot,
    /// Pay-to-public-key-hash.
    #[serde(rename = "pubkeyhash")]
    PubKeyHash,
    /// Pay-to-script-hash.
    #[serde(rename = "scripthash")]
    ScriptHash,
}

impl InputScriptType {
    const fn wire_index(self) -> u64 {
        self as u64
    }
}

/// What the signers are asked to sign, for their policy decisions. All of it
/// is covered by the creator's signature.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SigningMetadata {
    /// The input's script type.
    pub input_script_type: Option<InputScriptType>,
    /// The sighash type byte the final signature carries.
    pub sighash_type: Option<u8>,
    /// What kind of transaction this is.
    pub transaction_type: Option<TransactionType>,
    /// The amount involved, in satoshis.
    pub amount: Option<u64>,
    /// Free text for the signers' operators.
    pub purpose: Option<String>,
}

impl SigningMetadata {
    fn encode(&self, w: &mut Writer) {
        w.option(self.input_script_type, |w, t| {
            w.varint(t.wire_index());
        })
        .option(self.sighash_type, |w, b| {
            w.u8(b);
        })
        .option(self.transaction_type, |w, t| {
            w.varint(t.wire_index());
        })
        .option(self.amount, |w, a| {
            w.varint(a);
        })
        .option(self.purpose.as_deref(), |w, s| {
            w.str(s);
        });
    }
}

/// An output spent by the transaction of a [`TransactionRequest`]: what the
/// Lotus sighash of every input commits to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SpentOutput {
    /// Its amount, in satoshis.
    pub amount: u64,
    /// Its scriptPubKey.
    pub script_pubkey: Vec<u8>,
}

/// The transaction a signing request asks to sign one input of, in the form
/// every co-signer recomputes the sighash from (this crate does not parse
/// it: the coordinator decodes it with `lotus-tx` and refuses a request whose
/// `message` is not the sighash of `input_index`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct TransactionRequest {
    /// The unsigned transaction, in Lotus serialization.
    pub tx: Vec<u8>,
    /// The output each input spends, in input order.
    pub spent_outputs: Vec<SpentOutput>,
    /// The input this request's MuSig2 session signs.
    pub input_index: u32,
}

impl TransactionRequest {
    fn encode(&self, w: &mut Writer) {
        w.bytes(&self.tx).len(self.spent_outputs.len());
        for output in &self.spent_outputs {
            w.varint(output.amount).bytes(&output.script_pubkey);
        }
        w.varint(u64::from(self.input_index));
    }
}

/// A signing request, announced by its creator (over the DHT, GossipSub or
/// directly) and signed with the creator's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SessionAnnouncement {
    /// Wire version ([`SESSION_ANNOUNCEMENT_VERSION`]).
    pub version: u8,
    /// [`request_id`] of the fields below.
    pub request_id: [u8; 32],
    /// The signers' keys, strictly increasing in bytewise order.
    pub required_pubkeys: Vec<PublicKey>,
    /// The 32-byte message to sign (the sighash itself, not a hash of it).
    pub message: [u8; 32],
    /// The creator's key; one of `required_pubkeys`.
    pub creator_pubkey: PublicKey,
    /// The creator's libp2p peer id string.
    pub creator_peer_id: String,
    /// Multiaddresses where the creator can be reached.
    pub creator_addrs: Vec<String>,
    /// What is being signed.
    pub metadata: SigningMetadata,
    /// The coordinator election method, by its lotus-sdk name
    /// (`lexicographic`, `hash-based`, `first-signer`, `last-signer`); the
    /// coordinator parses it with `musig2_election::ElectionMethod::from_str`.
    pub election_method: String,
    /// Phase 0 nonce commitments in this session: the creator decides, every
    /// signer follows (signers that disagreed could never finish).
    pub nonce_commitments: bool,
    /// Coordinator election (and `should-broadcast`) in this session: the
    /// creator decides, every signer follows.
    pub coordinator_election: bool,
    /// Creation time (ms since the epoch).
    pub created_at: Millis,
    /// Expiry time (ms since the epoch); after it nobody joins.
    pub expires_at: Millis,
    /// 32 random bytes, so two requests for the same keys and message are
    /// different requests and different sessions.
    pub request_nonce: [u8; 32],
    /// The transaction whose input `message` is the sighash of, if the
    /// request signs a transaction rather than a bare 32-byte message.
    pub transaction: Option<TransactionRequest>,
    /// The creator's Lotus Schnorr signature over [`Signed::digest`].
    pub signature: Signature,
}

/// The fields of a new signing request; see [`SessionAnnouncement::new_signed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    /// The signers' keys, in any order (they are sorted).
    pub signers: Vec<PublicKey>,
    /// The 32-byte message to sign.
    pub message: [u8; 32],
    /// The creator's libp2p peer id string.
    pub creator_peer_id: String,
    /// The creator's multiaddresses.
    pub creator_addrs: Vec<String>,
    /// What is being signed.
    pub metadata: SigningMetadata,
    /// The election method's lotus-sdk name.
    pub election_method: String,
    /// Phase 0 nonce commitments in this session.
    pub nonce_commitments: bool,
    /// Coordinator election in this session.
    pub coordinator_election: bool,
    /// Creation time.
    pub created_at: Millis,
    /// Expiry time.
    pub expires_at: Millis,
    /// 32 fresh random bytes.
    pub request_nonce: [u8; 32],
}

impl SessionAnnouncement {
    /// Builds and signs an announcement: sorts the keys, sets the creator key
    /// from `creator`, computes the request id and signs. Fails if the request
    /// is malformed (no signers, duplicate keys, creator not a signer, expiry
    /// not after creation).
    pub fn new_signed(request: SessionRequest, creator: &Keypair) -> Result<Self, Violation> {
        Self::new_signed_with_transaction(request, None, creator)
    }

    /// [`SessionAnnouncement::new_signed`] for a request that signs input
    /// `transaction.input_index` of a transaction: `request.message` must be
    /// that input's sighash (co-signers recompute it and refuse otherwise).
    pub fn new_signed_with_transaction(
        request: SessionRequest,
        transaction: Option<TransactionRequest>,
        creator: &Keypair,
    ) -> Result<Self, Violation> {
        let mut required_pubkeys = request.signers;
        required_pubkeys.sort();
        let creator_pubkey = creator.public_key();
        let announcement = Self {
            version: SESSION_ANNOUNCEMENT_VERSION,
            request_id: request_id(
                &required_pubkeys,
                &request.message,
                &creator_pubkey,
                &request.request_nonce,
            ),
            required_pubkeys,
            message: request.message,
            creator_pubkey,
            creator_peer_id: request.creator_peer_id,
            creator_addrs: request.creator_addrs,
            metadata: request.metadata,
            election_method: request.election_method,
            nonce_commitments: request.nonce_commitments,
            coordinator_election: request.coordinator_election,
            created_at: request.created_at,
            expires_at: request.expires_at,
            request_nonce: request.request_nonce,
            transaction,
            signature: unsigned(),
        };
        announcement.validate()?;
        Ok(announcement.sign(creator))
    }

    /// Structural checks (no signature): version, keys non-empty and strictly
    /// increasing, creator among them, request id, expiry after creation.
    pub fn validate(&self) -> Result<(), Violation> {
        if self.version != SESSION_ANNOUNCEMENT_VERSION {
            return Err(Violation::UnsupportedVersion {
                what: "session announcement",
                got: self.version,
                supported: SESSION_ANNOUNCEMENT_VERSION,
            });
        }
        if self.required_pubkeys.is_empty() {
            return Err(Malformation::NoSigners.into());
        }
        if !self.required_pubkeys.windows(2).all(|w| match w {
            [a, b] => a < b,
            _ => true,
        }) {
            return Err(Malformation::UnsortedSigners.into());
        }
        if self
            .required_pubkeys
            .binary_search(&self.creator_pubkey)
            .is_err()
        {
            return Err(Malformation::CreatorNotSigner.into());
        }
        if self.expires_at <= self.created_at {
            return Err(Malformation::ExpiryNotAfterCreation {
                created_at: self.created_at,
                expires_at: self.expires_at,
            }
            .into());
        }
        if self.request_id != self.expected_request_id() {
            return Err(Malformation::RequestIdMismatch.into());
        }
        Ok(())
    }

    /// [`request_id`] of this announcement's fields.
    pub fn expected_request_id(&self) -> [u8; 32] {
        request_id(
            &self.required_pubkeys,
            &self.message,
            &self.creator_pubkey,
            &self.request_nonce,
        )
    }

    /// The id of the session this request creates ([`session_id`]).
    pub fn session_id(&self) -> SessionId {
        session_id(
            &self.required_pubkeys,
            &self.message,
            &self.creator_pubkey,
            &self.request_nonce,
        )
    }

    /// The position of `key` among the signers (its MuSig2 signer index).
    pub fn signer_index(&self, key: &PublicKey) -> Option<usize> {
        self.required_pubkeys.binary_search(key).ok()
    }
}

/// A signer's advertisement that it is available to co-sign transactions of
/// some types, signed with the advertised key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SignerAdvertisement {
    /// Wire version ([`SIGNER_ADVERTISEMENT_VERSION`]).
    pub version: u8,
    /// The advertising peer's libp2p peer id string.
    pub peer_id: String,
    /// Where the peer can be reached.
    pub multiaddrs: Vec<String>,
    /// The advertised signing key.
    pub pubkey: PublicKey,
    /// What the signer is willing to sign; one GossipSub topic each.
    pub transaction_types: Vec<TransactionType>,
    /// Creation time (ms since the epoch).
    pub created_at: Millis,
    /// Expiry time (ms since the epoch).
    pub expires_at: Millis,
    /// The signer's burn identity, if it has one (checked by peers that
    /// enable burn identities, against their own indexer).
    pub identity: Option<IdentityClaim>,
    /// Lotus Schnorr signature by `pubkey` over [`Signed::digest`].
    pub signature: Signature,
}

impl SignerAdvertisement {
    /// Builds and signs an advertisement of `keypair`'s public key.
    pub fn new_signed(
        keypair: &Keypair,
        peer_id: impl Into<String>,
        multiaddrs: Vec<String>,
        transaction_types: Vec<TransactionType>,
        created_at: Millis,
        expires_at: Millis,
    ) -> Self {
        Self {
            version: SIGNER_ADVERTISEMENT_VERSION,
            peer_id: peer_id.into(),
            multiaddrs,
            pubkey: keypair.public_key(),
            transaction_types,
            created_at,
            expires_at,
            identity: None,
            signature: unsigned(),
        }
        .sign(keypair)
    }

    /// The same advertisement carrying `identity`, signed again.
    #[must_use]
    pub fn with_identity(mut self, identity: IdentityClaim, keypair: &Keypair) -> Self {
        self.identity = Some(identity);
        self.sign(keypair)
    }

    /// Structural checks (no signature): version, at least one transaction
    /// type, expiry after creation.
    pub fn validate(&self) -> Result<(), Violation> {
        if self.version != SIGNER_ADVERTISEMENT_VERSION {
            return Err(Violation::UnsupportedVersion {
                what: "signer advertisement",
                got: self.version,
                supported: SIGNER_ADVERTISEMENT_VERSION,
            });
        }
        if self.transaction_types.is_empty() {
            return Err(Malformation::NoTransactionTypes.into());
        }
        if let Some(claim) = &self.identity {
            claim.validate(&self.pubkey)?;
        }
        if self.expires_at <= self.created_at {
            return Err(Malformation::ExpiryNotAfterCreation {
                created_at: self.created_at,
                expires_at: self.expires_at,
            }
            .into());
        }
        Ok(())
    }

    /// The GossipSub topics of its transaction types.
    pub fn topics(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.transaction_types.iter().map(|t| t.topic())
    }
}

/// A placeholder signature (64 zero bytes, which never verifies), for an
/// object about to be passed to `sign`.
pub fn unsigned() -> Signature {
    Signature::from_bytes(&[0u8; 64])
}

/// What the two signed announcement types share: a canonical encoding of
/// every field but the signature, its SHA-256 as the signed message, a Lotus
/// Schnorr signature by one key, and a peer id that key vouches for.
pub trait Signed: Sized {
    /// How an invalid signature on this type is reported.
    const OBJECT: SignedObject;

    /// The signed bytes: a domain tag, then every field but the signature,
    /// canonically encoded (see `docs/ANNOUNCEMENTS.md`).
    fn signing_bytes(&self) -> Vec<u8>;

    /// The key that signs.
    fn signer(&self) -> &PublicKey;

    /// The peer id the signer vouches for.
    fn claimed_peer(&self) -> &str;

    /// The signature field.
    fn signature_mut(&mut self) -> &mut Signature;

    /// The signature.
    fn signature(&self) -> &Signature;

    /// `SHA256(signing_bytes)`, the 32-byte message that is signed.
    fn digest(&self) -> [u8; 32] {
        sha256(&self.signing_bytes())
    }

    /// Signs with `keypair`, which must own [`Signed::signer`] (otherwise the
    /// signature will not verify).
    #[must_use]
    fn sign(mut self, keypair: &Keypair) -> Self {
        *self.signature_mut() = schnorr::sign(keypair.secret_key(), &self.digest());
        self
    }

    /// Verifies the signature under [`Signed::signer`].
    fn verify_signature(&self) -> Result<(), Violation> {
        schnorr::verify(self.signer(), &self.digest(), self.signature()).map_err(|_| {
            Violation::InvalidSignature {
                object: Self::OBJECT,
            }
        })
    }

    /// The owner check: the peer that published it is the claimed peer, and
    /// the signer's key signed it (so that key's owner vouches for that peer).
    fn verify_owner(&self, announcing_peer: &PeerId) -> Result<(), Violation> {
        check_peer(announcing_peer, self.claimed_peer())?;
        self.verify_signature()
    }
}

impl Signed for SessionAnnouncement {
    const OBJECT: SignedObject = SignedObject::SessionAnnouncement;

    /// The signed bytes: [`SESSION_ANNOUNCEMENT_TAG`] then every field but
    /// the signature, canonically encoded.
    fn signing_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_tag(SESSION_ANNOUNCEMENT_TAG);
        w.u8(self.version).raw(&self.request_id);
        w.len(self.required_pubkeys.len());
        for key in &self.required_pubkeys {
            w.bytes(&key.to_bytes());
        }
        w.raw(&self.message)
            .bytes(&self.creator_pubkey.to_bytes())
            .str(&self.creator_peer_id)
            .strs(&self.creator_addrs);
        self.metadata.encode(&mut w);
        w.str(&self.election_method)
            .u8(u8::from(self.nonce_commitments))
            .u8(u8::from(self.coordinator_election))
            .varint(self.created_at)
            .varint(self.expires_at)
            .raw(&self.request_nonce);
        w.option(self.transaction.as_ref(), |w, t| t.encode(w));
        w.finish()
    }

    fn signer(&self) -> &PublicKey {
        &self.creator_pubkey
    }

    fn claimed_peer(&self) -> &str {
        &self.creator_peer_id
    }

    fn signature_mut(&mut self) -> &mut Signature {
        &mut self.signature
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }
}

impl Signed for SignerAdvertisement {
    const OBJECT: SignedObject = SignedObject::SignerAdvertisement;

    /// The signed bytes: [`SIGNER_ADVERTISEMENT_TAG`] then every field but
    /// the signature, canonically encoded.
    fn signing_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_tag(SIGNER_ADVERTISEMENT_TAG);
        w.u8(self.version)
            .str(&self.peer_id)
            .strs(&self.multiaddrs)
            .bytes(&self.pubkey.to_bytes());
        w.len(self.transaction_types.len());
        for t in &self.transaction_types {
            w.varint(t.wire_index());
        }
        w.varint(self.created_at).varint(self.expires_at);
        w.option(self.identity.as_ref(), |w, c| c.encode(w));
        w.finish()
    }

    fn signer(&self) -> &PublicKey {
        &self.pubkey
    }

    fn claimed_peer(&self) -> &str {
        &self.peer_id
    }

    fn signature_mut(&mut self) -> &mut Signature {
        &mut self.signature
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }
}

fn check_peer(announcing: &PeerId, claimed: &str) -> Result<(), Violation> {
    if announcing.as_str() == claimed {
        Ok(())
    } else {
        Err(Violation::PeerMismatch {
            claimed: claimed.to_owned(),
        })
    }
}

fn sorted_key_bytes(keys: &[PublicKey]) -> Vec<u8> {
    let mut sorted = keys.to_vec();
    sorted.sort();
    let mut out = Vec::with_capacity(sorted.len() * PublicKey::LEN);
    for key in &sorted {
        out.extend_from_slice(&key.to_bytes());
    }
    out
}

/// A signing request's id:
/// `SHA256(REQUEST_ID_TAG ‖ P_0 ‖ … ‖ P_{n−1} ‖ message ‖ creator ‖ request_nonce)`
/// with the keys sorted bytewise (33 bytes each; the keys may be given in any order).
pub fn request_id(
    keys: &[PublicKey],
    message: &[u8; 32],
    creator: &PublicKey,
    request_nonce: &[u8; 32],
) -> [u8; 32] {
    let mut pre = Vec::with_capacity(REQUEST_ID_TAG.len() + keys.len() * 33 + 97);
    pre.extend_from_slice(REQUEST_ID_TAG);
    pre.extend_from_slice(&sorted_key_bytes(keys));
    pre.extend_from_slice(message);
    pre.extend_from_slice(&creator.to_bytes());
    pre.extend_from_slice(request_nonce);
    sha256(&pre)
}

/// A session's id:
/// `SHA256(SESSION_ID_TAG ‖ P_0 ‖ … ‖ P_{n−1} ‖ message ‖ creator ‖ request_nonce)`
/// with the keys sorted bytewise (the keys may be given in any order). The
/// full 32 bytes; bound to the request nonce, so two requests for the same
/// keys and message are two sessions, and to the creator's key, so a
/// co-signer that copies a request and signs it as itself makes another
/// session, not a twin of this one. The rest of the announcement (metadata,
/// options, times) is bound by the joins and the round-2 transcript, which
/// carry the announcement's digest.
pub fn session_id(
    keys: &[PublicKey],
    message: &[u8; 32],
    creator: &PublicKey,
    request_nonce: &[u8; 32],
) -> SessionId {
    let mut pre = Vec::with_capacity(SESSION_ID_TAG.len() + keys.len() * 33 + 97);
    pre.extend_from_slice(SESSION_ID_TAG);
    pre.extend_from_slice(&sorted_key_bytes(keys));
    pre.extend_from_slice(message);
    pre.extend_from_slice(&creator.to_bytes());
    pre.extend_from_slice(request_nonce);
    SessionId::from_bytes(sha256(&pre))
}

/// lotus-sdk's session id (`MuSigSessionManager._generateSessionId`), for
/// interoperability and logs: the first 16 hex digits of
/// `hex(SHA256(SHA256(P_0 ‖ … ‖ P_{n−1}) ‖ SHA256(message)))` over the sorted
/// keys (given in any order) and the whole message (any length). Only 64 bits
/// and the same for every request over the same keys and message: do not use
/// it as a key for anything.
pub fn lotus_sdk_session_id(keys: &[PublicKey], message: &[u8]) -> String {
    let mut pre = Vec::with_capacity(64);
    pre.extend_from_slice(&sha256(&sorted_key_bytes(keys)));
    pre.extend_from_slice(&sha256(message));
    let mut id = hex::encode(sha256(&pre));
    id.truncate(16);
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use musig2_core::SecretKey;

    fn keypair(seed: u8) -> Keypair {
        let mut b = [0x42u8; 32];
        b[31] = seed;
        Keypair::new(SecretKey::from_bytes(&b).unwrap())
    }

    pub(crate) fn sample_announcement() -> (SessionAnnouncement, Keypair) {
        let creator = keypair(1);
        let request = SessionRequest {
            signers: vec![
                keypair(3).public_key(),
                creator.public_key(),
                keypair(2).public_key(),
            ],
            message: [0x5a; 32],
            creator_peer_id: "12D3KooWCreator".into(),
            creator_addrs: vec!["/ip4/127.0.0.1/tcp/4001".into()],
            metadata: SigningMetadata {
                input_script_type: Some(InputScriptType::Taproot),
                sighash_type: Some(0x61),
                transaction_type: Some(TransactionType::Custody),
                amount: Some(1_000_000),
                purpose: Some("rent".into()),
            },
            election_method: "lexicographic".into(),
            nonce_commitments: true,
            coordinator_election: true,
            created_at: 1_764_000_000_000,
            expires_at: 1_764_000_600_000,
            request_nonce: [7; 32],
        };
        (
            SessionAnnouncement::new_signed(request, &creator).unwrap(),
            creator,
        )
    }

    fn sample_advertisement() -> (SignerAdvertisement, Keypair) {
        let kp = keypair(9);
        let ad = SignerAdvertisement::new_signed(
            &kp,
            "12D3KooWSigner",
            vec![
                "/ip4/10.0.0.1/tcp/4001".into(),
                "/dns4/x.example/tcp/443/wss".into(),
            ],
            vec![TransactionType::Spend, TransactionType::Channel],
            1_764_000_000_000,
            1_764_003_600_000,
        );
        (ad, kp)
    }

    // Mirrors of the signed fields, encoded by postcard: the canonical
    // encoding must be exactly postcard's.
    #[derive(serde::Serialize)]
    struct AnnouncementBody<'a> {
        version: u8,
        request_id: [u8; 32],
        required_pubkeys: &'a [PublicKey],
        message: [u8; 32],
        creator_pubkey: PublicKey,
        creator_peer_id: &'a str,
        creator_addrs: &'a [String],
        metadata: &'a SigningMetadata,
        election_method: &'a str,
        nonce_commitments: bool,
        coordinator_election: bool,
        created_at: u64,
        expires_at: u64,
        request_nonce: [u8; 32],
        transaction: &'a Option<TransactionRequest>,
    }

    #[derive(serde::Serialize)]
    struct AdvertisementBody<'a> {
        version: u8,
        peer_id: &'a str,
        multiaddrs: &'a [String],
        pubkey: PublicKey,
        transaction_types: &'a [TransactionType],
        created_at: u64,
        expires_at: u64,
        identity: &'a Option<IdentityClaim>,
    }

    #[test]
    fn announcement_signing_bytes_are_tag_plus_postcard_body() {
        let (a, _) = sample_announcement();
        let body = postcard::to_allocvec(&AnnouncementBody {
            version: a.version,
            request_id: a.request_id,
            required_pubkeys: &a.required_pubkeys,
            message: a.message,
            creator_pubkey: a.creator_pubkey,
            creator_peer_id: &a.creator_peer_id,
            creator_addrs: &a.creator_addrs,
            metadata: &a.metadata,
            election_method: &a.election_method,
            nonce_commitments: a.nonce_commitments,
            coordinator_election: a.coordinator_election,
            created_at: a.created_at,
            expires_at: a.expires_at,
            request_nonce: a.request_nonce,
            transaction: &a.transaction,
        })
        .unwrap();
        let mut expected = SESSION_ANNOUNCEMENT_TAG.to_vec();
        expected.extend_from_slice(&body);
        assert_eq!(a.signing_bytes(), expected);
        // On the wire (postcard of the whole struct) it is body ‖ signature.
        let wire = postcard::to_allocvec(&a).unwrap();
        assert_eq!(wire, [body.as_slice(), &a.signature.to_bytes()].concat());
        assert_eq!(
            postcard::from_bytes::<SessionAnnouncement>(&wire).unwrap(),
            a
        );
    }

    #[test]
    fn a_transaction_request_is_postcard_encoded_and_signed() {
        let (a, creator) = sample_announcement();
        let transaction = TransactionRequest {
            tx: vec![2, 0, 0, 0, 0xff, 0x80],
            spent_outputs: vec![
                SpentOutput {
                    amount: 300,
                    script_pubkey: vec![0x62, 0x51],
                },
                SpentOutput {
                    amount: u64::MAX,
                    script_pubkey: vec![],
                },
            ],
            input_index: 300,
        };
        let request = SessionRequest {
            signers: a.required_pubkeys.clone(),
            message: a.message,
            creator_peer_id: a.creator_peer_id.clone(),
            creator_addrs: a.creator_addrs.clone(),
            metadata: a.metadata.clone(),
            election_method: a.election_method.clone(),
            nonce_commitments: a.nonce_commitments,
            coordinator_election: a.coordinator_election,
            created_at: a.created_at,
            expires_at: a.expires_at,
            request_nonce: a.request_nonce,
        };
        let t = SessionAnnouncement::new_signed_with_transaction(
            request,
            Some(transaction.clone()),
            &creator,
        )
        .unwrap();
        assert_eq!(t.verify_signature(), Ok(()));
        // The transaction is the last signed field: postcard of it is the tail.
        let tail = postcard::to_allocvec(&Some(transaction)).unwrap();
        assert!(t.signing_bytes().ends_with(&tail));
        assert_eq!(
            t.signing_bytes().len(),
            a.signing_bytes().len() - 1 + tail.len()
        );
        let wire = postcard::to_allocvec(&t).unwrap();
        assert_eq!(
            postcard::from_bytes::<SessionAnnouncement>(&wire).unwrap(),
            t
        );
        // Every part of it is signed.
        for tamper in [
            |t: &mut TransactionRequest| t.tx.push(0),
            |t: &mut TransactionRequest| t.input_index = 0,
            |t: &mut TransactionRequest| t.spent_outputs[0].amount += 1,
            |t: &mut TransactionRequest| t.spent_outputs[1].script_pubkey.push(0x51),
        ] {
            let mut bad = t.clone();
            if let Some(tx) = bad.transaction.as_mut() {
                tamper(tx);
            }
            assert!(bad.verify_signature().is_err());
        }
        let mut stripped = t.clone();
        stripped.transaction = None;
        assert!(stripped.verify_signature().is_err());
    }

    /// A claim with one rotation, ending at `kp`'s key.
    fn sample_claim(kp: &Keypair) -> IdentityClaim {
        use crate::identity_claim::{ClaimedOutPoint, ClaimedRotation};
        IdentityClaim {
            burn: ClaimedOutPoint {
                txid: [7; 32],
                vout: 300,
            },
            registered_key: keypair(10).public_key(),
            ownership_signature: Signature::from_bytes(&[1; 64]),
            rotations: vec![ClaimedRotation {
                new_key: kp.public_key(),
                old_key_signature: Signature::from_bytes(&[2; 64]),
                new_key_signature: Signature::from_bytes(&[3; 64]),
                burn: ClaimedOutPoint {
                    txid: [8; 32],
                    vout: 1,
                },
            }],
        }
    }

    #[test]
    fn an_identity_claim_must_end_at_the_advertised_key_and_be_short() {
        let (ad, kp) = sample_advertisement();
        let claimed = ad.clone().with_identity(sample_claim(&kp), &kp);
        assert!(claimed.validate().is_ok());
        assert!(claimed.verify_signature().is_ok());
        assert_ne!(claimed.digest(), ad.digest(), "the claim is signed");
        let other = ad.clone().with_identity(sample_claim(&keypair(11)), &kp);
        assert_eq!(
            other.validate(),
            Err(Malformation::IdentityKeyMismatch.into())
        );
        let mut long = sample_claim(&kp);
        let step = long.rotations[0].clone();
        long.rotations = vec![step; crate::identity_claim::MAX_CLAIMED_ROTATIONS + 1];
        assert!(matches!(
            ad.with_identity(long, &kp).validate(),
            Err(Violation::Malformed(Malformation::TooManyRotations { .. }))
        ));
    }

    #[test]
    fn advertisement_signing_bytes_are_tag_plus_postcard_body() {
        let (plain, kp) = sample_advertisement();
        let claimed = plain.clone().with_identity(sample_claim(&kp), &kp);
        for ad in [plain, claimed] {
            advertisement_encodings_agree(&ad);
        }
    }

    fn advertisement_encodings_agree(ad: &SignerAdvertisement) {
        let body = postcard::to_allocvec(&AdvertisementBody {
            version: ad.version,
            peer_id: &ad.peer_id,
            multiaddrs: &ad.multiaddrs,
            pubkey: ad.pubkey,
            transaction_types: &ad.transaction_types,
            created_at: ad.created_at,
            expires_at: ad.expires_at,
            identity: &ad.identity,
        })
        .unwrap();
        assert_eq!(
            ad.signing_bytes(),
            [SIGNER_ADVERTISEMENT_TAG, body.as_slice()].concat()
        );
        let wire = postcard::to_allocvec(ad).unwrap();
        assert_eq!(wire, [body.as_slice(), &ad.signature.to_bytes()].concat());
        assert_eq!(
            &postcard::from_bytes::<SignerAdvertisement>(&wire).unwrap(),
            ad
        );
    }

    #[test]
    fn metadata_encoding_matches_postcard_for_every_shape() {
        let shapes = [
            SigningMetadata::default(),
            SigningMetadata {
                input_script_type: Some(InputScriptType::ScriptHash),
                sighash_type: Some(0),
                transaction_type: Some(TransactionType::Channel),
                amount: Some(u64::MAX),
                purpose: Some(String::new()),
            },
            SigningMetadata {
                input_script_type: Some(InputScriptType::PubKeyHash),
                amount: Some(128),
                ..SigningMetadata::default()
            },
        ];
        for m in shapes {
            let mut w = Writer::with_tag(b"");
            m.encode(&mut w);
            assert_eq!(w.finish(), postcard::to_allocvec(&m).unwrap(), "{m:?}");
        }
    }

    #[test]
    fn sign_and_verify() {
        let (a, creator) = sample_announcement();
        assert_eq!(a.validate(), Ok(()));
        assert_eq!(a.verify_signature(), Ok(()));
        assert_eq!(a.verify_owner(&PeerId::from("12D3KooWCreator")), Ok(()));
        assert_eq!(
            a.verify_owner(&PeerId::from("12D3KooWOther")),
            Err(Violation::PeerMismatch {
                claimed: "12D3KooWCreator".into()
            })
        );
        // Any change to a signed field breaks the signature.
        let mut t = a.clone();
        t.metadata.amount = Some(1);
        assert!(t.verify_signature().is_err());
        let mut t = a.clone();
        t.creator_peer_id = "12D3KooWOther".into();
        assert!(t.verify_owner(&PeerId::from("12D3KooWOther")).is_err());
        // Re-signing by someone else's key does not verify under the creator key.
        let forged = a.clone().sign(&keypair(2));
        assert_eq!(
            forged.verify_signature(),
            Err(Violation::InvalidSignature {
                object: SignedObject::SessionAnnouncement
            })
        );
        assert_eq!(a.clone().sign(&creator), a);

        let (ad, _) = sample_advertisement();
        assert_eq!(ad.validate(), Ok(()));
        assert_eq!(ad.verify_owner(&PeerId::from("12D3KooWSigner")), Ok(()));
        let mut t = ad.clone();
        t.multiaddrs.push("/ip4/6.6.6.6/tcp/1".into());
        assert!(t.verify_signature().is_err());
        assert_eq!(
            ad.topics().collect::<Vec<_>>(),
            ["musig2:signers:spend", "musig2:signers:channel"]
        );
    }

    #[test]
    fn an_advertisement_signature_never_verifies_as_an_announcement() {
        // Domain separation: the two digests differ even for the same key.
        let (a, creator) = sample_announcement();
        let ad = SignerAdvertisement::new_signed(
            &creator,
            "12D3KooWCreator",
            vec![],
            vec![TransactionType::Spend],
            1,
            2,
        );
        let mut spliced = a.clone();
        spliced.signature = ad.signature;
        assert!(spliced.verify_signature().is_err());
        assert_ne!(a.signing_bytes()[..20], ad.signing_bytes()[..20]);
    }

    #[test]
    fn the_session_options_are_signed() {
        let (a, _) = sample_announcement();
        assert!(a.verify_signature().is_ok());
        let mut t = a.clone();
        t.nonce_commitments = !t.nonce_commitments;
        assert!(t.verify_signature().is_err());
        let mut t = a.clone();
        t.coordinator_election = !t.coordinator_election;
        assert!(t.verify_signature().is_err());
    }

    #[test]
    fn structural_checks() {
        let (a, creator) = sample_announcement();
        let mut t = a.clone();
        t.version = 1;
        assert_eq!(
            t.validate(),
            Err(Violation::UnsupportedVersion {
                what: "session announcement",
                got: 1,
                supported: 3
            })
        );
        let mut t = a.clone();
        t.required_pubkeys.reverse();
        assert_eq!(t.validate(), Err(Malformation::UnsortedSigners.into()));
        let mut t = a.clone();
        t.required_pubkeys.insert(0, t.required_pubkeys[0]);
        assert_eq!(t.validate(), Err(Malformation::UnsortedSigners.into()));
        let mut t = a.clone();
        t.required_pubkeys.clear();
        assert_eq!(t.validate(), Err(Malformation::NoSigners.into()));
        let mut t = a.clone();
        t.creator_pubkey = keypair(77).public_key();
        assert_eq!(t.validate(), Err(Malformation::CreatorNotSigner.into()));
        let mut t = a.clone();
        t.request_nonce = [8; 32];
        assert_eq!(t.validate(), Err(Malformation::RequestIdMismatch.into()));
        let mut t = a.clone();
        t.expires_at = t.created_at;
        assert!(matches!(
            t.validate(),
            Err(Violation::Malformed(
                Malformation::ExpiryNotAfterCreation { .. }
            ))
        ));
        // A request whose creator is not a signer cannot even be built.
        let request = SessionRequest {
            signers: vec![keypair(5).public_key()],
            message: [0; 32],
            creator_peer_id: String::new(),
            creator_addrs: vec![],
            metadata: SigningMetadata::default(),
            election_method: "lexicographic".into(),
            nonce_commitments: true,
            coordinator_election: true,
            created_at: 1,
            expires_at: 2,
            request_nonce: [0; 32],
        };
        assert_eq!(
            SessionAnnouncement::new_signed(request, &creator),
            Err(Malformation::CreatorNotSigner.into())
        );

        let (ad, _) = sample_advertisement();
        let mut t = ad.clone();
        t.transaction_types.clear();
        assert_eq!(t.validate(), Err(Malformation::NoTransactionTypes.into()));
        let mut t = ad;
        t.version = 0;
        assert!(matches!(
            t.validate(),
            Err(Violation::UnsupportedVersion { .. })
        ));
    }

    #[test]
    fn ids_bind_the_nonce_and_ignore_key_order() {
        let (a, _) = sample_announcement();
        let mut reversed = a.required_pubkeys.clone();
        reversed.reverse();
        assert_eq!(
            session_id(&reversed, &a.message, &a.creator_pubkey, &a.request_nonce),
            a.session_id()
        );
        assert_ne!(
            session_id(&reversed, &a.message, &a.creator_pubkey, &[8; 32]),
            a.session_id()
        );
        // A co-signer that signs a copy of the request as itself makes
        // another session (no twin).
        let other_creator = a.required_pubkeys.iter().find(|k| **k != a.creator_pubkey);
        if let Some(other) = other_creator {
            assert_ne!(
                session_id(&reversed, &a.message, other, &a.request_nonce),
                a.session_id()
            );
        }
        assert_eq!(
            request_id(&reversed, &a.message, &a.creator_pubkey, &a.request_nonce),
            a.request_id
        );
        assert_eq!(
            a.signer_index(&a.creator_pubkey),
            a.required_pubkeys
                .iter()
                .position(|k| *k == a.creator_pubkey)
        );
    }

    #[test]
    fn transaction_type_names_and_topics() {
        for t in TransactionType::ALL {
            assert_eq!(t.as_str().parse(), Ok(t));
            assert_eq!(t.topic(), format!("musig2:signers:{t}"));
            assert_eq!(TransactionType::from_topic(t.topic()), Some(t));
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{t}\""));
        }
        assert!("Spend".parse::<TransactionType>().is_err());
        assert_eq!(TransactionType::from_topic("musig2:signers:"), None);
        assert_eq!(
            serde_json::to_string(&InputScriptType::PubKeyHash).unwrap(),
            "\"pubkeyhash\""
        );
    }
}
