//! One JSON log line per request (SPEC §11), written when the request is over: when its
//! response body has been sent, or when the client went away. It is emitted from `Drop`, so a
//! request that is cancelled half-way still gets its line (outcome `cancelled`).
//!
//! The line is written by levee-telemetry's `AccessLine` with the request's `RequestContext`,
//! so it carries the `trace_id`, `request_id`, method, path, route and upstream besides its own
//! fields.

use crate::endpoint::Endpoint;
use levee_core::Outcome;
use levee_telemetry::RequestContext;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::time::Instant;

/// What the line says; filled in as the request goes.
#[derive(Debug, Default)]
struct Fields {
    status: Option<u16>,
    outcome: Option<Outcome>,
    code: Option<&'static str>,
    /// The endpoint itself, not a copy of its address: no `String` per request.
    endpoint: Option<Arc<Endpoint>>,
    attempts: u32,
    fallback: Option<&'static str>,
}

/// The request's log line, shared between the handler and the response body.
#[derive(Clone)]
pub struct AccessLog(Arc<Inner>);

struct Inner {
    context: Arc<RequestContext>,
    /// The request's `tracing` span, when it has one (text logs: see `pipeline::handle`).
    span: tracing::Span,
    started: Instant,
    fields: Mutex<Fields>,
}

impl AccessLog {
    /// Starts the line of a request running in `context` (and `span`).
    pub fn new(context: Arc<RequestContext>, span: tracing::Span) -> Self {
        AccessLog(Arc::new(Inner {
            context,
            span,
            started: crate::clock::now(),
            fields: Mutex::new(Fields::default()),
        }))
    }

    fn fields(&self) -> MutexGuard<'_, Fields> {
        self.0.fields.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The request was routed: its lines from now on name the route and upstream.
    pub fn routed(&self, route: &str, upstream: &str) {
        self.0.context.record("route", route);
        self.0.context.record("upstream", upstream);
        self.0.span.record("route", route);
        self.0.span.record("upstream", upstream);
    }

    /// The answer's status and the call's outcome.
    pub fn respond(&self, status: u16, outcome: Outcome) {
        let mut f = self.fields();
        f.status = Some(status);
        f.outcome = Some(outcome);
    }

    /// The SPEC §7 code Levee answered with, if any.
    pub fn code(&self, code: &'static str) {
        self.fields().code = Some(code);
    }

    /// An attempt went to `endpoint` (`None`: no endpoint could take it).
    pub(crate) fn attempt(&self, endpoint: Option<&Arc<Endpoint>>) {
        let mut f = self.fields();
        f.attempts += 1;
        f.endpoint = endpoint.cloned();
    }

    /// A fallback of `kind` was served.
    pub fn fallback(&self, kind: &'static str) {
        self.fields().fallback = Some(kind);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let f = self.fields.get_mut().unwrap_or_else(|p| p.into_inner());
        let outcome = match (f.status, f.outcome) {
            (Some(_), Some(o)) => o.as_str(),
            _ => Outcome::Cancelled.as_str(),
        };
        levee_telemetry::AccessLine {
            status: f.status.unwrap_or(499),
            outcome,
            code: f.code.unwrap_or(""),
            endpoint: f.endpoint.as_deref().map_or("", Endpoint::address),
            attempts: f.attempts,
            fallback: f.fallback.unwrap_or(""),
            duration_ms: crate::clock::now()
                .saturating_duration_since(self.started)
                .as_secs_f64()
                * 1000.0,
        }
        .log(&self.context, &self.span);
    }
}
