//! Logs as JSON lines, each carrying the request's `trace_id` (SPEC §11).
//!
//! Every proxied request runs inside its [`RequestContext`] (and, for text logs and other
//! subscribers, inside the span [`request_span`] returns). [`JsonLayer`] writes each event as
//! one JSON object on one line, with the request context's fields and those of every span it
//! happened in flattened to the top level (inner spans win over outer ones, the event's own
//! fields over both), so a log search for `trace_id` finds every line of a request, and the
//! `trace_id` in an error envelope leads straight to them.
//!
//! ```json
//! {"timestamp":"2025-01-01T12:00:00.000000Z","level":"WARN","target":"levee_proxy::fallback",
//!  "trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7",
//!  "request_id":"…","method":"GET","path":"/inventory/42","route":"inventory",
//!  "message":"served stale fallback","span":"request"}
//! ```
//!
//! # How the proxy opens the context and the span
//!
//! ```
//! use levee_http::TraceContext;
//! use levee_telemetry::RequestContext;
//! use tracing::Instrument;
//! # async fn handle() {}
//! # async fn example(headers: http::HeaderMap) {
//! let trace = TraceContext::from_headers(&headers);
//! let context = RequestContext::new(&trace, "req-1", "GET", "/inventory/42");
//! let span = if levee_telemetry::request_spans_wanted() {
//!     levee_telemetry::request_span(&trace, "req-1", "GET", "/inventory/42")
//! } else {
//!     tracing::Span::none() // JSON logs: the context is enough
//! };
//! context.record("route", "inventory"); // once routed; also upstream
//! span.record("route", "inventory");
//! context.scope(handle().instrument(span)).await;
//! # }
//! ```
//!
//! Scope the whole request future (not just the upstream call) so rejections, fallbacks and
//! the access log all carry the ids. Neither a context nor a span follows `tokio::spawn` by
//! itself.
//!
//! # Decisions
//!
//! - The filter comes from `LEVEE_LOG`, else `RUST_LOG`, else `info` (`EnvFilter` syntax, such
//!   as `info,levee_proxy=debug`). A malformed filter is an error, not a silent default.
//! - Logs go to standard error in both formats, leaving standard output to commands such as
//!   `levee check`; container runtimes collect both streams.
//! - The request span is created at `ERROR` level so that no filter (say `LEVEE_LOG=warn`) can
//!   disable it: a disabled span would strip the trace id from exactly the warnings and errors
//!   that need it. A span prints nothing by itself.
//! - Fields named `timestamp`, `level` or `target` in spans or events are written as
//!   `field.timestamp` etc., so the three fixed keys always mean what they say.
//! - With JSON logs (`levee run`) a request has no `tracing` span, only its context: the lines
//!   are the same, but `EnvFilter` directives on span fields (`[request{route=x}]=debug`)
//!   select nothing. Directives on targets and levels work as before.

use crate::line_buffer::LineBuffer;
use crate::request_context::{with_current, RequestContext, REQUEST_SPAN_NAME};
use levee_http::TraceContext;
use std::cell::RefCell;
use std::fmt;
use std::io::Write as _;
use std::sync::OnceLock;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Why logging could not be set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoggingError {
    /// `LEVEE_LOG` / `RUST_LOG` is not a valid filter.
    Filter {
        /// The variable read.
        variable: &'static str,
        /// Its value.
        value: String,
        /// What the parser said.
        message: String,
    },
    /// A global subscriber was already installed (logging was set up twice).
    AlreadyInitialized(String),
}

impl fmt::Display for LoggingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoggingError::Filter {
                variable,
                value,
                message,
            } => write!(
                f,
                "{variable}=`{value}` is not a valid log filter ({message}): use a level such \
                 as `info`, or directives such as `info,levee_proxy=debug`"
            ),
            LoggingError::AlreadyInitialized(message) => {
                write!(f, "logging was already set up in this process: {message}")
            }
        }
    }
}

impl std::error::Error for LoggingError {}

/// Installs the process-wide logger: JSON lines ([`JsonLayer`]) when `json`, human-readable
/// text otherwise, both on standard error, filtered by `LEVEE_LOG` / `RUST_LOG` (default
/// `info`).
pub fn init_logging(json: bool) -> Result<(), LoggingError> {
    let filter = env_filter()?;
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        let lines = DIRECT.get_or_init(|| {
            let lines = LineBuffer::stderr();
            flush_before_panic_messages();
            lines
        });
        registry.with(JsonLayer::new(lines.clone())).try_init()
    } else {
        registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init()
    };
    result.map_err(|e| LoggingError::AlreadyInitialized(e.to_string()))
}

