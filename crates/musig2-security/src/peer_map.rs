//! A per-peer (or per-key) map with a size bound and least-recently-seen eviction.

use std::collections::HashMap;
use std::hash::Hash;

use crate::ids::PeerId;
use crate::time::Millis;

#[derive(Debug, Clone)]
struct Slot<V> {
    value: V,
    touched: Millis,
}

/// At most `cap` keys; inserting one more forgets the key touched longest
/// ago. Eviction scans the map (O(n)), which only happens when it is full.
#[derive(Debug, Clone)]
pub(crate) struct BoundedMap<K, V> {
    map: HashMap<K, Slot<V>>,
    cap: usize,
    evictions: u64,
}

/// A [`BoundedMap`] keyed by peer.
pub(crate) type BoundedPeerMap<V> = BoundedMap<PeerId, V>;

impl<K: Eq + Hash + Clone, V> BoundedMap<K, V> {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            map: HashMap::new(),
            cap: cap.max(1),
            evictions: 0,
        }
    }

    pub(crate) fn get(&self, peer: &K) -> Option<&V> {
        self.map.get(peer).map(|slot| &slot.value)
    }

    pub(crate) fn get_mut(&mut self, peer: &K, now: Millis) -> Option<&mut V> {
        self.map.get_mut(peer).map(|slot| {
            slot.touched = slot.touched.max(now);
            &mut slot.value
        })
    }

    /// The peer's value, created with `make` if absent (evicting if full).
    pub(crate) fn entry(&mut self, peer: &K, now: Millis, make: impl FnOnce() -> V) -> &mut V {
        if !self.map.contains_key(peer) && self.map.len() >= self.cap {
            self.evict_one();
        }
        let slot = self.map.entry(peer.clone()).or_insert_with(|| Slot {
            value: make(),
            touched: now,
        });
        slot.touched = slot.touched.max(now);
        &mut slot.value
    }

    fn evict_one(&mut self) {
        let oldest = self
            .map
            .iter()
            .min_by_key(|(_, slot)| slot.touched)
            .map(|(peer, _)| peer.clone());
        if let Some(peer) = oldest {
            self.map.remove(&peer);
            self.evictions += 1;
        }
    }

    pub(crate) fn remove(&mut self, peer: &K) -> Option<V> {
        self.map.remove(peer).map(|slot| slot.value)
    }

    /// Keeps the entries for which `keep(peer, value, touched)` holds.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K, &mut V, Millis) -> bool) {
        self.map
            .retain(|peer, slot| keep(peer, &mut slot.value, slot.touched));
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter().map(|(peer, slot)| (peer, &slot.value))
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn evictions(&self) -> u64 {
        self.evictions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_seen_when_full() {
        let mut m = BoundedPeerMap::new(2);
        *m.entry(&PeerId::from("a"), 1, || 0) += 1;
        *m.entry(&PeerId::from("b"), 2, || 0) += 1;
        // Touch a again: b is now the oldest.
        *m.entry(&PeerId::from("a"), 3, || 0) += 1;
        *m.entry(&PeerId::from("c"), 4, || 0) += 1;
        assert_eq!(m.len(), 2);
        assert_eq!(m.get(&PeerId::from("a")), Some(&2));
        assert_eq!(m.get(&PeerId::from("b")), None);
        assert_eq!(m.evictions(), 1);
        m.retain(|_, _, touched| touched > 3);
        assert_eq!(m.len(), 1);
        assert_eq!(m.remove(&PeerId::from("c")), Some(1));
    }
}
