//! The HTTP/1.1 connection pool of one upstream: per endpoint, a short list of hyper
//! `client::conn::http1` connections, reused last-in first-out.
//!
//! Why not hyper-util's legacy `Client`: its pool is generic (any key, HTTP/1 and HTTP/2,
//! waiters, a checkout future boxed per request, a task spawned per response to return the
//! connection) and cost about 13 % of the proxy's instructions per request. Here the endpoints
//! are known up front, so each has its own `Mutex<Vec<_>>`, looked up by a linear scan of
//! the upstream's few authorities; a request takes the most recently used ready connection,
//! or connects a new one.
//!
//! Decisions:
//! - A connection goes back to its list as soon as the response head has arrived, while its
//!   body may still be streaming: hyper's `SendRequest::is_ready` only turns true again once
//!   the whole exchange is over (request body written, response body read), so a checkout
//!   skips the busy ones and drops the closed ones. This avoids a task per response.
//! - A reused connection that turns out closed before the request was written (the upstream
//!   closed it while idle; hyper hands the request back) is retried once on a fresh connection,
//!   as the legacy client did: nothing was sent, so this is not a retry in SPEC §3's sense.
//! - Idle connections older than [`IDLE_TIMEOUT`] are closed by a reaper task (every
//!   `IDLE_TIMEOUT / 4`, only while the pool exists) and at checkout. At most
//!   [`MAX_IDLE_PER_ENDPOINT`] are kept per endpoint; beyond that the least recently used goes.
//! - A request whose authority is not one of the upstream's endpoints (none today) gets a
//!   fresh connection that is not pooled.
//! - Dropping the request future drops its connection: hyper then closes it, which is how
//!   the upstream request is cancelled when the client goes away or the deadline passes.

use crate::body::ProxyBody;
use http::uri::Authority;
use http::{header, HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long an unused connection is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// How many connections one endpoint keeps at most (idle or still streaming a body).
pub const MAX_IDLE_PER_ENDPOINT: usize = 256;

/// Why a request got no response.
#[derive(Debug)]
pub enum PoolError {
    /// No connection could be made (refused, unreachable, timed out, handshake failed):
    /// nothing was sent.
    Connect(std::io::Error),
    /// The exchange failed on an open connection.
    Http(hyper::Error),
}

/// The pool of one upstream.
pub struct Http1Pool {
    endpoints: Vec<EndpointPool>,
    connect_timeout: Duration,
}

struct EndpointPool {
    authority: Authority,
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    sender: SendRequest<ProxyBody>,
    since: Instant,
}

impl Http1Pool {
    /// A pool for `authorities`, connecting within `connect_timeout`. Inside a Tokio runtime
    /// it starts its reaper, which ends when the pool is dropped.
    pub fn new(authorities: Vec<Authority>, connect_timeout: Duration) -> Arc<Http1Pool> {
        let pool = Arc::new(Http1Pool {
            endpoints: authorities
                .into_iter()
                .map(|authority| EndpointPool {
                    authority,
                    idle: Mutex::new(Vec::new()),
                })
                .collect(),
            connect_timeout,
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(reap(Arc::downgrade(&pool)));
        }
        pool
    }

    /// Sends `request` to the endpoint `authority` and waits for the response head. The URI
    /// is in origin form (`/path?query`, see `forwarding::upstream_uri`): the request line's.
    pub fn send<'a>(
        &'a self,
        authority: &'a Authority,
        mut request: Request<ProxyBody>,
    ) -> impl Future<Output = Result<Response<Incoming>, PoolError>> + Send + 'a {
        // Not an `async fn`, which would keep the request twice in its state (as the
        // argument and as the local it is moved into).
        let slot = self.endpoints.iter().find(|e| e.authority == *authority);
        ensure_host(&mut request, authority);
        async move {
            if let Some(slot) = slot {
                if let Some(mut sender) = slot.checkout() {
                    match sender.try_send_request(request).await {
                        Ok(response) => {
                            slot.put(sender);
                            return Ok(response);
                        }
                        Err(mut e) => match e.take_message() {
                            // Closed before anything was written: try once on a fresh one.
                            Some(unsent) => request = unsent,
                            None => return Err(PoolError::Http(e.into_error())),
                        },
                    }
                }
            }
            let mut sender = connect(authority, self.connect_timeout).await?;
            let response = sender
                .try_send_request(request)
                .await
                .map_err(|e| PoolError::Http(e.into_error()))?;
            if let Some(slot) = slot {
                slot.put(sender);
            }
            Ok(response)
        }
    }

    fn prune(&self, now: Instant) {
        for endpoint in &self.endpoints {
            let mut idle = endpoint.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.retain(|c| !c.sender.is_closed() && !expired(c, now));
        }
    }
}

impl EndpointPool {
    /// The most recently used ready connection; closed and expired ones on the way are dropped.
    fn checkout(&self) -> Option<SendRequest<ProxyBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let mut i = idle.len();
        let mut now = None;
        while i > 0 {
            i -= 1;
            let entry = &idle[i];
            if entry.sender.is_closed() {
                idle.remove(i);
            } else if entry.sender.is_ready() {
                let now = *now.get_or_insert_with(crate::clock::now);
                let entry = idle.remove(i);
                if expired(&entry, now) {
                    continue;
                }
                return Some(entry.sender);
            }
        }
        None
    }

    fn put(&self, sender: SendRequest<ProxyBody>) {
        let entry = Idle {
            sender,
            since: crate::clock::now(),
        };
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() >= MAX_IDLE_PER_ENDPOINT {
            idle.remove(0);
        }
        idle.push(entry);
    }
}

fn expired(entry: &Idle, now: Instant) -> bool {
    entry.sender.is_ready() && now.saturating_duration_since(entry.since) >= IDLE_TIMEOUT
}

async fn reap(pool: Weak<Http1Pool>) {
    let mut tick = tokio::time::interval(IDLE_TIMEOUT / 4);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        pool.prune(Instant::now());
    }
}

/// `Host` is the endpoint's when the client sent none (what the legacy client did).
fn ensure_host(request: &mut Request<ProxyBody>, authority: &Authority) {
    if !request.headers().contains_key(header::HOST) {
        if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
            request.headers_mut().insert(header::HOST, host);
        }
    }
}

/// Opens a connection to `authority` (TCP_NODELAY) and spawns its driver on the runtime.
async fn connect(
    authority: &Authority,
    timeout: Duration,
) -> Result<SendRequest<ProxyBody>, PoolError> {
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = authority.port_u16().unwrap_or(80);
    let stream = match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(PoolError::Connect(e)),
        Err(_) => {
            return Err(PoolError::Connect(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no connection within {} ms", timeout.as_millis()),
            )))
        }
    };
    stream.set_nodelay(true).map_err(PoolError::Connect)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| PoolError::Connect(std::io::Error::other(e)))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

impl std::fmt::Display for PoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PoolError::Connect(e) => write!(f, "connect error: {e}"),
            PoolError::Http(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for PoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PoolError::Connect(e) => e.source(),
            PoolError::Http(e) => e.source(),
        }
    }
}