/// Writes out the log lines still buffered (JSON logs are written in batches: see
/// [`crate::line_buffer`]). `levee run` calls it as it exits; harmless without JSON logging.
pub fn flush_logs() {
    if let Some(lines) = DIRECT.get() {
        lines.flush();
    }
}

/// The JSON log output [`init_logging`] installed: the buffer [`JsonLayer`] writes to, which
/// [`write_request_line`] writes to directly.
static DIRECT: OnceLock<LineBuffer> = OnceLock::new();

/// Buffered lines first, then the panic message, so the lines that led to a panic are not lost
/// or shown after it.
fn flush_before_panic_messages() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        flush_logs();
        previous(info);
    }));
}

/// A field value of a line written by [`write_request_line`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum FieldValue<'a> {
    Str(&'a str),
    U64(u64),
    F64(f64),
}

/// The names of an event's fields written by [`write_request_line`], worked out at compile
/// time: each key's JSON text (`,"status":`) and a Bloom filter of the names, which the
/// request's context fields are checked against. A name JsonLayer would rename (`level`) or
/// that needs escaping is a compile error.
pub(crate) struct EventKeys<const N: usize> {
    names: [&'static str; N],
    rendered: [RenderedKey; N],
    /// The names', `message`'s and `span`'s bits.
    bloom: u128,
}

impl<const N: usize> EventKeys<N> {
    pub(crate) const fn new(names: [&'static str; N]) -> Self {
        let mut rendered = [RenderedKey::EMPTY; N];
        let mut bloom = Key::new("message").bloom_bit() | Key::new("span").bloom_bit();
        let mut i = 0;
        while i < N {
            let key = Key::new(names[i]);
            assert!(
                !key.prefixed,
                "a reserved name would be written as field.<name>"
            );
            rendered[i] = RenderedKey::new(names[i]);
            bloom |= key.bloom_bit();
            i += 1;
        }
        EventKeys {
            names,
            rendered,
            bloom,
        }
    }
}

/// The values of an event's fields, in the order of its [`EventKeys`].
pub(crate) struct EventFields<'a, const N: usize> {
    pub(crate) keys: &'static EventKeys<N>,
    pub(crate) values: [FieldValue<'a>; N],
}

/// `,"name":` for a name from code, made at compile time.
#[derive(Clone, Copy)]
struct RenderedKey {
    bytes: [u8; RenderedKey::CAPACITY],
    len: usize,
}

impl RenderedKey {
    const CAPACITY: usize = 48;
    const EMPTY: RenderedKey = RenderedKey {
        bytes: [0; RenderedKey::CAPACITY],
        len: 0,
    };

