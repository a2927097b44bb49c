//! [`Api`]: one typed call per registry endpoint, each bounded by a timeout.
//!
//! This is the low-level client: every call returns a `Result`, so operators' tools, the
//! admin API and tests can see exactly what the registry said. Request paths must not use it
//! directly — [`crate::RegistryClient`] wraps it so that an outage never reaches a caller.
//!
//! Plain `http://` only: the registry listens on loopback by default, and a remote registry
//! is expected behind the deployment's TLS proxy or mesh.

use crate::api::{
    BreakerView, CompleteRequest, DegradationRequest, Event, EventData, FleetSnapshot, Health,
    LeaseRequest, LeaseResponse, OverrideRequest, PolicyView, Problem, ReportRequest,
    ReportResponse, ToggleView,
};
use crate::sse::{SseItem, SseParser};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use levee_core::breaker::BreakerConfig;
use levee_core::fleet::{Degradation, Toggle};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Why a registry call failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientError {
    /// The registry URL is not an `http://host:port` URL.
    InvalidUrl(String),
    /// No connection could be made, or it broke.
    Connect(String),
    /// The registry did not answer within the timeout.
    Timeout,
    /// The registry answered with an error status.
    Status {
        /// The HTTP status.
        status: u16,
        /// The problem+json body, when there was one.
        problem: Option<Problem>,
    },
    /// The answer could not be decoded.
    Decode(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::InvalidUrl(u) => write!(
                f,
                "registry url `{u}` is not usable: write it as http://host:port, e.g. \
                 http://127.0.0.1:9911"
            ),
            ClientError::Connect(m) => write!(f, "cannot reach the registry: {m}"),
            ClientError::Timeout => f.write_str("the registry did not answer in time"),
            ClientError::Status {
                status,
                problem: Some(p),
            } => write!(f, "the registry answered {status} {}: {}", p.code, p.detail),
            ClientError::Status {
                status,
                problem: None,
            } => write!(f, "the registry answered {status}"),
            ClientError::Decode(m) => write!(f, "the registry's answer is not understood: {m}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl ClientError {
    /// The HTTP status, when the registry answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True for failures that retrying later may fix (transport, timeouts, 5xx, 429).
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Connect(_) | ClientError::Timeout => true,
            ClientError::Status { status, .. } => *status >= 500 || *status == 429,
            ClientError::InvalidUrl(_) | ClientError::Decode(_) => false,
        }
    }
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved characters), so
/// endpoint keys such as `inventory/get` stay one segment.
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A typed registry API client.
#[derive(Clone)]
pub struct Api {
    base: Arc<str>,
    token: Option<Arc<str>>,
    http: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Default bound of one call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

impl Api {
    /// A client of the registry at `base_url` (`http://host:port`), sending `token` as the
    /// bearer token. Must be called within a tokio runtime only when used.
    pub fn new(base_url: &str, token: Option<&str>) -> Result<Api, ClientError> {
        let trimmed = base_url.trim().trim_end_matches('/');
        let uri: Uri = trimmed
            .parse()
            .map_err(|_| ClientError::InvalidUrl(base_url.to_string()))?;
        if uri.scheme_str() != Some("http") || uri.authority().is_none() || uri.query().is_some() {
            return Err(ClientError::InvalidUrl(base_url.to_string()));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_keepalive(Some(Duration::from_secs(30)));
        connector.set_connect_timeout(Some(DEFAULT_TIMEOUT));
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Api {
            base: trimmed.into(),
            token: token.map(Into::into),
            http,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The same client with another per-call timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Api {
        self.timeout = timeout;
        self
    }

    /// The same client with another token.
    pub fn with_token(mut self, token: Option<&str>) -> Api {
        self.token = token.map(Into::into);
        self
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(HeaderName, String)],
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let uri = format!("{}{}", self.base, path);
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(token) = &self.token {
            builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        for (name, value) in headers {
            let value = HeaderValue::from_str(value)
                .map_err(|_| ClientError::InvalidUrl(format!("header value `{value}`")))?;
            builder = builder.header(name, value);
        }
        builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::InvalidUrl(format!("{}{path}: {e}", self.base)))
    }

    /// Sends a request and reads the whole answer, within the timeout.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(HeaderName, String)],
    ) -> Result<(StatusCode, HeaderMap, Bytes), ClientError> {
        let request = self.request(method, path, body, headers)?;
        let call = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| ClientError::Connect(error_chain(&e)))?;
            let (parts, body) = response.into_parts();
            let bytes = body
                .collect()
                .await
                .map_err(|e| ClientError::Connect(e.to_string()))?
                .to_bytes();
            Ok((parts.status, parts.headers, bytes))
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| ClientError::Timeout)?
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let body = match body {
            Some(b) => Some(serde_json::to_vec(b).map_err(|e| ClientError::Decode(e.to_string()))?),
            None => None,
        };
        let (status, _, bytes) = self.raw(method, path, body, &[]).await?;
        if !status.is_success() {
            return Err(ClientError::Status {
                status: status.as_u16(),
                problem: serde_json::from_slice(&bytes).ok(),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call::<(), T>(Method::GET, path, None).await
    }

    /// `GET /healthz` (the status code is not an error here: a degraded registry answers 503
    /// in fail-closed mode and still says why).
    pub async fn health(&self) -> Result<Health, ClientError> {
        let (_, _, bytes) = self.raw(Method::GET, "/healthz", None, &[]).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `POST /v1/reports`.
    pub async fn report(&self, report: &ReportRequest) -> Result<ReportResponse, ClientError> {
        self.call(Method::POST, "/v1/reports", Some(report)).await
    }

    /// `GET /v1/state`.
    pub async fn state(&self) -> Result<FleetSnapshot, ClientError> {
        self.get("/v1/state").await
    }

    /// `GET /v1/breakers/{key}`.
    pub async fn breaker(&self, key: &str) -> Result<BreakerView, ClientError> {
        self.get(&format!("/v1/breakers/{}", encode_segment(key)))
            .await
    }

    /// `PUT /v1/breakers/{key}/override`, or `DELETE` for `None`.
    pub async fn set_override(
        &self,
        key: &str,
        value: Option<levee_core::fleet::FleetOverride>,
    ) -> Result<BreakerView, ClientError> {
        let path = format!("/v1/breakers/{}/override", encode_segment(key));
        match value {
            Some(value) => {
                self.call(Method::PUT, &path, Some(&OverrideRequest { value }))
                    .await
            }
            None => self.call::<(), _>(Method::DELETE, &path, None).await,
        }
    }

    /// `POST /v1/breakers/{key}/leases`.
    pub async fn acquire_lease(
        &self,
        key: &str,
        request: &LeaseRequest,
    ) -> Result<LeaseResponse, ClientError> {
        let path = format!("/v1/breakers/{}/leases", encode_segment(key));
        self.call(Method::POST, &path, Some(request)).await
    }

    /// `POST /v1/breakers/{key}/leases/{lease_id}/complete`.
    pub async fn complete_lease(
        &self,
        key: &str,
        lease_id: &str,
        request: &CompleteRequest,
    ) -> Result<BreakerView, ClientError> {
        let path = format!(
            "/v1/breakers/{}/leases/{}/complete",
            encode_segment(key),
            encode_segment(lease_id)
        );
        self.call(Method::POST, &path, Some(request)).await
    }

    /// `GET /v1/toggles`.
    pub async fn toggles(&self) -> Result<BTreeMap<String, ToggleView>, ClientError> {
        self.get("/v1/toggles").await
    }

    /// `PUT /v1/toggles/{name}`.
    pub async fn set_toggle(&self, name: &str, toggle: Toggle) -> Result<ToggleView, ClientError> {
        let path = format!("/v1/toggles/{}", encode_segment(name));
        self.call(Method::PUT, &path, Some(&toggle)).await
    }

    /// `DELETE /v1/toggles/{name}`.
    pub async fn delete_toggle(&self, name: &str) -> Result<(), ClientError> {
        let path = format!("/v1/toggles/{}", encode_segment(name));
        let (status, _, bytes) = self.raw(Method::DELETE, &path, None, &[]).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(ClientError::Status {
                status: status.as_u16(),
                problem: serde_json::from_slice(&bytes).ok(),
            })
        }
    }

    /// `GET /v1/degradation`.
    pub async fn degradation(&self) -> Result<Degradation, ClientError> {
        self.get("/v1/degradation").await
    }

    /// `PUT /v1/degradation`.
    pub async fn set_degradation(
        &self,
        request: &DegradationRequest,
    ) -> Result<Degradation, ClientError> {
        self.call(Method::PUT, "/v1/degradation", Some(request))
            .await
    }

    /// `GET /v1/policies`.
    pub async fn policies(&self) -> Result<BTreeMap<String, PolicyView>, ClientError> {
        self.get("/v1/policies").await
    }

    /// `GET /v1/policies/{key}`.
    pub async fn policy(&self, key: &str) -> Result<PolicyView, ClientError> {
        self.get(&format!("/v1/policies/{}", encode_segment(key)))
            .await
    }

    /// `PUT /v1/policies/{key}`.
    pub async fn put_policy(
        &self,
        key: &str,
        config: &BreakerConfig,
    ) -> Result<PolicyView, ClientError> {
        let path = format!("/v1/policies/{}", encode_segment(key));
        self.call(Method::PUT, &path, Some(config)).await
    }

    /// `DELETE /v1/policies/{key}`: back to the SPEC defaults (the version still bumps).
    pub async fn reset_policy(&self, key: &str) -> Result<PolicyView, ClientError> {
        let path = format!("/v1/policies/{}", encode_segment(key));
        self.call::<(), _>(Method::DELETE, &path, None).await
    }

    /// `GET /v1/watch`, resuming after `last_event_id` when given. The timeout bounds only
    /// the wait for the response head; the stream then lasts until either side ends it.
    pub async fn watch(&self, last_event_id: Option<u64>) -> Result<EventStream, ClientError> {
        let mut headers = vec![(ACCEPT, "text/event-stream".to_string())];
        if let Some(id) = last_event_id {
            headers.push((HeaderName::from_static("last-event-id"), id.to_string()));
        }
        let request = self.request(Method::GET, "/v1/watch", None, &headers)?;
        let response: Response<Incoming> =
            tokio::time::timeout(self.timeout, self.http.request(request))
                .await
                .map_err(|_| ClientError::Timeout)?
                .map_err(|e| ClientError::Connect(error_chain(&e)))?;
        if !response.status().is_success() {
            let status = response.status().as_u16();
            let bytes = tokio::time::timeout(self.timeout, response.into_body().collect())
                .await
                .ok()
                .and_then(|r| r.ok())
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            return Err(ClientError::Status {
                status,
                problem: serde_json::from_slice(&bytes).ok(),
            });
        }
        Ok(EventStream {
            body: response.into_body(),
            parser: SseParser::new(),
            pending: VecDeque::new(),
        })
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// One item of a watch stream.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchItem {
    /// An event.
    Event(Event),
    /// A heartbeat comment.
    Heartbeat,
}

/// An open watch stream.
#[derive(Debug)]
pub struct EventStream {
    body: Incoming,
    parser: SseParser,
    pending: VecDeque<SseItem>,
}

impl EventStream {
    /// The next event or heartbeat; `Ok(None)` when the registry ended the stream. Cancel
    /// safe: a cancelled call loses nothing already received.
    pub async fn next(&mut self) -> Result<Option<WatchItem>, ClientError> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                match item {
                    SseItem::Comment => return Ok(Some(WatchItem::Heartbeat)),
                    SseItem::Event { id, event, data } => {
                        let id = id.and_then(|i| i.parse::<u64>().ok()).ok_or_else(|| {
                            ClientError::Decode(format!("event `{event}` has no numeric id"))
                        })?;
                        let data: EventData = serde_json::from_str(&data).map_err(|e| {
                            ClientError::Decode(format!("event {id} (`{event}`): {e}"))
                        })?;
                        return Ok(Some(WatchItem::Event(Event { id, data })));
                    }
                }
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(ClientError::Connect(e.to_string())),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        let items = self.parser.feed(&data).map_err(ClientError::Decode)?;
                        self.pending.extend(items);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("inventory/get"), "inventory%2Fget");
        assert_eq!(encode_segment("a b~c.d_e-f"), "a%20b~c.d_e-f");
        assert_eq!(encode_segment("é"), "%C3%A9");
    }

    #[test]
    fn only_http_urls_are_accepted() {
        assert!(Api::new("http://127.0.0.1:9911/", None).is_ok());
        assert!(Api::new("https://x", None).is_err());
        assert!(Api::new("127.0.0.1:9911", None).is_err());
        assert!(Api::new("http://x?y=1", None).is_err());
    }
}
