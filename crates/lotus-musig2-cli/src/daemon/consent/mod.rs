//! Consent: which signing requests that name our key this node signs.
//!
//! The policy is the config's `approve`: `"manual"` (the default: every
//! request waits for `POST /v1/requests/{id}/approve`), `"auto"` (sign every
//! request that passes the other checks) or a table of rules (co-signer keys,
//! transaction types, per-request and per-day amount limits) whose misses are
//! refused or, with `otherwise = "manual"`, left for an operator.
//!
//! [`Consent`] is plain state with the time passed in, so its tests never
//! sleep. It holds at most [`MAX_PENDING`] requests waiting for an answer (a
//! request beyond that is refused and counted) and remembers the verdicts of
//! the last [`MAX_VERDICTS`] requests.
//!
//! `config` holds the `approve` types an operator writes and their check
//! into the policy this state applies.

pub mod config;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use lotus_musig2::core::PublicKey;
use lotus_musig2::security::{Millis, SessionAnnouncement, TransactionType};

use super::RequestId;

pub use config::{ApproveConfig, ConfigError};
use config::{Otherwise, Policy};

/// Requests waiting for an operator at most; beyond it a request is refused
/// (rule `pending_full`).
pub const MAX_PENDING: usize = 256;
/// Verdicts remembered (oldest forgotten first).
pub const MAX_VERDICTS: usize = 4096;
const DAY_MS: Millis = 24 * 60 * 60 * 1000;

/// A rule a request was refused under (a bounded label set for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// A co-signer is not allowed.
    Cosigner,
    /// The transaction type is not allowed (or missing).
    TransactionType,
    /// The amount is over `max_amount` (or missing).
    Amount,
    /// The amount would exceed `max_amount_per_day` (or is missing).
    DailyLimit,
    /// An operator rejected it.
    Operator,
    /// Nobody approved it before its expiry.
    Expired,
    /// Too many requests were already waiting.
    PendingFull,
    /// A co-signer has no burn identity, a banned one, or one whose
    /// reputation is under `min_identity_reputation`.
    Identity,
}

impl Rule {
    /// Every rule.
    pub const ALL: [Rule; 8] = [
        Self::Cosigner,
        Self::TransactionType,
        Self::Amount,
        Self::DailyLimit,
        Self::Operator,
        Self::Expired,
        Self::PendingFull,
        Self::Identity,
    ];

    /// The metric label and the API's name of the rule.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Cosigner => "cosigner",
            Self::TransactionType => "transaction_type",
            Self::Amount => "amount",
            Self::DailyLimit => "daily_limit",
            Self::Operator => "operator",
            Self::Expired => "expired",
            Self::PendingFull => "pending_full",
            Self::Identity => "identity",
        }
    }
}

/// What the policy says about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Sign it now.
    Join,
    /// Wait for an operator.
    Hold,
    /// Refuse it.
    Refuse(Rule),
}

/// Why an approval or rejection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConsentError {
    /// No such request is waiting.
    #[error("no pending request with that id")]
    Unknown,
    /// It expired before the answer.
    #[error("the request expired")]
    Expired,
}

/// A request waiting for an operator.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The verified announcement.
    pub announcement: SessionAnnouncement,
    /// When it arrived here.
    pub received_at: Millis,
}

/// A co-signer key's identity reputation (`None`: no identity, or banned).
pub type ReputationLookup = Arc<dyn Fn(&PublicKey) -> Option<u8> + Send + Sync>;

/// The consent state: the policy, the requests waiting, the day's total.
#[derive(Debug)]
pub struct Consent {
    /// Identity reputations, for `min_identity_reputation`.
    reputation: Lookup,
    policy: Policy,
    /// The top-level `allowed_cosigners` (every mode); empty: any.
    allowed_cosigners: Vec<PublicKey>,
    /// Our keys (never checked against the co-signer lists).
    ours: Vec<PublicKey>,
    pending: BTreeMap<RequestId, Pending>,
    verdicts: BTreeMap<RequestId, Verdict>,
    verdict_order: VecDeque<RequestId>,
    /// (UTC day number, amount signed that day).
    day: (u64, u64),
}

