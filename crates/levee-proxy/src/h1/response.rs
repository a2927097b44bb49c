//! Writing an answer to an HTTP/1.1 client: how its body is framed, and its head. No I/O:
//! `server` writes the bytes.
//!
//! Decisions (hyper's, which Levee's answers followed before it wrote them itself):
//! - **Framing**: no body for `HEAD`, 1xx, 204 and 304 (their headers pass as they are); the
//!   exact size of a body that knows it; else the answer's own `Content-Length` if it has one;
//!   for any other body chunked to an HTTP/1.1 client, and to an HTTP/1.0 client the body runs
//!   to the close. A `Transfer-Encoding` in the answer is never copied: Levee frames the body.
//! - **Version**: the status line says HTTP/1.0 to an HTTP/1.0 client, HTTP/1.1 otherwise.
//! - **Framing fields** are Levee's: `Content-Length` says the length written (an answer's own
//!   is kept only where no body is written) and `Transfer-Encoding` is never copied.
//! - **Connection**: `connection: close` when the connection closes after this answer, and
//!   `connection: keep-alive` to an HTTP/1.0 client that keeps it.
//! - **Date**: added when the answer has none, from a clock read at most once a second.

use super::encode::BodyFraming;
use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::{HeaderMap, StatusCode, Version};
use std::cell::RefCell;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// How the body of an answer with `status` and `headers` to a `head_request` (or not) from an
/// HTTP `version` client is framed, given the size of the body when it knows it exactly.
pub fn framing(
    head_request: bool,
    version: Version,
    status: StatusCode,
    headers: &HeaderMap,
    exact_size: Option<u64>,
) -> BodyFraming {
    if head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return BodyFraming::None;
    }
    // A body that knows its size frames itself (an upstream's `Content-Length` body says the
    // same); the answer's own `Content-Length` is looked up only for one that does not.
    let declared = || {
        headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
    };
    match exact_size.or_else(declared) {
        Some(n) => BodyFraming::Length(n),
        None if version == Version::HTTP_10 => BodyFraming::UntilClose,
        None => BodyFraming::Chunked,
    }
}

