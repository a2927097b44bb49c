//! The header section of an HTTP/1.1 head, for requests and responses alike: the fields httparse
//! found, made into a `HeaderMap` whose values are slices of the head's bytes (no copy), and
//! what the fields that frame a message and decide its connection's reuse say.

use bytes::Bytes;
use http::header::TRANSFER_ENCODING;
use http::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, EXPECT, TE};
use http::{HeaderMap, Version};

/// Where a piece of a head is: its offset from the head's start and its length.
pub type Span = (usize, usize);

/// The span of `piece`, a slice of the buffer starting at `base`.
pub fn span(base: usize, piece: &[u8]) -> Span {
    (piece.as_ptr() as usize - base, piece.len())
}

/// The spans of httparse's fields, so the head can be split off its buffer (ending the parse's
/// borrow) and the values sliced from it.
pub fn spans(base: usize, parsed: &[httparse::Header<'_>]) -> Vec<(Span, Span)> {
    let mut fields = Vec::with_capacity(parsed.len());
    fields.extend(
        parsed
            .iter()
            .map(|field| (span(base, field.name.as_bytes()), span(base, field.value))),
    );
    fields
}

/// Which of the fields that frame a message or decide its connection's reuse a head has,
/// noted while its map is built so an absent one is never looked up.
#[derive(Debug, Default, Clone, Copy)]
pub struct Present {
    pub length: bool,
    pub transfer: bool,
    pub connection: bool,
    /// A `Connection` field that was just `close` (not put in the map).
    pub close: bool,
    /// A `Connection` field that was just `keep-alive` (not put in the map).
    pub keep_alive: bool,
    /// A `Connection` field with anything else (a list, other names): it is in the map, for
    /// the hop-by-hop rules to read.
    pub connection_listed: bool,
    pub expect: bool,
    pub te: bool,
}

impl Present {
    fn note(&mut self, name: &HeaderName) {
        if name == CONTENT_LENGTH {
            self.length = true;
        } else if name == TRANSFER_ENCODING {
            self.transfer = true;
        } else if name == EXPECT {
            self.expect = true;
        } else if name == TE {
            self.te = true;
        }
    }
}

/// The header map of a head whose fields are at `fields` in `head`, built in `spare` (an
/// emptied map whose allocation is reused: a connection's maps go round from request to
/// answer, as hyper's do, so none is allocated or grown per message).
///
/// A `Connection` field that is just `close` or `keep-alive` is noted in [`Present`] and left
/// out of the map: it is hop-by-hop, so it would only be removed again before the message is
/// passed on (the usual upstream answer says `Connection: keep-alive`).
pub fn header_map(
    head: &Bytes,
    fields: &[(Span, Span)],
    spare: HeaderMap,
) -> Result<(HeaderMap, Present), &'static str> {
    let mut headers = spare;
    headers.reserve(fields.len());
    let mut present = Present::default();
    for &((name_at, name_len), (value_at, value_len)) in fields {
        let name = HeaderName::from_bytes(&head[name_at..name_at + name_len])
            .map_err(|_| "an invalid header name")?;
        if name == CONNECTION {
            present.connection = true;
            let token = head[value_at..value_at + value_len].trim_ascii();
            if token.eq_ignore_ascii_case(b"close") {
                present.close = true;
                continue;
            }
            if token.eq_ignore_ascii_case(b"keep-alive") {
                present.keep_alive = true;
                continue;
            }
            present.connection_listed = true;
        }
        present.note(&name);
        let value = HeaderValue::from_maybe_shared(head.slice(value_at..value_at + value_len))
            .map_err(|_| "an invalid header value")?;
        headers.append(name, value);
    }
    Ok((headers, present))
}

/// Whether the last transfer coding is `chunked`, the only one that frames a message.
pub fn final_coding_is_chunked(headers: &HeaderMap) -> bool {
    headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(str::trim)
        .is_some_and(|coding| coding.eq_ignore_ascii_case("chunked"))
}

/// Whether a `Content-Length` field may hold a list (`5, 5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lists {
    /// Allowed, when its elements agree (RFC 9110 §8.6 lets a recipient take it): responses.
    Allowed,
    /// Refused: requests, where every field must be one number (hyper's rule, and Envoy's).
    Refused,
}

