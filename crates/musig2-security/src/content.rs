//! Content checks: message size, timestamp skew, expiry.

use crate::limits::SecurityConfig;
use crate::rule::Violation;
use crate::time::Millis;

/// How a message reached us; it selects the size limit and whether a
/// timestamp may be old.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Delivery {
    /// GossipSub: live, `max_advertisement_size`. Pass the message's author
    /// (`gossipsub::Message::source`), not the peer that forwarded it.
    Gossip,
    /// A Kademlia record: stored, `max_advertisement_size`; its creation time
    /// may be old (it is still checked against the future and for expiry).
    /// Pass the record's publisher; if it is unknown, the peer id the record
    /// claims (the signature still binds key and peer id).
    Dht,
    /// A direct request-response message: live, `max_message_size`.
    Direct,
}

impl Delivery {
    /// The size limit for this delivery.
    pub fn size_limit(self, config: &SecurityConfig) -> usize {
        match self {
            Self::Gossip | Self::Dht => config.max_advertisement_size,
            Self::Direct => config.max_message_size,
        }
    }

    /// Whether the message is live (sent just now), so its timestamp must not
    /// be old either.
    pub fn is_live(self) -> bool {
        !matches!(self, Self::Dht)
    }
}

/// `size ≤ limit` for the delivery (10 000 bytes for gossip / DHT, 100 000 for
/// direct messages by default).
pub fn check_size(
    delivery: Delivery,
    size: usize,
    config: &SecurityConfig,
) -> Result<(), Violation> {
    let max = delivery.size_limit(config);
    if size <= max {
        Ok(())
    } else if delivery == Delivery::Direct {
        Err(Violation::MessageTooLarge { size, max })
    } else {
        Err(Violation::AdvertisementTooLarge { size, max })
    }
}

/// `timestamp ≤ now + max_skew`, and for live messages also
/// `timestamp ≥ now − max_skew` (5 minutes either way by default).
pub fn check_timestamp(
    timestamp: Millis,
    now: Millis,
    max_skew_ms: Millis,
    live: bool,
) -> Result<(), Violation> {
    if timestamp > now.saturating_add(max_skew_ms) {
        return Err(Violation::TimestampInFuture {
            timestamp,
            now,
            max_skew_ms,
        });
    }
    if live && timestamp < now.saturating_sub(max_skew_ms) {
        return Err(Violation::TimestampTooOld {
            timestamp,
            now,
            max_skew_ms,
        });
    }
    Ok(())
}

/// Rejects `expires_at ≤ now`.
pub fn check_not_expired(expires_at: Millis, now: Millis) -> Result<(), Violation> {
    if expires_at > now {
        Ok(())
    } else {
        Err(Violation::Expired { expires_at, now })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rule;

    #[test]
    fn advertisement_size_at_below_above() {
        let c = SecurityConfig::default();
        for delivery in [Delivery::Gossip, Delivery::Dht] {
            assert_eq!(check_size(delivery, 9_999, &c), Ok(()));
            assert_eq!(check_size(delivery, 10_000, &c), Ok(()));
            assert_eq!(
                check_size(delivery, 10_001, &c),
                Err(Violation::AdvertisementTooLarge {
                    size: 10_001,
                    max: 10_000
                })
            );
        }
    }

    #[test]
    fn message_size_at_below_above() {
        let c = SecurityConfig::default();
        assert_eq!(check_size(Delivery::Direct, 99_999, &c), Ok(()));
        assert_eq!(check_size(Delivery::Direct, 100_000, &c), Ok(()));
        assert_eq!(
            check_size(Delivery::Direct, 100_001, &c),
            Err(Violation::MessageTooLarge {
                size: 100_001,
                max: 100_000
            })
        );
    }

    #[test]
    fn timestamp_skew_at_below_above() {
        let now = 1_764_000_000_000;
        let skew = 300_000;
        // Future, either delivery.
        for live in [true, false] {
            assert_eq!(check_timestamp(now + skew - 1, now, skew, live), Ok(()));
            assert_eq!(check_timestamp(now + skew, now, skew, live), Ok(()));
            assert_eq!(
                check_timestamp(now + skew + 1, now, skew, live).map_err(|v| v.rule()),
                Err(Rule::TimestampSkew)
            );
        }
        // Past, live.
        assert_eq!(check_timestamp(now - skew + 1, now, skew, true), Ok(()));
        assert_eq!(check_timestamp(now - skew, now, skew, true), Ok(()));
        assert_eq!(
            check_timestamp(now - skew - 1, now, skew, true),
            Err(Violation::TimestampTooOld {
                timestamp: now - skew - 1,
                now,
                max_skew_ms: skew
            })
        );
        // Past, stored (DHT): old is fine.
        assert_eq!(check_timestamp(0, now, skew, false), Ok(()));
        // Extremes do not overflow.
        assert!(check_timestamp(u64::MAX, u64::MAX, u64::MAX, true).is_ok());
        assert!(check_timestamp(u64::MAX, 0, skew, true).is_err());
    }

    #[test]
    fn expiry_at_below_above() {
        let now = 1_000;
        assert_eq!(check_not_expired(now + 1, now), Ok(()));
        assert_eq!(
            check_not_expired(now, now),
            Err(Violation::Expired {
                expires_at: now,
                now
            })
        );
        assert!(check_not_expired(now - 1, now).is_err());
    }
}
