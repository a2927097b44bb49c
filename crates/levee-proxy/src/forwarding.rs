//! What changes in the headers as a message crosses the proxy (RFC 9110 §7.6): hop-by-hop
//! headers stay on their hop, the upstream learns who the client was, and the `Host` the
//! client asked for is kept for HTTP/1.1 upstreams.
//!
//! Decisions: protocol upgrades (WebSocket, `CONNECT`) are not proxied: `Upgrade` is a
//! hop-by-hop header and is dropped, so the upstream answers the plain request. `TE: trailers`
//! is kept (gRPC needs it). `Expect` is answered by Levee itself and not forwarded.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Uri, Version};
use std::net::SocketAddr;

/// Headers that belong to one hop only.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::EXPECT,
];

/// Removes hop-by-hop headers, including those the `Connection` header names. `TE` is kept
/// only as `trailers`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    let keep_te = headers.get_all(header::TE).iter().any(|v| {
        v.to_str().is_ok_and(|t| {
            t.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        })
    });
    headers.remove(header::TE);
    if keep_te {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Prepares a copy of the inbound headers for the upstream: hop-by-hop headers removed,
/// `X-Forwarded-For`/`-Proto` set, and `Host` kept for HTTP/1.1 (taken from the inbound
/// `:authority` when the client spoke HTTP/2) or removed for HTTP/2, whose `:authority` is
/// the endpoint.
pub fn upstream_headers(
    inbound: &HeaderMap,
    inbound_uri: &Uri,
    upstream_version: Version,
    client: Option<SocketAddr>,
    tls: bool,
) -> HeaderMap {
    let mut headers = inbound.clone();
    strip_hop_by_hop(&mut headers);
    if upstream_version == Version::HTTP_2 {
        headers.remove(header::HOST);
    } else if !headers.contains_key(header::HOST) {
        if let Some(value) = inbound_uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            headers.insert(header::HOST, value);
        }
    }
    if let Some(addr) = client {
        let xff = HeaderName::from_static("x-forwarded-for");
        let ip = addr.ip().to_string();
        let value = match headers.get(&xff).and_then(|v| v.to_str().ok()) {
            Some(previous) => format!("{previous}, {ip}"),
            None => ip,
        };
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(xff, value);
        }
    }
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(if tls { "https" } else { "http" }),
    );
    headers
}

/// The upstream URI: the endpoint's authority with the inbound path and query.
pub fn upstream_uri(inbound: &Uri, authority: &http::uri::Authority) -> Result<Uri, http::Error> {
    let path = inbound.path_and_query().map_or("/", |p| p.as_str());
    Uri::builder()
        .scheme("http")
        .authority(authority.clone())
        .path_and_query(path)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_stay_behind_but_te_trailers_goes_on() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("gzip, trailers"));
        h.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        assert!(h.get("x-secret").is_none());
        assert!(h.get(header::CONNECTION).is_none());
        assert!(h.get("keep-alive").is_none());
        assert_eq!(h[header::TE], "trailers");
        assert_eq!(h["x-kept"], "yes");
    }

    #[test]
    fn forwarded_for_appends_and_host_follows_the_version() {
        let mut inbound = HeaderMap::new();
        inbound.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        let uri: Uri = "http://shop.example:8080/items?id=1".parse().expect("uri");
        let client: SocketAddr = "127.0.0.9:5000".parse().expect("addr");
        let h1 = upstream_headers(&inbound, &uri, Version::HTTP_11, Some(client), false);
        assert_eq!(h1["x-forwarded-for"], "10.0.0.1, 127.0.0.9");
        assert_eq!(h1[header::HOST], "shop.example:8080");
        assert_eq!(h1["x-forwarded-proto"], "http");
        let h2 = upstream_headers(&inbound, &uri, Version::HTTP_2, None, true);
        assert!(h2.get(header::HOST).is_none());
        let authority: http::uri::Authority = "127.0.0.1:7001".parse().expect("authority");
        assert_eq!(
            upstream_uri(&uri, &authority).expect("uri").to_string(),
            "http://127.0.0.1:7001/items?id=1"
        );
    }
}
