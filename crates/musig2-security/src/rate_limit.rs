//! Rate limits and quotas: one signer advertisement per interval per peer,
//! a bound on the keys one peer may claim, and token buckets for signing
//! requests per author key and per delivering peer.

use std::collections::BTreeMap;

use musig2_core::{PublicKey, Signature};

use crate::ids::PeerId;
use crate::peer_map::{BoundedMap, BoundedPeerMap};
use crate::rule::Violation;
use crate::time::Millis;

/// Whether an advertisement is new or one already accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Not seen before and within the rate: verify and accept it.
    Fresh,
    /// Byte-for-byte the peer's last accepted advertisement (the same one
    /// received again through another path): nothing to do, no blame.
    Duplicate,
}

#[derive(Debug, Clone)]
struct LastAdvertisement {
    created_at: Millis,
    digest: [u8; 32],
    signature: Signature,
}

/// One advertisement per `min_interval_ms` per peer, measured on the
/// advertisements' signed `created_at` (not on arrival time).
///
/// Measuring signed creation times means that delivery jitter, or receiving
/// the same advertisement over GossipSub and from the DHT, never makes an
/// honest peer look too fast, while a peer still cannot produce more than one
/// advertisement per interval in the long run (the timestamp check bounds
/// `created_at` to `now ± max_timestamp_skew_ms`, so at most
/// `2·skew / interval + 1` can be pre-dated into a burst: 11 with the defaults).
#[derive(Debug, Clone)]
pub struct AdvertisementRateLimiter {
    min_interval_ms: Millis,
    last: BoundedPeerMap<LastAdvertisement>,
}

impl AdvertisementRateLimiter {
    /// A limiter tracking at most `max_peers` peers.
    pub fn new(min_interval_ms: Millis, max_peers: usize) -> Self {
        Self {
            min_interval_ms,
            last: BoundedPeerMap::new(max_peers),
        }
    }

    /// Checks an advertisement (its `created_at`, digest and signature)
    /// against the peer's last accepted one, without recording it:
    ///
    /// * identical to the last accepted one → [`Freshness::Duplicate`];
    /// * older than it → [`Violation::Superseded`] (not blamed);
    /// * less than `min_interval_ms` after it → [`Violation::RateLimited`];
    /// * otherwise [`Freshness::Fresh`].
    pub fn check(
        &self,
        peer: &PeerId,
        created_at: Millis,
        digest: &[u8; 32],
        signature: &Signature,
    ) -> Result<Freshness, Violation> {
        let Some(last) = self.last.get(peer) else {
            return Ok(Freshness::Fresh);
        };
        if last.digest == *digest && last.signature == *signature {
            return Ok(Freshness::Duplicate);
        }
        if created_at < last.created_at {
            return Err(Violation::Superseded {
                created_at,
                latest: last.created_at,
            });
        }
        if created_at < last.created_at.saturating_add(self.min_interval_ms) {
            return Err(Violation::RateLimited {
                created_at,
                previous: last.created_at,
                min_interval_ms: self.min_interval_ms,
            });
        }
        Ok(Freshness::Fresh)
    }

    /// Records an accepted advertisement.
    pub fn record(
        &mut self,
        peer: &PeerId,
        created_at: Millis,
        digest: [u8; 32],
        signature: Signature,
        now: Millis,
    ) {
        let entry = LastAdvertisement {
            created_at,
            digest,
            signature,
        };
        let slot = self.last.entry(peer, now, || entry.clone());
        *slot = entry;
    }

    /// Forgets peers not seen since `before`.
    pub fn prune(&mut self, before: Millis) {
        self.last.retain(|_, _, touched| touched >= before);
    }

    /// How many peers are tracked.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether no peer is tracked.
    pub fn is_empty(&self) -> bool {
        self.last.len() == 0
    }
}