impl Consent {
    /// The state for `config`, signing with `ours`.
    pub fn new(
        config: &ApproveConfig,
        allowed_cosigners: Vec<PublicKey>,
        ours: Vec<PublicKey>,
    ) -> Result<Self, ConfigError> {
        let policy = Policy::from_config(config)?;
        Ok(Self {
            reputation: Lookup(None),
            policy,
            allowed_cosigners,
            ours,
            pending: BTreeMap::new(),
            verdicts: BTreeMap::new(),
            verdict_order: VecDeque::new(),
            day: (0, 0),
        })
    }

    /// Where `min_identity_reputation` reads reputations (without it, that
    /// rule refuses every request).
    pub fn set_reputation(&mut self, lookup: ReputationLookup) {
        self.reputation = Lookup(Some(lookup));
    }

    /// (UTC day number, amount signed that day): the state to persist.
    pub fn spent_today(&self) -> (u64, u64) {
        self.day
    }

    /// Restores the state [`Consent::spent_today`] returned (at start).
    pub fn restore_spent_today(&mut self, day: (u64, u64)) {
        self.day = day;
    }

    /// Decides on a verified request that names one of our keys, once: a
    /// request already decided keeps its verdict. `Hold` puts it in the
    /// pending list; `Join` counts its amount in the day's total.
    pub fn decide(&mut self, a: &SessionAnnouncement, now: Millis) -> Verdict {
        if let Some(v) = self.verdicts.get(&a.request_id) {
            return *v;
        }
        let verdict = self.evaluate(a, now);
        self.record(a, verdict, now)
    }

    /// A request that arrived without going through [`Consent::decide`]
    /// (the coordinator did not offer it for an automatic join): it waits for
    /// an operator unless a co-signer is not allowed at all.
    pub fn observe(&mut self, a: &SessionAnnouncement, now: Millis) -> Verdict {
        if let Some(v) = self.verdicts.get(&a.request_id) {
            return *v;
        }
        let verdict = match self.check_cosigners(a) {
            Err(rule) => Verdict::Refuse(rule),
            Ok(()) => Verdict::Hold,
        };
        self.record(a, verdict, now)
    }

    /// The verdict on a request, if it was decided.
    pub fn verdict(&self, request_id: &RequestId) -> Option<Verdict> {
        self.verdicts.get(request_id).copied()
    }

    fn record(&mut self, a: &SessionAnnouncement, verdict: Verdict, now: Millis) -> Verdict {
        let verdict = match verdict {
            Verdict::Hold if self.pending.len() >= MAX_PENDING => {
                Verdict::Refuse(Rule::PendingFull)
            }
            Verdict::Hold => {
                self.pending.insert(
                    a.request_id,
                    Pending {
                        announcement: a.clone(),
                        received_at: now,
                    },
                );
                Verdict::Hold
            }
            Verdict::Join => {
                self.spend(a.metadata.amount.unwrap_or(0), now);
                Verdict::Join
            }
            refused => refused,
        };
        self.remember(a.request_id, verdict);
        verdict
    }

    fn remember(&mut self, request_id: RequestId, verdict: Verdict) {
        if self.verdicts.insert(request_id, verdict).is_none() {
            self.verdict_order.push_back(request_id);
        }
        while self.verdict_order.len() > MAX_VERDICTS {
            if let Some(old) = self.verdict_order.pop_front() {
                self.verdicts.remove(&old);
            }
        }
    }

    fn check_cosigners(&self, a: &SessionAnnouncement) -> Result<(), Rule> {
        let lists: [&[PublicKey]; 2] = [
            &self.allowed_cosigners,
            match &self.policy {
                Policy::Rules { cosigners, .. } => cosigners,
                _ => &[],
            },
        ];
        for list in lists {
            let ok = list.is_empty()
                || a.required_pubkeys
                    .iter()
                    .all(|k| self.ours.contains(k) || list.contains(k));
            if !ok {
                return Err(Rule::Cosigner);
            }
        }
        Ok(())
    }

    fn spent_on(&self, now: Millis) -> u64 {
        if self.day.0 == now / DAY_MS {
            self.day.1
        } else {
            0
        }
    }

    fn spend(&mut self, amount: u64, now: Millis) {
        let today = now / DAY_MS;
        let spent = self.spent_on(now).saturating_add(amount);
        self.day = (today, spent);
    }

