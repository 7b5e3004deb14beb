//! Building the swarm: transports, the composed behaviour and its configuration.

use super::*;

pub(super) async fn build_swarm(
    keypair: identity::Keypair,
    config: &NetConfig,
    kad_protocol: StreamProtocol,
    direct: direct::StreamBehaviour,
) -> Result<Swarm<Behaviour>, NetError> {
    let transport = |e: &dyn std::fmt::Display| NetError::Transport {
        detail: e.to_string(),
    };
    let replication =
        NonZeroUsize::new(config.replication_factor).ok_or_else(|| NetError::Config {
            detail: "replication factor 0".into(),
        })?;
    let gossip_config = gossipsub::ConfigBuilder::default()
        .heartbeat_interval(config.gossip_heartbeat)
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .max_transmit_size(config.max_gossip_size + 1024)
        // Small sets (a handful of co-signers) must still form a mesh.
        .mesh_n_low(1)
        .mesh_n(4)
        .mesh_n_high(8)
        .mesh_outbound_min(0)
        .flood_publish(true)
        .build()
        .map_err(|e| NetError::Config {
            detail: format!("gossipsub: {e}"),
        })?;
    let (relay_on, dcutr_on, autonat_on) = (
        config.enable_relay,
        config.enable_dcutr,
        config.enable_autonat,
    );
    let dht_server = config.dht_server;
    let book = || {
        AddressBook::new(
            config.max_addrs_per_peer,
            config.max_known_peers,
            config.known_peer_ttl,
        )
    };
    let store_config = config.clone();
    let scored_topics = config.scored_topics.clone();

    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| transport(&e))?
        .with_dns()
        .map_err(|e| transport(&e))?
        .with_websocket(noise::Config::new, yamux::Config::default)
        .await
        .map_err(|e| transport(&e))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| transport(&e))?
        .with_behaviour(|key, relay_client| {
            let peer_id = key.public().to_peer_id();
            let mut kad_config = kad::Config::new(kad_protocol);
            kad_config.set_replication_factor(replication);
            kad_config.set_query_timeout(Duration::from_secs(10));
            // Peers' records reach the store only through the event loop's
            // checks; peers enter the routing table only when identify shows
            // they serve the DHT (or they are configured bootstrap peers).
            kad_config.set_record_filtering(kad::StoreInserts::FilterBoth);
            kad_config.set_kbucket_inserts(kad::BucketInserts::Manual);
            let store = DhtStore::new(peer_id, &store_config);
            let mut kad = kad::Behaviour::with_config(peer_id, store, kad_config);
            kad.set_mode(dht_server.then_some(kad::Mode::Server));
            let mut gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                gossip_config,
            )?;
            gossipsub.with_peer_score(
                crate::gossip_score::peer_score_params(&scored_topics),
                crate::gossip_score::thresholds(),
            )?;
            Ok(Behaviour {
                blocked: allow_block_list::Behaviour::default(),
                addresses: addrs::Behaviour::new(book()),
                kad,
                gossipsub,
                direct,
                identify: identify::Behaviour::new(identify::Config::new(
                    "/lotus-musig2/1.0.0".into(),
                    key.public(),
                )),
                ping: ping::Behaviour::default(),
                relay: Toggle::from(relay_on.then_some(relay_client)),
                dcutr: Toggle::from(dcutr_on.then(|| dcutr::Behaviour::new(peer_id))),
                autonat: Toggle::from(
                    autonat_on.then(|| {
                        autonat::v1::Behaviour::new(peer_id, autonat::v1::Config::default())
                    }),
                ),
            })
        })
        .map_err(|e| transport(&e))?
        .with_swarm_config(|c| {
            c.with_idle_connection_timeout(config.idle_timeout)
                // Send the protocol name and the first frame together: no
                // negotiation round trip per stream when one protocol is
                // proposed (every direct message opens a stream).
                .with_substream_upgrade_protocol_override(libp2p::core::upgrade::Version::V1Lazy)
        })
        .build();
    Ok(swarm)
}
