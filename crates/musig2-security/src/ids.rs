//! Peer and session identifiers.

use core::fmt;
use core::str::FromStr;

/// A libp2p peer id in its string form (`PeerId::to_string()`, e.g.
/// `12D3KooW…`). This crate has no libp2p dependency and never parses it: it
/// is only compared and used as a key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct PeerId(String);

impl PeerId {
    /// Wraps a peer id string.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The peer id string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The peer id string, by value.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl From<String> for PeerId {
    fn from(id: String) -> Self {
        Self(id)
    }
}

impl From<&str> for PeerId {
    fn from(id: &str) -> Self {
        Self(id.to_owned())
    }
}

impl From<&String> for PeerId {
    fn from(id: &String) -> Self {
        Self(id.clone())
    }
}

impl AsRef<str> for PeerId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl core::borrow::Borrow<str> for PeerId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for PeerId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for PeerId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", self.0)
    }
}

/// A 32-byte session id: `SHA256("lotus-musig2/session-id/v1\0" ‖ keys ‖ message ‖ request_nonce)`
/// (see [`crate::announcement::session_id`]). Prints as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId([u8; 32]);

impl SessionId {
    /// Wraps 32 bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes.
    pub const fn to_bytes(self) -> [u8; 32] {
        self.0
    }

    /// The 32 bytes, borrowed.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl From<[u8; 32]> for SessionId {
    fn from(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

/// A string that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a session id is 64 hex digits")]
pub struct ParseSessionIdError;

impl FromStr for SessionId {
    type Err = ParseSessionIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| ParseSessionIdError)?;
        Ok(Self(out))
    }
}

impl serde::Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            serde::Serialize::serialize(&self.0, s)
        }
    }
}

impl<'de> serde::Deserialize<'de> for SessionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        if d.is_human_readable() {
            let s = <String as serde::Deserialize>::deserialize(d)?;
            s.parse().map_err(D::Error::custom)
        } else {
            <[u8; 32] as serde::Deserialize>::deserialize(d).map(Self)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_id_conversions() {
        let a = PeerId::from("12D3KooWa");
        let b: PeerId = String::from("12D3KooWa").into();
        assert_eq!(a, b);
        assert_eq!(a, "12D3KooWa");
        assert_eq!(a.to_string(), "12D3KooWa");
        assert_eq!(format!("{a:?}"), "PeerId(12D3KooWa)");
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"12D3KooWa\"");
        let mut set = std::collections::HashSet::new();
        set.insert(a.clone());
        assert!(set.contains("12D3KooWa"));
    }

    #[test]
    fn session_id_hex_round_trip() {
        let id = SessionId::from_bytes([0xab; 32]);
        let text = id.to_string();
        assert_eq!(text, "ab".repeat(32));
        assert_eq!(text.parse::<SessionId>(), Ok(id));
        assert_eq!("ab".parse::<SessionId>(), Err(ParseSessionIdError));
        assert_eq!(
            "zz".repeat(32).parse::<SessionId>(),
            Err(ParseSessionIdError)
        );
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<SessionId>(&json).unwrap(), id);
        let bin = postcard::to_allocvec(&id).unwrap();
        assert_eq!(bin, vec![0xab; 32]);
        assert_eq!(postcard::from_bytes::<SessionId>(&bin).unwrap(), id);
    }
}
