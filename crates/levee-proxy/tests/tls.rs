//! TLS listeners negotiate HTTP/2 or HTTP/1.1 by ALPN. The certificates in `fixtures/` are a
//! test CA and a `localhost` / `127.0.0.1` server certificate signed by it (valid for a
//! century; never use them for anything else).

mod support;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::path::PathBuf;
use std::sync::Arc;
use support::*;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

async fn connect(addr: std::net::SocketAddr, alpn: &[u8]) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(fixture("ca.pem")).expect("ca.pem") {
        roots.add(cert.expect("certificate")).expect("trusted");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("handshake")
}

async fn tls_proxy(a: &inventory::Server) -> Harness {
    let yaml = format!(
        "service: tls\nlisteners:\n  - address: 127.0.0.1:0\n    tls: {{cert: '{}', key: '{}'}}\nupstreams:\n  inventory: {{endpoints: [{}]}}\nroutes:\n  - {{match: {{path_prefix: /}}, upstream: inventory}}\n",
        fixture("server.pem"),
        fixture("server.key"),
        a.addr
    );
    Harness::start(&yaml).await
}

fn item_request() -> Request<Empty<Bytes>> {
    Request::get("https://localhost/items/4")
        .body(Empty::new())
        .expect("request")
}

#[tokio::test]
async fn alpn_h2_gets_http2_over_tls() {
    let a = inventory("inventory").await;
    let proxy = tls_proxy(&a).await;
    let stream = connect(proxy.addr, b"h2").await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    let response = sender.send_request(item_request()).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("\"id\":\"4\""));
}

#[tokio::test]
async fn alpn_http11_gets_http1_over_tls() {
    let a = inventory("inventory").await;
    let proxy = tls_proxy(&a).await;
    let stream = connect(proxy.addr, b"http/1.1").await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("h1 handshake");
    tokio::spawn(connection);
    let mut request = item_request();
    request
        .headers_mut()
        .insert("host", "localhost".parse().expect("host"));
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_11);
}
