#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod backup;
mod elect;
mod error;
mod failover;
mod method;

pub use backup::{backup_coordinator, coordinator_priority_list};
pub use elect::{
    ElectionResult, coordinator_public_key, elect_coordinator, election_proof, is_coordinator,
    verify_election_result,
};
pub use error::ElectionError;
pub use failover::{Failover, FailoverStep};
pub use method::ElectionMethod;
