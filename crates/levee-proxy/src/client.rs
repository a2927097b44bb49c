//! The connection pool to one upstream: a hyper-util legacy client (keep-alive, pooled per
//! endpoint authority) speaking HTTP/1.1 or, for `protocol: h2c`, HTTP/2 with prior
//! knowledge (what gRPC upstreams need), and the mapping of its errors to SPEC §1 results.

use crate::body::ProxyBody;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use levee_config::{UpstreamConfig, UpstreamProtocol};
use levee_core::outcome::AttemptResult;
use std::error::Error as _;
use std::time::Duration;

/// The pooled client of one upstream.
pub type UpstreamClient = Client<HttpConnector, ProxyBody>;

/// How long an unused pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Builds the client for `config`: connect timeout, TCP_NODELAY, and HTTP/2 only for h2c.
pub fn build(config: &UpstreamConfig) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(config.connect_timeout));
    connector.set_nodelay(true);
    connector.enforce_http(true);
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new());
    if config.protocol == UpstreamProtocol::H2c {
        builder.http2_only(true);
    }
    builder.build(connector)
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
pub fn classify_error(error: &hyper_util::client::legacy::Error) -> AttemptResult {
    if error.is_connect() {
        return AttemptResult::ConnectFailure;
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
pub fn describe(error: &hyper_util::client::legacy::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
