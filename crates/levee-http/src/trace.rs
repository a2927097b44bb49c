//! W3C Trace Context (`traceparent`, `tracestate`) for the proxy's hop (SPEC §11).
//!
//! Every proxied request is a span. Levee continues the caller's trace when it sent a valid
//! `traceparent`, and starts a new one otherwise; either way it sends the upstream a child
//! `traceparent` whose parent id is Levee's own span, and shows the trace id in logs and in the
//! error envelope.
//!
//! Parsing follows the W3C Trace Context recommendation strictly
//! (<https://www.w3.org/TR/trace-context/#traceparent-header>):
//!
//! - `version-traceid-parentid-flags`, lowercase hex only: 2, 32, 16 and 2 digits.
//! - Version `00` is exactly 55 characters. Version `ff` is invalid. A higher version is parsed
//!   as `00` for its first four fields, and may be followed only by `-` and more data; Levee
//!   forwards it as version `00`, the version it understands.
//! - A trace id or parent id of all zeros is invalid.
//! - Any invalid, repeated or non-text `traceparent` starts a new trace, and `tracestate` is
//!   then dropped (it belongs to the discarded trace). An invalid header never fails the
//!   request: tracing is best effort.
//!
//! New traces are marked sampled (`01`): an upstream using a parent-based sampler then records
//! what it would have recorded had Levee not been in the path (a root span is sampled by the
//! usual default sampler).

use crate::headers::name;
use crate::random;
use http::{HeaderMap, HeaderValue};
use std::fmt;

/// A 16-byte trace id, never all zeros.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId([u8; 16]);

/// An 8-byte span (parent) id, never all zeros.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId([u8; 8]);

impl TraceId {
    /// The id from bytes; `None` for all zeros (invalid per W3C).
    pub fn from_bytes(bytes: [u8; 16]) -> Option<Self> {
        (bytes != [0; 16]).then_some(TraceId(bytes))
    }

    /// A new random id.
    pub fn random() -> Self {
        loop {
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&random::next_u64().to_be_bytes());
            bytes[8..].copy_from_slice(&random::next_u64().to_be_bytes());
            if let Some(id) = TraceId::from_bytes(bytes) {
                return id;
            }
        }
    }

    /// The raw bytes.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    /// 32 lowercase hex digits: the form in `traceparent`, logs and the error envelope.
    pub fn to_hex(self) -> String {
        hex(&self.0)
    }

    /// The 32 hex digits in a stack buffer (what `Display` and `traceparent` write), for
    /// callers that want the text without allocating a `String`.
    pub fn hex_bytes(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        hex_into(&self.0, &mut out);
        out
    }
}

impl SpanId {
    /// The id from bytes; `None` for all zeros (invalid per W3C).
    pub fn from_bytes(bytes: [u8; 8]) -> Option<Self> {
        (bytes != [0; 8]).then_some(SpanId(bytes))
    }

    /// A new random id.
    pub fn random() -> Self {
        loop {
            if let Some(id) = SpanId::from_bytes(random::next_u64().to_be_bytes()) {
                return id;
            }
        }
    }

    /// The raw bytes.
    pub fn to_bytes(self) -> [u8; 8] {
        self.0
    }

    /// 16 lowercase hex digits.
    pub fn to_hex(self) -> String {
        hex(&self.0)
    }

    /// The 16 hex digits in a stack buffer, for callers that want the text without
    /// allocating a `String`.
    pub fn hex_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        hex_into(&self.0, &mut out);
        out
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(ascii(&self.hex_bytes()))
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(ascii(&self.hex_bytes()))
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

/// The `trace-flags` byte. Bit 0 is `sampled`; other bits are passed on untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TraceFlags(pub u8);

impl TraceFlags {
    /// Sampled.
    pub const SAMPLED: TraceFlags = TraceFlags(0x01);

    /// True when the caller asked for this trace to be recorded.
    pub const fn sampled(self) -> bool {
        self.0 & 0x01 != 0
    }
}

/// A parsed `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The version received (`0` for all Levee writes).
    pub version: u8,
    /// The trace.
    pub trace_id: TraceId,
    /// The caller's span.
    pub parent_id: SpanId,
    /// The flags.
    pub flags: TraceFlags,
}

