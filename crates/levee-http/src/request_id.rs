//! `x-request-id`: propagated when the caller sent a usable one, created otherwise.
//!
//! Unlike Levee's own headers, a bad `x-request-id` is not the caller's mistake to be refused:
//! it is replaced, so every log line and every upstream still gets exactly one usable id.
//!
//! Decisions: an inbound id is kept when it is 1 to [`MAX_REQUEST_ID_LEN`] characters of
//! visible ASCII (letters, digits, punctuation; no spaces or control characters, so it can be
//! pasted into a log search as-is). When the header is repeated the first usable value wins and
//! the others are dropped. A new id is a random UUID v4 (`8-4-4-4-12` lowercase hex), the form
//! Envoy and most load balancers create.

use crate::random;
use http::{HeaderMap, HeaderValue};

/// The longest inbound request id that is kept.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// True when `value` is kept as a request id (see the module rules).
pub fn is_valid_request_id(value: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&value.len()) && value.iter().all(|b| b.is_ascii_graphic())
}

/// A new random request id (UUID v4).
pub fn new_request_id() -> HeaderValue {
    let hi = random::next_u64();
    let lo = random::next_u64();
    // Version 4 and the RFC 4122 variant bits.
    let hi = (hi & !0xf000) | 0x4000;
    let lo = (lo & !(0b11 << 62)) | (0b10 << 62);
    // 8-4-4-4-12 hex digits written into a stack buffer: one allocation (the value's).
    let mut id = [0u8; 36];
    put_hex(&mut id[0..8], hi >> 32);
    id[8] = b'-';
    put_hex(&mut id[9..13], (hi >> 16) & 0xffff);
    id[13] = b'-';
    put_hex(&mut id[14..18], hi & 0xffff);
    id[18] = b'-';
    put_hex(&mut id[19..23], lo >> 48);
    id[23] = b'-';
    put_hex(&mut id[24..36], lo & 0xffff_ffff_ffff);
    HeaderValue::from_bytes(&id).unwrap_or(HeaderValue::from_static(
        "00000000-0000-4000-8000-000000000000",
    ))
}

/// Writes the low `out.len()` hex digits of `value`, lowercase, most significant first.
fn put_hex(out: &mut [u8], mut value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(value & 0xf) as usize];
        value >>= 4;
    }
}

/// Makes `headers` carry exactly one usable `x-request-id` and returns it: the first usable
/// inbound value, or a new one.
pub fn ensure_request_id(headers: &mut HeaderMap) -> HeaderValue {
    let id = headers
        .get_all(crate::headers::name::REQUEST_ID)
        .iter()
        .find(|v| is_valid_request_id(v.as_bytes()))
        .cloned()
        .unwrap_or_else(new_request_id);
    headers.insert(crate::headers::name::REQUEST_ID, id.clone());
    id
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_usable_id() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_static("req-42"));
        assert_eq!(ensure_request_id(&mut h), "req-42");
        assert_eq!(h["x-request-id"], "req-42");
    }

    #[test]
    fn creates_one_when_absent_or_unusable() {
        for bad in [None, Some("has space"), Some(""), Some(&*"x".repeat(129))] {
            let mut h = HeaderMap::new();
            if let Some(v) = bad {
                h.insert("x-request-id", HeaderValue::from_str(v).unwrap());
            }
            let id = ensure_request_id(&mut h);
            let text = id.to_str().unwrap();
            assert_eq!(text.len(), 36, "{text}");
            assert_eq!(&text[14..15], "4", "version nibble: {text}");
            assert!(
                matches!(&text[19..20], "8" | "9" | "a" | "b"),
                "variant: {text}"
            );
            assert_eq!(h["x-request-id"], id);
            assert_eq!(h.get_all("x-request-id").iter().count(), 1);
        }
    }

    #[test]
    fn repeated_ids_collapse_to_the_first_usable() {
        let mut h = HeaderMap::new();
        h.append("x-request-id", HeaderValue::from_static("bad one"));
        h.append("x-request-id", HeaderValue::from_static("good"));
        h.append("x-request-id", HeaderValue::from_static("later"));
        assert_eq!(ensure_request_id(&mut h), "good");
        assert_eq!(h.get_all("x-request-id").iter().count(), 1);
    }

    #[test]
    fn new_ids_differ() {
        assert_ne!(new_request_id(), new_request_id());
    }
}
