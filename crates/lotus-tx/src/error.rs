//! The crate's errors: one enum per job, each naming the bad input.

use alloc::string::String;

use crate::sighash::SighashType;

/// Why bytes are not a Lotus transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes end inside a field.
    #[error("truncated {what} at byte {offset}: need {needed} bytes, {available} left")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Its offset in the transaction.
        offset: usize,
        /// The bytes it needs.
        needed: usize,
        /// The bytes left.
        available: usize,
    },
    /// A CompactSize that is not in its shortest form.
    #[error("non-canonical CompactSize ({what}) at byte {offset}")]
    NonCanonicalCompactSize {
        /// The field being read.
        what: &'static str,
        /// Offset of its first byte.
        offset: usize,
    },
    /// A CompactSize above [`MAX_COMPACT_SIZE`](crate::MAX_COMPACT_SIZE).
    #[error("oversized CompactSize {value} ({what}) at byte {offset}")]
    OversizedCompactSize {
        /// The field being read.
        what: &'static str,
        /// Offset of its first byte.
        offset: usize,
        /// The value decoded.
        value: u64,
    },
    /// An item count that the remaining bytes cannot possibly hold.
    #[error("{count} {what} announced at byte {offset}, but only {available} bytes follow")]
    TooManyItems {
        /// Inputs or outputs.
        what: &'static str,
        /// The count announced.
        count: u64,
        /// Offset of the count.
        offset: usize,
        /// The bytes left after the count.
        available: usize,
    },
    /// A transaction without inputs.
    #[error("transaction has no inputs")]
    NoInputs,
    /// A transaction without outputs.
    #[error("transaction has no outputs")]
    NoOutputs,
    /// An output value above [`MAX_MONEY_SATS`](crate::MAX_MONEY_SATS).
    #[error("output {index}: value {value} sats is above the money supply")]
    ValueOutOfRange {
        /// The output index.
        index: usize,
        /// The value.
        value: u64,
    },
    /// Bytes left after the lock time.
    #[error("{count} trailing bytes after the transaction")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
}

/// A hex string that does not encode the expected bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: expected {expected} bytes of hex, got {got:?}")]
#[non_exhaustive]
pub struct ParseHexError {
    /// What was being parsed.
    pub what: &'static str,
    /// The number of bytes expected.
    pub expected: usize,
    /// The string given (truncated to 80 characters).
    pub got: String,
}

/// Why a signature hash cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SighashError {
    /// The input index is not an input of the transaction.
    #[error("input {index} does not exist (the transaction has {inputs} inputs)")]
    InputOutOfRange {
        /// The index asked for.
        index: usize,
        /// The number of inputs.
        inputs: usize,
    },
    /// One spent output is needed per input, in input order.
    #[error("{spent} spent outputs given for {inputs} inputs")]
    SpentOutputCount {
        /// The number of spent outputs given.
        spent: usize,
        /// The number of inputs.
        inputs: usize,
    },
    /// The hash type selects neither SIGHASH_FORKID (0x40) nor SIGHASH_LOTUS
    /// (0x60): the legacy algorithm (0x00) is not allowed on Lotus and 0x20 is
    /// reserved (lotusd `interpreter.cpp:1878-1881`).
    #[error("sighash type {0}: neither SIGHASH_FORKID nor SIGHASH_LOTUS")]
    UnsupportedAlgorithm(SighashType),
    /// The hash type has no defined base type (ALL, NONE, SINGLE) or sets
    /// undefined bits.
    #[error("sighash type {0}: undefined base type or undefined bits set")]
    UndefinedType(SighashType),
    /// SIGHASH_LOTUS with SINGLE on an input that has no output at its index
    /// (lotusd `interpreter.cpp:1832-1835`).
    #[error(
        "sighash type {sighash_type}: input {index} has no output at its index ({outputs} outputs)"
    )]
    SingleWithoutOutput {
        /// The hash type.
        sighash_type: SighashType,
        /// The input index.
        index: usize,
        /// The number of outputs.
        outputs: usize,
    },
    /// The spent amounts or the output amounts do not fit in 64 bits.
    #[error("the sum of the {what} amounts overflows")]
    AmountOverflow {
        /// `spent` or `output`.
        what: &'static str,
    },
}

/// Why a Taproot key cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaprootError {
    /// The tweak is not below the group order (probability about 2^-128).
    #[error("taproot tweak is not below the group order")]
    TweakOutOfRange,
    /// `P + t·G` is the point at infinity (or `d + t ≡ 0`).
    #[error("taproot tweak gives the point at infinity")]
    TweakInfinity,
}

