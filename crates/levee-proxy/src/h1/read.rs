//! Reading a framed body off a connection, for both sides: an upstream's answer
//! (`connection::ResponseBody`) and a client's request (`server::InboundBody`). The bytes are
//! read into the connection's buffer and decoded by its [`BodyDecoder`].

use super::decode::{BodyDecoder, DecodeError, Decoded};
use bytes::{Bytes, BytesMut};
use http_body::Frame;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::AsyncRead;

/// A read buffer grows by this much when it runs low.
pub const READ_CHUNK: usize = 8 * 1024;

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// The bytes were not a body of its framing (or the connection closed before its end).
    Invalid(DecodeError),
    /// The connection failed.
    Io(io::Error),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // What was wrong, without a side's wording: each side says whose body it was.
        match self {
            BodyError::Invalid(e) => f.write_str(e.0),
            BodyError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for BodyError {}

/// Reads what has arrived from `reader` into `buffer`: `Ok(0)` when the peer closed.
///
/// Through `AsyncRead`, whose short reads clear the socket's readiness (a read that did not
/// fill the buffer drained the socket), so a later readiness check finds it pending without a
/// system call; `try_read_buf` would leave it set.
pub fn poll_fill<R: AsyncRead + Unpin>(
    reader: &mut R,
    buffer: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    if buffer.is_empty() {
        // Everything read so far has been handed on. When none of it is still in use (no
        // `Bytes` split off it is alive), the next read goes to the front of the allocation
        // again, without allocating. A keep-alive connection then reads every message into
        // the same few cache lines, where walking on through the buffer would touch new ones
        // each time: with many connections those are cold, for the kernel's copy and for
        // the parse after it. (Asking for one byte more than the capacity from the current
        // offset is what makes `try_reclaim` move to the front.)
        let _ = buffer.try_reclaim(buffer.capacity() + 1);
    }
    if buffer.capacity() - buffer.len() < READ_CHUNK / 4 {
        buffer.reserve(READ_CHUNK);
    }
    tokio_util::io::poll_read_buf(Pin::new(reader), cx, buffer)
}

/// The next frame of the body `decoder` frames, from `buffer` and then from `reader`;
/// `None` at its end (which, for a body that runs to the close, is the connection's end).
pub fn poll_body_frame<R: AsyncRead + Unpin>(
    decoder: &mut BodyDecoder,
    cx: &mut Context<'_>,
    reader: &mut R,
    buffer: &mut BytesMut,
) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
    loop {
        match decoder.decode(buffer) {
            Err(e) => return Poll::Ready(Some(Err(BodyError::Invalid(e)))),
            Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
            Ok(Decoded::Trailers(trailers)) => {
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))))
            }
            Ok(Decoded::End) => return Poll::Ready(None),
            Ok(Decoded::NeedMore) => match ready!(poll_fill(reader, buffer, cx)) {
                Ok(0) => {
                    return Poll::Ready(decoder.closed().err().map(|e| Err(BodyError::Invalid(e))))
                }
                Ok(_) => {}
                Err(e) => return Poll::Ready(Some(Err(BodyError::Io(e)))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `bytes` through `poll_fill` into `buffer`.
    fn fill(buffer: &mut BytesMut, bytes: &[u8]) {
        let mut reader = bytes;
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        match poll_fill(&mut reader, buffer, &mut cx) {
            Poll::Ready(Ok(n)) => assert_eq!(n, bytes.len()),
            other => panic!("the read did not complete: {other:?}"),
        }
    }

    #[test]
    fn an_emptied_buffer_reads_into_the_front_of_its_allocation_again() {
        let mut buffer = BytesMut::with_capacity(READ_CHUNK);
        fill(&mut buffer, b"GET / HTTP/1.1\r\n\r\n");
        let front = buffer.as_ptr();
        let message = buffer.split().freeze();
        drop(message);
        fill(&mut buffer, b"GET /next HTTP/1.1\r\n\r\n");
        assert_eq!(
            buffer.as_ptr(),
            front,
            "the second read reused the first's bytes"
        );
        assert_eq!(&buffer[..], b"GET /next HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn bytes_still_in_use_are_not_overwritten() {
        let mut buffer = BytesMut::with_capacity(READ_CHUNK);
        fill(&mut buffer, b"first");
        let front = buffer.as_ptr();
        let first = buffer.split().freeze();
        fill(&mut buffer, b"second");
        assert_ne!(buffer.as_ptr(), front);
        assert_eq!(&first[..], b"first");
        assert_eq!(&buffer[..], b"second");
    }

    #[test]
    fn unread_bytes_are_kept_where_they_are() {
        let mut buffer = BytesMut::with_capacity(READ_CHUNK);
        fill(&mut buffer, b"onetwo");
        drop(buffer.split_to(3));
        let pending = buffer.as_ptr();
        fill(&mut buffer, b"three");
        assert_eq!(buffer.as_ptr(), pending);
        assert_eq!(&buffer[..], b"twothree");
    }
}
