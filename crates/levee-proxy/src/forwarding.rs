//! What changes in the headers as a message crosses the proxy (RFC 9110 §7.6): hop-by-hop
//! headers stay on their hop, the upstream learns who the client was, and the `Host` the
//! client asked for is kept for HTTP/1.1 upstreams.
//!
//! Decisions: protocol upgrades (WebSocket, `CONNECT`) are not proxied: `Upgrade` is a
//! hop-by-hop header and is dropped, so the upstream answers the plain request. `TE: trailers`
//! is kept (gRPC needs it). `Expect` is answered by Levee itself and not forwarded.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Uri, Version};
use levee_http::headers::name;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};

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

/// The index in [`HOP_BY_HOP`] of a hop-by-hop name, [`TE_INDEX`] for `te`.
fn hop_by_hop_index(name: &str) -> Option<u32> {
    Some(match name {
        "connection" => 0,
        "keep-alive" => 1,
        "proxy-connection" => 2,
        "proxy-authenticate" => 3,
        "proxy-authorization" => 4,
        "transfer-encoding" => 5,
        "upgrade" => 6,
        "expect" => 7,
        "te" => TE_INDEX,
        _ => return None,
    })
}

const TE_INDEX: u32 = 8;

/// Whether a `Connection` token is one of [`HOP_BY_HOP`]'s names (any case), removed anyway.
fn is_fixed_name(token: &str) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|fixed| fixed.as_str().eq_ignore_ascii_case(token))
}

