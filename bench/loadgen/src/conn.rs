//! One keep-alive connection per worker, driven by hyper's low-level client (no pool, no
//! executor hand-off): the leanest way to put a request on the wire from Rust, so the generator
//! spends as little of its core as possible. HTTP/1.1 by default; HTTP/2 with prior knowledge
//! (h2c) on request, one stream in flight per connection either way.

use bytes::Bytes;
use http::header::{HOST, USER_AGENT};
use http::{Method, Request, Uri};
use http_body_util::BodyExt;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::time::Duration;
use tokio::net::TcpStream;

/// Where requests go.
#[derive(Clone, Debug)]
pub struct Target {
    /// `host:port` to connect to.
    pub addr: String,
    /// The path and query.
    pub path: String,
}

impl Target {
    /// Parses `http://host:port/path`.
    pub fn parse(url: &str) -> Result<Target, String> {
        let uri: Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("{url}: only http:// URLs"));
        }
        let addr = uri
            .authority()
            .ok_or_else(|| format!("{url}: no host"))?
            .to_string();
        let path = uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), ToString::to_string);
        Ok(Target { addr, path })
    }

    /// The same host with another path.
    pub fn with_path(&self, path: &str) -> Target {
        Target {
            addr: self.addr.clone(),
            path: path.to_string(),
        }
    }
}

/// A request body type every mode can use.
pub type Body = http_body_util::Full<Bytes>;

/// The protocol a connection speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 keep-alive.
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge (h2c).
    Http2,
}

/// An open connection's request half.
enum Sender {
    Http1(http1::SendRequest<Body>),
    Http2(http2::SendRequest<Body>),
}

/// An open connection.
pub struct Conn {
    sender: Sender,
}

/// How long one exchange may take before it counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

impl Conn {
    /// Connects to `addr` with TCP_NODELAY, speaking HTTP/1.1.
    pub async fn open(addr: &str) -> Result<Conn, String> {
        Conn::open_with(addr, Protocol::Http1).await
    }

    /// Connects to `addr` with TCP_NODELAY, speaking `protocol`.
    pub async fn open_with(addr: &str, protocol: Protocol) -> Result<Conn, String> {
        let stream = tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connect {addr}: timed out"))?
            .map_err(|e| format!("connect {addr}: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("nodelay: {e}"))?;
        let io = TokioIo::new(stream);
        let sender = match protocol {
            Protocol::Http1 => {
                let (sender, connection) = http1::handshake(io)
                    .await
                    .map_err(|e| format!("handshake {addr}: {e}"))?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                Sender::Http1(sender)
            }
            Protocol::Http2 => {
                let (sender, connection) = http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(|e| format!("h2 handshake {addr}: {e}"))?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                Sender::Http2(sender)
            }
        };
        Ok(Conn { sender })
    }

    /// Waits until the connection can take a request, then sends it.
    async fn send_request(
        &mut self,
        request: Request<Body>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, String> {
        match &mut self.sender {
            Sender::Http1(sender) => {
                sender.ready().await.map_err(|e| e.to_string())?;
                sender.send_request(request).await
            }
            Sender::Http2(sender) => {
                sender.ready().await.map_err(|e| e.to_string())?;
                sender.send_request(request).await
            }
        }
        .map_err(|e| e.to_string())
    }

    /// A request to `target`: origin-form with `host` over HTTP/1.1; over HTTP/2 the absolute
    /// URI, which hyper turns into the `:scheme` and `:authority` pseudo-headers.
    fn builder(&self, method: Method, target: &Target) -> http::request::Builder {
        let builder = Request::builder()
            .method(method)
            .header(USER_AGENT, "levee-bench-loadgen");
        match self.sender {
            Sender::Http1(_) => builder
                .uri(target.path.as_str())
                .header(HOST, target.addr.as_str()),
            Sender::Http2(_) => builder.uri(format!("http://{}{}", target.addr, target.path)),
        }
    }

    /// Sends one request and reads the whole response; the status and body.
    pub async fn send(
        &mut self,
        method: Method,
        target: &Target,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<(u16, Bytes), String> {
        let exchange = async {
            let mut builder = self.builder(method, target);
            for (name, value) in headers {
                builder = builder.header(*name, *value);
            }
            let request = builder.body(Body::new(body)).map_err(|e| e.to_string())?;
            let response = self.send_request(request).await?;
            let status = response.status().as_u16();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((status, bytes))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| "timed out".to_string())?
    }

    /// Sends a GET and returns the streaming response (for server-sent events).
    pub async fn stream(
        &mut self,
        target: &Target,
        headers: &[(&str, &str)],
    ) -> Result<hyper::Response<hyper::body::Incoming>, String> {
        let mut builder = self.builder(Method::GET, target);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Body::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        tokio::time::timeout(REQUEST_TIMEOUT, self.send_request(request))
            .await
            .map_err(|_| "timed out".to_string())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::service::service_fn;
    use hyper_util::server::conn::auto;
    use std::convert::Infallible;
    use tokio::net::TcpListener;

    /// A real server on a loopback port that answers with the request's version, method and
    /// body length: what the generator put on the wire.
    async fn describing_server() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let service =
                        service_fn(|request: Request<hyper::body::Incoming>| async move {
                            let line = format!("{:?} {}", request.version(), request.method());
                            let body = request.into_body().collect().await.unwrap().to_bytes();
                            let text = format!("{line} {}", body.len());
                            Ok::<_, Infallible>(hyper::Response::new(Body::new(Bytes::from(text))))
                        });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        addr
    }

    async fn exchange(protocol: Protocol, method: Method, body: &'static [u8]) -> (u16, Bytes) {
        let addr = describing_server().await;
        let target = Target::parse(&format!("http://{addr}/items/1")).unwrap();
        let mut conn = Conn::open_with(&addr, protocol).await.unwrap();
        conn.send(method, &target, &[], Bytes::from_static(body))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn http1_sends_a_get_over_http1() {
        let (status, body) = exchange(Protocol::Http1, Method::GET, b"").await;
        assert_eq!(status, 200);
        assert_eq!(body, "HTTP/1.1 GET 0");
    }

    #[tokio::test]
    async fn http2_sends_a_post_with_its_body_over_h2c() {
        let (status, body) = exchange(Protocol::Http2, Method::POST, &[b'x'; 1024]).await;
        assert_eq!(status, 200);
        assert_eq!(body, "HTTP/2.0 POST 1024");
    }
}
