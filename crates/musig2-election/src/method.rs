//! The four election methods and their lotus-sdk names.

use core::fmt;
use core::str::FromStr;

use crate::error::ElectionError;

/// How the coordinator is chosen from the sorted signer list.
///
/// The names (`Display`, `FromStr`, serde) are lotus-sdk's `ElectionMethod`
/// enum values: `lexicographic`, `hash-based`, `first-signer`, `last-signer`.
/// `FromStr` and serde also accept the short aliases `hash`, `first` and
/// `last`; nothing else (matching is exact and case-sensitive).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub enum ElectionMethod {
    /// The first key in sorted order (lotus-sdk's default and recommended method).
    #[default]
    #[serde(rename = "lexicographic")]
    Lexicographic,
    /// `u32be(SHA256(hex keys)[0..4]) mod n`: a deterministic pseudo-random draw.
    #[serde(rename = "hash-based", alias = "hash")]
    HashBased,
    /// The first key in sorted order (same coordinator as lexicographic,
    /// different failover order: it does not wrap around).
    #[serde(rename = "first-signer", alias = "first")]
    FirstSigner,
    /// The last key in sorted order; failover walks backwards.
    #[serde(rename = "last-signer", alias = "last")]
    LastSigner,
}

impl ElectionMethod {
    /// Every method, in lotus-sdk's declaration order.
    pub const ALL: [ElectionMethod; 4] = [
        Self::Lexicographic,
        Self::HashBased,
        Self::FirstSigner,
        Self::LastSigner,
    ];

    /// The lotus-sdk name of the method.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Lexicographic => "lexicographic",
            Self::HashBased => "hash-based",
            Self::FirstSigner => "first-signer",
            Self::LastSigner => "last-signer",
        }
    }
}

impl fmt::Display for ElectionMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ElectionMethod {
    type Err = ElectionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "lexicographic" => Ok(Self::Lexicographic),
            "hash-based" | "hash" => Ok(Self::HashBased),
            "first-signer" | "first" => Ok(Self::FirstSigner),
            "last-signer" | "last" => Ok(Self::LastSigner),
            other => Err(ElectionError::UnknownMethod {
                name: other.to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_aliases_parse() {
        for method in ElectionMethod::ALL {
            assert_eq!(method.to_string().parse::<ElectionMethod>(), Ok(method));
            let json = serde_json::to_string(&method).unwrap();
            assert_eq!(json, format!("\"{method}\""));
            assert_eq!(
                serde_json::from_str::<ElectionMethod>(&json).unwrap(),
                method
            );
        }
        assert_eq!("hash".parse(), Ok(ElectionMethod::HashBased));
        assert_eq!("first".parse(), Ok(ElectionMethod::FirstSigner));
        assert_eq!("last".parse(), Ok(ElectionMethod::LastSigner));
        assert_eq!(
            serde_json::from_str::<ElectionMethod>("\"last\"").unwrap(),
            ElectionMethod::LastSigner
        );
        assert_eq!(ElectionMethod::default(), ElectionMethod::Lexicographic);
    }

    #[test]
    fn unknown_names_are_rejected() {
        for bad in ["", "Lexicographic", "lex", "hash_based", "random", " first"] {
            assert_eq!(
                bad.parse::<ElectionMethod>(),
                Err(ElectionError::UnknownMethod {
                    name: bad.to_owned()
                })
            );
        }
        assert!(serde_json::from_str::<ElectionMethod>("\"random\"").is_err());
    }
}
