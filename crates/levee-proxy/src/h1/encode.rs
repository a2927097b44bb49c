//! Writing a request to an upstream as HTTP/1.1: the head from `http` types, and how its body
//! is framed. No I/O: `connection` writes the bytes.

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Method, Uri};

/// How a request's body is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    None,
    /// `Content-Length` (from the request's header, or added from the body's exact size).
    Length(u64),
    /// `Transfer-Encoding: chunked`: a streamed body of unknown size.
    Chunked,
    /// Neither: the body runs until the connection closes (only an answer to an HTTP/1.0
    /// client whose body's size is unknown).
    UntilClose,
}

/// The framing of a request's body, as hyper's client chooses it: the request's own
/// `Content-Length` if it has one; none for a body known to be empty; the size of a body
/// that knows it; chunked otherwise. `Transfer-Encoding` never comes from the inbound request
/// (it is hop-by-hop, see `forwarding`).
pub fn body_framing(headers: &HeaderMap, empty: bool, exact_size: Option<u64>) -> BodyFraming {
    if let Some(length) = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
    {
        return BodyFraming::Length(length);
    }
    match (empty, exact_size) {
        (true, _) => BodyFraming::None,
        (false, Some(n)) => BodyFraming::Length(n),
        (false, None) => BodyFraming::Chunked,
    }
}

/// The request line and header section of a request, ready to write. `uri` is in origin form
/// (`forwarding::upstream_uri`); a body framed by `framing` gets the header that says so
/// unless the request carries it already. A `POST`, `PUT` or `PATCH` with no body says
/// `Content-Length: 0`, as hyper does, so the upstream does not wait for one.
pub fn write_head(method: &Method, uri: &Uri, headers: &HeaderMap, framing: BodyFraming) -> Bytes {
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut size = method.as_str().len() + target.len() + 40;
    let mut has_length = false;
    for (name, value) in headers {
        size += name.as_str().len() + value.len() + 4;
        has_length |= name == CONTENT_LENGTH;
    }
    let mut out = BytesMut::with_capacity(size);
    out.put_slice(method.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(target.as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        if name == TRANSFER_ENCODING {
            continue;
        }
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    match framing {
        BodyFraming::Length(n) if !has_length => {
            // Only a body whose request had no `Content-Length` of its own (rare).
            out.put_slice(b"content-length: ");
            out.put_slice(levee_http::decimal::digits(n, &mut [0; 20]));
            out.put_slice(b"\r\n");
        }
        BodyFraming::Chunked => out.put_slice(b"transfer-encoding: chunked\r\n"),
        BodyFraming::None
            if !has_length && matches!(*method, Method::POST | Method::PUT | Method::PATCH) =>
        {
            out.put_slice(b"content-length: 0\r\n");
        }
        _ => {}
    }
    out.put_slice(b"\r\n");
    out.freeze()
}

/// The line that starts a chunk of `len` bytes.
pub fn chunk_size_line(len: usize) -> Bytes {
    Bytes::from(format!("{len:x}\r\n"))
}

/// The CRLF that ends a chunk's data.
pub const CHUNK_END: &[u8] = b"\r\n";

/// The last chunk and the trailer section, with `trailers` if there are any.
pub fn last_chunk(trailers: Option<&HeaderMap>) -> Bytes {
    let mut out = BytesMut::from(&b"0\r\n"[..]);
    for (name, value) in trailers.into_iter().flatten() {
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
    out.freeze()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn the_head_carries_the_fields_and_the_framing() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("up:80"));
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        let uri: Uri = "/items/1?x=1".parse().unwrap();
        let head = write_head(&Method::GET, &uri, &headers, BodyFraming::None);
        assert_eq!(
            &head[..],
            b"GET /items/1?x=1 HTTP/1.1\r\nhost: up:80\r\nx-a: 1\r\nx-a: 2\r\n\r\n"
        );
        let head = write_head(&Method::POST, &uri, &headers, BodyFraming::Length(12));
        assert!(head.ends_with(b"content-length: 12\r\n\r\n"), "{head:?}");
        let head = write_head(&Method::POST, &uri, &headers, BodyFraming::Chunked);
        assert!(
            head.ends_with(b"transfer-encoding: chunked\r\n\r\n"),
            "{head:?}"
        );
        let head = write_head(&Method::PUT, &uri, &headers, BodyFraming::None);
        assert!(head.ends_with(b"content-length: 0\r\n\r\n"), "{head:?}");
    }

    #[test]
    fn the_requests_own_length_wins_and_is_not_repeated() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("3"));
        assert_eq!(body_framing(&headers, false, None), BodyFraming::Length(3));
        let head = write_head(
            &Method::POST,
            &"/".parse().unwrap(),
            &headers,
            BodyFraming::Length(3),
        );
        assert_eq!(&head[..], b"POST / HTTP/1.1\r\ncontent-length: 3\r\n\r\n");
        let none = HeaderMap::new();
        assert_eq!(body_framing(&none, true, Some(0)), BodyFraming::None);
        assert_eq!(body_framing(&none, false, Some(7)), BodyFraming::Length(7));
        assert_eq!(body_framing(&none, false, None), BodyFraming::Chunked);
    }

    #[test]
    fn chunks_are_framed() {
        assert_eq!(&chunk_size_line(255)[..], b"ff\r\n");
        assert_eq!(&last_chunk(None)[..], b"0\r\n\r\n");
        let mut trailers = HeaderMap::new();
        trailers.insert("x-sum", HeaderValue::from_static("9"));
        assert_eq!(&last_chunk(Some(&trailers))[..], b"0\r\nx-sum: 9\r\n\r\n");
    }
}
