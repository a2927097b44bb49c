//! One HTTP/1.1 client for everything a drill sends: traffic, admin calls, control requests.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// A pooled keep-alive client.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A client with enough idle connections per host for a few hundred requests a second.
pub fn new() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build(connector)
}

/// An answer read whole.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: u16,
    /// The `levee-degraded` header, when present.
    pub degraded: Option<String>,
    /// The body.
    pub body: Bytes,
}

/// Sends a request and reads the answer within `timeout`.
pub async fn send(
    client: &HttpClient,
    request: http::Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<Answer, String> {
    let call = async {
        let response = client.request(request).await.map_err(|e| {
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(inner) = source {
                message = format!("{message}: {inner}");
                source = inner.source();
            }
            message
        })?;
        let status = response.status().as_u16();
        let degraded = response
            .headers()
            .get("levee-degraded")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the body: {e}"))?
            .to_bytes();
        Ok(Answer {
            status,
            degraded,
            body,
        })
    };
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| format!("no answer within {}", levee_core::duration::format(timeout)))?
}

/// A request to `url` with an optional bearer token and JSON/text body.
pub fn request(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<String>,
) -> Result<http::Request<Full<Bytes>>, String> {
    let mut builder = http::Request::builder().method(method).uri(url);
    if let Some(token) = token {
        builder = builder.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if body.is_some() {
        builder = builder.header(http::header::CONTENT_TYPE, "application/json");
    }
    builder
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| format!("{method} {url}: {e}"))
}