/// At most `max_keys` distinct unexpired public keys per peer (Sybil bound).
///
/// A key counts from the acceptance of an advertisement or announcement that
/// claims it until that object's `expires_at`; re-advertising a key already
/// counted does not use another slot, and expired keys free theirs.
#[derive(Debug, Clone)]
pub struct KeyQuota {
    max_keys: usize,
    keys: BoundedPeerMap<BTreeMap<PublicKey, Millis>>,
}

impl KeyQuota {
    /// A quota of `max_keys` per peer, tracking at most `max_peers` peers.
    pub fn new(max_keys: usize, max_peers: usize) -> Self {
        Self {
            max_keys,
            keys: BoundedPeerMap::new(max_peers),
        }
    }

    /// Checks that `peer` may claim `key` at `now`, without recording it.
    pub fn check(&self, peer: &PeerId, key: &PublicKey, now: Millis) -> Result<(), Violation> {
        let Some(keys) = self.keys.get(peer) else {
            return if self.max_keys > 0 {
                Ok(())
            } else {
                Err(Violation::TooManyKeys { max: 0 })
            };
        };
        if keys.get(key).is_some_and(|&expires| expires > now) {
            return Ok(());
        }
        let live = keys.values().filter(|&&expires| expires > now).count();
        if live < self.max_keys {
            Ok(())
        } else {
            Err(Violation::TooManyKeys { max: self.max_keys })
        }
    }

    /// Records that `peer` claims `key` until `expires_at`.
    pub fn record(&mut self, peer: &PeerId, key: PublicKey, expires_at: Millis, now: Millis) {
        let keys = self.keys.entry(peer, now, BTreeMap::new);
        keys.retain(|_, &mut expires| expires > now);
        let slot = keys.entry(key).or_insert(expires_at);
        *slot = (*slot).max(expires_at);
    }

