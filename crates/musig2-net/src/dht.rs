//! The node's DHT record store and the rules for records other peers store
//! on it.
//!
//! Kademlia runs with `StoreInserts::FilterBoth`: a `PUT_VALUE` from a peer
//! is not stored by Kademlia itself but handed to the event loop, which asks
//! [`RecordRules::check`] (size, key prefix, the application's validator) and
//! then [`DhtStore::put_remote`] (quotas). This node's own records (those it
//! publishes with `put_record`) are kept apart from other peers' records, so
//! that a store filled by others never makes our own `put_record` fail, and
//! a peer cannot overwrite a record under a key we publish.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use libp2p::PeerId;
use libp2p::kad::store::{self, MemoryStore, RecordStore};
use libp2p::kad::{ProviderRecord, Record, RecordKey};

use crate::config::{NetConfig, RecordValidator};

/// Why a record from a peer was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its value is larger than `dht_max_value_size`.
    TooLarge,
    /// Its key has none of `dht_key_prefixes`.
    Prefix,
    /// The application's validator rejected it.
    Invalid,
    /// Its sender already holds `dht_records_per_peer` records.
    Quota,
    /// The store is full and its sender is the peer holding the most.
    Full,
    /// The key is one this node publishes itself.
    OwnKey,
}

/// The checks on a record's content (independent of the store).
#[derive(Debug, Clone)]
pub(crate) struct RecordRules {
    prefixes: Vec<Vec<u8>>,
    max_value_size: usize,
    validator: Option<RecordValidator>,
}

impl RecordRules {
    pub(crate) fn new(config: &NetConfig) -> Self {
        Self {
            prefixes: config.dht_key_prefixes.clone(),
            max_value_size: config.dht_max_value_size,
            validator: config.record_validator.clone(),
        }
    }

    /// Whether a peer may store this record here (size, prefix, validator).
    pub(crate) fn check(&self, key: &[u8], value: &[u8]) -> Result<(), Refusal> {
        if value.len() > self.max_value_size {
            return Err(Refusal::TooLarge);
        }
        if !self.prefixes.is_empty() && !self.prefixes.iter().any(|p| key.starts_with(p)) {
            return Err(Refusal::Prefix);
        }
        if !self.is_valid(key, value) {
            return Err(Refusal::Invalid);
        }
        Ok(())
    }

    /// The application's verdict (`true` without a validator).
    pub(crate) fn is_valid(&self, key: &[u8], value: &[u8]) -> bool {
        self.validator
            .as_ref()
            .is_none_or(|v| v.is_valid(key, value))
    }
}

#[derive(Debug, Clone)]
struct Remote {
    record: Record,
    source: PeerId,
    /// Insertion order (smaller is older).
    seq: u64,
}

/// What [`DhtStore::put_remote`] did besides storing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Stored {
    /// Another peer's record was evicted to make room.
    pub(crate) evicted: bool,
}

/// Own records (bounded, oldest dropped) and other peers' records (bounded
/// in all and per sender).
pub(crate) struct DhtStore {
    local: PeerId,
    own: HashMap<RecordKey, Record>,
    own_order: VecDeque<RecordKey>,
    max_own: usize,
    remote: HashMap<RecordKey, Remote>,
    per_source: HashMap<PeerId, usize>,
    max_remote: usize,
    per_peer: usize,
    seq: u64,
    /// Own records dropped to make room for newer ones.
    pub(crate) own_evicted: u64,
    /// Provider records (never filled from the network: `FilterBoth` hands
    /// them to the event loop, which ignores them).
    providers: MemoryStore,
}

impl DhtStore {
    pub(crate) fn new(local: PeerId, config: &NetConfig) -> Self {
        Self {
            local,
            own: HashMap::new(),
            own_order: VecDeque::new(),
            max_own: config.dht_max_own_records.max(1),
            remote: HashMap::new(),
            per_source: HashMap::new(),
            max_remote: config.dht_max_records,
            per_peer: config.dht_records_per_peer,
            seq: 0,
            own_evicted: 0,
            providers: MemoryStore::new(local),
        }
    }

    /// Records stored for other peers.
    pub(crate) fn remote_len(&self) -> usize {
        self.remote.len()
    }

    fn put_own(&mut self, record: Record) {
        let key = record.key.clone();
        // Our record shadows any copy a peer stored.
        self.remove_remote(&key);
        if self.own.insert(key.clone(), record).is_none() {
            self.own_order.push_back(key);
            while self.own.len() > self.max_own {
                let Some(oldest) = self.own_order.pop_front() else {
                    break;
                };
                self.own.remove(&oldest);
                self.own_evicted += 1;
            }
        }
    }

