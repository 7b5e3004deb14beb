//! The daemon's `[api]` and `[metrics]` tables and the check of their
//! listen addresses.

use std::net::SocketAddr;
use std::str::FromStr;

use serde::Deserialize;

use super::DaemonError;

/// `[api]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// `IP:PORT` to listen on (port 0: any free port).
    pub listen: String,
    /// Allow a non-loopback address.
    #[serde(default)]
    pub allow_remote: bool,
}

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `IP:PORT` of the Prometheus endpoint.
    pub listen: String,
    /// Allow a non-loopback address.
    #[serde(default)]
    pub allow_remote: bool,
}

/// Checks an `IP:PORT` listen address: loopback unless `allow_remote`.
pub fn listen_addr(what: &str, text: &str, allow_remote: bool) -> Result<SocketAddr, DaemonError> {
    let addr = SocketAddr::from_str(text)
        .map_err(|_| DaemonError::Config(format!("{what}.listen: {text:?} is not IP:PORT")))?;
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(DaemonError::Config(format!(
            "{what}.listen: refusing {addr}, not a loopback address (set {what}.allow_remote = true)"
        )));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn only_loopback_unless_allowed() {
        assert!(listen_addr("api", "127.0.0.1:0", false).is_ok());
        assert!(listen_addr("api", "[::1]:8080", false).is_ok());
        assert!(listen_addr("api", "0.0.0.0:8080", false).is_err());
        assert!(listen_addr("api", "192.168.1.2:8080", false).is_err());
        assert!(listen_addr("api", "0.0.0.0:8080", true).is_ok());
        assert!(listen_addr("api", "localhost", false).is_err());
    }
}