/// The status line and header section of an answer, ready to write, built in `buffer` (reused
/// from answer to answer on a connection). `close` says whether the connection closes after
/// it; so does the answer's own `Connection: close` (Levee's drain), which the second value
/// reports. Any other `Connection` field of the answer is not copied.
pub fn write_head(
    buffer: &mut BytesMut,
    version: Version,
    status: StatusCode,
    headers: &HeaderMap,
    framing: BodyFraming,
    close: bool,
) -> (Bytes, bool) {
    let mut size = 128;
    let mut has_date = false;
    let mut asks_close = false;
    for (name, value) in headers {
        size += name.as_str().len() + value.len() + 4;
        has_date |= name == DATE;
        if name == CONNECTION {
            asks_close |= value
                .to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")));
        }
    }
    let close = close || asks_close;
    buffer.reserve(size);
    buffer.put_slice(if version == Version::HTTP_10 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    buffer.put_slice(status.as_str().as_bytes());
    buffer.put_u8(b' ');
    buffer.put_slice(status.canonical_reason().unwrap_or("").as_bytes());
    buffer.put_slice(b"\r\n");
    // The framing fields are Levee's: the body is written as `framing` says, so an answer's own
    // `Content-Length` is replaced by the length written (kept only where no body is written:
    // `HEAD`, 204, 304).
    let own_length = framing != BodyFraming::None;
    for (name, value) in headers {
        if name == TRANSFER_ENCODING || name == CONNECTION || (own_length && name == CONTENT_LENGTH)
        {
            continue;
        }
        buffer.put_slice(name.as_str().as_bytes());
        buffer.put_slice(b": ");
        buffer.put_slice(value.as_bytes());
        buffer.put_slice(b"\r\n");
    }
    match framing {
        BodyFraming::Length(n) => {
            buffer.put_slice(b"content-length: ");
            buffer.put_slice(levee_http::decimal::digits(n, &mut [0; 20]));
            buffer.put_slice(b"\r\n");
        }
        BodyFraming::Chunked => buffer.put_slice(b"transfer-encoding: chunked\r\n"),
        _ => {}
    }
    if close {
        buffer.put_slice(b"connection: close\r\n");
    } else if version == Version::HTTP_10 {
        buffer.put_slice(b"connection: keep-alive\r\n");
    }
    if !has_date {
        buffer.put_slice(b"date: ");
        with_date(|date| buffer.put_slice(date));
        buffer.put_slice(b"\r\n");
    }
    buffer.put_slice(b"\r\n");
    (buffer.split().freeze(), asks_close)
}

/// The answer to a request Levee could not read: `status`, no body, and the connection closes.
#[cold]
pub fn refusal(status: StatusCode, version: Version) -> Bytes {
    let (head, _) = write_head(
        &mut BytesMut::new(),
        version,
        status,
        &HeaderMap::new(),
        BodyFraming::Length(0),
        true,
    );
    head
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`) and when it goes stale.
struct CachedDate {
    text: [u8; 29],
    stale_at: Option<Instant>,
}

thread_local! {
    static HTTP_DATE: RefCell<CachedDate> = const {
        RefCell::new(CachedDate { text: [b' '; 29], stale_at: None })
    };
}

/// Calls `f` with the current HTTP date: the wall clock is read and formatted at most once a
/// second per thread; in between, the poll's reading of the monotonic clock says whether the
/// second has turned.
fn with_date(f: impl FnOnce(&[u8])) {
    HTTP_DATE.with(|cell| {
        let mut date = cell.borrow_mut();
        let now = crate::clock::now();
        if date.stale_at.is_none_or(|stale_at| now >= stale_at) {
            let wall = SystemTime::now();
            let text = httpdate::fmt_http_date(wall);
            if text.len() == date.text.len() {
                date.text.copy_from_slice(text.as_bytes());
            }
            let into_second = wall
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            date.stale_at =
                Some(now + Duration::from_nanos(u64::from(1_000_000_000 - into_second)));
        }
        f(&date.text);
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn text(bytes: &Bytes) -> &str {
        std::str::from_utf8(bytes).unwrap()
    }

    #[test]
    fn framing_follows_the_answer_and_the_client() {
        let none = HeaderMap::new();
        let mut declared = HeaderMap::new();
        declared.insert(CONTENT_LENGTH, HeaderValue::from_static("12"));
        let ok = StatusCode::OK;
        let v11 = Version::HTTP_11;
        assert_eq!(framing(true, v11, ok, &declared, None), BodyFraming::None);
        for status in [StatusCode::NO_CONTENT, StatusCode::NOT_MODIFIED] {
            assert_eq!(
                framing(false, v11, status, &none, Some(3)),
                BodyFraming::None
            );
        }
        assert_eq!(
            framing(false, v11, ok, &declared, None),
            BodyFraming::Length(12)
        );
        assert_eq!(
            framing(false, v11, ok, &declared, Some(3)),
            BodyFraming::Length(3),
            "the body's own size is what is written"
        );
        assert_eq!(
            framing(false, v11, ok, &none, Some(3)),
            BodyFraming::Length(3)
        );
        assert_eq!(framing(false, v11, ok, &none, None), BodyFraming::Chunked);
        assert_eq!(
            framing(false, Version::HTTP_10, ok, &none, None),
            BodyFraming::UntilClose
        );
    }

    #[test]
    fn the_head_says_its_framing_connection_and_date() {
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_static("1"));
        headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("gzip"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("7"));
        let mut buffer = BytesMut::new();
        let (head, asks_close) = write_head(
            &mut buffer,
            Version::HTTP_11,
            StatusCode::OK,
            &headers,
            BodyFraming::Length(42),
            false,
        );
        assert!(!asks_close);
        let head = text(&head);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 42\r\ndate: "));
        assert!(head.ends_with(" GMT\r\n\r\n"), "{head}");
        assert!(!head.contains("gzip") && !head.contains("connection"));
        assert!(
            !head.contains(": 7"),
            "the length written replaces the answer's: {head}"
        );
        headers.remove(CONTENT_LENGTH);

        headers.insert(
            DATE,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
        let (head, asks_close) = write_head(
            &mut buffer,
            Version::HTTP_10,
            StatusCode::BAD_GATEWAY,
            &headers,
            BodyFraming::UntilClose,
            false,
        );
        assert!(asks_close, "the answer's own Connection: close");
        assert_eq!(
            text(&head),
            "HTTP/1.0 502 Bad Gateway\r\nx-a: 1\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT\r\nconnection: close\r\n\r\n"
        );
        let (kept, _) = write_head(
            &mut buffer,
            Version::HTTP_10,
            StatusCode::OK,
            &HeaderMap::new(),
            BodyFraming::Length(0),
            false,
        );
        assert!(text(&kept).contains("content-length: 0\r\nconnection: keep-alive\r\n"));
    }

    #[test]
    fn a_refusal_closes() {
        let head = refusal(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Version::HTTP_11,
        );
        let head = text(&head);
        assert!(head.starts_with(
            "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n"
        ));
    }
}
