//! The body of an upstream's response: read by Levee's own HTTP/1.1 client (`h1`), hyper's
//! `Incoming` (h2c upstreams), or the bytes of an answer fault injection synthesizes.

use crate::body::BoxError;
use crate::h1::connection::ResponseBody;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll};

/// An upstream response's body.
pub enum UpstreamBody {
    /// From an HTTP/1.1 upstream.
    H1(ResponseBody),
    /// From hyper (an h2c upstream).
    Hyper(Incoming),
    /// An answer Levee made up (an injected abort, `fault`).
    Synthesized(Full<Bytes>),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpstreamBody::H1(body) => Pin::new(body).poll_frame(cx),
            UpstreamBody::Hyper(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map_err(Into::into))),
            UpstreamBody::Synthesized(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map_err(|never| match never {}))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::H1(body) => body.is_end_stream(),
            UpstreamBody::Hyper(body) => body.is_end_stream(),
            UpstreamBody::Synthesized(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::H1(body) => body.size_hint(),
            UpstreamBody::Hyper(body) => body.size_hint(),
            UpstreamBody::Synthesized(body) => body.size_hint(),
        }
    }
}