    fn remove_remote(&mut self, key: &RecordKey) {
        if let Some(old) = self.remote.remove(key) {
            self.release(&old.source);
        }
    }

    fn release(&mut self, source: &PeerId) {
        if let Some(n) = self.per_source.get_mut(source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_source.remove(source);
            }
        }
    }

    /// Stores a record `source` sent us (after [`RecordRules::check`]).
    pub(crate) fn put_remote(
        &mut self,
        record: Record,
        source: PeerId,
        now: Instant,
    ) -> Result<Stored, Refusal> {
        if self.own.contains_key(&record.key) {
            return Err(Refusal::OwnKey);
        }
        let held = self.per_source.get(&source).copied().unwrap_or(0);
        let replaces_own_copy = self
            .remote
            .get(&record.key)
            .is_some_and(|old| old.source == source);
        let mut stored = Stored::default();
        if !replaces_own_copy {
            if held >= self.per_peer {
                return Err(Refusal::Quota);
            }
            if !self.remote.contains_key(&record.key) && self.remote.len() >= self.max_remote {
                self.purge_expired(now);
            }
            if !self.remote.contains_key(&record.key) && self.remote.len() >= self.max_remote {
                // Full: the peer holding the most gives way to one holding fewer.
                let heaviest = self
                    .per_source
                    .iter()
                    .max_by_key(|(_, n)| **n)
                    .map(|(p, n)| (*p, *n));
                match heaviest {
                    Some((heavy, n)) if n > held => {
                        self.evict_oldest_of(&heavy);
                        stored.evicted = true;
                    }
                    _ => return Err(Refusal::Full),
                }
            }
            self.remove_remote(&record.key);
            *self.per_source.entry(source).or_default() += 1;
        }
        self.seq += 1;
        let seq = self.seq;
        self.remote.insert(
            record.key.clone(),
            Remote {
                record,
                source,
                seq,
            },
        );
        Ok(stored)
    }

    fn purge_expired(&mut self, now: Instant) {
        let expired: Vec<RecordKey> = self
            .remote
            .iter()
            .filter(|(_, r)| r.record.is_expired(now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            self.remove_remote(&key);
        }
    }

    fn evict_oldest_of(&mut self, source: &PeerId) {
        let oldest = self
            .remote
            .iter()
            .filter(|(_, r)| r.source == *source)
            .min_by_key(|(_, r)| r.seq)
            .map(|(k, _)| k.clone());
        if let Some(key) = oldest {
            self.remove_remote(&key);
        }
    }

    /// Drops a record a peer stored (e.g. one that failed validation).
    pub(crate) fn drop_remote(&mut self, key: &RecordKey) {
        self.remove_remote(key);
    }
}

impl RecordStore for DhtStore {
    type RecordsIter<'a> = Box<dyn Iterator<Item = Cow<'a, Record>> + 'a>;
    type ProvidedIter<'a> = <MemoryStore as RecordStore>::ProvidedIter<'a>;