/// Why a `traceparent` value was invalid (logged at debug; the request goes on with a new
/// trace).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceParentError {
    /// Too short, or version `00` with trailing data, or a higher version whose extra data
    /// does not start with `-`.
    Length,
    /// Not two lowercase hex digits, or the forbidden `ff`.
    Version,
    /// A missing `-` or a character that is not a lowercase hex digit.
    Format,
    /// The trace id is all zeros.
    ZeroTraceId,
    /// The parent id is all zeros.
    ZeroParentId,
}

impl fmt::Display for TraceParentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TraceParentError::Length => "traceparent has the wrong length",
            TraceParentError::Version => "traceparent version is not valid",
            TraceParentError::Format => {
                "traceparent is not version-traceid-parentid-flags in lowercase hex"
            }
            TraceParentError::ZeroTraceId => "traceparent trace id is all zeros",
            TraceParentError::ZeroParentId => "traceparent parent id is all zeros",
        })
    }
}

impl std::error::Error for TraceParentError {}

/// Length of a version-00 `traceparent`.
const V00_LEN: usize = 55;

impl TraceParent {
    /// Parses a `traceparent` value strictly (see the module rules).
    ///
    /// ```
    /// use levee_http::trace::TraceParent;
    /// let tp = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
    /// assert_eq!(tp.trace_id.to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    /// assert!(tp.flags.sampled());
    /// ```
    pub fn parse(value: &str) -> Result<TraceParent, TraceParentError> {
        let b = value.as_bytes();
        if b.len() < V00_LEN {
            return Err(TraceParentError::Length);
        }
        let version = hex_u8(&b[0..2]).ok_or(TraceParentError::Version)?;
        if version == 0xff {
            return Err(TraceParentError::Version);
        }
        if b.len() > V00_LEN && (version == 0 || b[V00_LEN] != b'-') {
            return Err(TraceParentError::Length);
        }
        if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return Err(TraceParentError::Format);
        }
        let mut trace = [0u8; 16];
        decode_hex(&b[3..35], &mut trace).ok_or(TraceParentError::Format)?;
        let mut parent = [0u8; 8];
        decode_hex(&b[36..52], &mut parent).ok_or(TraceParentError::Format)?;
        let flags = hex_u8(&b[53..55]).ok_or(TraceParentError::Format)?;
        Ok(TraceParent {
            version,
            trace_id: TraceId::from_bytes(trace).ok_or(TraceParentError::ZeroTraceId)?,
            parent_id: SpanId::from_bytes(parent).ok_or(TraceParentError::ZeroParentId)?,
            flags: TraceFlags(flags),
        })
    }

    /// The version-00 header value.
    pub fn to_header_value(&self) -> HeaderValue {
        // Only hex digits and dashes: always a valid header value. Written into a stack
        // buffer, so the value's own copy is the only allocation.
        HeaderValue::from_bytes(&self.to_bytes_v00()).unwrap_or(HeaderValue::from_static(""))
    }

    /// `00-<trace id>-<parent id>-<flags>`, 55 bytes.
    fn to_bytes_v00(self) -> [u8; V00_LEN] {
        let mut out = [0u8; V00_LEN];
        out[0] = b'0';
        out[1] = b'0';
        out[2] = b'-';
        out[3..35].copy_from_slice(&self.trace_id.hex_bytes());
        out[35] = b'-';
        out[36..52].copy_from_slice(&self.parent_id.hex_bytes());
        out[52] = b'-';
        hex_into(&[self.flags.0], &mut out[53..55]);
        out
    }
}

impl fmt::Display for TraceParent {
    /// Always written as version `00`, the version Levee implements.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            self.trace_id, self.parent_id, self.flags.0
        )
    }
}

/// The trace context of one proxied request: the caller's, continued, or a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace this request belongs to.
    pub trace_id: TraceId,
    /// Levee's span for this hop: the parent id sent upstream.
    pub span_id: SpanId,
    /// The caller's span, when the trace was continued.
    pub parent_id: Option<SpanId>,
    /// The flags, as received or `sampled` for a new trace.
    pub flags: TraceFlags,
    /// The caller's `tracestate` values, kept only when its `traceparent` was valid.
    pub tracestate: Vec<HeaderValue>,
}