    const fn new(name: &str) -> RenderedKey {
        let name = name.as_bytes();
        assert!(
            name.len() + 4 <= RenderedKey::CAPACITY,
            "field name too long"
        );
        let mut bytes = [0; RenderedKey::CAPACITY];
        bytes[0] = b',';
        bytes[1] = b'"';
        let mut i = 0;
        while i < name.len() {
            assert!(!NEEDS_ESCAPE[name[i] as usize], "field name needs escaping");
            bytes[2 + i] = name[i];
            i += 1;
        }
        bytes[2 + i] = b'"';
        bytes[3 + i] = b':';
        RenderedKey {
            bytes,
            len: name.len() + 4,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// True when [`init_logging`] installed JSON logs: then [`JsonLayer`] takes a request's fields
/// from its [`RequestContext`] and the proxy needs no `tracing` span per request (a span is
/// still wanted for text logs, and under any other subscriber, such as a test's).
pub fn request_spans_wanted() -> bool {
    DIRECT.get().is_none()
}

/// Writes one line of a request straight to the JSON output, exactly as [`JsonLayer`] would
/// write `tracing::event!(target: target, level, field = value, ..., message)` logged with
/// `context` current, but without an event: no dispatch, no per-field visitor. The hot path of
/// the access log (one line per request) — false when it cannot (no JSON logging installed by
/// [`init_logging`]), and the caller logs an event instead.
///
/// The caller checks the filter (`tracing::enabled!`) first.
pub(crate) fn write_request_line<const N: usize>(
    context: &RequestContext,
    level: &Level,
    target: &'static str,
    message: &'static str,
    fields: &EventFields<'_, N>,
) -> bool {
    match DIRECT.get() {
        Some(sink) => write_request_line_to(sink, context, level, target, message, fields),
        None => false,
    }
}

/// [`write_request_line`] to a given output (tests compare it with [`JsonLayer`]'s line).
pub(crate) fn write_request_line_to<const N: usize>(
    sink: &LineBuffer,
    context: &RequestContext,
    level: &Level,
    target: &'static str,
    message: &'static str,
    fields: &EventFields<'_, N>,
) -> bool {
    SCRATCH.with(|scratch| {
        let Ok(mut scratch) = scratch.try_borrow_mut() else {
            return false;
        };
        let Scratch { line, timestamp } = &mut *scratch;
        let out = &mut line.out;
        // Level, target, message and every name here come from code and need no escaping
        // (checked in debug builds), so they are copied as they are.
        out.clear();
        out.extend_from_slice(b"{\"timestamp\":");
        write_timestamp(out, timestamp);
        out.extend_from_slice(b",\"level\":");
        write_code_str(out, level.as_str());
        out.extend_from_slice(b",\"target\":");
        write_code_str(out, target);
        // A context field the event also has would be replaced in place by JsonLayer; rather
        // than reproduce that, such a line goes the event's way (a Bloom filter of the event's
        // names, made at compile time, keeps the check to a bit test per field).
        let keys = fields.keys;
        for (name, value) in context.lock().iter() {
            let key = Key::new(name);
            if keys.bloom & key.bloom_bit() != 0
                && (name == "message" || name == "span" || keys.names.contains(&name))
            {
                return false;
            }
            write_code_key(out, key);
            out.extend_from_slice(value);
        }
        out.extend_from_slice(b",\"message\":");
        write_code_str(out, message);
        for (key, value) in keys.rendered.iter().zip(fields.values) {
            out.extend_from_slice(key.as_bytes());
            match value {
                FieldValue::Str(text) => write_json_str(out, text),
                FieldValue::U64(n) => write_u64(out, n),
                FieldValue::F64(x) => write_f64(out, x),
            }
        }
        out.extend_from_slice(b",\"span\":\"");
        out.extend_from_slice(REQUEST_SPAN_NAME.as_bytes());
        out.extend_from_slice(b"\"}\n");
        sink.push(out, *level <= Level::WARN);
        true
    })
}

/// `,"name":` (`,"field.name":` for a reserved name) for a name from code.
fn write_code_key(out: &mut Vec<u8>, key: Key) {
    debug_assert!(!key.name.bytes().any(|b| NEEDS_ESCAPE[usize::from(b)]));
    out.extend_from_slice(if key.prefixed { b",\"field." } else { b",\"" });
    out.extend_from_slice(key.name.as_bytes());
    out.extend_from_slice(b"\":");
}

/// A string from code as JSON: quoted, not escaped (it needs none).
fn write_code_str(out: &mut Vec<u8>, value: &str) {
    debug_assert!(!value.bytes().any(|b| NEEDS_ESCAPE[usize::from(b)]));
    out.push(b'"');
    out.extend_from_slice(value.as_bytes());
    out.push(b'"');
}

fn env_filter() -> Result<EnvFilter, LoggingError> {
    for variable in ["LEVEE_LOG", "RUST_LOG"] {
        match std::env::var(variable) {
            Ok(value) if !value.trim().is_empty() => {
                return EnvFilter::try_new(&value).map_err(|e| LoggingError::Filter {
                    variable,
                    value,
                    message: e.to_string(),
                });
            }
            _ => {}
        }
    }
    Ok(EnvFilter::new("info"))
}

/// The span of one proxied request, carrying `trace_id`, `span_id` (Levee's span, sent
/// upstream as the parent id), `request_id`, `method` and `path` (without the query, which may
/// hold secrets). `route` and `upstream` are declared empty for the proxy
/// to [`record`](tracing::Span::record) once known.
pub fn request_span(
    trace: &TraceContext,
    request_id: &str,
    method: &str,
    path: &str,
) -> tracing::Span {
    // The ids as text from stack buffers: recorded as plain strings, which costs less than
    // formatting them through `Display` (the JSON is the same).
    let trace_id = trace.trace_id.hex_bytes();
    let span_id = trace.span_id.hex_bytes();
    tracing::error_span!(
        "request",
        trace_id = std::str::from_utf8(&trace_id).unwrap_or(""),
        span_id = std::str::from_utf8(&span_id).unwrap_or(""),
        request_id = request_id,
        method = method,
        path = path,
        route = tracing::field::Empty,
        upstream = tracing::field::Empty,
    )
}

/// A span's recorded fields, kept in its extensions already serialised: each value is its JSON
/// text in `bytes`, so an event copies bytes instead of cloning values. A field recorded again
/// (`span.record`) appends its new text and moves the range; the old bytes stay unused until
/// the span closes (a span records a handful of fields, so this stays small).
#[derive(Debug, Default)]
pub(crate) struct SpanFields {
    fields: Vec<(&'static str, u32, u32)>,
    bytes: Vec<u8>,
}

impl SpanFields {
    pub(crate) fn with_capacity(fields: usize) -> Self {
        SpanFields {
            fields: Vec::with_capacity(fields),
            bytes: Vec::with_capacity(fields * 24),
        }
    }

    fn value(&self, start: u32, end: u32) -> &[u8] {
        &self.bytes[start as usize..end as usize]
    }

    /// Records a text field (a [`RequestContext`](crate::RequestContext)'s).
    pub(crate) fn record_str(&mut self, name: &'static str, value: &str) {
        let start = self.bytes.len();
        write_json_str(&mut self.bytes, value);
        self.finish(name, start);
    }

    /// Records a text field known to need no JSON escaping (hex ids, an HTTP method token),
    /// checked in debug builds.
    pub(crate) fn record_plain(&mut self, name: &'static str, value: &str) {
        debug_assert!(!value.bytes().any(|b| NEEDS_ESCAPE[usize::from(b)]));
        let start = self.bytes.len();
        self.bytes.push(b'"');
        self.bytes.extend_from_slice(value.as_bytes());
        self.bytes.push(b'"');
        self.finish(name, start);
    }

    /// A field's JSON text.
    #[cfg(test)]
    pub(crate) fn get(&self, name: &str) -> Option<&[u8]> {
        let &(_, start, end) = self.fields.iter().find(|(k, _, _)| *k == name)?;
        Some(self.value(start, end))
    }

    /// The fields as `(name, JSON text)`, in the order first recorded.
    fn iter(&self) -> impl Iterator<Item = (&'static str, &[u8])> {
        self.fields
            .iter()
            .map(|&(name, start, end)| (name, self.value(start, end)))
    }
}

impl FieldSink for SpanFields {
    fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    fn finish(&mut self, name: &'static str, start: usize) {
        let (start, end) = (offset(start), offset(self.bytes.len()));
        match self.fields.iter_mut().find(|(k, _, _)| *k == name) {
            Some(slot) => *slot = (name, start, end),
            None => self.fields.push((name, start, end)),
        }
    }
}

/// A byte offset in a span's field store: a span's fields are far below 4 GiB.
fn offset(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

const RESERVED: [&str; 3] = ["timestamp", "level", "target"];

/// A line's key: a field name, written `field.<name>` when it is one of [`RESERVED`].
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key {
    name: &'static str,
    prefixed: bool,
}

impl Key {
    const fn new(name: &'static str) -> Key {
        let mut prefixed = false;
        let mut i = 0;
        while i < RESERVED.len() {
            prefixed |= same_bytes(RESERVED[i].as_bytes(), name.as_bytes());
            i += 1;
        }
        Key { name, prefixed }
    }

    /// One of 128 bits, from the name's length and its first and last bytes.
    const fn bloom_bit(self) -> u128 {
        let bytes = self.name.as_bytes();
        let (first, last) = match bytes {
            [] => (0, 0),
            [first, .., last] => (*first, *last),
            [only] => (*only, *only),
        };
        let h = (bytes.len() as u32)
            .wrapping_mul(31)
            .wrapping_add((first as u32).wrapping_mul(7))
            .wrapping_add(last as u32)
            .wrapping_add(self.prefixed as u32);
        1u128 << (h % 128)
    }
}

/// `a == b`, usable in a `const fn`.
const fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The line being assembled: keys in first-seen order, each pointing at its value's JSON text
/// in `values` (a later value for the same key replaces the earlier one in place, as inner
/// spans win over outer ones and the event over both).
#[derive(Default)]
struct Line {
    keys: Vec<(Key, usize, usize)>,
    /// A one-word Bloom filter of the keys so far: a key whose bit is clear is new, and the
    /// search for an earlier value (rarely there) is skipped.
    seen: u128,
    values: Vec<u8>,
    out: Vec<u8>,
    /// Key names already found to need no escaping (they live as long as the thread's line).
    plain_keys: PlainKeys,
}

/// A small direct-mapped cache of `&'static str` key names (by address and length) that need
/// no JSON escaping: field names are the same few static strings on every line, so a line
/// copies them instead of scanning each one again.
#[derive(Default)]
struct PlainKeys([(usize, usize); 32]);

impl PlainKeys {
    fn write(&mut self, out: &mut Vec<u8>, name: &'static str) {
        let (address, len) = (name.as_ptr() as usize, name.len());
        let slot = ((address >> 3) ^ len) % self.0.len();
        if self.0[slot] == (address, len) {
            out.extend_from_slice(name.as_bytes());
            return;
        }
        if name.bytes().any(|b| NEEDS_ESCAPE[usize::from(b)]) {
            escape_into(out, name);
        } else {
            self.0[slot] = (address, len);
            out.extend_from_slice(name.as_bytes());
        }
    }
}

/// `"key":` (`"field.key":` for a reserved name), the name escaped if it must be.
fn write_key(out: &mut Vec<u8>, plain_keys: &mut PlainKeys, key: Key) {
    out.push(b'"');
    if key.prefixed {
        out.extend_from_slice(b"field.");
    }
    plain_keys.write(out, key.name);
    out.extend_from_slice(b"\":");
}

impl Line {
    fn clear(&mut self) {
        self.keys.clear();
        self.seen = 0;
        self.values.clear();
        self.out.clear();
    }

    fn set(&mut self, key: Key, start: usize, end: usize) {
        let bit = key.bloom_bit();
        if self.seen & bit != 0 {
            if let Some(slot) = self.keys.iter_mut().find(|(k, _, _)| *k == key) {
                *slot = (key, start, end);
                return;
            }
        }
        self.seen |= bit;
        self.keys.push((key, start, end));
    }

    /// Starts a line with the three fixed keys (never renamed, so pushed directly).
    fn begin(&mut self, ts: &mut Option<TimestampCache>, level: &Level, target: &str) {
        self.clear();
        let fixed = |name| Key {
            name,
            prefixed: false,
        };
        let start = self.values.len();
        write_timestamp(&mut self.values, ts);
        self.keys
            .push((fixed("timestamp"), start, self.values.len()));
        let start = self.values.len();
        write_json_str(&mut self.values, level.as_str());
        self.keys.push((fixed("level"), start, self.values.len()));
        let start = self.values.len();
        write_json_str(&mut self.values, target);
        self.keys.push((fixed("target"), start, self.values.len()));
    }

    /// Writes the keys and values gathered so far into `out` as one JSON object and a newline.
    fn assemble(&mut self) {
        let Line {
            keys,
            values,
            out,
            plain_keys,
            ..
        } = self;
        out.push(b'{');
        for (i, (key, start, end)) in keys.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_key(out, plain_keys, *key);
            out.extend_from_slice(&values[*start..*end]);
        }
        out.extend_from_slice(b"}\n");
    }

    fn push_raw(&mut self, name: &'static str, json: &[u8]) {
        let start = self.values.len();
        self.values.extend_from_slice(json);
        self.set(Key::new(name), start, self.values.len());
    }
}

impl FieldSink for Line {
    fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.values
    }

    fn finish(&mut self, name: &'static str, start: usize) {
        let end = self.values.len();
        self.set(Key::new(name), start, end);
    }
}

/// Where a [`Visitor`] writes: a byte buffer for the values' JSON text, and a note of which
/// field the bytes from `start` on belong to.
trait FieldSink {
    fn buffer(&mut self) -> &mut Vec<u8>;
    fn finish(&mut self, name: &'static str, start: usize);
}

/// Writes tracing fields as JSON text, the way `serde_json` writes the same values.
struct Visitor<'a, S: FieldSink>(&'a mut S);

impl<S: FieldSink> Visitor<'_, S> {
    fn put(&mut self, field: &Field, write: impl FnOnce(&mut Vec<u8>)) {
        let buffer = self.0.buffer();
        let start = buffer.len();
        write(buffer);
        self.0.finish(field.name(), start);
    }
}

impl<S: FieldSink> Visit for Visitor<'_, S> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, |b| write_f64(b, value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, |b| {
            if value < 0 {
                b.push(b'-');
            }
            write_u64(b, value.unsigned_abs());
        });
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, |b| write_u64(b, value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, |b| {
            b.extend_from_slice(if value { b"true" } else { b"false" })
        });
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, |b| write_json_str(b, value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, |b| write_json_display(b, format_args!("{value}")));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, |b| write_json_display(b, format_args!("{value:?}")));
    }
}