    fn get(&self, k: &RecordKey) -> Option<Cow<'_, Record>> {
        self.own
            .get(k)
            .or_else(|| self.remote.get(k).map(|r| &r.record))
            .map(Cow::Borrowed)
    }

    fn put(&mut self, r: Record) -> store::Result<()> {
        // Kademlia calls this for our own `put_record` (publisher = us);
        // with `FilterBoth` it never stores a peer's record by itself.
        if r.publisher.is_none_or(|p| p == self.local) {
            self.put_own(r);
            return Ok(());
        }
        let source = r.publisher.unwrap_or(self.local);
        self.put_remote(r, source, Instant::now())
            .map(|_| ())
            .map_err(|_| store::Error::MaxRecords)
    }

    fn remove(&mut self, k: &RecordKey) {
        if self.own.remove(k).is_some() {
            self.own_order.retain(|o| o != k);
        }
        self.remove_remote(k);
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        Box::new(
            self.own
                .values()
                .chain(self.remote.values().map(|r| &r.record))
                .map(Cow::Borrowed),
        )
    }

    fn add_provider(&mut self, record: ProviderRecord) -> store::Result<()> {
        self.providers.add_provider(record)
    }

    fn providers(&self, key: &RecordKey) -> Vec<ProviderRecord> {
        self.providers.providers(key)
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        self.providers.provided()
    }

    fn remove_provider(&mut self, k: &RecordKey, p: &PeerId) {
        self.providers.remove_provider(k, p);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn config(max_remote: usize, per_peer: usize, max_own: usize) -> NetConfig {
        NetConfig {
            dht_max_records: max_remote,
            dht_records_per_peer: per_peer,
            dht_max_own_records: max_own,
            ..NetConfig::default()
        }
    }

    fn record(key: &str, value: &[u8]) -> Record {
        Record::new(key.as_bytes().to_vec(), value.to_vec())
    }

    fn own(local: PeerId, key: &str) -> Record {
        let mut r = record(key, b"mine");
        r.publisher = Some(local);
        r
    }

    #[test]
    fn a_store_full_of_remote_records_never_blocks_our_own() {
        let local = PeerId::random();
        let mut store = DhtStore::new(local, &config(10, 100, 5));
        let now = Instant::now();
        let attacker = PeerId::random();
        for i in 0..10 {
            store
                .put_remote(record(&format!("x{i}"), b"junk"), attacker, now)
                .unwrap();
        }
        assert_eq!(
            store.put_remote(record("x10", b"junk"), attacker, now),
            Err(Refusal::Full)
        );
        // Our own puts succeed, and beyond their own cap the oldest goes.
        for i in 0..7 {
            store.put(own(local, &format!("mine{i}"))).unwrap();
        }
        assert!(store.get(&RecordKey::new(&"mine0")).is_none());
        assert!(store.get(&RecordKey::new(&"mine6")).is_some());
        assert_eq!(store.own_evicted, 2);
        assert_eq!(store.remote_len(), 10);
    }

    #[test]
    fn peers_cannot_overwrite_our_records_and_are_held_to_a_quota() {
        let local = PeerId::random();
        let mut store = DhtStore::new(local, &config(100, 3, 10));
        let now = Instant::now();
        store.put(own(local, "k")).unwrap();
        let peer = PeerId::random();
        assert_eq!(
            store.put_remote(record("k", b"forged"), peer, now),
            Err(Refusal::OwnKey)
        );
        assert_eq!(store.get(&RecordKey::new(&"k")).unwrap().value, b"mine");
        for i in 0..3 {
            store
                .put_remote(record(&format!("p{i}"), b"v"), peer, now)
                .unwrap();
        }
        assert_eq!(
            store.put_remote(record("p3", b"v"), peer, now),
            Err(Refusal::Quota)
        );
        // Replacing one of its own records costs no quota.
        store.put_remote(record("p0", b"v2"), peer, now).unwrap();
        assert_eq!(store.get(&RecordKey::new(&"p0")).unwrap().value, b"v2");
        // Another peer's overwrite moves the quota to it.
        let other = PeerId::random();
        store.put_remote(record("p0", b"v3"), other, now).unwrap();
        store.put_remote(record("p3", b"v"), peer, now).unwrap();
        assert_eq!(store.remote_len(), 4);
    }

    #[test]
    fn a_full_store_evicts_the_heaviest_senders_oldest_record_for_a_lighter_one() {
        let local = PeerId::random();
        let mut store = DhtStore::new(local, &config(4, 10, 10));
        let now = Instant::now();
        let (heavy, light) = (PeerId::random(), PeerId::random());
        for i in 0..4 {
            store
                .put_remote(record(&format!("h{i}"), b"v"), heavy, now)
                .unwrap();
        }
        let stored = store.put_remote(record("l0", b"v"), light, now).unwrap();
        assert!(stored.evicted);
        assert!(
            store.get(&RecordKey::new(&"h0")).is_none(),
            "the oldest went"
        );
        assert!(store.get(&RecordKey::new(&"l0")).is_some());
        // heavy 3, light 1: heavy cannot push light out.
        assert_eq!(
            store.put_remote(record("h9", b"v"), heavy, now),
            Err(Refusal::Full)
        );
        assert_eq!(store.remote_len(), 4);
    }

    #[test]
    fn rules_check_size_prefix_and_validator() {
        let cfg = NetConfig {
            dht_key_prefixes: vec![b"musig2-a:".to_vec(), b"musig2-b:".to_vec()],
            dht_max_value_size: 8,
            record_validator: Some(RecordValidator::new(|_, v| v.starts_with(b"ok"))),
            ..NetConfig::default()
        };
        let rules = RecordRules::new(&cfg);
        assert_eq!(rules.check(b"musig2-a:1", b"ok"), Ok(()));
        assert_eq!(rules.check(b"musig2-b:1", b"ok!"), Ok(()));
        assert_eq!(rules.check(b"other:1", b"ok"), Err(Refusal::Prefix));
        assert_eq!(
            rules.check(b"musig2-a:1", b"ok-too-long"),
            Err(Refusal::TooLarge)
        );
        assert_eq!(rules.check(b"musig2-a:1", b"bad"), Err(Refusal::Invalid));
        // No prefixes: any key.
        let open = RecordRules::new(&NetConfig::default());
        assert_eq!(open.check(b"anything", b"v"), Ok(()));
    }
}
