//! Reading an upstream's HTTP/1.1 response: the head (httparse, into `http` types, the values
//! sliced from the read buffer without a copy), how its body is framed (RFC 9112 §6.3), and the
//! chunked coding. No I/O: `connection` feeds the bytes.

use super::fields::{self, Present};
use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::response::Parts;
use http::{HeaderMap, Method, Response, StatusCode, Version};
use std::mem::MaybeUninit;

/// At most this many header fields in a response head (hyper's default too).
pub const MAX_HEADERS: usize = 100;

/// At most this many bytes in a response head, and in a chunked body's trailer section.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// At most this many bytes in a chunk-size line (the size and any extensions).
const MAX_CHUNK_SIZE_LINE: usize = 4096;

/// Why an upstream's response could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid HTTP/1.1 response from the upstream: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

/// How a response's body ends (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: a response to `HEAD`, a 204 or a 304, or `Content-Length: 0`.
    Empty,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Neither: the body ends when the upstream closes the connection.
    UntilClose,
}

/// A response head that was read whole.
#[derive(Debug)]
pub struct Head {
    /// Status, version and headers.
    pub parts: Parts,
    /// How the body ends.
    pub framing: Framing,
    /// Whether the connection may carry another request once this exchange is over.
    pub keep_alive: bool,
}

/// What the start of a read buffer holds.
#[derive(Debug)]
pub enum Parsed {
    /// A final response's head (split off the buffer).
    Head(Head),
    /// An interim (1xx) response of `len` bytes, to be skipped: what follows is the answer.
    Interim { len: usize },
    /// Not a whole head yet.
    Partial,
}

/// Parses the response head at the start of `buffer`, the answer to a `method` request. A
/// whole head is split off the buffer, its fields into `spare` (an emptied map to reuse); an
/// interim response is not (see [`Parsed::Interim`]).
pub fn parse_head(
    buffer: &mut BytesMut,
    method: &Method,
    spare: &mut HeaderMap,
) -> Result<Parsed, DecodeError> {
    let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let base = buffer.as_ptr() as usize;
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buffer,
        &mut storage,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return if buffer.len() > MAX_HEAD_BYTES {
                Err(DecodeError("a response head larger than 64 KiB"))
            } else {
                Ok(Parsed::Partial)
            };
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(DecodeError("more than 100 header fields"))
        }
        Err(_) => return Err(DecodeError("a malformed response head")),
    };
    let code = response.code.unwrap_or_default();
    if (100..200).contains(&code) {
        if code == 101 {
            return Err(DecodeError("101 Switching Protocols is not supported"));
        }
        return Ok(Parsed::Interim { len });
    }
    let status = StatusCode::from_u16(code).map_err(|_| DecodeError("a status outside 100-999"))?;
    let version = match response.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let fields = fields::spans(base, response.headers);
    let head_bytes = buffer.split_to(len).freeze();
    let (headers, present) =
        fields::header_map(&head_bytes, &fields, std::mem::take(spare)).map_err(DecodeError)?;
    let (framing, framed_cleanly) = framing(method, status, &headers, present)?;
    let keep_alive = framed_cleanly
        && framing != Framing::UntilClose
        && fields::persists(version, &headers, present);
    let mut answer = Response::new(());
    *answer.status_mut() = status;
    *answer.version_mut() = version;
    *answer.headers_mut() = headers;
    let (parts, ()) = answer.into_parts();
    Ok(Parsed::Head(Head {
        parts,
        framing,
        keep_alive,
    }))
}

