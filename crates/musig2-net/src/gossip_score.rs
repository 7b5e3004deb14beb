//! GossipSub peer scoring: the parameters and thresholds every node runs
//! with, and why.
//!
//! The application judges each gossip message ([`crate::Verdict`]); a
//! `Reject` counts one invalid delivery (P4) against the peer that
//! forwarded it on that topic. P4 is quadratic, so a few invalid messages
//! take a peer below [`GRAYLIST_THRESHOLD`], after which GossipSub ignores
//! everything it sends (messages and control) and prunes it from the mesh,
//! before the application spends any work on it. Honest peers never forward
//! a message before their own application accepted it (validation is on),
//! so they only earn P4 when a message is invalid in itself; the
//! application must answer `Ignore`, not `Reject`, where its refusal
//! depends on its own state or clock (a rate limit, a skewed timestamp, an
//! expiry), or honest relays would be graylisted for a flooder's messages.
//!
//! Only the topics in [`crate::NetConfig::scored_topics`] are scored; the
//! other components (P5–P7) apply to every peer.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use libp2p::gossipsub::{
    IdentTopic, PeerScoreParams, PeerScoreThresholds, TopicScoreParams, score_parameter_decay,
};

/// Below this score no gossip (IHAVE/IWANT) is exchanged with a peer.
pub const GOSSIP_THRESHOLD: f64 = -10.0;
/// Below this score our own messages are not published to a peer.
pub const PUBLISH_THRESHOLD: f64 = -50.0;
/// Below this score everything a peer sends is ignored (graylist).
pub const GRAYLIST_THRESHOLD: f64 = -80.0;
/// Weight of one topic's invalid-delivery counter, squared (P4): one
/// rejected message costs 10, two 40, three 90 (graylisted), whatever
/// credit a peer earned first (the positive part is capped at
/// [`TOPIC_SCORE_CAP`], so four invalid messages always graylist).
pub const INVALID_MESSAGE_WEIGHT: f64 = -10.0;
/// The most a peer can earn from valid first deliveries (P2), over all topics.
pub const TOPIC_SCORE_CAP: f64 = 10.0;
/// Counters (invalid deliveries, behaviour penalties) fall to a tenth in
/// this long: three invalid messages graylist a peer for about a minute and
/// a half, ten for about half an hour.
pub const PENALTY_DECAY: Duration = Duration::from_secs(3600);

/// The score parameters of one topic.
pub fn topic_params() -> TopicScoreParams {
    TopicScoreParams {
        topic_weight: 1.0,
        // P1 (time in the mesh) rewards nothing useful on topics that carry
        // a message every few minutes; off.
        time_in_mesh_weight: 0.0,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 1.0,
        // P2: valid first deliveries earn a little (mesh selection prefers
        // peers that relay), capped so no credit outweighs P4.
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: score_parameter_decay(PENALTY_DECAY),
        first_message_deliveries_cap: TOPIC_SCORE_CAP,
        // P3/P3b (mesh delivery deficits) would punish honest peers on quiet
        // topics, where there is nothing to deliver; off.
        mesh_message_deliveries_weight: 0.0,
        mesh_message_deliveries_decay: 0.5,
        mesh_message_deliveries_cap: 1.0,
        mesh_message_deliveries_threshold: 1.0,
        mesh_message_deliveries_window: Duration::from_millis(10),
        mesh_message_deliveries_activation: Duration::from_secs(5),
        mesh_failure_penalty_weight: 0.0,
        mesh_failure_penalty_decay: 0.5,
        // P4: messages the application rejected.
        invalid_message_deliveries_weight: INVALID_MESSAGE_WEIGHT,
        invalid_message_deliveries_decay: score_parameter_decay(PENALTY_DECAY),
    }
}

/// The peer score parameters, with [`topic_params`] on each of `topics`.
pub fn peer_score_params(topics: &[String]) -> PeerScoreParams {
    PeerScoreParams {
        topics: topics
            .iter()
            .map(|t| (IdentTopic::new(t.as_str()).hash(), topic_params()))
            .collect(),
        topic_score_cap: TOPIC_SCORE_CAP,
        // P5: not used (the application blocks peers it bans instead).
        app_specific_weight: 0.0,
        // P6: more than 10 peers from one IP address cost each of them
        // 5 × surplus² (libp2p's default, a Sybil brake); loopback is
        // exempt (local tools and tests run many nodes on one host).
        ip_colocation_factor_weight: -5.0,
        ip_colocation_factor_threshold: 10.0,
        ip_colocation_factor_whitelist: HashSet::from([
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]),
        // P7: GossipSub's own protocol penalties (re-grafting during a
        // backoff, IHAVE promises not kept); the first 6 are free, so a
        // lost message now and then never hurts an honest peer.
        behaviour_penalty_weight: -10.0,
        behaviour_penalty_threshold: 6.0,
        behaviour_penalty_decay: score_parameter_decay(PENALTY_DECAY),
        decay_interval: Duration::from_secs(1),
        decay_to_zero: 0.1,
        // A peer that reconnects keeps its score for an hour.
        retain_score: Duration::from_secs(3600),
        ..PeerScoreParams::default()
    }
}

/// The thresholds (see the constants above).
pub fn thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds {
        gossip_threshold: GOSSIP_THRESHOLD,
        publish_threshold: PUBLISH_THRESHOLD,
        graylist_threshold: GRAYLIST_THRESHOLD,
        // Peer exchange is off; a value no untrusted peer reaches.
        accept_px_threshold: 100.0,
        opportunistic_graft_threshold: 5.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_valid_and_three_invalid_messages_graylist() {
        let params = peer_score_params(&["musig2:requests".to_owned()]);
        assert_eq!(params.validate(), Ok(()));
        assert_eq!(thresholds().validate(), Ok(()));
        assert_eq!(params.topics.len(), 1);
        let cost = |n: f64| n * n * INVALID_MESSAGE_WEIGHT;
        assert!(cost(2.0) > GRAYLIST_THRESHOLD);
        assert!(cost(3.0) < GRAYLIST_THRESHOLD);
        assert!(cost(4.0) + TOPIC_SCORE_CAP < GRAYLIST_THRESHOLD);
    }
}