/// The `Content-Length`: every value (and every element of a list, when `lists` allows them)
/// must be the same number.
pub fn content_length(headers: &HeaderMap, lists: Lists) -> Result<Option<u64>, &'static str> {
    let mut values = headers.get_all(CONTENT_LENGTH).iter();
    // The usual case, one field of plain digits, without the general walk.
    if let (Some(value), None) = (values.next(), values.next()) {
        if let Some(n) = plain_number(value.as_bytes()) {
            return Ok(Some(n));
        }
    }
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        let text = value
            .to_str()
            .map_err(|_| "a Content-Length that is not a number")?;
        if lists == Lists::Refused && text.contains(',') {
            return Err("a Content-Length that is not a number");
        }
        for element in text.split(',') {
            let element = element.trim();
            if element.is_empty() || !element.bytes().all(|b| b.is_ascii_digit()) {
                return Err("a Content-Length that is not a number");
            }
            let n: u64 = element
                .parse()
                .map_err(|_| "a Content-Length that is too large")?;
            if length.is_some_and(|l| l != n) {
                return Err("Content-Length values that disagree");
            }
            length = Some(n);
        }
    }
    Ok(length)
}

/// Up to 19 decimal digits and nothing else, as a number (more could overflow: the general
/// walk answers those).
fn plain_number(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 19 {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

/// Whether a `Connection` header lists `token`.
pub fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    let mut values = headers.get_all(CONNECTION).iter();
    // The usual case, one field holding just one token, without splitting.
    if let (Some(value), None) = (values.next(), values.next()) {
        if !value.as_bytes().contains(&b',') {
            return value
                .as_bytes()
                .trim_ascii()
                .eq_ignore_ascii_case(token.as_bytes());
        }
    }
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Whether the sender keeps the connection open after this message (RFC 9112 §9.3): HTTP/1.1
/// unless it says `close`, HTTP/1.0 only if it says `keep-alive`.
pub fn persists(version: Version, headers: &HeaderMap, present: Present) -> bool {
    let listed = |token| present.connection_listed && connection_has(headers, token);
    if version == Version::HTTP_11 {
        !(present.close || listed("close"))
    } else {
        present.keep_alive || listed("keep-alive")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn with(name: HeaderName, values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(name.clone(), HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn content_length_takes_one_number_and_agreeing_repeats() {
        let length =
            |values: &[&'static str], lists| content_length(&with(CONTENT_LENGTH, values), lists);
        assert_eq!(length(&[], Lists::Refused), Ok(None));
        assert_eq!(length(&["42"], Lists::Refused), Ok(Some(42)));
        assert_eq!(length(&["42", "42"], Lists::Refused), Ok(Some(42)));
        assert!(length(&["42", "43"], Lists::Refused).is_err());
        assert!(length(&["4, 4"], Lists::Refused).is_err());
        assert_eq!(length(&["4, 4"], Lists::Allowed), Ok(Some(4)));
        assert!(length(&["4, 5"], Lists::Allowed).is_err());
        for bad in ["+4", "-4", "0x4", "", "4 4", "99999999999999999999999"] {
            assert!(length(&[bad], Lists::Allowed).is_err(), "{bad:?}");
        }
        assert_eq!(
            length(&["18446744073709551615"], Lists::Refused),
            Ok(Some(u64::MAX)),
            "twenty digits take the general walk"
        );
    }

    #[test]
    fn a_plain_connection_field_is_noted_not_kept() {
        let build = |raw: &'static [u8]| {
            let head = Bytes::from_static(raw);
            let mut parsed = [httparse::EMPTY_HEADER; 8];
            let httparse::Status::Complete((_, parsed)) =
                httparse::parse_headers(&head, &mut parsed).unwrap()
            else {
                panic!("a whole header section")
            };
            let fields = spans(head.as_ptr() as usize, parsed);
            header_map(&head, &fields, HeaderMap::new()).unwrap()
        };
        let (map, present) = build(b"Connection: Keep-Alive\r\nX-A: 1\r\n\r\n");
        assert!(present.connection && present.keep_alive && !present.connection_listed);
        assert!(!map.contains_key(CONNECTION) && map.contains_key("x-a"));
        assert!(persists(Version::HTTP_10, &map, present));
        let (map, present) = build(b"Connection: close\r\n\r\n");
        assert!(present.close && map.is_empty());
        assert!(!persists(Version::HTTP_11, &map, present));
        let (map, present) = build(b"Connection: x-hop, close\r\n\r\n");
        assert!(present.connection_listed && map.contains_key(CONNECTION));
        assert!(!persists(Version::HTTP_11, &map, present));
        let (map, present) = build(b"\r\n");
        assert!(persists(Version::HTTP_11, &map, present));
        assert!(!persists(Version::HTTP_10, &map, present));
    }

    #[test]
    fn connection_tokens_are_found_in_lists_and_any_case() {
        let has = |values: &[&'static str], token| connection_has(&with(CONNECTION, values), token);
        assert!(has(&["close"], "close"));
        assert!(has(&["Close"], "close"));
        assert!(has(&["keep-alive, Close"], "close"));
        assert!(has(&["upgrade", "close"], "close"));
        assert!(!has(&["closed"], "close"));
        assert!(!has(&[], "close"));
    }
}
