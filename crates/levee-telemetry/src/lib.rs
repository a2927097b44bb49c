//! # levee-telemetry: metrics and logs
//!
//! - [`metrics`]: every SPEC §11 metric under its exact name and labels, each series labelled
//!   `service` and `language="rust"`, encoded as OpenMetrics text for `/metrics`.
//! - [`logging`]: JSON-lines logs whose every line inside a request span carries the trace id,
//!   and the request span the proxy opens for each request; [`access_line`] writes the one
//!   line per request; [`line_buffer`] batches lines into few writes.
//!
//! Names come from [`levee_core::names`], the one file of public strings.

pub mod access_line;
pub mod line_buffer;
pub mod logging;
pub mod metrics;
pub mod request_context;
pub mod transitions;

pub use access_line::{AccessLine, ACCESS_TARGET};
pub use line_buffer::LineBuffer;
pub use logging::{
    flush_logs, init_logging, request_span, request_spans_wanted, JsonLayer, LoggingError,
};
pub use metrics::{
    EndpointMetrics, Metrics, PartitionMetrics, RouteMetrics, CONTENT_TYPE, LATENCY_BUCKETS,
};
pub use request_context::RequestContext;
pub use transitions::{TransitionLog, TransitionRecord};