impl TraceContext {
    /// Continues the caller's trace from `traceparent`/`tracestate`, or starts a new one when
    /// the header is absent or invalid (see the module rules).
    pub fn from_headers(headers: &HeaderMap) -> TraceContext {
        match Self::inbound(headers) {
            Some(parent) => TraceContext {
                trace_id: parent.trace_id,
                span_id: SpanId::random(),
                parent_id: Some(parent.parent_id),
                flags: parent.flags,
                tracestate: headers.get_all(name::TRACESTATE).iter().cloned().collect(),
            },
            None => TraceContext::new_root(),
        }
    }

    /// A new trace, sampled, with no caller.
    pub fn new_root() -> TraceContext {
        TraceContext {
            trace_id: TraceId::random(),
            span_id: SpanId::random(),
            parent_id: None,
            flags: TraceFlags::SAMPLED,
            tracestate: Vec::new(),
        }
    }

    fn inbound(headers: &HeaderMap) -> Option<TraceParent> {
        let mut values = headers.get_all(name::TRACEPARENT).iter();
        let first = values.next()?;
        if values.next().is_some() {
            return None;
        }
        TraceParent::parse(first.to_str().ok()?).ok()
    }

    /// True when the caller's trace was continued.
    pub fn is_continued(&self) -> bool {
        self.parent_id.is_some()
    }

    /// The `traceparent` for the upstream hop: same trace and flags, Levee's span as parent.
    pub fn child(&self) -> TraceParent {
        TraceParent {
            version: 0,
            trace_id: self.trace_id,
            parent_id: self.span_id,
            flags: self.flags,
        }
    }

    /// Writes `traceparent` (and `tracestate` when continued) into the upstream request's
    /// headers, replacing whatever the copy of the inbound headers held.
    pub fn inject(&self, headers: &mut HeaderMap) {
        let carries_tracestate = headers.contains_key(name::TRACESTATE);
        self.inject_given(headers, carries_tracestate);
    }

    /// [`inject`](Self::inject) for a caller that already knows whether `headers` holds a
    /// `tracestate` (the proxy learns it from one pass over the inbound names and saves the
    /// lookup).
    pub fn inject_given(&self, headers: &mut HeaderMap, carries_tracestate: bool) {
        headers.insert(name::TRACEPARENT, self.child().to_header_value());
        if carries_tracestate {
            headers.remove(name::TRACESTATE);
        }
        for value in &self.tracestate {
            headers.append(name::TRACESTATE, value.clone());
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Lowercase hex of `bytes` into `out` (twice as long). A request's ids are written out a few
/// times (`traceparent`, its log fields), so each byte is one lookup of its two digits.
fn hex_into(bytes: &[u8], out: &mut [u8]) {
    for (&b, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(b)]);
    }
}

/// The two lowercase hex digits of every byte.
static HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut table = [[0u8; 2]; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = [DIGITS[b >> 4], DIGITS[b & 0x0f]];
        b += 1;
    }
    table
};

/// Hex digits as `&str` (always ASCII; never the empty fallback in practice).
fn ascii(hex: &[u8]) -> &str {
    std::str::from_utf8(hex).unwrap_or("")
}

/// One lowercase hex digit (W3C forbids uppercase).
fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn hex_u8(pair: &[u8]) -> Option<u8> {
    match pair {
        [hi, lo] => Some((nibble(*hi)? << 4) | nibble(*lo)?),
        _ => None,
    }
}