    /// The unexpired keys `peer` claims.
    pub fn keys_of(&self, peer: &PeerId, now: Millis) -> Vec<PublicKey> {
        self.keys
            .get(peer)
            .map(|keys| {
                keys.iter()
                    .filter(|&(_, &expires)| expires > now)
                    .map(|(key, _)| *key)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Forgets a key (its advertisement was withdrawn).
    pub fn remove_key(&mut self, peer: &PeerId, key: &PublicKey, now: Millis) {
        if let Some(keys) = self.keys.get_mut(peer, now) {
            keys.remove(key);
        }
    }

    /// Drops expired keys and peers left with none.
    pub fn prune(&mut self, now: Millis) {
        self.keys.retain(|_, keys, _| {
            keys.retain(|_, &mut expires| expires > now);
            !keys.is_empty()
        });
    }

    /// How many peers are tracked.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no peer is tracked.
    pub fn is_empty(&self) -> bool {
        self.keys.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rule;
    use musig2_core::SecretKey;

    fn key(i: u8) -> PublicKey {
        let mut b = [0x33u8; 32];
        b[31] = i;
        SecretKey::from_bytes(&b).unwrap().public_key()
    }

    fn sig(i: u8) -> Signature {
        Signature::from_bytes(&[i; 64])
    }

    #[test]
    fn advertisement_interval_at_below_above() {
        let peer = PeerId::from("p");
        let t0 = 1_764_000_000_000;
        let mut l = AdvertisementRateLimiter::new(60_000, 100);
        assert_eq!(l.check(&peer, t0, &[1; 32], &sig(1)), Ok(Freshness::Fresh));
        l.record(&peer, t0, [1; 32], sig(1), t0);
        assert_eq!(
            l.check(&peer, t0 + 59_999, &[2; 32], &sig(2)),
            Err(Violation::RateLimited {
                created_at: t0 + 59_999,
                previous: t0,
                min_interval_ms: 60_000
            })
        );
        assert_eq!(
            l.check(&peer, t0 + 60_000, &[2; 32], &sig(2)),
            Ok(Freshness::Fresh)
        );
        assert_eq!(
            l.check(&peer, t0 + 60_001, &[2; 32], &sig(2)),
            Ok(Freshness::Fresh)
        );
        // The same advertisement again is a duplicate, not a violation.
        assert_eq!(
            l.check(&peer, t0, &[1; 32], &sig(1)),
            Ok(Freshness::Duplicate)
        );
        // Same time, different content: too fast.
        assert_eq!(
            l.check(&peer, t0, &[3; 32], &sig(3)).map_err(|v| v.rule()),
            Err(Rule::RateLimit)
        );
        // Older than the accepted one: superseded.
        assert_eq!(
            l.check(&peer, t0 - 1, &[4; 32], &sig(4)),
            Err(Violation::Superseded {
                created_at: t0 - 1,
                latest: t0
            })
        );
        // Other peers are independent.
        assert_eq!(
            l.check(&PeerId::from("q"), t0, &[2; 32], &sig(2)),
            Ok(Freshness::Fresh)
        );
        l.prune(t0 + 1);
        assert!(l.is_empty());
    }

    #[test]
    fn key_quota_at_below_above() {
        let peer = PeerId::from("p");
        let now = 1_000;
        let mut q = KeyQuota::new(10, 100);
        for i in 0..9 {
            q.record(&peer, key(i), now + 10_000, now);
        }
        // The 10th key is within the quota.
        assert_eq!(q.check(&peer, &key(9), now), Ok(()));
        q.record(&peer, key(9), now + 10_000, now);
        // The 11th is not.
        assert_eq!(
            q.check(&peer, &key(10), now),
            Err(Violation::TooManyKeys { max: 10 })
        );
        // A key already claimed can be re-advertised.
        assert_eq!(q.check(&peer, &key(3), now), Ok(()));
        assert_eq!(q.keys_of(&peer, now).len(), 10);
        // Expired keys free their slots; expiry is exclusive (at expires_at it is gone).
        q.record(&peer, key(0), now + 20_000, now);
        assert_eq!(
            q.check(&peer, &key(10), now + 9_999),
            Err(Violation::TooManyKeys { max: 10 })
        );
        assert_eq!(q.check(&peer, &key(10), now + 10_000), Ok(()));
        // Withdrawal frees a slot too.
        q.remove_key(&peer, &key(5), now);
        assert_eq!(q.check(&peer, &key(10), now), Ok(()));
        q.prune(now + 20_000);
        assert!(q.is_empty());
        assert_eq!(
            KeyQuota::new(0, 1).check(&peer, &key(1), now),
            Err(Violation::TooManyKeys { max: 0 })
        );
    }
}

/// A token bucket: `per_minute` tokens a minute, holding at most `burst`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens, in thousandths (so refills below one token a tick add up).
    milli_tokens: u64,
    refilled_at: Millis,
}

impl Bucket {
    fn full(burst: u32, now: Millis) -> Self {
        Self {
            milli_tokens: u64::from(burst) * 1000,
            refilled_at: now,
        }
    }

    /// Refills for the time since the last call, then takes one token if any.
    fn take(&mut self, per_minute: u32, burst: u32, now: Millis) -> bool {
        let elapsed = now.saturating_sub(self.refilled_at);
        // per_minute tokens per 60 000 ms = per_minute / 60 milli-tokens per ms.
        let refill = elapsed.saturating_mul(u64::from(per_minute)) / 60;
        self.milli_tokens = self
            .milli_tokens
            .saturating_add(refill)
            .min(u64::from(burst) * 1000);
        self.refilled_at = self.refilled_at.max(now);
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }
}

/// Signing requests (session announcements) delivered live, limited per
/// author key and per delivering peer with token buckets: `per_minute` a
/// minute on average, bursts of up to `burst` (a multi-input transaction
/// announces one request per input at once).
///
/// Both buckets must have a token; a request refused by one takes none from
/// the other. Each map tracks at most `max_tracked` authors / peers (least
/// recently seen forgotten first, which can only make a limit more lenient).
#[derive(Debug, Clone)]
pub struct RequestRateLimiter {
    per_minute: u32,
    burst: u32,
    by_key: BoundedMap<PublicKey, Bucket>,
    by_peer: BoundedPeerMap<Bucket>,
}

impl RequestRateLimiter {
    /// A limiter of `per_minute` requests a minute (bursts of `burst`).
    pub fn new(per_minute: u32, burst: u32, max_tracked: usize) -> Self {
        Self {
            per_minute,
            burst: burst.max(1),
            by_key: BoundedMap::new(max_tracked),
            by_peer: BoundedPeerMap::new(max_tracked),
        }
    }

    /// Takes one token from `author`'s and from `peer`'s bucket, or neither.
    pub fn take(
        &mut self,
        peer: &PeerId,
        author: &PublicKey,
        now: Millis,
    ) -> Result<(), Violation> {
        let (per_minute, burst) = (self.per_minute, self.burst);
        let limited = |what| Violation::RequestRateLimited {
            limited: what,
            per_minute,
        };
        // Work on copies and store both only when both have a token.
        let mut by_key = *self.by_key.entry(author, now, || Bucket::full(burst, now));
        let mut by_peer = *self.by_peer.entry(peer, now, || Bucket::full(burst, now));
        if !by_key.take(per_minute, burst, now) {
            return Err(limited("author key"));
        }
        if !by_peer.take(per_minute, burst, now) {
            return Err(limited("peer"));
        }
        *self.by_key.entry(author, now, || by_key) = by_key;
        *self.by_peer.entry(peer, now, || by_peer) = by_peer;
        Ok(())
    }

    /// Forgets buckets not touched since `before` (they would be full again).
    pub fn prune(&mut self, before: Millis) {
        self.by_key.retain(|_, _, touched| touched >= before);
        self.by_peer.retain(|_, _, touched| touched >= before);
    }
}

#[cfg(test)]
mod request_tests {
    use super::*;

    fn key(byte: u8) -> PublicKey {
        let mut sk = [0u8; 32];
        sk[31] = byte;
        musig2_core::SecretKey::from_bytes(&sk)
            .map(|k| k.public_key())
            .unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn a_burst_then_the_average_rate() {
        let mut limiter = RequestRateLimiter::new(60, 5, 100);
        let (peer, author) = (PeerId::from("p"), key(1));
        for _ in 0..5 {
            assert_eq!(limiter.take(&peer, &author, 0), Ok(()));
        }
        assert!(matches!(
            limiter.take(&peer, &author, 0),
            Err(Violation::RequestRateLimited {
                limited: "author key",
                per_minute: 60
            })
        ));
        // One a second comes back.
        assert_eq!(limiter.take(&peer, &author, 1000), Ok(()));
        assert!(limiter.take(&peer, &author, 1500).is_err());
    }

    #[test]
    fn one_peer_cannot_hide_behind_many_keys_nor_one_key_behind_many_peers() {
        let mut limiter = RequestRateLimiter::new(60, 3, 100);
        let peer = PeerId::from("p");
        for i in 1..=3 {
            assert_eq!(limiter.take(&peer, &key(i), 0), Ok(()));
        }
        assert!(matches!(
            limiter.take(&peer, &key(9), 0),
            Err(Violation::RequestRateLimited {
                limited: "peer",
                ..
            })
        ));
        let author = key(20);
        for i in 0..3 {
            assert_eq!(
                limiter.take(&PeerId::from(format!("q{i}").as_str()), &author, 0),
                Ok(())
            );
        }
        assert!(limiter.take(&PeerId::from("q9"), &author, 0).is_err());
        // A refusal by one bucket took nothing from the other: q9 is still full.
        for _ in 0..3 {
            assert_eq!(limiter.take(&PeerId::from("q9"), &key(30), 0), Ok(()));
        }
    }
}
