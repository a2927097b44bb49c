//! The HTTP/1.1 connection pool of one upstream: per endpoint, a short list of idle
//! connections (`h1::connection`), reused last-in first-out.
//!
//! Why not hyper-util's legacy `Client`: its pool is generic (any key, HTTP/1 and HTTP/2,
//! waiters, a checkout future boxed per request, a task spawned per response to return the
//! connection) and cost about 13 % of the proxy's instructions per request. Here the endpoints
//! are known up front, so each has its own `Mutex<Vec<_>>`, looked up by a linear scan of
//! the upstream's few authorities; a request takes the most recently used idle connection,
//! or connects a new one.
//!
//! Decisions:
//! - Only idle connections are in a list: an exchange owns its connection, and its response
//!   body hands it back when the body has been read to the end (`h1::connection`), so no
//!   task is needed per response.
//! - An idle connection is checked before use and dropped if the upstream closed it; if an
//!   exchange on a reused connection still fails before any byte of an answer arrived, the
//!   request goes once more on a fresh connection when it has no body and an idempotent
//!   method (the upstream closed the idle connection as the request was sent): this is not a
//!   retry in SPEC §3's sense.
//! - Idle connections older than [`IDLE_TIMEOUT`] are closed by a reaper task (every
//!   `IDLE_TIMEOUT / 4`, only while the pool exists) and at checkout. At most
//!   [`MAX_IDLE_PER_ENDPOINT`] are kept per endpoint; beyond that the least recently used goes.
//! - A request whose authority is not one of the upstream's endpoints (none today) gets a
//!   fresh connection that is not pooled.
//! - Dropping the request future, or the response body before its end, drops its connection,
//!   which closes it: that is how the upstream request is cancelled when the client goes away
//!   or the deadline passes.

use crate::body::{BoxError, ProxyBody};
use crate::h1::connection::{self, Connection, ExchangeError, Outgoing, Recycle};
use crate::upstream_body::UpstreamBody;
use http::uri::Authority;
use http::{header, HeaderValue, Request, Response};
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::time::Instant;

/// How long an unused connection is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// How many idle connections one endpoint keeps at most.
pub const MAX_IDLE_PER_ENDPOINT: usize = 256;

/// Why a request got no response.
#[derive(Debug)]
pub enum PoolError {
    /// No connection could be made (refused, unreachable, timed out): nothing was sent.
    Connect(std::io::Error),
    /// The exchange failed on an open connection.
    Exchange(BoxError),
}

/// The pool of one upstream.
pub struct Http1Pool {
    endpoints: Vec<Arc<EndpointPool>>,
    connect_timeout: Duration,
}

struct EndpointPool {
    authority: Authority,
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    connection: Box<Connection>,
    since: Instant,
}

impl Http1Pool {
    /// A pool for `authorities`, connecting within `connect_timeout`. Inside a Tokio runtime
    /// it starts its reaper, which ends when the pool is dropped.
    pub fn new(authorities: Vec<Authority>, connect_timeout: Duration) -> Arc<Http1Pool> {
        let pool = Arc::new(Http1Pool {
            endpoints: authorities
                .into_iter()
                .map(|authority| {
                    Arc::new(EndpointPool {
                        authority,
                        idle: Mutex::new(Vec::new()),
                    })
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
    ) -> impl Future<Output = Result<Response<UpstreamBody>, PoolError>> + Send + 'a {
        // Not an `async fn`, which would keep the request twice in its state (as the
        // argument and as the local it is moved into).
        let slot = self.endpoints.iter().find(|e| e.authority == *authority);
        ensure_host(&mut request, authority);
        // Held once, here: the exchange borrows it.
        let mut outgoing = Outgoing::new(request);
        async move {
            let home = slot.map(|s| Arc::clone(s) as Arc<dyn Recycle>);
            if let Some(connection) = slot.and_then(|s| s.checkout()) {
                let again = outgoing.replay();
                match connection.exchange(&mut outgoing, home.clone()).await {
                    Ok(response) => return Ok(response.map(UpstreamBody::H1)),
                    // The upstream had closed it: once more on a fresh one, if safe.
                    Err(ExchangeError {
                        nothing_received: true,
                        error,
                    }) => match again {
                        Some(again) => outgoing = again.into_outgoing(),
                        None => return Err(PoolError::Exchange(error)),
                    },
                    Err(e) => return Err(PoolError::Exchange(e.error)),
                }
            }
            // Boxed: a new connection is the exception under keep-alive, and its future,
            // held inline, was the largest state of this one (which every request holds).
            let connection = Box::pin(connect(authority, self.connect_timeout)).await?;
            let response = connection
                .exchange(&mut outgoing, home)
                .await
                .map_err(|e| PoolError::Exchange(e.error))?;
            Ok(response.map(UpstreamBody::H1))
        }
    }

    fn prune(&self, now: Instant) {
        for endpoint in &self.endpoints {
            let mut idle = endpoint.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.retain_mut(|c| !expired(c, now) && c.connection.is_open());
        }
    }
}

impl EndpointPool {
    /// The most recently used idle connection that is still open; closed and expired ones
    /// on the way are dropped.
    fn checkout(&self) -> Option<Box<Connection>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let mut now = None;
        while let Some(mut entry) = idle.pop() {
            let now = *now.get_or_insert_with(crate::clock::now);
            if !expired(&entry, now) && entry.connection.is_open() {
                return Some(entry.connection);
            }
        }
        None
    }
}

impl Recycle for EndpointPool {
    fn recycle(&self, connection: Box<Connection>) {
        let entry = Idle {
            connection,
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
    now.saturating_duration_since(entry.since) >= IDLE_TIMEOUT
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

/// Opens a connection to `authority`.
async fn connect(authority: &Authority, timeout: Duration) -> Result<Box<Connection>, PoolError> {
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = authority.port_u16().unwrap_or(80);
    connection::connect(host, port, timeout)
        .await
        .map_err(PoolError::Connect)
}

impl std::fmt::Display for PoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PoolError::Connect(e) => write!(f, "connect error: {e}"),
            PoolError::Exchange(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for PoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PoolError::Connect(e) => e.source(),
            PoolError::Exchange(e) => e.source(),
        }
    }
}
