//! The access log: one JSON line per proxied request (SPEC §11), written when the request is
//! over, with the request's [`RequestContext`] so it carries `trace_id`, `request_id`, method,
//! path, route and upstream.
//!
//! ```json
//! {"timestamp":"2026-11-24T00:52:16.934804Z","level":"INFO","target":"levee::access",
//!  "trace_id":"14151809757f6955c174fbd9e4ab255e","span_id":"6ba60601cea5ae50",
//!  "request_id":"eef7b0a7-…","method":"GET","path":"/items/1","route":"items",
//!  "upstream":"upstream","message":"request","status":200,"outcome":"success","code":"",
//!  "endpoint":"127.0.0.1:18080","attempts":1,"fallback":"","duration_ms":0.76,"span":"request"}
//! ```
//!
//! With JSON logs ([`init_logging`](crate::init_logging)`(true)`, `levee run`'s default) the
//! line is written straight to the log buffer, the bytes [`JsonLayer`](crate::JsonLayer) would
//! write for the same event but without a `tracing` event (the event was an eighth of a
//! request's cost in the proxy's profile, docs/benchmarks.md). Otherwise, and under any other
//! subscriber, it is an `INFO` event of target `levee::access`. Either way the filter decides:
//! `LEVEE_LOG` directives on the target and level (`info,levee::access=off`) apply.

use crate::logging::{write_request_line, EventFields, EventKeys, FieldValue};
use crate::RequestContext;

/// The target of access lines, for log filters.
pub const ACCESS_TARGET: &str = "levee::access";

/// What one request's access line says besides its context's fields.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccessLine<'a> {
    /// The status answered to the client (499 when the client went away first).
    pub status: u16,
    /// The call's outcome (`success`, `failure`, `rejected`, `cancelled`, ...).
    pub outcome: &'a str,
    /// The SPEC §7 code Levee answered with, or empty.
    pub code: &'a str,
    /// The address of the last endpoint tried, or empty.
    pub endpoint: &'a str,
    /// Attempts made.
    pub attempts: u32,
    /// The fallback served (`stale`, `static`), or empty.
    pub fallback: &'a str,
    /// From the request's arrival to the end of its response, in milliseconds.
    pub duration_ms: f64,
}

