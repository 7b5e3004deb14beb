//! The HTTP layer: axum routes over [`Daemon`], a bearer-token check, SSE,
//! and the Prometheus endpoint. No logic of its own: each handler parses,
//! calls one `Daemon` method and maps its [`ApiError`] to a status.
//!
//! The token is 32 random bytes (hex) written to `<data_dir>/api.cookie`
//! (mode 0600) at start and removed at a clean shutdown, as bitcoind does
//! with its `.cookie`; the bound address goes to `<data_dir>/api.addr` so
//! `lotus-musig2 rpc --datadir` finds a daemon listening on port 0.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::RngCore as _;
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use super::{ApiError, Daemon, DaemonError};

/// The cookie file's name in the data directory.
pub const COOKIE_FILE: &str = "api.cookie";
/// The file holding the API's bound address.
pub const ADDR_FILE: &str = "api.addr";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(self.body())).into_response();
        if matches!(self, ApiError::Unauthorized) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

type ApiResult = Result<axum::Json<Value>, ApiError>;

#[derive(Clone)]
struct AppState {
    daemon: Daemon,
    token: Arc<String>,
    stop: watch::Receiver<bool>,
}

/// The running servers; [`Servers::shutdown`] stops them.
pub struct Servers {
    /// The API's bound address.
    pub api_addr: SocketAddr,
    /// The metrics endpoint's bound address.
    pub metrics_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    cookie: PathBuf,
}

impl Servers {
    /// Stops the servers (open event streams end), the event task, and
    /// removes the cookie.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(3), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        if let Err(e) = std::fs::remove_file(&self.cookie) {
            tracing::warn!(error = %e, "api.cookie not removed");
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DaemonError + '_ {
    move |source| DaemonError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a fresh token to `<dir>/api.cookie`, readable by the owner only.
pub fn write_cookie(dir: &Path) -> Result<String, DaemonError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let path = dir.join(COOKIE_FILE);
    // A stale cookie may have other permissions: start from a new file.
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(&path)(e)),
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err(&path))?;
    file.write_all(token.as_bytes()).map_err(io_err(&path))?;
    Ok(token)
}

/// Binds the API (and the metrics endpoint) and serves them until
/// [`Servers::shutdown`]. `pump` is the daemon's event task, stopped with them.
pub async fn serve(
    daemon: Daemon,
    data_dir: &Path,
    api: SocketAddr,
    metrics: Option<SocketAddr>,
    pump: JoinHandle<()>,
) -> Result<Servers, DaemonError> {
    let bind = |addr: SocketAddr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| DaemonError::Io {
                path: PathBuf::from(addr.to_string()),
                source,
            })
    };
    let api_listener = bind(api).await?;
    let metrics_listener = match metrics {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let local = |l: &tokio::net::TcpListener| {
        l.local_addr().map_err(|source| DaemonError::Io {
            path: PathBuf::from("listener"),
            source,
        })
    };
    let api_addr = local(&api_listener)?;
    let metrics_addr = metrics_listener.as_ref().map(local).transpose()?;
    let token = write_cookie(data_dir)?;
    let addr_path = data_dir.join(ADDR_FILE);
    std::fs::write(&addr_path, api_addr.to_string()).map_err(io_err(&addr_path))?;

    let (stop, stop_rx) = watch::channel(false);
    let state = AppState {
        daemon: daemon.clone(),
        token: Arc::new(token),
        stop: stop_rx.clone(),
    };
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let mut tasks = Vec::new();
    let app = router(state);
    let api_stop = stopped(stop_rx.clone());
    tasks.push(tokio::spawn(async move {
        if let Err(e) = axum::serve(api_listener, app)
            .with_graceful_shutdown(api_stop)
            .await
        {
            tracing::error!(error = %e, "API server");
        }
    }));
    if let Some(listener) = metrics_listener {
        let app = Router::new()
            .route("/metrics", get(metrics_handler))
            .with_state(daemon);
        let metrics_stop = stopped(stop_rx.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(metrics_stop)
                .await
            {
                tracing::error!(error = %e, "metrics server");
            }
        }));
    }
    let pump_stop = stopped(stop_rx);
    tasks.push(tokio::spawn(async move {
        let abort = pump.abort_handle();
        pump_stop.await;
        abort.abort();
    }));
    Ok(Servers {
        api_addr,
        metrics_addr,
        stop,
        tasks,
        cookie: data_dir.join(COOKIE_FILE),
    })
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/requests", post(create_request))
        .route("/v1/requests/pending", get(pending))
        .route("/v1/requests/{request_id}/approve", post(approve))
        .route("/v1/requests/{request_id}/reject", post(reject))
        .route("/v1/sessions", get(sessions))
        .route("/v1/sessions/{session_id}", get(session).delete(close))
        .route("/v1/sessions/{session_id}/broadcast", post(broadcast_done))
        .route("/v1/events", get(events))
        .route("/v1/peers", get(peers))
        .route("/v1/peers/{peer_id}", get(peer))
        .route("/v1/identities", post(register_identity))
        .route("/v1/identities/{identity_id}", get(identity))
        .route("/v1/identities/{identity_id}/rotate", post(rotate_identity))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