/// The body's framing, and whether it was unambiguous (a response with both
/// `Transfer-Encoding` and `Content-Length` is read as chunked, RFC 9112 §6.3, but its
/// connection is not reused: such a message is how responses are smuggled).
fn framing(
    method: &Method,
    status: StatusCode,
    headers: &HeaderMap,
    present: Present,
) -> Result<(Framing, bool), DecodeError> {
    if method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((Framing::Empty, true));
    }
    if present.transfer {
        // Only a final `chunked` frames the body; any other coding runs to the close.
        return Ok(if fields::final_coding_is_chunked(headers) {
            (Framing::Chunked, !present.length)
        } else {
            (Framing::UntilClose, false)
        });
    }
    if !present.length {
        return Ok((Framing::UntilClose, true));
    }
    Ok(
        match fields::content_length(headers, fields::Lists::Allowed).map_err(DecodeError)? {
            Some(0) => (Framing::Empty, true),
            Some(n) => (Framing::Length(n), true),
            None => (Framing::UntilClose, true),
        },
    )
}

/// What the body decoder produced from the buffer.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    /// Body bytes.
    Data(Bytes),
    /// A chunked body's trailer fields (then the end).
    Trailers(HeaderMap),
    /// The body is over.
    End,
    /// More bytes are needed.
    NeedMore,
}

/// Decodes a body of some [`Framing`] from a read buffer, one piece at a time.
#[derive(Debug)]
pub struct BodyDecoder {
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// `n` more bytes of a `Content-Length` body.
    Length(u64),
    /// A chunk-size line next.
    ChunkSize,
    /// `n` more bytes of the current chunk.
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    /// The trailer section after the last chunk.
    Trailers,
    /// Until the connection closes.
    UntilClose,
    /// Over.
    Done,
}

