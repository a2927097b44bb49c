//! Bodies in both directions.
//!
//! Every response the proxy produces is a [`ProxyBody`]: a boxed stream of frames, so upstream
//! bodies (and their trailers, which gRPC needs) stream through untouched while Levee's own
//! answers are small in-memory bodies.
//!
//! Request bodies come in two forms ([`RequestBody`]):
//! - **buffered**: small bodies (a known length up to `limits.retry_buffer_bytes`, and no
//!   gRPC) are read whole before the first attempt so a retry can send them again;
//! - **streamed**: everything else goes to the upstream as it arrives and is never retried,
//!   since the bytes already sent cannot be replayed.
//!
//! A streamed body is wrapped in [`GuardedBody`], which enforces `max_body_bytes` and
//! `body_timeout` while it streams and leaves a note ([`BodyFault`]) saying which limit a
//! client broke, or that its body could not be read (a malformed chunk, a body cut short), so
//! the pipeline can answer 413, 408 or 400 rather than blame the upstream and count the
//! attempt against its breaker.

use crate::client_body::ClientBody;
use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The error type of every body the proxy handles.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response (and upstream request) the proxy produces.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Boxes any compatible body.
pub fn boxed<B>(body: B) -> ProxyBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// Which client limit a streamed request body broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFaultKind {
    /// More than `max_body_bytes` (413).
    TooLarge,
    /// Not sent within `body_timeout` (408).
    TooSlow,
    /// Malformed or cut short by the client (400).
    Unreadable,
}

/// A note a streamed body leaves for the pipeline when the client broke a limit.
#[derive(Debug, Default, Clone)]
pub struct BodyFault(Arc<AtomicU8>);

impl BodyFault {
    fn set(&self, kind: BodyFaultKind) {
        let code = match kind {
            BodyFaultKind::TooLarge => 1,
            BodyFaultKind::TooSlow => 2,
            BodyFaultKind::Unreadable => 3,
        };
        self.0.store(code, Ordering::Release);
    }

    /// The limit broken, if any.
    pub fn get(&self) -> Option<BodyFaultKind> {
        match self.0.load(Ordering::Acquire) {
            1 => Some(BodyFaultKind::TooLarge),
            2 => Some(BodyFaultKind::TooSlow),
            3 => Some(BodyFaultKind::Unreadable),
            _ => None,
        }
    }
}

/// The client broke a body limit or sent a body that could not be read.
#[derive(Debug)]
pub struct ClientBodyError(pub BodyFaultKind);

impl std::fmt::Display for ClientBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            BodyFaultKind::TooLarge => f.write_str("request body larger than max_body_bytes"),
            BodyFaultKind::TooSlow => f.write_str("request body not sent within body_timeout"),
            BodyFaultKind::Unreadable => {
                f.write_str("request body could not be read from the client")
            }
        }
    }
}

impl std::error::Error for ClientBodyError {}

/// An inbound body streamed to the upstream under the size and time limits.
pub struct GuardedBody {
    inner: ClientBody,
    max_bytes: u64,
    seen: u64,
    deadline: Pin<Box<Sleep>>,
    fault: BodyFault,
    failed: bool,
}

impl GuardedBody {
    /// Wraps `inner`; the body must be complete within `timeout` from now.
    pub fn new(inner: ClientBody, max_bytes: u64, timeout: Duration, fault: BodyFault) -> Self {
        GuardedBody {
            inner,
            max_bytes,
            seen: 0,
            deadline: Box::pin(tokio::time::sleep_until(Instant::now() + timeout)),
            fault,
            failed: false,
        }
    }

    fn fail(&mut self, kind: BodyFaultKind) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.failed = true;
        self.fault.set(kind);
        Poll::Ready(Some(Err(Box::new(ClientBodyError(kind)))))
    }
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen = this.seen.saturating_add(data.len() as u64);
                    if this.seen > this.max_bytes {
                        return this.fail(BodyFaultKind::TooLarge);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                tracing::info!(error = %e, "client failed while sending the body");
                this.fail(BodyFaultKind::Unreadable)
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_ready() {
                    return this.fail(BodyFaultKind::TooSlow);
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body, ready to send once (streamed) or as often as retries need (buffered).
pub enum RequestBody {
    /// The whole body; every attempt sends a copy.
    Buffered(Bytes),
    /// Streams once; `body` is `None` after the first attempt took it.
    Streamed {
        /// The body, until an attempt takes it.
        body: Option<GuardedBody>,
        /// Where the body notes a broken client limit.
        fault: BodyFault,
    },
}

impl RequestBody {
    /// A streamed body of at most `max_bytes`, complete within `timeout`.
    pub fn streamed(inner: ClientBody, max_bytes: u64, timeout: Duration) -> Self {
        let fault = BodyFault::default();
        RequestBody::Streamed {
            body: Some(GuardedBody::new(inner, max_bytes, timeout, fault.clone())),
            fault,
        }
    }

    /// The client limit a streamed body broke, if any.
    pub fn fault(&self) -> Option<BodyFaultKind> {
        match self {
            RequestBody::Buffered(_) => None,
            RequestBody::Streamed { fault, .. } => fault.get(),
        }
    }

    /// True when another attempt could send the body again.
    pub fn replayable(&self) -> bool {
        matches!(self, RequestBody::Buffered(_))
    }

    /// The body for the next attempt; `None` when a streamed body was already sent.
    pub fn take_for_attempt(&mut self) -> Option<ProxyBody> {
        match self {
            RequestBody::Buffered(bytes) if bytes.is_empty() => Some(empty()),
            RequestBody::Buffered(bytes) => Some(full(bytes.clone())),
            RequestBody::Streamed { body, .. } => body.take().map(boxed),
        }
    }
}

/// Reads a whole body of at most `max_bytes` within `timeout`.
pub async fn read_limited(
    body: ClientBody,
    max_bytes: u64,
    timeout: Duration,
) -> Result<Bytes, ReadError> {
    let read = async {
        let mut body = std::pin::pin!(body);
        let mut buf = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(ReadError::Client)?;
            if let Ok(mut data) = frame.into_data() {
                if (buf.len() as u64).saturating_add(data.remaining() as u64) > max_bytes {
                    return Err(ReadError::Limit(BodyFaultKind::TooLarge));
                }
                while data.has_remaining() {
                    let chunk = data.chunk();
                    buf.extend_from_slice(chunk);
                    let n = chunk.len();
                    data.advance(n);
                }
            }
        }
        Ok(buf.freeze())
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(result) => result,
        Err(_) => Err(ReadError::Limit(BodyFaultKind::TooSlow)),
    }
}

/// Why a request body could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The client broke a limit.
    Limit(BodyFaultKind),
    /// The client's connection failed while sending.
    Client(BoxError),
}
