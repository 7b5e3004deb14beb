//! Prometheus metrics (`[metrics] listen`, `GET /metrics`, text format).
//!
//! One registry; every name starts with `lotus_musig2_`; counters end in
//! `_total`, durations are histograms in `_seconds`; every label has a small,
//! fixed set of values (never a peer id or a session id). The daemon records
//! session events as they happen; the security layer's and the network's own
//! counters are copied in at each scrape.

use std::collections::HashMap;
use std::sync::Mutex;

use lotus_musig2::net::{NetMetrics, SwarmMetrics};
use lotus_musig2::security::MetricsSnapshot;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::consent::Rule;

type Label = [(&'static str, &'static str); 1];
type HistogramFamily = Family<Label, Histogram, fn() -> Histogram>;

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Signed.
    Completed,
    /// Failed (timeout, fault, abort by a co-signer).
    Failed,
    /// Closed here through the API or at shutdown.
    Closed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Closed => "closed",
        }
    }
}

/// The phases whose durations are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// From the request (created or joined here) until every signer joined.
    Join,
    /// Phase 0: nonce commitments.
    NonceCommitments,
    /// Round 1: public nonces.
    Round1,
    /// Round 2: partial signatures.
    Round2,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Self::Join => "join",
            Self::NonceCommitments => "nonce_commitments",
            Self::Round1 => "round1",
            Self::Round2 => "round2",
        }
    }
}

