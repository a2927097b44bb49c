//! Reading a client's HTTP/1.1 request head: httparse into `http` types, the target and the
//! header values sliced from the read buffer without a copy, and how the body is framed
//! (RFC 9112 §6). No I/O: `server` feeds the bytes.
//!
//! What is refused, and how (hyper's answers, which Levee gave before it read requests
//! itself): a head larger than the limit or with more than 100 fields, `431`; a target longer
//! than 65,534 bytes, `414`; a version other than HTTP/1.0 or 1.1, `505`; anything malformed,
//! `400`. The framing follows RFC 9112 §6.3 for requests:
//! - a `Transfer-Encoding` whose final coding is `chunked` frames the body; any other final
//!   coding, or `Transfer-Encoding` in an HTTP/1.0 request, is refused with `400`;
//! - with `Transfer-Encoding`, `Content-Length` is removed and the connection is closed after
//!   the answer (such a request is how requests are smuggled; RFC 9112 §6.1 allows either);
//! - every `Content-Length` field must be one number, the same in each (a list such as `5, 5`
//!   is refused, as hyper did); with neither header there is no body.

use super::decode::Framing;
use super::fields::{self, Present};
use bytes::BytesMut;
use http::header::{CONTENT_LENGTH, EXPECT, TE};
use http::request::Parts;
use http::{HeaderMap, Method, Request, StatusCode, Uri, Version};
use std::mem::MaybeUninit;

/// At most this many header fields in a request head (hyper's default too).
pub const MAX_HEADERS: usize = 100;

/// The longest request target `http::Uri` takes.
const MAX_TARGET: usize = 65_534;

/// A request head that was read whole.
#[derive(Debug)]
pub struct RequestHead {
    /// Method, target, version and headers.
    pub parts: Parts,
    /// How the body ends (never [`Framing::UntilClose`]).
    pub framing: Framing,
    /// Whether the client keeps the connection for another request after this one.
    pub keep_alive: bool,
    /// `Expect: 100-continue` (HTTP/1.1): the client waits for `100 Continue` before the body.
    pub expects_continue: bool,
    /// `TE: trailers`: the client takes trailer fields in a chunked answer.
    pub accepts_trailers: bool,
}

/// Parses the request head at the start of `buffer`, split off it when whole (its fields into
/// `spare`, an emptied map to reuse); `Ok(None)` until it is. `max_head_bytes` bounds the
/// head. The error is the status to answer with before closing the connection.
pub fn parse_request_head(
    buffer: &mut BytesMut,
    max_head_bytes: usize,
    spare: &mut HeaderMap,
) -> Result<Option<RequestHead>, StatusCode> {
    let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let base = buffer.as_ptr() as usize;
    let parsed = httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut request,
        buffer,
        &mut storage,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) if len <= max_head_bytes => len,
        Ok(httparse::Status::Complete(_)) => {
            return Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        }
        Ok(httparse::Status::Partial) if buffer.len() < max_head_bytes => return Ok(None),
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
            return Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        }
        Err(httparse::Error::Version) if names_another_version(buffer) => {
            return Err(StatusCode::HTTP_VERSION_NOT_SUPPORTED)
        }
        Err(_) => return Err(StatusCode::BAD_REQUEST),
    };
    let (Some(method), Some(target), Some(minor)) = (request.method, request.path, request.version)
    else {
        return Err(StatusCode::BAD_REQUEST);
    };
    if target.len() > MAX_TARGET {
        return Err(StatusCode::URI_TOO_LONG);
    }
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| StatusCode::BAD_REQUEST)?;
    let version = if minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let (target_at, target_len) = fields::span(base, target.as_bytes());
    let fields = fields::spans(base, request.headers);
    let head = buffer.split_to(len).freeze();
    let uri = Uri::from_maybe_shared(head.slice(target_at..target_at + target_len))
        .map_err(|_| StatusCode::BAD_REQUEST)?;
    let (mut headers, present) = fields::header_map(&head, &fields, std::mem::take(spare))
        .map_err(|_| StatusCode::BAD_REQUEST)?;
    let (framing, framed_cleanly) = framing(version, &headers, present)?;
    if present.length && framing == Framing::Chunked {
        // The chunks frame the body: a length beside them must not reach the pipeline, which
        // would take it for the body's size.
        headers.remove(CONTENT_LENGTH);
    }
    let keep_alive = framed_cleanly && fields::persists(version, &headers, present);
    let expects_continue = present.expect
        && version == Version::HTTP_11
        && headers
            .get(EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let accepts_trailers = present.te && lists_trailers(&headers);
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    let (parts, ()) = request.into_parts();
    Ok(Some(RequestHead {
        parts,
        framing,
        keep_alive,
        expects_continue,
        accepts_trailers,
    }))
}

/// The body's framing, and whether it was unambiguous (see the module's doc).
fn framing(
    version: Version,
    headers: &HeaderMap,
    present: Present,
) -> Result<(Framing, bool), StatusCode> {
    if present.transfer {
        if version == Version::HTTP_10 || !fields::final_coding_is_chunked(headers) {
            return Err(StatusCode::BAD_REQUEST);
        }
        return Ok((Framing::Chunked, !present.length));
    }
    if !present.length {
        return Ok((Framing::Empty, true));
    }
    Ok(
        match fields::content_length(headers, fields::Lists::Refused)
            .map_err(|_| StatusCode::BAD_REQUEST)?
        {
            Some(0) | None => (Framing::Empty, true),
            Some(n) => (Framing::Length(n), true),
        },
    )
}

