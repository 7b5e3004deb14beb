//! The config's `approve` value and its check: the serde types an operator
//! writes, turned into the [`Policy`] that [`super::Consent`] applies.

use std::str::FromStr;

use lotus_musig2::core::PublicKey;
use lotus_musig2::security::TransactionType;
use serde::Deserialize;

/// The config's `approve` value.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum ApproveConfig {
    /// `"manual"` or `"auto"`.
    Mode(ApproveMode),
    /// A table of rules.
    Rules(RulesConfig),
}

impl Default for ApproveConfig {
    fn default() -> Self {
        Self::Mode(ApproveMode::Manual)
    }
}

/// `approve = "manual" | "auto"`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ApproveMode {
    /// Every request waits for the API.
    Manual,
    /// Every request that passes `allowed_cosigners` is signed.
    Auto,
}

/// What happens to a request that misses a rule.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Otherwise {
    /// Refuse it (the default).
    #[default]
    Reject,
    /// Leave it for an operator.
    Manual,
}

/// `[approve]` as a table: a request that passes every rule is signed.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// Every co-signer must be one of these keys (hex); empty: any.
    #[serde(default)]
    pub cosigners: Vec<String>,
    /// The request's `transaction_type` must be one of these; empty: any.
    #[serde(default)]
    pub transaction_types: Vec<String>,
    /// Largest `amount` (satoshis) of one request; a request without an
    /// amount misses this rule.
    pub max_amount: Option<u64>,
    /// Largest sum of the amounts signed in one UTC day; a request without
    /// an amount misses this rule.
    pub max_amount_per_day: Option<u64>,
    /// Every co-signer must have a burn identity (`[identity] enabled`),
    /// not banned, with at least this reputation (0–100).
    pub min_identity_reputation: Option<u8>,
    /// What happens to a request that misses a rule.
    #[serde(default)]
    pub otherwise: Otherwise,
}

/// A configuration error.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key is not a compressed public key.
    #[error("approve.cosigners: {0:?} is not a public key")]
    Key(String),
    /// A transaction type is unknown.
    #[error("approve.transaction_types: unknown {0:?}")]
    TransactionType(String),
}

/// The checked `approve`: keys and transaction types parsed.
#[derive(Debug, Clone)]
pub(super) enum Policy {
    Manual,
    Auto,
    Rules {
        cosigners: Vec<PublicKey>,
        transaction_types: Vec<TransactionType>,
        max_amount: Option<u64>,
        max_amount_per_day: Option<u64>,
        min_identity_reputation: Option<u8>,
        otherwise: Otherwise,
    },
}

impl Policy {
    /// Checks `config`.
    pub(super) fn from_config(config: &ApproveConfig) -> Result<Self, ConfigError> {
        Ok(match config {
            ApproveConfig::Mode(ApproveMode::Manual) => Self::Manual,
            ApproveConfig::Mode(ApproveMode::Auto) => Self::Auto,
            ApproveConfig::Rules(r) => Self::Rules {
                cosigners: r
                    .cosigners
                    .iter()
                    .map(|k| parse_key(k))
                    .collect::<Result<_, _>>()?,
                transaction_types: r
                    .transaction_types
                    .iter()
                    .map(|t| {
                        TransactionType::from_str(t)
                            .map_err(|_| ConfigError::TransactionType(t.clone()))
                    })
                    .collect::<Result<_, _>>()?,
                max_amount: r.max_amount,
                max_amount_per_day: r.max_amount_per_day,
                min_identity_reputation: r.min_identity_reputation,
                otherwise: r.otherwise,
            },
        })
    }
}

fn parse_key(k: &str) -> Result<PublicKey, ConfigError> {
    PublicKey::from_str(k).map_err(|_| ConfigError::Key(k.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_rules_are_config_errors() {
        let bad = ApproveConfig::Rules(RulesConfig {
            transaction_types: vec!["lottery".into()],
            ..RulesConfig::default()
        });
        assert!(Policy::from_config(&bad).is_err());
        let bad = ApproveConfig::Rules(RulesConfig {
            cosigners: vec!["00".into()],
            ..RulesConfig::default()
        });
        assert!(Policy::from_config(&bad).is_err());
    }
}