    fn evaluate(&self, a: &SessionAnnouncement, now: Millis) -> Verdict {
        if a.expires_at <= now {
            return Verdict::Refuse(Rule::Expired);
        }
        if let Err(rule) = self.check_cosigners(a) {
            return Verdict::Refuse(rule);
        }
        match &self.policy {
            Policy::Manual => Verdict::Hold,
            Policy::Auto => Verdict::Join,
            Policy::Rules {
                transaction_types,
                max_amount,
                max_amount_per_day,
                min_identity_reputation,
                otherwise,
                ..
            } => {
                let missed = self
                    .missed_rule(a, now, transaction_types, *max_amount, *max_amount_per_day)
                    .or_else(|| self.missed_identity(a, *min_identity_reputation));
                match (missed, otherwise) {
                    (None, _) => Verdict::Join,
                    (Some(_), Otherwise::Manual) => Verdict::Hold,
                    (Some(rule), Otherwise::Reject) => Verdict::Refuse(rule),
                }
            }
        }
    }

    fn missed_rule(
        &self,
        a: &SessionAnnouncement,
        now: Millis,
        transaction_types: &[TransactionType],
        max_amount: Option<u64>,
        max_amount_per_day: Option<u64>,
    ) -> Option<Rule> {
        if !transaction_types.is_empty()
            && !a
                .metadata
                .transaction_type
                .is_some_and(|t| transaction_types.contains(&t))
        {
            return Some(Rule::TransactionType);
        }
        let amount = a.metadata.amount;
        if let Some(max) = max_amount
            && amount.is_none_or(|x| x > max)
        {
            return Some(Rule::Amount);
        }
        if let Some(max) = max_amount_per_day
            && amount.is_none_or(|x| self.spent_on(now).saturating_add(x) > max)
        {
            return Some(Rule::DailyLimit);
        }
        None
    }

    /// `min_identity_reputation`: every co-signer's identity is known, not
    /// banned, and at least that reputable.
    fn missed_identity(&self, a: &SessionAnnouncement, min: Option<u8>) -> Option<Rule> {
        let min = min?;
        let reputable = |k: &PublicKey| {
            self.reputation
                .0
                .as_ref()
                .and_then(|lookup| lookup(k))
                .is_some_and(|score| score >= min)
        };
        let all = a
            .required_pubkeys
            .iter()
            .filter(|k| !self.ours.contains(k))
            .all(reputable);
        (!all).then_some(Rule::Identity)
    }

    /// The requests waiting for an answer at `now`, oldest expiry first.
    pub fn pending(&self, now: Millis) -> Vec<Pending> {
        let mut out: Vec<Pending> = self
            .pending
            .values()
            .filter(|p| p.announcement.expires_at > now)
            .cloned()
            .collect();
        out.sort_by_key(|p| (p.announcement.expires_at, p.announcement.request_id));
        out
    }

    /// An operator approves: the request leaves the pending list and its
    /// amount counts in the day's total.
    pub fn approve(
        &mut self,
        request_id: &RequestId,
        now: Millis,
    ) -> Result<SessionAnnouncement, ConsentError> {
        let pending = self.take(request_id, now)?;
        self.spend(pending.announcement.metadata.amount.unwrap_or(0), now);
        self.remember(*request_id, Verdict::Join);
        Ok(pending.announcement)
    }

    /// An approval whose join failed: the request waits again (if it has
    /// not expired).
    pub fn restore(&mut self, announcement: SessionAnnouncement, now: Millis) {
        if announcement.expires_at > now && self.pending.len() < MAX_PENDING {
            self.spend_back(announcement.metadata.amount.unwrap_or(0), now);
            self.remember(announcement.request_id, Verdict::Hold);
            self.pending.insert(
                announcement.request_id,
                Pending {
                    announcement,
                    received_at: now,
                },
            );
        }
    }

    fn spend_back(&mut self, amount: u64, now: Millis) {
        if self.day.0 == now / DAY_MS {
            self.day.1 = self.day.1.saturating_sub(amount);
        }
    }

    /// An operator rejects.
    pub fn reject(&mut self, request_id: &RequestId, now: Millis) -> Result<(), ConsentError> {
        self.take(request_id, now)?;
        self.remember(*request_id, Verdict::Refuse(Rule::Operator));
        Ok(())
    }