fn phase_histogram() -> Histogram {
    // 5 ms … about 82 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

/// The daemon's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    sessions: Family<Label, Counter>,
    session_errors: Family<Label, Counter>,
    phase_seconds: HistogramFamily,
    consent_rejections: Family<Label, Counter>,
    requests: Family<Label, Counter>,
    security_rejections: Family<Label, Counter>,
    messages: Family<Label, Counter>,
    reputation_events: Family<Label, Counter>,
    dht: Family<Label, Counter>,
    peers: Gauge,
    sessions_active: Gauge,
    /// libp2p's own metrics (`lotus_musig2_libp2p_*`), recorded by the network.
    swarm: SwarmMetrics,
    /// The last value copied from each outside counter, by metric and label.
    copied: Mutex<HashMap<(&'static str, &'static str), u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric, registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("lotus_musig2");
        let sessions = Family::<Label, Counter>::default();
        registry.register(
            "sessions",
            "Sessions ended, by outcome (completed, failed, closed)",
            sessions.clone(),
        );
        let session_errors = Family::<Label, Counter>::default();
        registry.register(
            "session_errors",
            "Session errors, by code",
            session_errors.clone(),
        );
        let phase_seconds = HistogramFamily::new_with_constructor(phase_histogram as fn() -> _);
        registry.register(
            "phase_duration_seconds",
            "How long each signing phase took",
            phase_seconds.clone(),
        );
        let consent_rejections = Family::<Label, Counter>::default();
        registry.register(
            "consent_rejections",
            "Signing requests refused by the consent policy, by rule",
            consent_rejections.clone(),
        );
        let requests = Family::<Label, Counter>::default();
        registry.register(
            "requests",
            "Signing requests, by origin (created here, received)",
            requests.clone(),
        );
        let security_rejections = Family::<Label, Counter>::default();
        registry.register(
            "security_rejections",
            "Inbound messages rejected by the security layer, by rule",
            security_rejections.clone(),
        );
        let messages = Family::<Label, Counter>::default();
        registry.register(
            "messages",
            "Messages accepted by the security layer, by kind",
            messages.clone(),
        );
        let reputation_events = Family::<Label, Counter>::default();
        registry.register(
            "reputation_events",
            "Reputation events (blacklisted, graylisted, should_ban)",
            reputation_events.clone(),
        );
        let dht = Family::<Label, Counter>::default();
        registry.register(
            "dht_operations",
            "DHT operations (records stored from peers, bootstraps)",
            dht.clone(),
        );
        for rule in Rule::ALL {
            // Every rule is a series from the start, at zero.
            let _ = consent_rejections.get_or_create(&[("rule", rule.as_str())]);
        }
        let peers = Gauge::default();
        registry.register("peers", "Connected peers", peers.clone());
        let sessions_active = Gauge::default();
        registry.register(
            "sessions_active",
            "Sessions open (not signed, failed or closed)",
            sessions_active.clone(),
        );
        let swarm = SwarmMetrics::register(&mut registry);
        Self {
            swarm,
            registry,
            sessions,
            session_errors,
            phase_seconds,
            consent_rejections,
            requests,
            security_rejections,
            messages,
            reputation_events,
            dht,
            peers,
            sessions_active,
            copied: Mutex::new(HashMap::new()),
        }
    }

    /// Where the network records libp2p's metrics (`NetConfig::swarm_metrics`).
    pub fn swarm(&self) -> SwarmMetrics {
        self.swarm.clone()
    }

    /// A session ended.
    pub fn session_ended(&self, outcome: Outcome, error_code: Option<&'static str>) {
        self.sessions
            .get_or_create(&[("outcome", outcome.as_str())])
            .inc();
        if let Some(code) = error_code {
            self.session_errors.get_or_create(&[("code", code)]).inc();
        }
    }

    /// A phase took `seconds`.
    pub fn phase(&self, phase: Phase, seconds: f64) {
        self.phase_seconds
            .get_or_create(&[("phase", phase.as_str())])
            .observe(seconds);
    }

    /// The consent policy refused a request.
    pub fn consent_rejection(&self, rule: Rule) {
        self.consent_rejections
            .get_or_create(&[("rule", rule.as_str())])
            .inc();
    }

    /// A request was created here (`created`) or received (`received`).
    pub fn request(&self, origin: &'static str) {
        self.requests.get_or_create(&[("origin", origin)]).inc();
    }

    /// Copies the outside counters and gauges in (at each scrape).
    pub fn refresh(
        &self,
        security: &MetricsSnapshot,
        late_messages: u64,
        net: Option<&NetMetrics>,
        peers: usize,
        sessions_active: usize,
    ) {
        let mut copied = self
            .copied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut copy = |family: &Family<Label, Counter>,
                        metric: &'static str,
                        key: &'static str,
                        label: &'static str,
                        value: u64| {
            let last = copied.entry((metric, label)).or_insert(0);
            if value > *last {
                family.get_or_create(&[(key, label)]).inc_by(value - *last);
                *last = value;
            } else {
                // Present at zero too, so a scrape shows every series.
                let _ = family.get_or_create(&[(key, label)]);
            }
        };
        for (rule, count) in &security.rejections {
            copy(
                &self.security_rejections,
                "security",
                "rule",
                rule.as_str(),
                *count,
            );
        }
        let m = &self.messages;
        copy(
            m,
            "messages",
            "kind",
            "direct",
            security.accepted_direct_messages,
        );
        copy(
            m,
            "messages",
            "kind",
            "announcement",
            security.accepted_announcements,
        );
        copy(
            m,
            "messages",
            "kind",
            "advertisement",
            security.accepted_advertisements,
        );
        copy(m, "messages", "kind", "late", late_messages);
        let r = &self.reputation_events;
        copy(
            r,
            "reputation",
            "kind",
            "blacklisted",
            security.blacklistings_total,
        );
        copy(
            r,
            "reputation",
            "kind",
            "graylisted",
            security.graylistings_total,
        );
        copy(
            r,
            "reputation",
            "kind",
            "should_ban",
            security.should_ban_total,
        );
        if let Some(net) = net {
            copy(
                &self.dht,
                "dht",
                "operation",
                "record_stored",
                net.dht_records_stored,
            );
            copy(&self.dht, "dht", "operation", "bootstrap", net.bootstraps);
        }
        self.peers.set(i64::try_from(peers).unwrap_or(i64::MAX));
        self.sessions_active
            .set(i64::try_from(sessions_active).unwrap_or(i64::MAX));
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions_and_counters_move() {
        let m = Metrics::new();
        m.session_ended(Outcome::Completed, None);
        m.session_ended(Outcome::Failed, Some("ROUND_TIMEOUT"));
        m.phase(Phase::Round1, 0.02);
        m.consent_rejection(Rule::Amount);
        let text = m.encode();
        assert!(text.contains("lotus_musig2_sessions_total{outcome=\"completed\"} 1"));
        assert!(text.contains("lotus_musig2_session_errors_total{code=\"ROUND_TIMEOUT\"} 1"));
        assert!(text.contains("lotus_musig2_phase_duration_seconds_count{phase=\"round1\"} 1"));
        assert!(text.contains("lotus_musig2_consent_rejections_total{rule=\"amount\"} 1"));
        assert!(text.ends_with("# EOF\n"));
    }
}