/// `value` as `serde_json` writes it; NaN and the infinities as `null` (what
/// `serde_json::Value::from` makes of them).
fn write_f64(out: &mut Vec<u8>, value: f64) {
    if value.is_finite() {
        let _ = serde_json::to_writer(out, &value);
    } else {
        out.extend_from_slice(b"null");
    }
}

/// The decimal digits of `value` (without `core::fmt`'s machinery).
fn write_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(levee_http::decimal::digits(value, &mut [0; 20]));
}

/// `value` as a JSON string, escaped as `serde_json` escapes it.
fn write_json_str(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    escape_into(out, value);
    out.push(b'"');
}

/// Formatted text as a JSON string, escaped on the way (no intermediate `String`).
fn write_json_display(out: &mut Vec<u8>, args: fmt::Arguments<'_>) {
    struct Escaper<'a>(&'a mut Vec<u8>);
    impl fmt::Write for Escaper<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            escape_into(self.0, s);
            Ok(())
        }
    }
    out.push(b'"');
    let _ = fmt::Write::write_fmt(&mut Escaper(out), args);
    out.push(b'"');
}

/// JSON string escaping, byte for byte what `serde_json` writes: `"` and `\` escaped,
/// `\b \f \n \r \t` by name, other control characters as `\u00XX`, everything else as is.
/// Runs of bytes that need no escape (nearly all of them) are copied whole.
fn escape_into(out: &mut Vec<u8>, value: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = value.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Eight bytes at a time while none of them needs an escape.
        while let Some(chunk) = bytes.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            if needs_escape(u64::from_le_bytes(word)) {
                break;
            }
            i += 8;
        }
        let Some(&b) = bytes.get(i) else { break };
        if !NEEDS_ESCAPE[usize::from(b)] {
            i += 1;
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0x0f)]);
            }
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// True when one of the eight bytes of `word` is below 0x20, `"` or `\\`: the classic "has a
/// byte less than n" bit trick, on the word itself and on the word XORed with each of the two
/// characters (a matching byte becomes zero). A false alarm would only cost the byte loop.
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |w: u64, n: u64| w.wrapping_sub(ONES * n) & !w & HIGH;
    let below_space = below(word, 0x20);
    let quote = below(word ^ (ONES * u64::from(b'"')), 1);
    let backslash = below(word ^ (ONES * u64::from(b'\\')), 1);
    below_space | quote | backslash != 0
}