    fn take(&mut self, request_id: &RequestId, now: Millis) -> Result<Pending, ConsentError> {
        let pending = self
            .pending
            .remove(request_id)
            .ok_or(ConsentError::Unknown)?;
        if pending.announcement.expires_at <= now {
            self.remember(*request_id, Verdict::Refuse(Rule::Expired));
            return Err(ConsentError::Expired);
        }
        Ok(pending)
    }

    /// Drops the requests that expired unanswered; returns their ids.
    pub fn sweep(&mut self, now: Millis) -> Vec<RequestId> {
        let expired: Vec<RequestId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.announcement.expires_at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            self.pending.remove(id);
            self.remember(*id, Verdict::Refuse(Rule::Expired));
        }
        expired
    }
}
struct Lookup(Option<ReputationLookup>);

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Lookup(set)"
        } else {
            "Lookup(none)"
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use lotus_musig2::core::{Keypair, SecretKey};
    use lotus_musig2::security::{SessionRequest, SigningMetadata};

    use serde::Deserialize;

    use super::config::ApproveMode;
    use super::*;

    fn keypair(b: u8) -> Keypair {
        Keypair::new(SecretKey::from_bytes(&[b; 32]).unwrap())
    }

    const NOW: Millis = 1_700_000_000_000;

    fn request(signers: &[u8], metadata: SigningMetadata, nonce: u8) -> SessionAnnouncement {
        let keys: Vec<Keypair> = signers.iter().map(|b| keypair(*b)).collect();
        SessionAnnouncement::new_signed(
            SessionRequest {
                signers: keys.iter().map(Keypair::public_key).collect(),
                message: [7; 32],
                creator_peer_id: "peer".into(),
                creator_addrs: vec![],
                metadata,
                election_method: "lexicographic".into(),
                nonce_commitments: true,
                coordinator_election: true,
                created_at: NOW,
                expires_at: NOW + 60_000,
                request_nonce: [nonce; 32],
            },
            &keys[0],
        )
        .unwrap()
    }

    fn consent(config: &str) -> Consent {
        #[derive(Deserialize)]
        struct C {
            #[serde(default)]
            approve: ApproveConfig,
        }
        let c: C = toml::from_str(config).unwrap();
        Consent::new(&c.approve, vec![], vec![keypair(1).public_key()]).unwrap()
    }

    fn spend(amount: u64) -> SigningMetadata {
        SigningMetadata {
            transaction_type: Some(TransactionType::Spend),
            amount: Some(amount),
            ..SigningMetadata::default()
        }
    }

    #[test]
    fn manual_is_the_default_and_holds_until_approved() {
        let mut c = consent("");
        let a = request(&[2, 1], SigningMetadata::default(), 1);
        assert_eq!(c.decide(&a, NOW), Verdict::Hold);
        assert_eq!(c.pending(NOW).len(), 1);
        // Decided once: a second copy keeps the verdict and is not listed twice.
        assert_eq!(c.decide(&a, NOW), Verdict::Hold);
        assert_eq!(c.pending(NOW).len(), 1);
        let approved = c.approve(&a.request_id, NOW + 1).unwrap();
        assert_eq!(approved.request_id, a.request_id);
        assert!(c.pending(NOW).is_empty());
        assert_eq!(c.verdict(&a.request_id), Some(Verdict::Join));
        assert_eq!(
            c.approve(&a.request_id, NOW + 1),
            Err(ConsentError::Unknown)
        );
    }

    #[test]
    fn reject_refuses_and_expiry_drops() {
        let mut c = consent("approve = \"manual\"");
        let a = request(&[2, 1], SigningMetadata::default(), 1);
        let b = request(&[2, 1], SigningMetadata::default(), 2);
        c.decide(&a, NOW);
        c.decide(&b, NOW);
        c.reject(&a.request_id, NOW).unwrap();
        assert_eq!(
            c.verdict(&a.request_id),
            Some(Verdict::Refuse(Rule::Operator))
        );
        // Not listed after its expiry, swept, and no longer approvable.
        let later = b.expires_at;
        assert!(c.pending(later).is_empty());
        assert_eq!(c.approve(&b.request_id, later), Err(ConsentError::Expired));
        c.decide(&request(&[2, 1], SigningMetadata::default(), 3), NOW);
        assert_eq!(c.sweep(later).len(), 1);
        assert!(c.pending(NOW).is_empty());
    }

    #[test]
    fn auto_joins_but_allowed_cosigners_still_apply() {
        let mut c = Consent::new(
            &ApproveConfig::Mode(ApproveMode::Auto),
            vec![keypair(2).public_key()],
            vec![keypair(1).public_key()],
        )
        .unwrap();
        assert_eq!(
            c.decide(&request(&[2, 1], SigningMetadata::default(), 1), NOW),
            Verdict::Join
        );
        assert_eq!(
            c.decide(&request(&[3, 1], SigningMetadata::default(), 1), NOW),
            Verdict::Refuse(Rule::Cosigner)
        );
    }

    #[test]
    fn rules_check_types_and_amounts_per_request_and_per_day() {
        let mut c = consent(
            "[approve]\ntransaction_types = [\"spend\"]\nmax_amount = 1000\nmax_amount_per_day = 1500\n",
        );
        assert_eq!(
            c.decide(&request(&[2, 1], spend(900), 1), NOW),
            Verdict::Join
        );
        assert_eq!(
            c.decide(&request(&[2, 1], spend(1001), 2), NOW),
            Verdict::Refuse(Rule::Amount)
        );
        assert_eq!(
            c.decide(&request(&[2, 1], spend(700), 3), NOW),
            Verdict::Refuse(Rule::DailyLimit)
        );
        // The total survives a restart through its persisted state.
        let saved = c.spent_today();
        let mut restarted = consent(
            "[approve]\ntransaction_types = [\"spend\"]\nmax_amount = 1000\nmax_amount_per_day = 1500\n",
        );
        restarted.restore_spent_today(saved);
        assert_eq!(
            restarted.decide(&request(&[2, 1], spend(700), 3), NOW),
            Verdict::Refuse(Rule::DailyLimit)
        );
        // The next UTC day starts again (the signature is not checked here).
        let mut tomorrow = request(&[2, 1], spend(700), 4);
        tomorrow.expires_at = NOW + 2 * DAY_MS;
        assert_eq!(c.decide(&tomorrow, NOW + DAY_MS), Verdict::Join);
        let swap = SigningMetadata {
            transaction_type: Some(TransactionType::Swap),
            amount: Some(1),
            ..SigningMetadata::default()
        };
        assert_eq!(
            c.decide(&request(&[2, 1], swap, 5), NOW),
            Verdict::Refuse(Rule::TransactionType)
        );
        // No amount: a limit cannot be checked, so it is missed.
        let no_amount = SigningMetadata {
            transaction_type: Some(TransactionType::Spend),
            ..SigningMetadata::default()
        };
        assert_eq!(
            c.decide(&request(&[2, 1], no_amount, 6), NOW),
            Verdict::Refuse(Rule::Amount)
        );
    }

    #[test]
    fn rules_can_leave_misses_to_an_operator() {
        let key2 = keypair(2).public_key().to_string();
        let mut c = consent(&format!(
            "[approve]\ncosigners = [\"{key2}\"]\nmax_amount = 10\notherwise = \"manual\"\n"
        ));
        assert_eq!(c.decide(&request(&[2, 1], spend(5), 1), NOW), Verdict::Join);
        assert_eq!(
            c.decide(&request(&[2, 1], spend(50), 2), NOW),
            Verdict::Hold
        );
        // A co-signer outside the list is refused outright.
        assert_eq!(
            c.decide(&request(&[3, 1], spend(5), 3), NOW),
            Verdict::Refuse(Rule::Cosigner)
        );
        assert_eq!(c.pending(NOW).len(), 1);
    }

    #[test]
    fn the_pending_list_is_bounded() {
        let mut c = consent("");
        for i in 0..MAX_PENDING {
            let mut a = request(&[2, 1], SigningMetadata::default(), 1);
            a.request_id = [0; 32];
            a.request_id[..8].copy_from_slice(&(i as u64).to_le_bytes());
            assert_eq!(c.decide(&a, NOW), Verdict::Hold);
        }
        let one_more = request(&[2, 1], SigningMetadata::default(), 9);
        assert_eq!(
            c.observe(&one_more, NOW),
            Verdict::Refuse(Rule::PendingFull)
        );
    }
}