fn decode_hex(text: &[u8], out: &mut [u8]) -> Option<()> {
    if text.len() != out.len() * 2 {
        return None;
    }
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = hex_u8(pair)?;
    }
    Some(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_the_w3c_example_and_writes_it_back() {
        let tp = TraceParent::parse(VALID).unwrap();
        assert_eq!(tp.version, 0);
        assert_eq!(tp.parent_id.to_hex(), "00f067aa0ba902b7");
        assert_eq!(tp.to_string(), VALID);
        assert_eq!(tp.to_header_value(), VALID);
    }

    #[test]
    fn every_byte_is_written_as_two_lowercase_hex_digits() {
        let bytes: Vec<u8> = (0..=255).collect();
        let mut out = vec![0u8; 512];
        hex_into(&bytes, &mut out);
        let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(std::str::from_utf8(&out).unwrap(), expected);
        assert_eq!(decode_hex(&out, &mut vec![0u8; 256]), Some(()));
    }

    #[test]
    fn rejects_every_malformed_shape() {
        use TraceParentError::*;
        let cases = [
            ("", Length),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
                Length,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
                Length,
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Version,
            ),
            (
                "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Version,
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                Format,
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Format,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
                Format,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
                Format,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                ZeroTraceId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                ZeroParentId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-01",
                Length,
            ),
        ];
        for (value, want) in cases {
            assert_eq!(TraceParent::parse(value), Err(want), "{value:?}");
        }
    }

    #[test]
    fn higher_versions_parse_their_first_fields_and_are_forwarded_as_00() {
        let v = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds";
        let tp = TraceParent::parse(v).unwrap();
        assert_eq!(tp.version, 0xcc);
        assert_eq!(tp.to_string(), VALID);
        let bad = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.extra";
        assert_eq!(TraceParent::parse(bad), Err(TraceParentError::Length));
    }

    #[test]
    fn continues_a_valid_trace_with_a_new_span() {
        let mut h = HeaderMap::new();
        h.insert("traceparent", HeaderValue::from_static(VALID));
        h.append("tracestate", HeaderValue::from_static("congo=t61rcWkgMzE"));
        h.append(
            "tracestate",
            HeaderValue::from_static("rojo=00f067aa0ba902b7"),
        );
        let ctx = TraceContext::from_headers(&h);
        assert!(ctx.is_continued());
        assert_eq!(ctx.trace_id.to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(ctx.span_id.to_hex(), "00f067aa0ba902b7");
        let child = ctx.child();
        assert_eq!(child.trace_id, ctx.trace_id);
        assert_eq!(child.parent_id, ctx.span_id);
        assert_eq!(child.flags, TraceFlags(1));

        let mut out = h.clone();
        ctx.inject(&mut out);
        assert_eq!(
            out["traceparent"],
            format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01", ctx.span_id)
        );
        let states: Vec<_> = out.get_all("tracestate").iter().collect();
        assert_eq!(states, ["congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7"]);
    }

    #[test]
    fn flags_pass_through_unchanged() {
        let mut h = HeaderMap::new();
        h.insert(
            "traceparent",
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
        );
        let ctx = TraceContext::from_headers(&h);
        assert!(!ctx.flags.sampled());
        assert!(ctx.child().to_string().ends_with("-00"));
    }

    #[test]
    fn invalid_or_repeated_traceparent_starts_a_new_trace_and_drops_tracestate() {
        for bad in [vec!["garbage"], vec![VALID, VALID]] {
            let mut h = HeaderMap::new();
            for v in bad {
                h.append("traceparent", HeaderValue::from_str(v).unwrap());
            }
            h.insert("tracestate", HeaderValue::from_static("congo=t61rcWkgMzE"));
            let ctx = TraceContext::from_headers(&h);
            assert!(!ctx.is_continued());
            assert_ne!(ctx.trace_id.to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
            assert!(ctx.flags.sampled());
            let mut out = h.clone();
            ctx.inject(&mut out);
            assert!(out.get("tracestate").is_none());
            assert_eq!(out.get_all("traceparent").iter().count(), 1);
            let sent = TraceParent::parse(out["traceparent"].to_str().unwrap()).unwrap();
            assert_eq!(sent.trace_id, ctx.trace_id);
        }
    }

    #[test]
    fn inject_given_removes_tracestate_only_when_told_it_is_there() {
        let ctx = TraceContext::new_root();
        let mut told = HeaderMap::new();
        told.insert("tracestate", HeaderValue::from_static("congo=t61rcWkgMzE"));
        ctx.inject_given(&mut told, true);
        assert!(told.get("tracestate").is_none());
        assert_eq!(told.get_all("traceparent").iter().count(), 1);

        let mut plain = HeaderMap::new();
        ctx.inject_given(&mut plain, false);
        assert_eq!(plain.len(), 1, "{plain:?}");
        assert!(plain.get("traceparent").is_some());
    }

    #[test]
    fn new_ids_are_valid_and_distinct() {
        let a = TraceContext::new_root();
        let b = TraceContext::new_root();
        assert_ne!(a.trace_id, b.trace_id);
        assert_ne!(a.span_id, b.span_id);
        let parsed = TraceParent::parse(&a.child().to_string()).unwrap();
        assert_eq!(parsed.trace_id, a.trace_id);
        assert_eq!(a.trace_id.to_hex().len(), 32);
        assert_eq!(TraceId::from_bytes([0; 16]), None);
        assert_eq!(SpanId::from_bytes([0; 8]), None);
    }
}