impl AccessLine<'_> {
    /// Logs the line of the request of `context` (and `span`, its `tracing` span when it has
    /// one), if the filter lets `levee::access` `INFO` lines through.
    pub fn log(&self, context: &std::sync::Arc<RequestContext>, span: &tracing::Span) {
        if !tracing::enabled!(target: "levee::access", tracing::Level::INFO) {
            return;
        }
        if !write_request_line(
            context,
            &tracing::Level::INFO,
            ACCESS_TARGET,
            "request",
            &self.fields(),
        ) {
            self.log_event(context, span);
        }
    }

    /// The same line as a `tracing` event.
    fn log_event(&self, context: &std::sync::Arc<RequestContext>, span: &tracing::Span) {
        let _context = context.enter();
        let _span = span.enter();
        tracing::info!(
            target: "levee::access",
            status = self.status,
            outcome = self.outcome,
            code = self.code,
            endpoint = self.endpoint,
            attempts = self.attempts,
            fallback = self.fallback,
            duration_ms = self.duration_ms,
            "request"
        );
    }

    /// The event's fields, in the event's order.
    fn fields(&self) -> EventFields<'_, 7> {
        static KEYS: EventKeys<7> = EventKeys::new([
            "status",
            "outcome",
            "code",
            "endpoint",
            "attempts",
            "fallback",
            "duration_ms",
        ]);
        EventFields {
            keys: &KEYS,
            values: [
                FieldValue::U64(u64::from(self.status)),
                FieldValue::Str(self.outcome),
                FieldValue::Str(self.code),
                FieldValue::Str(self.endpoint),
                FieldValue::U64(u64::from(self.attempts)),
                FieldValue::Str(self.fallback),
                FieldValue::F64(self.duration_ms),
            ],
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::line_buffer::LineBuffer;
    use crate::logging::write_request_line_to;
    use crate::{request_span, JsonLayer};
    use levee_http::TraceContext;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;

    fn captured() -> (LineBuffer, Arc<Mutex<Vec<u8>>>) {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&bytes);
        let buffer = LineBuffer::with_output(move |b| sink.lock().unwrap().extend_from_slice(b));
        (buffer, bytes)
    }

    fn lines(bytes: &Mutex<Vec<u8>>) -> Vec<String> {
        let text = String::from_utf8(bytes.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_string).collect()
    }

    /// The line without its timestamp (the only part that differs between two lines).
    fn untimed(line: &str) -> String {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(value["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(line.starts_with("{\"timestamp\":\""), "{line}");
        line[line.find("\",\"level\"").unwrap()..].to_string()
    }

    const CASES: [AccessLine<'static>; 2] = [
        AccessLine {
            status: 200,
            outcome: "success",
            code: "",
            endpoint: "127.0.0.1:7001",
            attempts: 1,
            fallback: "",
            duration_ms: 0.762894,
        },
        AccessLine {
            status: 503,
            outcome: "rejected",
            code: "circuit_open",
            endpoint: "",
            attempts: 0,
            fallback: "stale \"cached\"",
            duration_ms: f64::NAN,
        },
    ];

    /// Logs each case three ways: as an event with only the context (JSON logs in
    /// production), as an event with the context and the request span (text logs, tests),
    /// and directly.
    #[test]
    fn the_direct_line_is_byte_for_byte_the_events_line() {
        let (buffer, bytes) = captured();
        let subscriber = tracing_subscriber::registry().with(JsonLayer::new(buffer.clone()));
        let trace = TraceContext::new_root();
        tracing::subscriber::with_default(subscriber, || {
            for (i, line) in CASES.iter().enumerate() {
                let (id, path) = ("req \u{1}", "/items/\"1\"");
                let context = RequestContext::new(&trace, id, "GET", path);
                let span = request_span(&trace, id, "GET", path);
                if i == 0 {
                    for (name, value) in [("route", "items"), ("upstream", "inventory")] {
                        context.record(name, value);
                        span.record(name, value);
                    }
                }
                line.log_event(&context, &tracing::Span::none());
                line.log_event(&context, &span);
                assert!(write_request_line_to(
                    &buffer,
                    &context,
                    &tracing::Level::INFO,
                    ACCESS_TARGET,
                    "request",
                    &line.fields()
                ));
            }
        });
        buffer.flush();
        let lines = lines(&bytes);
        assert_eq!(lines.len(), 6, "{lines:#?}");
        for three in lines.chunks(3) {
            assert_eq!(untimed(&three[0]), untimed(&three[2]));
            assert_eq!(untimed(&three[1]), untimed(&three[2]));
        }
        let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(first["trace_id"], trace.trace_id.to_hex());
        assert_eq!(first["span_id"], trace.span_id.to_hex());
        assert_eq!(first["route"], "items");
        assert_eq!(first["status"], 200);
        assert_eq!(first["target"], ACCESS_TARGET);
        assert_eq!(first["span"], "request");
        let second: serde_json::Value = serde_json::from_str(&lines[3]).unwrap();
        assert!(second.get("route").is_none(), "{second}");
        assert_eq!(second["duration_ms"], serde_json::Value::Null);
        assert_eq!(second["request_id"], "req \u{1}");
        assert_eq!(second["path"], "/items/\"1\"");
    }

    #[test]
    fn a_context_field_named_like_an_event_field_is_left_to_the_event() {
        let (buffer, bytes) = captured();
        let context = RequestContext::new(&TraceContext::new_root(), "r", "GET", "/");
        context.record("status", "clash");
        assert!(!write_request_line_to(
            &buffer,
            &context,
            &tracing::Level::INFO,
            ACCESS_TARGET,
            "request",
            &CASES[0].fields()
        ));
        buffer.flush();
        assert!(bytes.lock().unwrap().is_empty());
    }

    #[test]
    fn without_the_global_json_output_the_line_is_an_event() {
        // No init_logging here: the line goes through the subscriber in force.
        let (buffer, bytes) = captured();
        let subscriber = tracing_subscriber::registry().with(JsonLayer::new(buffer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let trace = TraceContext::new_root();
            let context = RequestContext::new(&trace, "r", "GET", "/");
            CASES[1].log(&context, &tracing::Span::none());
        });
        buffer.flush();
        let lines = lines(&bytes);
        assert_eq!(lines.len(), 1);
        let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(line["outcome"], "rejected");
        assert_eq!(line["request_id"], "r");
        assert_eq!(line["message"], "request");
    }
}