impl BodyDecoder {
    /// A decoder for a body framed as `framing`.
    pub fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::UntilClose => State::UntilClose,
        };
        BodyDecoder { state }
    }

    /// Whether the body is over.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The bytes still to come, when they are known.
    pub fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// The next piece of the body from `buffer` (consumed as it is decoded).
    pub fn decode(&mut self, buffer: &mut BytesMut) -> Result<Decoded, DecodeError> {
        loop {
            match self.state {
                State::Done => return Ok(Decoded::End),
                State::Length(n) | State::ChunkData(n) => {
                    if buffer.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = usize::try_from(n).unwrap_or(usize::MAX).min(buffer.len());
                    let left = n - take as u64;
                    self.state = match (self.state, left) {
                        (State::Length(_), 0) => State::Done,
                        (State::Length(_), _) => State::Length(left),
                        (_, 0) => State::ChunkEnd,
                        _ => State::ChunkData(left),
                    };
                    return Ok(Decoded::Data(buffer.split_to(take).freeze()));
                }
                State::UntilClose => {
                    if buffer.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    return Ok(Decoded::Data(buffer.split().freeze()));
                }
                State::ChunkSize => match httparse::parse_chunk_size(buffer) {
                    Ok(httparse::Status::Complete((len, size))) => {
                        buffer.advance(len);
                        self.state = if size == 0 {
                            State::Trailers
                        } else {
                            State::ChunkData(size)
                        };
                    }
                    Ok(httparse::Status::Partial) if buffer.len() <= MAX_CHUNK_SIZE_LINE => {
                        return Ok(Decoded::NeedMore)
                    }
                    _ => return Err(DecodeError("an invalid chunk-size line")),
                },
                State::ChunkEnd => {
                    if buffer.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &buffer[..2] != b"\r\n" {
                        return Err(DecodeError("a chunk not followed by CRLF"));
                    }
                    buffer.advance(2);
                    self.state = State::ChunkSize;
                }
                State::Trailers => return self.trailers(buffer),
            }
        }
    }

    /// The trailer section: an empty line, or header fields and an empty line.
    fn trailers(&mut self, buffer: &mut BytesMut) -> Result<Decoded, DecodeError> {
        if buffer.starts_with(b"\r\n") {
            buffer.advance(2);
            self.state = State::Done;
            return Ok(Decoded::End);
        }
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match httparse::parse_headers(buffer, &mut fields) {
            Ok(httparse::Status::Complete((len, parsed))) => {
                let mut trailers = HeaderMap::with_capacity(parsed.len());
                for field in parsed {
                    let name = HeaderName::from_bytes(field.name.as_bytes())
                        .map_err(|_| DecodeError("an invalid trailer name"))?;
                    let value = HeaderValue::from_bytes(field.value)
                        .map_err(|_| DecodeError("an invalid trailer value"))?;
                    trailers.append(name, value);
                }
                buffer.advance(len);
                self.state = State::Done;
                Ok(Decoded::Trailers(trailers))
            }
            Ok(httparse::Status::Partial) if buffer.len() <= MAX_HEAD_BYTES => {
                Ok(Decoded::NeedMore)
            }
            _ => Err(DecodeError("an invalid trailer section")),
        }
    }

    /// The connection closed: the end of a body that runs until the close, an error for any
    /// other.
    pub fn closed(&mut self) -> Result<Decoded, DecodeError> {
        match self.state {
            State::UntilClose | State::Done => {
                self.state = State::Done;
                Ok(Decoded::End)
            }
            _ => Err(DecodeError("the connection closed before the body's end")),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn head(raw: &str, method: Method) -> Result<(Head, BytesMut), DecodeError> {
        let mut buffer = BytesMut::from(raw);
        match parse_head(&mut buffer, &method, &mut HeaderMap::new())? {
            Parsed::Head(head) => Ok((head, buffer)),
            other => panic!("not a head: {other:?}"),
        }
    }

    fn body(framing: Framing, raw: &[u8]) -> Result<(Vec<u8>, Option<HeaderMap>), DecodeError> {
        let mut decoder = BodyDecoder::new(framing);
        let mut buffer = BytesMut::from(raw);
        let (mut data, mut trailers) = (Vec::new(), None);
        loop {
            match decoder.decode(&mut buffer)? {
                Decoded::Data(bytes) => data.extend_from_slice(&bytes),
                Decoded::Trailers(t) => trailers = Some(t),
                Decoded::End => return Ok((data, trailers)),
                Decoded::NeedMore => {
                    decoder.closed()?;
                    return Ok((data, trailers));
                }
            }
        }
    }

    #[test]
    fn a_head_is_split_off_with_its_fields_and_framing() {
        let (head, rest) = head(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhello",
            Method::GET,
        )
        .unwrap();
        assert_eq!(head.parts.status, StatusCode::OK);
        assert_eq!(head.parts.version, Version::HTTP_11);
        assert_eq!(head.parts.headers.get_all("x-a").iter().count(), 2);
        assert_eq!(head.framing, Framing::Length(5));
        assert!(head.keep_alive);
        assert_eq!(&rest[..], b"hello");
    }

    #[test]
    fn a_partial_head_asks_for_more_and_a_huge_one_is_refused() {
        let mut buffer = BytesMut::from("HTTP/1.1 200 OK\r\nContent-Le");
        assert!(matches!(
            parse_head(&mut buffer, &Method::GET, &mut HeaderMap::new()),
            Ok(Parsed::Partial)
        ));
        let mut huge = BytesMut::from("HTTP/1.1 200 OK\r\nX: ");
        huge.extend_from_slice(&vec![b'a'; MAX_HEAD_BYTES]);
        assert!(parse_head(&mut huge, &Method::GET, &mut HeaderMap::new()).is_err());
    }

    #[test]
    fn interim_responses_are_skipped_and_101_refused() {
        let mut buffer = BytesMut::from("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n");
        let Parsed::Interim { len } =
            parse_head(&mut buffer, &Method::POST, &mut HeaderMap::new()).unwrap()
        else {
            panic!("not interim")
        };
        assert_eq!(len, 25);
        let mut switching = BytesMut::from("HTTP/1.1 101 Switching Protocols\r\n\r\n");
        assert!(parse_head(&mut switching, &Method::GET, &mut HeaderMap::new()).is_err());
    }

    #[test]
    fn framing_follows_rfc_9112_section_6_3() {
        let framing =
            |raw: &str, method: Method| head(raw, method).map(|(h, _)| (h.framing, h.keep_alive));
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", Method::HEAD).unwrap(),
            (Framing::Empty, true)
        );
        assert_eq!(
            framing("HTTP/1.1 204 No Content\r\n\r\n", Method::GET).unwrap(),
            (Framing::Empty, true)
        );
        assert_eq!(
            framing(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                Method::GET
            )
            .unwrap(),
            (Framing::Chunked, true)
        );
        // Both: read as chunked, the connection not reused.
        assert_eq!(
            framing(
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                Method::GET
            )
            .unwrap(),
            (Framing::Chunked, false)
        );
        assert_eq!(
            framing(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                Method::GET
            )
            .unwrap(),
            (Framing::UntilClose, false)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\n\r\n", Method::GET).unwrap(),
            (Framing::UntilClose, false)
        );
        assert_eq!(
            framing(
                "HTTP/1.1 200 OK\r\nContent-Length: 4, 4\r\n\r\n",
                Method::GET
            )
            .unwrap(),
            (Framing::Length(4), true)
        );
        assert!(framing(
            "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n",
            Method::GET
        )
        .is_err());
        assert!(framing("HTTP/1.1 200 OK\r\nContent-Length: +4\r\n\r\n", Method::GET).is_err());
    }

    #[test]
    fn persistence_depends_on_version_and_connection() {
        let keep = |raw: &str| head(raw, Method::GET).unwrap().0.keep_alive;
        assert!(!keep(
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ));
        assert!(!keep("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(keep(
            "HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: Keep-Alive\r\n\r\n"
        ));
    }

    #[test]
    fn chunked_bodies_decode_with_extensions_and_trailers() {
        let (data, trailers) = body(
            Framing::Chunked,
            b"4;ext=1\r\nRust\r\n6\r\n rocks\r\n0\r\ngrpc-status: 0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(data, b"Rust rocks");
        assert_eq!(trailers.unwrap()["grpc-status"], "0");
        let (data, trailers) = body(Framing::Chunked, b"3\r\nabc\r\n0\r\n\r\n").unwrap();
        assert_eq!((data.as_slice(), trailers), (&b"abc"[..], None));
        assert!(body(Framing::Chunked, b"3\r\nabcX\r\n0\r\n\r\n").is_err());
        assert!(body(Framing::Chunked, b"zz\r\nabc\r\n").is_err());
        assert!(
            body(Framing::Chunked, b"3\r\nab").is_err(),
            "closed mid-chunk"
        );
    }

    #[test]
    fn length_and_close_delimited_bodies() {
        assert_eq!(body(Framing::Length(3), b"abcdef").unwrap().0, b"abc");
        assert!(body(Framing::Length(5), b"abc").is_err(), "closed early");
        assert_eq!(
            body(Framing::UntilClose, b"all of it").unwrap().0,
            b"all of it"
        );
        assert_eq!(body(Framing::Empty, b"ignored").unwrap().0, b"");
    }

    #[test]
    fn a_chunked_body_split_at_every_byte_decodes_the_same() {
        let raw = b"5\r\nhello\r\n1;x\r\n!\r\n0\r\nx-t: 1\r\n\r\n";
        for cut in 1..raw.len() {
            let mut decoder = BodyDecoder::new(Framing::Chunked);
            let mut buffer = BytesMut::from(&raw[..cut]);
            let mut data = Vec::new();
            let mut fed = false;
            let mut ended = false;
            while !ended {
                match decoder.decode(&mut buffer).unwrap() {
                    Decoded::Data(bytes) => data.extend_from_slice(&bytes),
                    Decoded::Trailers(_) => {}
                    Decoded::End => ended = true,
                    Decoded::NeedMore => {
                        assert!(!fed, "needs more after everything was fed (cut {cut})");
                        buffer.extend_from_slice(&raw[cut..]);
                        fed = true;
                    }
                }
            }
            assert_eq!(data, b"hello!", "cut at {cut}");
        }
    }
}
