//! The connection pool to one upstream: for HTTP/1.1, Levee's own per-endpoint pool
//! (`pool`); for `protocol: h2c`, a hyper-util legacy client speaking HTTP/2 with prior
//! knowledge (what gRPC upstreams need: one multiplexed connection per endpoint, which the
//! legacy client shares well). And the mapping of their errors to SPEC §1 results.

use crate::body::ProxyBody;
use crate::pool::{self, Http1Pool, PoolError};
use crate::upstream_body::UpstreamBody;
use futures_util::future::Either;
use futures_util::TryFutureExt as _;
use http::uri::Authority;
use http::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use levee_config::{UpstreamConfig, UpstreamProtocol};
use levee_core::outcome::AttemptResult;
use std::error::Error as _;
use std::future::Future;
use std::sync::Arc;

/// The pooled client of one upstream.
pub enum UpstreamClient {
    /// HTTP/1.1: per-endpoint pools of hyper connections.
    Http1(Arc<Http1Pool>),
    /// h2c: the legacy client, HTTP/2 only (boxed: it is many times the size of the other).
    H2(Box<Client<HttpConnector, ProxyBody>>),
}

/// Why a request to an upstream got no response.
#[derive(Debug)]
pub enum ClientError {
    /// From the HTTP/1.1 pool.
    Pool(PoolError),
    /// From the h2c client.
    Legacy(hyper_util::client::legacy::Error),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Pool(e) => e.fmt(f),
            ClientError::Legacy(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Pool(e) => e.source(),
            ClientError::Legacy(e) => e.source(),
        }
    }
}

impl UpstreamClient {
    /// Sends `request` to `endpoint` and waits for the response head: the URI is in the form
    /// `forwarding::upstream_uri` gives for the upstream's protocol (origin form for HTTP/1,
    /// where `endpoint` chooses the pooled connection; absolute for HTTP/2). Dropping the future cancels the upstream request.
    ///
    /// Not an `async fn`, which would keep the request in its state beside the future it is
    /// moved into.
    pub fn request<'a>(
        &'a self,
        endpoint: &'a Authority,
        request: Request<ProxyBody>,
    ) -> impl Future<Output = Result<Response<UpstreamBody>, ClientError>> + Send + 'a {
        match self {
            UpstreamClient::Http1(pool) => {
                Either::Left(pool.send(endpoint, request).map_err(ClientError::Pool))
            }
            UpstreamClient::H2(client) => Either::Right(
                client
                    .request(request)
                    .map_ok(|response| response.map(UpstreamBody::Hyper))
                    .map_err(ClientError::Legacy),
            ),
        }
    }
}

/// Builds the client for `config` and its endpoints: connect timeout, TCP_NODELAY, and
/// HTTP/2 only for h2c.
pub fn build(config: &UpstreamConfig, endpoints: Vec<Authority>) -> UpstreamClient {
    if config.protocol == UpstreamProtocol::Http1 {
        return UpstreamClient::Http1(Http1Pool::new(endpoints, config.connect_timeout));
    }
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(config.connect_timeout));
    connector.set_nodelay(true);
    connector.enforce_http(true);
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_idle_timeout(pool::IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .http2_only(true);
    UpstreamClient::H2(Box::new(builder.build(connector)))
}

/// The HTTP version requests to this upstream carry.
pub fn version(protocol: UpstreamProtocol) -> http::Version {
    match protocol {
        UpstreamProtocol::Http1 => http::Version::HTTP_11,
        UpstreamProtocol::H2c => http::Version::HTTP_2,
    }
}

/// What a failed exchange was, in SPEC §1 words: a connect error (nothing was sent), a refused
/// HTTP/2 stream (nothing was processed), or a reset (anything else that broke the exchange).
pub fn classify_error(error: &ClientError) -> AttemptResult {
    match error {
        ClientError::Pool(PoolError::Connect(_)) => return AttemptResult::ConnectFailure,
        ClientError::Legacy(e) if e.is_connect() => return AttemptResult::ConnectFailure,
        _ => {}
    }
    // h2 is not a direct dependency, so its reason is recognised by name in the error chain
    // (`REFUSED_STREAM` is how h2 spells it in Debug output).
    let mut source = error.source();
    while let Some(e) = source {
        if format!("{e:?}").contains("REFUSED_STREAM") {
            return AttemptResult::RefusedStream;
        }
        source = e.source();
    }
    AttemptResult::Reset
}

/// A short description of a client error for logs and `/health`.
pub fn describe(error: &ClientError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
