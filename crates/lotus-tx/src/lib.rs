#![doc = include_str!("../README.md")]
#![no_std]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod address;
mod encode;
pub mod error;
pub mod hash;
pub mod script;
pub mod sighash;
mod sign;
pub mod taproot;
pub mod transaction;
mod verify;

pub use address::{Address, Destination, Network};
pub use encode::{MAX_COMPACT_SIZE, write_compact_size};
pub use error::{
    AddressError, DecodeError, InputError, ParseHexError, SighashError, SignError, TaprootError,
    VerifyError,
};
pub use hash::{hash160, merkle_root, sha256d};
pub use script::ScriptKind;
pub use sighash::{BaseType, ScriptExecution, Sighash, SighashAlgorithm, SighashType};
pub use taproot::{KEY_PATH_ONLY, TaprootKey, taproot_tweak, tweak_secret_key};
pub use transaction::{MAX_MONEY_SATS, OutPoint, Transaction, TxHash, TxId, TxInput, TxOutput};