/// The tokens of `Connection` values, trimmed.
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// Removes hop-by-hop headers, including those the `Connection` header names. `TE` is kept
/// only as `trailers`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names says which of these are present (usually none, or only a
    // response's `connection: keep-alive`), so only those are removed: each removal hashes.
    let mut present = 0u32;
    for name in headers.keys() {
        if let Some(i) = hop_by_hop_index(name.as_str()) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    if present & 1 != 0 {
        // Names the `Connection` header lists beyond the fixed ones (rare: usually it says
        // `keep-alive`) are removed too; only then are they collected.
        if !connection_tokens(headers).all(|t| t.is_empty() || is_fixed_name(t)) {
            let named: Vec<HeaderName> = connection_tokens(headers)
                .filter(|token| !is_fixed_name(token))
                .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
                .collect();
            for name in &named {
                headers.remove(name);
            }
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
    if present & (1 << TE_INDEX) == 0 {
        return;
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

/// The fields an upstream request may get beyond the inbound ones: `host`,
/// `x-forwarded-for`, `x-forwarded-proto`, the deadline's two and `traceparent`.
const ADDED_FIELDS: usize = 6;

/// Prepares a copy of the inbound headers for the upstream: hop-by-hop headers removed,
/// `X-Forwarded-For`/`-Proto` set, and `Host` kept for HTTP/1.1 (taken from the inbound
/// `:authority` when the client spoke HTTP/2) or removed for HTTP/2, whose `:authority` is
/// the endpoint. `carries_forwarded_for`: whether `inbound` holds an `X-Forwarded-For` to
/// append to (known from one pass over its names, so not looked up when absent).
pub fn upstream_headers(
    inbound: &HeaderMap,
    inbound_uri: &Uri,
    upstream_version: Version,
    client: Option<SocketAddr>,
    tls: bool,
    carries_forwarded_for: bool,
) -> HeaderMap {
    // A new map with room for the fields added on the way (forwarding, deadline, trace), not
    // a clone: a clone's entries hold exactly the inbound fields, and `HeaderMap::reserve`
    // grows them only along with the index table, so each added field could reallocate them
    // (a copy into new, cold memory). Forcing the table to grow would compound request after
    // request, as maps are reused.
    let mut headers = HeaderMap::with_capacity(inbound.keys_len() + ADDED_FIELDS);
    for (name, value) in inbound {
        headers.append(name.clone(), value.clone());
    }
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
        // The address is written into a stack buffer (an IPv6 address is at most 45
        // characters): the header value's copy is the only allocation.
        let mut ip = [0u8; 64];
        let len = write_ip(&mut ip, addr.ip());
        let ip = &ip[..len];
        let previous = if carries_forwarded_for {
            headers.get(&name::X_FORWARDED_FOR)
        } else {
            None
        };
        let value = match previous {
            Some(previous) if previous.to_str().is_ok() => {
                let previous = previous.as_bytes();
                let mut joined = Vec::with_capacity(previous.len() + 2 + ip.len());
                joined.extend_from_slice(previous);
                joined.extend_from_slice(b", ");
                joined.extend_from_slice(ip);
                HeaderValue::from_maybe_shared(bytes::Bytes::from(joined))
            }
            _ => HeaderValue::from_bytes(ip),
        };
        if let Ok(value) = value {
            headers.insert(name::X_FORWARDED_FOR, value);
        }
    }
    headers.insert(
        name::X_FORWARDED_PROTO,
        HeaderValue::from_static(if tls { "https" } else { "http" }),
    );
    headers
}

/// `ip` as text into `out`; returns the length. IPv4 (the usual case) is written digit by
/// digit, which costs a fraction of `Display`'s formatting machinery.
fn write_ip(out: &mut [u8; 64], ip: IpAddr) -> usize {
    match ip {
        IpAddr::V4(v4) => {
            let mut len = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out[len] = b'.';
                    len += 1;
                }
                if octet >= 100 {
                    out[len] = b'0' + octet / 100;
                    len += 1;
                }
                if octet >= 10 {
                    out[len] = b'0' + octet / 10 % 10;
                    len += 1;
                }
                out[len] = b'0' + octet % 10;
                len += 1;
            }
            len
        }
        IpAddr::V6(_) => {
            let mut cursor = std::io::Cursor::new(&mut out[..]);
            let _ = write!(cursor, "{ip}");
            usize::try_from(cursor.position()).unwrap_or(0)
        }
    }
}

/// The upstream URI: the inbound path and query, shared with the inbound URI rather than
/// parsed again.
///
/// An HTTP/1.1 upstream gets the origin form (`/path?query`) its request line carries: the
/// endpoint is chosen by the authority given to the client beside the request, and building
/// the absolute form only to take it apart again in the pool cost a URI's worth of work per
/// request. HTTP/2 gets the absolute form, whose authority becomes `:authority`.
pub fn upstream_uri(
    inbound: &Uri,
    authority: &http::uri::Authority,
    version: Version,
) -> Result<Uri, http::Error> {
    let path_and_query = inbound
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    if version < Version::HTTP_2 {
        return Ok(Uri::from(path_and_query));
    }
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(http::uri::Scheme::HTTP);
    parts.authority = Some(authority.clone());
    parts.path_and_query = Some(path_and_query);
    Ok(Uri::from_parts(parts)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_inbound_value_is_copied_with_room_for_the_added_fields() {
        let mut inbound = HeaderMap::new();
        inbound.append("x-multi", HeaderValue::from_static("1"));
        inbound.append("x-multi", HeaderValue::from_static("2"));
        inbound.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        let uri: Uri = "/a".parse().expect("a valid target");
        let out = upstream_headers(&inbound, &uri, Version::HTTP_11, None, false, false);
        let multi: Vec<_> = out.get_all("x-multi").iter().collect();
        assert_eq!(multi, ["1", "2"]);
        assert_eq!(out[header::ACCEPT], "*/*");
        assert_eq!(out[name::X_FORWARDED_PROTO], "http");
        assert!(out.capacity() >= inbound.keys_len() + ADDED_FIELDS);
    }

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
    fn connection_tokens_in_any_case_and_a_named_te_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("Keep-Alive, X-Private, te"),
        );
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["x-kept"], "yes");
        let mut plain = HeaderMap::new();
        plain.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut plain);
        assert_eq!(plain.len(), 1);
    }

    #[test]
    fn a_connection_header_of_fixed_names_only_goes_with_them() {
        for value in [
            "keep-alive",
            "Keep-Alive, Upgrade",
            " keep-alive ,",
            "close",
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::CONNECTION, HeaderValue::from_static(value));
            h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
            h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
            h.insert("close", HeaderValue::from_static("a field named close"));
            h.insert("x-kept", HeaderValue::from_static("yes"));
            strip_hop_by_hop(&mut h);
            let mut names: Vec<&str> = h.keys().map(|n| n.as_str()).collect();
            names.sort_unstable();
            // `close` is listed only by the last value, and goes only then.
            let expected = if value == "close" {
                vec!["x-kept"]
            } else {
                vec!["close", "x-kept"]
            };
            assert_eq!(names, expected, "{value}");
        }
    }

    #[test]
    fn forwarded_for_appends_and_host_follows_the_version() {
        let mut inbound = HeaderMap::new();
        inbound.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        let uri: Uri = "http://shop.example:8080/items?id=1".parse().expect("uri");
        let client: SocketAddr = "127.0.0.9:5000".parse().expect("addr");
        let h1 = upstream_headers(&inbound, &uri, Version::HTTP_11, Some(client), false, true);
        assert_eq!(h1["x-forwarded-for"], "10.0.0.1, 127.0.0.9");
        assert_eq!(h1[header::HOST], "shop.example:8080");
        assert_eq!(h1["x-forwarded-proto"], "http");
        for ip in [
            "0.0.0.0",
            "10.200.3.45",
            "255.255.255.255",
            "::1",
            "fe80::1:2",
        ] {
            let addr = SocketAddr::new(ip.parse().expect("ip"), 1);
            let h = upstream_headers(
                &HeaderMap::new(),
                &uri,
                Version::HTTP_11,
                Some(addr),
                false,
                false,
            );
            assert_eq!(h["x-forwarded-for"], ip);
        }
        let h2 = upstream_headers(&inbound, &uri, Version::HTTP_2, None, true, true);
        assert!(h2.get(header::HOST).is_none());
        let authority: http::uri::Authority = "127.0.0.1:7001".parse().expect("authority");
        assert_eq!(
            upstream_uri(&uri, &authority, Version::HTTP_2)
                .expect("uri")
                .to_string(),
            "http://127.0.0.1:7001/items?id=1"
        );
        let origin_form = upstream_uri(&uri, &authority, Version::HTTP_11).expect("uri");
        assert_eq!(origin_form.to_string(), "/items?id=1");
        assert!(origin_form.authority().is_none());
    }
}
