//! Logs as JSON lines, each carrying the request's `trace_id` (SPEC §11).
//!
//! Every proxied request runs inside the span [`request_span`] returns. [`JsonLayer`] writes
//! each event as one JSON object on one line, with the fields of every span it happened in
//! flattened to the top level (inner spans win over outer ones, the event's own fields over
//! both), so a log search for `trace_id` finds every line of a request, and the `trace_id` in
//! an error envelope leads straight to them.
//!
//! ```json
//! {"timestamp":"2025-01-01T12:00:00.000000Z","level":"WARN","target":"levee_proxy::fallback",
//!  "trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7",
//!  "request_id":"…","method":"GET","path":"/inventory/42","route":"inventory",
//!  "message":"served stale fallback","span":"request"}
//! ```
//!
//! # How the proxy opens the span
//!
//! ```
//! use levee_http::TraceContext;
//! use tracing::Instrument;
//! # async fn handle() {}
//! # async fn example(headers: http::HeaderMap) {
//! let trace = TraceContext::from_headers(&headers);
//! let span = levee_telemetry::request_span(&trace, "req-1", "GET", "/inventory/42");
//! span.record("route", "inventory"); // once routed; also upstream, status, outcome
//! handle().instrument(span).await;
//! # }
//! ```
//!
//! Instrument the whole request future (not just the upstream call) so rejections, fallbacks
//! and the access log all carry the ids. Spawned tasks must be instrumented with
//! `Span::current()` explicitly: a span does not follow `tokio::spawn` by itself.
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

use levee_http::TraceContext;
use serde_json::Value;
use std::fmt;
use std::io::Write as _;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
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
        registry.with(JsonLayer::new(std::io::stderr)).try_init()
    } else {
        registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init()
    };
    result.map_err(|e| LoggingError::AlreadyInitialized(e.to_string()))
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
/// hold secrets). `route`, `upstream`, `status` and `outcome` are declared empty for the proxy
/// to [`record`](tracing::Span::record) once known.
pub fn request_span(
    trace: &TraceContext,
    request_id: &str,
    method: &str,
    path: &str,
) -> tracing::Span {
    tracing::error_span!(
        "request",
        trace_id = %trace.trace_id,
        span_id = %trace.span_id,
        request_id = request_id,
        method = method,
        path = path,
        route = tracing::field::Empty,
        upstream = tracing::field::Empty,
        status = tracing::field::Empty,
        outcome = tracing::field::Empty,
    )
}

/// A span's recorded fields, kept in its extensions.
#[derive(Debug, Default)]
struct SpanFields(Vec<(&'static str, Value)>);

const RESERVED: [&str; 3] = ["timestamp", "level", "target"];

fn set(fields: &mut Vec<(String, Value)>, name: &str, value: Value) {
    let name = if RESERVED.contains(&name) {
        format!("field.{name}")
    } else {
        name.to_owned()
    };
    match fields.iter_mut().find(|(k, _)| *k == name) {
        Some(slot) => slot.1 = value,
        None => fields.push((name, value)),
    }
}

/// Records tracing fields as JSON values.
struct Visitor<'a>(&'a mut Vec<(&'static str, Value)>);

impl Visitor<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        match self.0.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }
}

impl Visit for Visitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}

/// A `tracing` layer writing one JSON object per event, one per line, with span fields
/// flattened to the top level (see the module doc). Generic over the writer so tests can
/// capture lines.
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
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields::default();
        attrs.record(&mut Visitor(&mut fields.0));
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            values.record(&mut Visitor(&mut fields.0));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut timestamp = String::with_capacity(32);
        if SystemTime
            .format_time(&mut Writer::new(&mut timestamp))
            .is_err()
        {
            timestamp.clear();
        }
        let mut line: Vec<(String, Value)> = vec![
            ("timestamp".to_owned(), Value::from(timestamp)),
            ("level".to_owned(), Value::from(meta.level().as_str())),
            ("target".to_owned(), Value::from(meta.target())),
        ];
        let mut leaf = None;
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    for (name, value) in &fields.0 {
                        set(&mut line, name, value.clone());
                    }
                }
                leaf = Some(span.name());
            }
        }
        let mut own = Vec::new();
        event.record(&mut Visitor(&mut own));
        for (name, value) in own {
            set(&mut line, name, value);
        }
        if let Some(name) = leaf {
            set(&mut line, "span", Value::from(name));
        }
        let mut out = Vec::with_capacity(256);
        if write_object(&mut out, &line).is_ok() {
            out.push(b'\n');
            // One write per line so concurrent lines never interleave; a failed log write has
            // nowhere to be reported.
            let _ = self.make_writer.make_writer_for(meta).write_all(&out);
        }
    }
}

fn write_object(out: &mut Vec<u8>, fields: &[(String, Value)]) -> serde_json::Result<()> {
    out.push(b'{');
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, name)?;
        out.push(b':');
        serde_json::to_writer(&mut *out, value)?;
    }
    out.push(b'}');
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
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
}
