//! Writing an HTTP/1.1 message: its head, then its body's pieces in the body's framing, queued
//! as `Bytes` and written with vectored writes (a head and a small body leave in one
//! `writev`). The client side (requests to upstreams) and the server side (answers to
//! clients) both write through an [`Outbox`].

use super::encode::{self, BodyFraming};
use crate::body::BoxError;
use bytes::{Buf, Bytes};
use http::HeaderMap;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::AsyncWrite;

/// At most this many pieces go into one `writev`.
const MAX_IO_SLICES: usize = 16;

/// The bytes of a message waiting to be written, and what its body still owes.
#[derive(Debug)]
pub struct Outbox {
    queue: VecDeque<Bytes>,
    queued: usize,
    framing: BodyFraming,
    /// Bytes a `Content-Length` body still owes.
    owed: u64,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            queue: VecDeque::with_capacity(4),
            queued: 0,
            framing: BodyFraming::None,
            owed: 0,
        }
    }
}

impl Outbox {
    /// Starts a message: `head`, then a body framed as `framing`. Anything still queued (a
    /// `100 Continue` not yet written whole) goes first.
    pub fn start(&mut self, head: Bytes, framing: BodyFraming) {
        self.framing = framing;
        self.owed = match framing {
            BodyFraming::Length(n) => n,
            _ => 0,
        };
        self.push(head);
    }

    /// How the message being written is framed.
    pub fn framing(&self) -> BodyFraming {
        self.framing
    }

    /// Queues bytes as they are (an interim response; a head).
    pub fn push(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.queued += bytes.len();
            self.queue.push_back(bytes);
        }
    }

    /// Bytes queued and not yet written.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Queues a piece of the body in its framing.
    pub fn push_data(&mut self, data: Bytes) -> Result<(), BoxError> {
        if data.is_empty() {
            return Ok(());
        }
        match self.framing {
            BodyFraming::Chunked => {
                self.push(encode::chunk_size_line(data.len()));
                self.push(data);
                self.push(Bytes::from_static(encode::CHUNK_END));
            }
            BodyFraming::Length(_) => {
                let len = data.len() as u64;
                if len > self.owed {
                    return Err("a body longer than its Content-Length".into());
                }
                self.owed -= len;
                self.push(data);
            }
            BodyFraming::UntilClose => self.push(data),
            BodyFraming::None => return Err("a body for a message that has none".into()),
        }
        Ok(())
    }

    /// The body is over, with `trailers` if it has them (written only in the chunked framing).
    pub fn push_end(&mut self, trailers: Option<&HeaderMap>) -> Result<(), BoxError> {
        match self.framing {
            BodyFraming::Chunked => self.push(encode::last_chunk(trailers)),
            BodyFraming::Length(_) if self.owed > 0 => {
                return Err("a body that ended before its Content-Length".into())
            }
            _ => {}
        }
        Ok(())
    }

    /// Writes everything queued: `Ready(Ok)` once it is all written and flushed.
    pub fn poll_write<W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut W,
    ) -> Poll<io::Result<()>> {
        while !self.queue.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IO_SLICES];
            let mut count = 0;
            for (slice, bytes) in slices.iter_mut().zip(self.queue.iter()) {
                *slice = IoSlice::new(bytes);
                count += 1;
            }
            let written = ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..count]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.consume(written);
        }
        // A plain socket has nothing to flush; TLS has the records it buffered.
        Pin::new(io).poll_flush(cx)
    }

    fn consume(&mut self, mut written: usize) {
        self.queued -= written.min(self.queued);
        while written > 0 {
            let Some(front) = self.queue.front_mut() else {
                return;
            };
            if written >= front.len() {
                written -= front.len();
                self.queue.pop_front();
            } else {
                front.advance(written);
                written = 0;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn written(outbox: &mut Outbox) -> Vec<u8> {
        let mut out = Vec::new();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(outbox.poll_write(&mut cx, &mut out).is_ready());
        out
    }

    #[test]
    fn a_length_body_is_written_as_it_is_and_held_to_its_length() {
        let mut outbox = Outbox::default();
        outbox.start(Bytes::from_static(b"HEAD\r\n\r\n"), BodyFraming::Length(5));
        outbox.push_data(Bytes::from_static(b"abc")).unwrap();
        assert!(outbox.push_end(None).is_err(), "two bytes short");
        assert!(outbox.push_data(Bytes::from_static(b"def")).is_err());
        outbox.push_data(Bytes::from_static(b"de")).unwrap();
        outbox.push_end(None).unwrap();
        assert_eq!(outbox.queued(), 13);
        assert_eq!(written(&mut outbox), b"HEAD\r\n\r\nabcde");
        assert_eq!(outbox.queued(), 0);
    }

    #[test]
    fn a_chunked_body_is_framed_with_its_trailers() {
        let mut outbox = Outbox::default();
        outbox.start(Bytes::from_static(b"H\r\n\r\n"), BodyFraming::Chunked);
        outbox.push_data(Bytes::from_static(b"hello")).unwrap();
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        outbox.push_end(Some(&trailers)).unwrap();
        assert_eq!(
            written(&mut outbox),
            b"H\r\n\r\n5\r\nhello\r\n0\r\ngrpc-status: 0\r\n\r\n"
        );
    }

    #[test]
    fn a_message_without_a_body_refuses_one() {
        let mut outbox = Outbox::default();
        outbox.start(Bytes::from_static(b"H\r\n\r\n"), BodyFraming::None);
        assert!(outbox.push_data(Bytes::from_static(b"x")).is_err());
        outbox.push_end(None).unwrap();
        assert_eq!(written(&mut outbox), b"H\r\n\r\n");
    }
}
