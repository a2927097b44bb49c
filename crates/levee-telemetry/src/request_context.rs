//! The fields every log line of one request carries, without a `tracing` span.
//!
//! A `tracing` span per request costs the proxy about a tenth of its per-request work (a slot in
//! the span registry, its fields recorded through visitors, reference counts at every enter,
//! exit and close: docs/benchmarks.md). With JSON logs, [`JsonLayer`](crate::JsonLayer) needs
//! none of that: a [`RequestContext`] keeps the request's fields already serialised, and while
//! the request's future is polled ([`RequestContext::scope`]) it is the thread's current
//! context, whose fields JsonLayer writes into every line as it would a root span named
//! `request` (so the lines are the same as with the span).
//!
//! A context is the thread's for exactly the duration of one poll (or of an
//! [`RequestContext::enter`] guard); a spawned task does not inherit it.
//!
//! ```
//! use levee_http::TraceContext;
//! # async fn handle() {}
//! # async fn example(headers: http::HeaderMap) {
//! let trace = TraceContext::from_headers(&headers);
//! let context = levee_telemetry::RequestContext::new(&trace, "req-1", "GET", "/inventory/42");
//! context.record("route", "inventory"); // once routed; also `upstream`
//! context.scope(handle()).await; // every JSON line logged inside carries the fields
//! # }
//! ```

use crate::logging::SpanFields;
use levee_http::TraceContext;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

/// The name lines logged in a context give as their `span`, as the request span's did.
pub const REQUEST_SPAN_NAME: &str = "request";

/// One request's log fields: `trace_id`, `span_id`, `request_id`, `method`, `path`, and
/// later `route` and `upstream` (see the module doc).
#[derive(Debug)]
pub struct RequestContext {
    fields: Mutex<SpanFields>,
}

thread_local! {
    static CURRENT: Cell<Option<Arc<RequestContext>>> = const { Cell::new(None) };
}

impl RequestContext {
    /// The context of a request: the fields [`request_span`](crate::request_span) carries.
    pub fn new(
        trace: &TraceContext,
        request_id: &str,
        method: &str,
        path: &str,
    ) -> Arc<RequestContext> {
        let trace_id = trace.trace_id.hex_bytes();
        let span_id = trace.span_id.hex_bytes();
        let mut fields = SpanFields::with_capacity(7);
        // Hex digits and an HTTP method token (RFC 9110 `token`: no quote, backslash or
        // control character) need no escaping; the id and path come from the client.
        fields.record_plain("trace_id", std::str::from_utf8(&trace_id).unwrap_or(""));
        fields.record_plain("span_id", std::str::from_utf8(&span_id).unwrap_or(""));
        fields.record_str("request_id", request_id);
        fields.record_plain("method", method);
        fields.record_str("path", path);
        Arc::new(RequestContext {
            fields: Mutex::new(fields),
        })
    }

    /// Adds (or replaces) a text field, such as `route` once the request is routed.
    pub fn record(&self, name: &'static str, value: &str) {
        self.lock().record_str(name, value);
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, SpanFields> {
        self.fields.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `future`, with this context the thread's current one while it is polled.
    pub fn scope<F: Future>(self: &Arc<Self>, future: F) -> InRequest<F> {
        InRequest {
            context: Some(Arc::clone(self)),
            future,
        }
    }

    /// Makes this the thread's current context until the guard is dropped (for synchronous
    /// code, such as a line logged from a destructor).
    pub fn enter(self: &Arc<Self>) -> Entered {
        Entered {
            previous: CURRENT.with(|c| c.replace(Some(Arc::clone(self)))),
        }
    }
}

/// Calls `f` with the thread's current context, if any.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&RequestContext>) -> R) -> R {
    CURRENT.with(|current| {
        // Taken out and put back: no reference count is touched.
        let context = current.take();
        let result = f(context.as_deref());
        current.set(context);
        result
    })
}

/// The guard of [`RequestContext::enter`].
#[must_use = "the context is current only while the guard lives"]
pub struct Entered {
    previous: Option<Arc<RequestContext>>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous.take()));
    }
}

pin_project_lite::pin_project! {
    /// The future of [`RequestContext::scope`].
    pub struct InRequest<F> {
        // Moved into the thread-local slot for each poll and back after it.
        context: Option<Arc<RequestContext>>,
        #[pin]
        future: F,
    }
}

/// Puts the context back where it came from when a poll ends, even by a panic.
struct Restore<'a> {
    slot: &'a mut Option<Arc<RequestContext>>,
    previous: Option<Arc<RequestContext>>,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        *self.slot = CURRENT.with(|c| c.replace(self.previous.take()));
    }
}

impl<F: Future> Future for InRequest<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let previous = CURRENT.with(|c| c.replace(this.context.take()));
        let _restore = Restore {
            slot: this.context,
            previous,
        };
        this.future.poll(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn current_request_id() -> Option<String> {
        with_current(|c| {
            c.map(|c| {
                let fields = c.lock();
                let value = fields.get("request_id").unwrap();
                serde_json::from_slice::<String>(value).unwrap()
            })
        })
    }

    #[tokio::test]
    async fn the_context_is_current_only_while_its_future_is_polled() {
        let a = RequestContext::new(&TraceContext::new_root(), "a", "GET", "/");
        let b = RequestContext::new(&TraceContext::new_root(), "b", "GET", "/");
        assert_eq!(current_request_id(), None);
        let seen = a
            .scope(async {
                let outer = current_request_id();
                let inner = b.scope(async { current_request_id() }).await;
                tokio::task::yield_now().await;
                (outer, inner, current_request_id())
            })
            .await;
        assert_eq!(seen, (Some("a".into()), Some("b".into()), Some("a".into())));
        assert_eq!(current_request_id(), None);
        {
            let _entered = b.enter();
            assert_eq!(current_request_id().as_deref(), Some("b"));
        }
        assert_eq!(current_request_id(), None);
        // Both contexts are whole again (nothing left in the thread-local slot).
        assert_eq!(Arc::strong_count(&a), 1);
        assert_eq!(Arc::strong_count(&b), 1);
    }

    #[test]
    fn a_panicking_poll_leaves_no_context_behind() {
        let a = RequestContext::new(&TraceContext::new_root(), "a", "GET", "/");
        let mut future = Box::pin(a.scope(async { panic!("boom") }));
        let waker = std::task::Waker::noop();
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = future.as_mut().poll(&mut Context::from_waker(waker));
        }));
        assert!(polled.is_err());
        assert_eq!(current_request_id(), None);
    }

    #[test]
    fn a_recorded_field_replaces_its_value() {
        let a = RequestContext::new(&TraceContext::new_root(), "a", "GET", "/");
        a.record("route", "one");
        a.record("route", "t\"wo");
        let fields = a.lock();
        assert_eq!(fields.get("route").unwrap(), br#""t\"wo""#);
    }
}
