//! Shared test harness: real sockets on 127.0.0.1 with port 0, the real proxy library, the
//! real admin API, and `inventory` upstreams in-process. Time-dependent conditions are polled
//! with a timeout, never slept on.

#![allow(dead_code)]

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use levee_proxy::{Proxy, Server};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long any polled condition may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A running proxy with its admin API.
pub struct Harness {
    pub proxy: Proxy,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    server: Option<Server>,
    admin_stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Harness {
    /// Starts the proxy for `yaml` (listeners should use port 0), on its local breakers alone.
    pub async fn start(yaml: &str) -> Harness {
        Harness::start_with(yaml, None).await
    }

    /// Starts the proxy for `yaml` as a client of the remote registry its `registry.url`
    /// names, with reporter token `token`.
    pub async fn start_with_registry(yaml: &str, token: &str) -> Harness {
        Harness::start_with(yaml, Some(token)).await
    }

    async fn start_with(yaml: &str, registry_token: Option<&str>) -> Harness {
        let config = levee_config::parse(yaml, "test.yaml").unwrap_or_else(|e| panic!("{e}"));
        let metrics = Arc::new(levee_telemetry::Metrics::new(&config.service));
        let listeners = levee_proxy::bind(&config).await.expect("bind");
        let fleet = registry_token
            .map(|token| levee_proxy::Fleet::remote(&config, token).expect("registry client"));
        let proxy = Proxy::with_fleet(config, metrics, fleet).expect("proxy");
        let server = Server::start(&proxy, listeners);
        let addr = server.addresses()[0].1;
        let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("admin bind");
        let admin = admin_listener.local_addr().expect("admin addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(levee_admin::serve(
            admin_listener,
            Arc::new(proxy.clone()),
            levee_admin::AdminAuth::with_token("secret"),
            stopped,
        ));
        Harness {
            proxy,
            addr,
            admin,
            server: Some(server),
            admin_stop: Some(stop),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The admin `/health` document.
    pub async fn health(&self) -> serde_json::Value {
        let r = send(get(&format!("http://{}/health", self.admin))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        r.json()
    }

    /// Stops the listeners, waiting at most `timeout` for connections.
    pub async fn shutdown(mut self, timeout: Duration) -> bool {
        let server = self.server.take().expect("server");
        server.shutdown(timeout).await
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(stop) = self.admin_stop.take() {
            let _ = stop.send(());
        }
    }
}

/// An inventory upstream on a free port.
pub async fn inventory(name: &str) -> inventory::Server {
    inventory::Server::start("127.0.0.1:0", name, inventory::Behaviour::default())
        .await
        .expect("inventory")
}

/// A response read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
    pub version: Version,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub fn get(url: &str) -> Request<Full<Bytes>> {
    request(Method::GET, url, Bytes::new())
}

pub fn request(method: Method, url: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    let mut r = Request::new(Full::new(body.into()));
    *r.method_mut() = method;
    *r.uri_mut() = url.parse().expect("url");
    r
}

fn http1() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

fn http2() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new())
}

/// Sends over HTTP/1.1 (a fresh client each time) and reads the whole answer.
pub async fn send(request: Request<Full<Bytes>>) -> Answer {
    try_send(http1(), request).await.expect("request failed")
}

/// Sends over HTTP/2 prior knowledge (h2c).
pub async fn send_h2(request: Request<Full<Bytes>>) -> Answer {
    try_send(http2(), request).await.expect("h2 request failed")
}

/// Sends and reads; `Err` on a transport error or after [`PATIENCE`].
pub async fn try_send(
    client: Client<HttpConnector, Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> Result<Answer, String> {
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| format!("{e:?}"))?;
        let (head, body) = response.into_parts();
        let collected = body.collect().await.map_err(|e| format!("{e:?}"))?;
        let trailers = collected.trailers().cloned();
        Ok(Answer {
            status: head.status,
            headers: head.headers,
            body: collected.to_bytes(),
            trailers,
            version: head.version,
        })
    };
    tokio::time::timeout(PATIENCE, exchange)
        .await
        .map_err(|_| "no answer in time".to_string())?
}

/// Polls `check` every 20 ms until it returns `Some`, failing the test after [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A proxy with `limits` (a YAML flow mapping's inside) routing everything to `upstream`.
pub async fn proxy_with_limits(upstream: &inventory::Server, limits: &str) -> Harness {
    let yaml = format!(
        "limits: {{{limits}}}\n{}",
        config(
            &format!("  inventory: {{endpoints: [{}]}}\n", upstream.addr),
            "  - {match: {path_prefix: /}, upstream: inventory}\n",
        )
    );
    Harness::start(&yaml).await
}

/// A config with one listener on port 0 and the given upstreams and routes (YAML fragments,
/// indented as under the top level).
pub fn config(upstreams: &str, routes: &str) -> String {
    format!(
        "service: test\nlisteners:\n  - address: 127.0.0.1:0\nupstreams:\n{upstreams}\nroutes:\n{routes}\n"
    )
}