/// Constant-time comparison (the token is fixed-length hex).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(token) if same(token.trim().as_bytes(), state.token.as_bytes()) => {
            next.run(request).await
        }
        _ => ApiError::Unauthorized.into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

async fn status(State(s): State<AppState>) -> ApiResult {
    s.daemon.status().await.map(axum::Json)
}

async fn create_request(State(s): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let out = s.daemon.create_request(&body).await?;
    Ok((StatusCode::CREATED, axum::Json(out)).into_response())
}

async fn pending(State(s): State<AppState>) -> ApiResult {
    Ok(axum::Json(s.daemon.pending()))
}

async fn approve(State(s): State<AppState>, UrlPath(id): UrlPath<String>) -> ApiResult {
    s.daemon.approve(&id).await.map(axum::Json)
}

async fn reject(State(s): State<AppState>, UrlPath(id): UrlPath<String>) -> ApiResult {
    s.daemon.reject(&id).map(axum::Json)
}

async fn sessions(State(s): State<AppState>) -> ApiResult {
    s.daemon.sessions().map(axum::Json)
}

async fn session(State(s): State<AppState>, UrlPath(id): UrlPath<String>) -> ApiResult {
    s.daemon.session(&id).map(axum::Json)
}

async fn close(State(s): State<AppState>, UrlPath(id): UrlPath<String>) -> ApiResult {
    s.daemon.close(&id).map(axum::Json)
}

async fn broadcast_done(
    State(s): State<AppState>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> ApiResult {
    s.daemon.broadcast(&id, &body).map(axum::Json)
}

async fn peers(State(s): State<AppState>) -> ApiResult {
    s.daemon.peers().await.map(axum::Json)
}

async fn peer(State(s): State<AppState>, UrlPath(id): UrlPath<String>) -> ApiResult {
    s.daemon.peer(&id).await.map(axum::Json)
}

async fn register_identity(State(s): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let out = s.daemon.register_identity(&body).await?;
    Ok((StatusCode::CREATED, axum::Json(out)).into_response())
}

async fn identity(State(s): State<AppState>, UrlPath(id): UrlPath<String>) -> ApiResult {
    s.daemon.identity(&id).map(axum::Json)
}

async fn rotate_identity(
    State(s): State<AppState>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> ApiResult {
    s.daemon.rotate_identity(&id, &body).await.map(axum::Json)
}

/// `GET /v1/events`: every event from now on, in order, as SSE (`id` is the
/// event's sequence number, `event` its name, `data` the JSON). A client
/// that falls more than the channel's capacity behind gets a `lagged` event
/// with the number it missed.
///
/// The first event, `subscribed`, says the stream is live (it has no id).
async fn events(State(s): State<AppState>) -> impl IntoResponse {
    use futures::StreamExt as _;
    let state = (s.daemon.subscribe(), s.stop.clone());
    let hello = Event::default()
        .event("subscribed")
        .data(json!({"event": "subscribed"}).to_string());
    let first = futures::stream::once(async move { Ok::<_, Infallible>(hello) });
    let stream = futures::stream::unfold(state, |(mut rx, mut stop)| async move {
        let event = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return None,
            r = rx.recv() => r,
        };
        let sse = match event {
            Ok(v) => {
                let name = v["event"].as_str().unwrap_or("event").to_string();
                let id = v["id"].to_string();
                Event::default().id(id).event(name).data(v.to_string())
            }
            Err(broadcast::error::RecvError::Lagged(n)) => Event::default()
                .event("lagged")
                .data(json!({"event": "lagged", "missed": n}).to_string()),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok::<_, Infallible>(sse), (rx, stop)))
    });
    Sse::new(first.chain(stream)).keep_alive(KeepAlive::default())
}

async fn metrics_handler(State(daemon): State<Daemon>) -> Response {
    let text = daemon.metrics_text().await;
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_cookie_is_fresh_and_private() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(COOKIE_FILE), "old").unwrap();
        let a = write_cookie(dir.path()).unwrap();
        let b = write_cookie(dir.path()).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        let path = dir.path().join(COOKIE_FILE);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), b);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn token_comparison() {
        assert!(same(b"abcd", b"abcd"));
        assert!(!same(b"abcd", b"abce"));
        assert!(!same(b"abcd", b"abc"));
    }
}