/// The bytes [`escape_into`] must escape: control characters, `"` and `\\`.
static NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// The date-and-second part of the timestamp, formatted once per second per thread.
struct TimestampCache {
    second: u64,
    text: [u8; 19],
}

/// Writes `"YYYY-MM-DDTHH:MM:SS.ffffffZ"` (UTC, microseconds: the form tracing-subscriber's
/// `SystemTime` writes) for now.
fn write_timestamp(out: &mut Vec<u8>, cache: &mut Option<TimestampCache>) {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let second = since_epoch.as_secs();
    let cached = match cache {
        Some(c) if c.second == second => c,
        _ => cache.insert(TimestampCache {
            second,
            text: civil_time(second),
        }),
    };
    out.push(b'"');
    out.extend_from_slice(&cached.text);
    let mut micros = since_epoch.subsec_micros();
    let mut fraction = *b".000000Z\"";
    for digit in fraction[1..7].iter_mut().rev() {
        *digit = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    out.extend_from_slice(&fraction);
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix second (Howard Hinnant's `civil_from_days`).
fn civil_time(unix_seconds: u64) -> [u8; 19] {
    let days = i64::try_from(unix_seconds / 86_400).unwrap_or(0);
    let rem = unix_seconds % 86_400;
    let (hour, minute, second) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut text = [0u8; 19];
    let mut cursor = std::io::Cursor::new(&mut text[..]);
    let _ = write!(
        cursor,
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}"
    );
    text
}

/// Per-thread scratch space, so a line allocates nothing once the buffers have grown.
#[derive(Default)]
struct Scratch {
    line: Line,
    timestamp: Option<TimestampCache>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// A `tracing` layer writing one JSON object per event, one per line, with span fields
/// flattened to the top level (see the module doc). Generic over the writer so tests can
/// capture lines.
///
/// A line is assembled in a per-thread buffer from span fields kept already serialised (see
/// [`SpanFields`]) and written with one `write_all`: no allocation per line once the buffers
/// have grown, and lines from concurrent threads never interleave.
#[derive(Debug)]
pub struct JsonLayer<W> {
    make_writer: W,
}

impl<W> JsonLayer<W>
where
    W: for<'w> MakeWriter<'w> + 'static,
{
    /// A layer writing to `make_writer` (`std::io::stderr`, a file, a test buffer).
    pub fn new(make_writer: W) -> Self {
        JsonLayer { make_writer }
    }

    fn format_event<S>(
        &self,
        line: &mut Line,
        ts: &mut Option<TimestampCache>,
        event: &Event<'_>,
        ctx: &Context<'_, S>,
    ) where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let meta = event.metadata();
        line.begin(ts, meta.level(), meta.target());
        // The request's context (if this thread is polling a request) is the root of the
        // line's fields, as the request span was.
        let mut leaf = with_current(|context| {
            let context = context?;
            for (name, value) in context.lock().iter() {
                line.push_raw(name, value);
            }
            Some(REQUEST_SPAN_NAME)
        });
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    for &(name, start, end) in &fields.fields {
                        line.push_raw(name, fields.value(start, end));
                    }
                }
                leaf = Some(span.name());
            }
        }
        event.record(&mut Visitor(&mut *line));
        if let Some(name) = leaf {
            let start = line.values.len();
            write_json_str(&mut line.values, name);
            let end = line.values.len();
            line.set(Key::new("span"), start, end);
        }
        line.assemble();
    }
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields::with_capacity(attrs.metadata().fields().len());
        attrs.record(&mut Visitor(&mut fields));
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            values.record(&mut Visitor(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let write = |line: &Line| {
            // One write per line so concurrent lines never interleave; a failed log write has
            // nowhere to be reported.
            let _ = self.make_writer.make_writer_for(meta).write_all(&line.out);
        };
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut scratch) => {
                let Scratch { line, timestamp } = &mut *scratch;
                self.format_event(line, timestamp, event, &ctx);
                write(line);
            }
            // An event logged while this thread is writing a line (by the writer itself):
            // fresh buffers rather than a panic.
            Err(_) => {
                let mut line = Line::default();
                self.format_event(&mut line, &mut None, event, &ctx);
                write(&line);
            }
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    impl Buffer {
        fn lines(&self) -> Vec<serde_json::Map<String, Value>> {
            let bytes = self.0.lock().unwrap().clone();
            String::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        }
    }

    fn capture(f: impl FnOnce()) -> Vec<serde_json::Map<String, Value>> {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::registry().with(JsonLayer::new(buffer.clone()));
        tracing::subscriber::with_default(subscriber, f);
        buffer.lines()
    }

    #[test]
    fn lines_in_a_request_span_carry_the_trace_id_at_top_level() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        );
        let trace = TraceContext::from_headers(&headers);
        let lines = capture(|| {
            tracing::info!("before any request");
            let span = request_span(&trace, "req-1", "GET", "/inventory/42");
            let _guard = span.enter();
            span.record("route", "inventory");
            tracing::warn!(kind = "stale", "served fallback");
        });
        assert_eq!(lines.len(), 2);
        assert!(lines[0].get("trace_id").is_none());
        assert_eq!(lines[0]["message"], "before any request");
        let line = &lines[1];
        assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(line["span_id"], trace.span_id.to_hex());
        assert_eq!(line["request_id"], "req-1");
        assert_eq!(line["route"], "inventory");
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["message"], "served fallback");
        assert_eq!(line["kind"], "stale");
        assert_eq!(line["span"], "request");
        assert!(
            line.get("upstream").is_none(),
            "empty fields are not written"
        );
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn lines_in_a_request_context_carry_its_fields_without_a_span() {
        let trace = TraceContext::new_root();
        let context = RequestContext::new(&trace, "req-2", "POST", "/orders");
        context.record("route", "orders");
        let lines = capture(|| {
            {
                let _in = context.enter();
                tracing::warn!(kind = "stale", "served fallback");
                let inner = tracing::info_span!("attempt", n = 2u64);
                let _a = inner.enter();
                tracing::info!("inside a span too");
            }
            tracing::info!("after the request");
        });
        assert_eq!(lines.len(), 3);
        let line = &lines[0];
        assert_eq!(line["trace_id"], trace.trace_id.to_hex());
        assert_eq!(line["span_id"], trace.span_id.to_hex());
        assert_eq!(line["request_id"], "req-2");
        assert_eq!(line["method"], "POST");
        assert_eq!(line["path"], "/orders");
        assert_eq!(line["route"], "orders");
        assert_eq!(line["kind"], "stale");
        assert_eq!(line["span"], "request");
        // A span inside the request: its fields after the context's, its name the leaf.
        assert_eq!(lines[1]["request_id"], "req-2");
        assert_eq!(lines[1]["n"], 2);
        assert_eq!(lines[1]["span"], "attempt");
        assert!(lines[2].get("trace_id").is_none());
    }

    #[test]
    fn inner_fields_win_and_reserved_names_are_kept_apart() {
        let lines = capture(|| {
            let outer = tracing::info_span!("outer", who = "outer", n = 1u64);
            let _o = outer.enter();
            let inner = tracing::info_span!("inner", who = "inner", level = "mine");
            let _i = inner.enter();
            tracing::error!(ok = true, ratio = 0.5, "x");
        });
        let line = &lines[0];
        assert_eq!(line["who"], "inner");
        assert_eq!(line["n"], 1);
        assert_eq!(line["level"], "ERROR");
        assert_eq!(line["field.level"], "mine");
        assert_eq!(line["ok"], true);
        assert_eq!(line["ratio"], 0.5);
        assert_eq!(line["span"], "inner");
    }

    #[test]
    fn the_request_span_survives_a_warn_filter() {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::registry()
            .with(EnvFilter::new("warn"))
            .with(JsonLayer::new(buffer.clone()));
        let trace = TraceContext::new_root();
        tracing::subscriber::with_default(subscriber, || {
            let span = request_span(&trace, "r", "GET", "/");
            let _g = span.enter();
            tracing::info!("filtered out");
            tracing::warn!("kept");
        });
        let lines = buffer.lines();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["trace_id"], trace.trace_id.to_hex());
    }

    #[test]
    fn filter_errors_name_the_variable() {
        let e = LoggingError::Filter {
            variable: "LEVEE_LOG",
            value: "info,=x=".into(),
            message: "bad".into(),
        };
        assert!(e.to_string().starts_with("LEVEE_LOG=`info,=x=`"));
    }

    #[test]
    fn strings_are_escaped_exactly_as_serde_json_escapes_them() {
        let samples = [
            "plain",
            "quote \" backslash \\ slash /",
            "ctl \u{0} \u{1} \u{8} \u{c} \n \r \t \u{1f} \u{7f}",
            "unicode é ✓ 😀",
            "",
        ];
        for sample in samples {
            let mut ours = Vec::new();
            write_json_str(&mut ours, sample);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(sample).unwrap()
            );
            let mut displayed = Vec::new();
            write_json_display(&mut displayed, format_args!("{sample}"));
            assert_eq!(
                String::from_utf8(displayed).unwrap(),
                serde_json::to_string(sample).unwrap()
            );
        }
    }

    #[test]
    fn every_ascii_character_at_every_offset_is_escaped_as_serde_json_does() {
        for c in (0u8..0x80).map(char::from).chain(['é', '✓']) {
            for at in 0..18 {
                let mut sample: String = "abcdefghijklmnopq".chars().take(at).collect();
                sample.push(c);
                sample.push_str("rstuvwxyz");
                let mut ours = Vec::new();
                write_json_str(&mut ours, &sample);
                assert_eq!(
                    String::from_utf8(ours).unwrap(),
                    serde_json::to_string(&sample).unwrap(),
                    "{c:?} at {at}"
                );
            }
        }
    }

    #[test]
    fn cached_plain_keys_are_copied_and_others_are_escaped_every_time() {
        let mut keys = PlainKeys::default();
        let mut out = Vec::new();
        for _ in 0..2 {
            keys.write(&mut out, "request_id");
            keys.write(&mut out, "we\"ird");
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "request_idwe\\\"irdrequest_idwe\\\"ird"
        );
    }

    #[test]
    fn the_timestamp_is_the_utc_calendar_time() {
        assert_eq!(&civil_time(0), b"1970-01-01T00:00:00");
        assert_eq!(&civil_time(951_782_400), b"2000-02-29T00:00:00");
        assert_eq!(&civil_time(1_735_732_800), b"2025-01-01T12:00:00");
        assert_eq!(&civil_time(4_102_444_799), b"2099-12-31T23:59:59");
        let mut out = Vec::new();
        let mut cache = None;
        write_timestamp(&mut out, &mut cache);
        let text: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(text.len(), "2025-01-01T12:00:00.000000Z".len(), "{text}");
        assert!(text.ends_with('Z'));
        assert_eq!(&text[19..20], ".", "{text}");
        assert!(text[20..26].bytes().all(|b| b.is_ascii_digit()), "{text}");
    }

    #[test]
    fn values_keep_their_json_types_and_a_recorded_field_replaces_its_value() {
        let lines = capture(|| {
            let span = tracing::info_span!(
                "request",
                status = tracing::field::Empty,
                route = tracing::field::Empty
            );
            let _g = span.enter();
            span.record("status", 200u64);
            span.record("status", 503u64);
            span.record("route", "a \"quoted\" route");
            tracing::info!(
                negative = -3i64,
                zero = 0u64,
                min = i64::MIN,
                max = u64::MAX,
                nan = f64::NAN,
                whole = 2.0f64,
                debugged = ?("x", 1),
                shown = %"te\nxt",
                "done"
            );
        });
        let line = &lines[0];
        assert_eq!(line["status"], 503);
        assert_eq!(line["route"], "a \"quoted\" route");
        assert_eq!(line["negative"], -3);
        assert_eq!(line["zero"], 0);
        assert_eq!(line["min"], i64::MIN);
        assert_eq!(line["max"], u64::MAX);
        assert!(line["nan"].is_null());
        assert_eq!(line["whole"], 2.0);
        assert_eq!(line["debugged"], "(\"x\", 1)");
        assert_eq!(line["shown"], "te\nxt");
        assert_eq!(line["message"], "done");
        assert_eq!(line["target"], module_path!());
    }
}