/// Why a string is not a Lotus XAddress.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// The address does not start with the `lotus` token.
    #[error("address does not start with \"lotus\": {0:?}")]
    UnknownToken(String),
    /// A network name other than `livenet`, `testnet` or `regtest`.
    #[error("unknown network {0:?} (livenet, testnet or regtest)")]
    UnknownNetworkName(String),
    /// The character after the token is not `_` (livenet), `T` (testnet) or `R` (regtest).
    #[error("unknown network character {0:?}")]
    UnknownNetwork(char),
    /// A character outside the base58 alphabet.
    #[error("invalid base58 character {character:?} at position {position}")]
    InvalidBase58 {
        /// The character.
        character: char,
        /// Its position in the base58 part.
        position: usize,
    },
    /// The address is longer than any XAddress.
    #[error("address too long: {0} characters")]
    TooLong(usize),
    /// The decoded bytes are too short to hold a type, a payload and a checksum.
    #[error("address too short: {0} bytes after base58 decoding")]
    TooShort(usize),
    /// The checksum does not match.
    #[error("bad checksum: expected {expected}, got {got}")]
    BadChecksum {
        /// The checksum computed from the address (hex).
        expected: String,
        /// The checksum in the address (hex).
        got: String,
    },
    /// A type byte other than 0 (script) or 2 (Taproot).
    #[error("unknown address type {0}")]
    UnknownType(u8),
    /// A type-0 payload that is neither a P2PKH nor a P2SH script, or a type-2
    /// payload that is not a 33-byte public key.
    #[error("address payload is not a {expected}")]
    BadPayload {
        /// What the type byte promised.
        expected: &'static str,
    },
    /// A script that no address expresses.
    #[error("no XAddress for this script")]
    UnsupportedScript,
}

/// Why one input's signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The spent output's script is neither P2PKH nor P2TR.
    #[error("spent script is neither P2PKH nor P2TR: not verified by this crate")]
    UnsupportedScript,
    /// A P2TR input whose scriptSig is not a single 65-byte push (a script-path spend).
    #[error("P2TR script-path spends are not supported")]
    ScriptPathUnsupported,
    /// The scriptSig is not what the spent script requires.
    #[error("malformed scriptSig: {0}")]
    MalformedScriptSig(&'static str),
    /// The P2PKH public key does not hash to the spent script's hash.
    #[error("public key does not match the spent P2PKH hash")]
    PublicKeyMismatch,
    /// The public key is not a valid compressed point.
    #[error("invalid public key")]
    InvalidPublicKey,
    /// The commitment key of the P2TR script is not a valid point.
    #[error("invalid Taproot commitment key")]
    InvalidCommitment,
    /// The signature's hash type is not usable.
    #[error(transparent)]
    Sighash(#[from] SighashError),
    /// A P2TR key-path signature with a hash type outside SIGHASH_LOTUS
    /// (lotusd `sigencoding.cpp:224-227`).
    #[error("taproot key spend must use a SIGHASH_LOTUS type, got {0}")]
    TaprootKeySpendNotLotus(SighashType),
    /// An ECDSA signature that is not strict DER (BIP66).
    #[error("ECDSA signature is not strict DER")]
    NonStrictDer,
    /// The signature does not verify.
    #[error("signature does not verify")]
    InvalidSignature,
}

/// Why an input cannot be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The signature hash cannot be computed.
    #[error(transparent)]
    Sighash(#[from] SighashError),
    /// The Taproot key cannot be tweaked.
    #[error(transparent)]
    Taproot(#[from] TaprootError),
    /// The spent output is not of the kind this call signs.
    #[error("input {index}: the spent output is not of the kind this call signs")]
    WrongScript {
        /// The input.
        index: usize,
    },
    /// The key does not own the spent output.
    #[error("input {index}: the key does not own the spent output")]
    KeyMismatch {
        /// The input.
        index: usize,
    },
    /// The signed input does not verify (or the hash type is refused).
    #[error("input {index}: {reason}")]
    Input {
        /// The input.
        index: usize,
        /// Why.
        reason: InputError,
    },
}

/// Why a transaction does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// One spent output is needed per input, in input order.
    #[error("{spent} spent outputs given for {inputs} inputs")]
    SpentOutputCount {
        /// The number of spent outputs given.
        spent: usize,
        /// The number of inputs.
        inputs: usize,
    },
    /// An input fails.
    #[error("input {index}: {reason}")]
    Input {
        /// The failing input.
        index: usize,
        /// Why.
        reason: InputError,
    },
}