/// Whether a request line httparse refused for its version is well formed but names a version
/// other than HTTP/1.x (`505`); a line with more or fewer parts is malformed (`400`: hyper
/// answered `505` to `GET /a b HTTP/1.1`).
fn names_another_version(buffer: &[u8]) -> bool {
    let line = buffer.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    let version = (parts.next(), parts.next(), parts.next(), parts.next());
    matches!(version, (Some(_), Some(_), Some(v), None)
        if v.len() == 8 && v.starts_with(b"HTTP/") && v[5].is_ascii_digit() && v[6] == b'.' && v[7].is_ascii_digit())
}

/// Whether a `TE` header lists `trailers`.
fn lists_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Option<RequestHead>, StatusCode> {
        parse_request_head(&mut BytesMut::from(raw), 8 * 1024, &mut HeaderMap::new())
    }

    fn head(raw: &str) -> RequestHead {
        parse(raw).unwrap().expect("a whole head")
    }

    #[test]
    fn a_head_is_split_off_with_its_target_fields_and_framing() {
        let mut buffer = BytesMut::from(
            "\r\nPOST /items?id=7 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nX-A: 1\r\nx-a: 2\r\n\r\nabcGET",
        );
        let head = parse_request_head(&mut buffer, 8 * 1024, &mut HeaderMap::new())
            .unwrap()
            .unwrap();
        assert_eq!(head.parts.method, Method::POST);
        assert_eq!(head.parts.uri.path(), "/items");
        assert_eq!(head.parts.uri.query(), Some("id=7"));
        assert_eq!(head.parts.version, Version::HTTP_11);
        assert_eq!(head.parts.headers.get_all("x-a").iter().count(), 2);
        assert_eq!(head.framing, Framing::Length(3));
        assert!(head.keep_alive);
        assert!(!head.expects_continue && !head.accepts_trailers);
        assert_eq!(&buffer[..], b"abcGET", "the body and what follows stay");
    }

    #[test]
    fn a_partial_head_waits_and_a_head_over_the_limit_is_431() {
        assert!(parse("GET / HTTP/1.1\r\nHost: a\r\n").unwrap().is_none());
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000));
        assert_eq!(
            parse(&long).unwrap_err(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        let partial = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(9000));
        assert_eq!(
            parse(&partial).unwrap_err(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: 1\r\n")).collect();
        assert_eq!(
            parse(&format!("GET / HTTP/1.1\r\n{many}\r\n")).unwrap_err(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
    }

    #[test]
    fn malformed_heads_get_their_status() {
        for (raw, status) in [
            (
                "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
                StatusCode::BAD_REQUEST,
            ),
            ("GET /a b HTTP/1.1\r\n\r\n", StatusCode::BAD_REQUEST),
            ("G(T / HTTP/1.1\r\n\r\n", StatusCode::BAD_REQUEST),
            (
                "GET / HTTP/2.0\r\n\r\n",
                StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            ),
            (
                "GET / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n",
                StatusCode::BAD_REQUEST,
            ),
            (
                "GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                StatusCode::BAD_REQUEST,
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
                StatusCode::BAD_REQUEST,
            ),
            (
                "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                StatusCode::BAD_REQUEST,
            ),
        ] {
            assert_eq!(parse(raw).unwrap_err(), status, "{raw:?}");
        }
        let target = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_TARGET));
        assert_eq!(
            parse_request_head(
                &mut BytesMut::from(target.as_str()),
                128 * 1024,
                &mut HeaderMap::new()
            )
            .unwrap_err(),
            StatusCode::URI_TOO_LONG
        );
    }

    #[test]
    fn framing_and_reuse_follow_rfc_9112() {
        let h = head("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::Chunked, true));
        let h = head("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::Chunked, false));
        assert!(
            !h.parts.headers.contains_key(CONTENT_LENGTH),
            "the length is dropped"
        );
        let h = head("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(h.framing, Framing::Empty);
        let h = head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(!h.keep_alive);
        let h = head("GET / HTTP/1.0\r\n\r\n");
        assert!(!h.keep_alive);
        assert_eq!(h.parts.version, Version::HTTP_10);
        let h = head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert!(h.keep_alive);
    }

    #[test]
    fn expect_continue_and_te_trailers_are_noted() {
        let h = head("PUT / HTTP/1.1\r\nExpect: 100-Continue\r\nTE: gzip, trailers\r\nContent-Length: 1\r\n\r\n");
        assert!(h.expects_continue && h.accepts_trailers);
        let h = head("PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
        assert!(!h.expects_continue, "HTTP/1.0 clients do not wait for 100");
    }

    #[test]
    fn absolute_and_asterisk_targets_parse() {
        let h = head("GET http://example.com/x HTTP/1.1\r\n\r\n");
        assert_eq!(h.parts.uri.host(), Some("example.com"));
        assert_eq!(head("OPTIONS * HTTP/1.1\r\n\r\n").parts.uri, "*");
    }
}
