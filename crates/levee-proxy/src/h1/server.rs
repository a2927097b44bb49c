//! One HTTP/1.1 client connection, served by Levee's own code: requests read with
//! [`request`](super::request), answers written with [`response`](super::response), one
//! request at a time (pipelined requests wait in the read buffer, as with hyper).
//!
//! Why not hyper's server connection: with the upstream side already Levee's own
//! (`h1::connection`), bench/h1-floor measured hyper's server side at about 3,400 instructions
//! a request above framing HTTP/1.1 directly, and the `auto` builder added a rewind buffer and
//! a protocol sniff on top (docs/benchmarks.md, "The eighth data-path pass"). HTTP/2 stays
//! hyper's (`crate::server` picks by the preface or by ALPN).
//!
//! How a connection is driven:
//! - **Head**: read within `header_read_timeout`, measured from accept for the first request
//!   and from the end of the previous answer for the next (so an idle keep-alive connection is
//!   closed then, as hyper did). A head Levee cannot read is answered with its status
//!   (`request`) and the connection closed.
//! - **Body**: a request without a body keeps the connection's read side here; one with a
//!   body hands it to its [`InboundBody`], which reads the body as the pipeline polls it and
//!   hands the read side back at the body's end. `Expect: 100-continue` is answered when the
//!   body is first polled, so a request refused before that never makes the client send it.
//! - **While the answer is awaited and written**: the connection is watched for its close,
//!   and a client that closes (or half-closes) drops its request, cancelling the upstream call
//!   (hyper's default: no half-close). Bytes of a next request are kept, up to the head limit.
//! - **Answer**: head and body written with vectored writes as the body yields pieces; an
//!   answer whose body fails is cut short by closing the connection, so the client sees it is
//!   incomplete.
//! - **Reuse**: while both sides keep the connection, the body was read to its end, and no
//!   stop or idle close was asked for (`CloseRequest`); after a close is asked for, the
//!   answer in flight says `connection: close`, and a connection waiting for a head closes.

use super::decode::{BodyDecoder, Framing};
use super::encode::BodyFraming;
use super::read::{self, READ_CHUNK};
use super::request::{self, RequestHead};
use super::response;
use super::spare_maps;
use super::write::Outbox;
use crate::body::BoxError;
use crate::client_body::ClientBody;
use crate::server::CloseRequest;
use bytes::{Bytes, BytesMut};
use futures_util::task::AtomicWaker;
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{tcp, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;

/// An answer's body is read ahead of the socket by at most this much.
const WRITE_HIGH_WATER: usize = 64 * 1024;

/// The interim answer to `Expect: 100-continue`.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The limits a connection is served under.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How long a client has to send a request's head.
    pub header_read_timeout: Duration,
    /// The largest head accepted (`431` beyond).
    pub max_head_bytes: usize,
}

/// The reading half of a client connection.
pub enum ClientRead {
    Plain(tcp::OwnedReadHalf),
    Tls(tokio::io::ReadHalf<TlsStream<TcpStream>>),
}

/// The writing half of a client connection.
pub enum ClientWrite {
    Plain(tcp::OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<TlsStream<TcpStream>>),
}

/// Splits a plaintext connection (no lock between the halves).
pub fn split_plain(stream: TcpStream) -> (ClientRead, ClientWrite) {
    let (read, write) = stream.into_split();
    (ClientRead::Plain(read), ClientWrite::Plain(write))
}

/// Splits a TLS connection (the halves share the TLS session behind a lock).
pub fn split_tls(stream: TlsStream<TcpStream>) -> (ClientRead, ClientWrite) {
    let (read, write) = tokio::io::split(stream);
    (ClientRead::Tls(read), ClientWrite::Tls(write))
}

impl AsyncRead for ClientRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientRead::Plain(read) => Pin::new(read).poll_read(cx, buf),
            ClientRead::Tls(read) => Pin::new(read).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientWrite {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientWrite::Plain(write) => Pin::new(write).poll_write(cx, buf),
            ClientWrite::Tls(write) => Pin::new(write).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientWrite::Plain(write) => Pin::new(write).poll_write_vectored(cx, bufs),
            ClientWrite::Tls(write) => Pin::new(write).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ClientWrite::Plain(write) => write.is_write_vectored(),
            ClientWrite::Tls(write) => write.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientWrite::Plain(write) => Pin::new(write).poll_flush(cx),
            ClientWrite::Tls(write) => Pin::new(write).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientWrite::Plain(write) => Pin::new(write).poll_shutdown(cx),
            ClientWrite::Tls(write) => Pin::new(write).poll_shutdown(cx),
        }
    }
}

/// The read side of a connection and the bytes read from it that no request has used.
/// Boxed once per connection: it moves into a request's body and back as one word.
pub struct ReadSide {
    reader: ClientRead,
    buffer: BytesMut,
}

impl ReadSide {
    /// Reads what has arrived: `Ok(0)` when the client closed.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        read::poll_fill(&mut self.reader, &mut self.buffer, cx)
    }

    /// The next request's head: `Ok(None)` when the connection is over before one (the client
    /// closed, the head did not come in time, or a close was asked for while idle).
    fn poll_head(
        &mut self,
        cx: &mut Context<'_>,
        settings: &Settings,
        mut timer: Pin<&mut Sleep>,
        close: &CloseRequest,
        spare: &mut HeaderMap,
    ) -> Poll<Result<Option<RequestHead>, StatusCode>> {
        loop {
            if !self.buffer.is_empty() {
                if spare.capacity() == 0 {
                    *spare = spare_maps::take();
                }
                if let Some(head) =
                    request::parse_request_head(&mut self.buffer, settings.max_head_bytes, spare)?
                {
                    return Poll::Ready(Ok(Some(head)));
                }
            } else if close.is_requested(cx.waker()) {
                return Poll::Ready(Ok(None));
            }
            match self.poll_fill(cx) {
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(Ok(None)),
                Poll::Ready(Ok(_)) => {}
                Poll::Pending => {
                    return match timer.as_mut().poll(cx) {
                        Poll::Ready(()) => Poll::Ready(Ok(None)),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }

    /// Whether the client has gone while its request is handled: keeps what it sends (a
    /// pipelined request) up to `limit` bytes, and notes its close.
    fn poll_gone(&mut self, cx: &mut Context<'_>, limit: usize) -> bool {
        while self.buffer.len() < limit {
            match self.poll_fill(cx) {
                Poll::Ready(Ok(0) | Err(_)) => return true,
                Poll::Ready(Ok(_)) => {}
                Poll::Pending => return false,
            }
        }
        false
    }
}

/// Serves HTTP/1.1 requests on a connection until it closes, answering each with `service`.
/// The first head must arrive by `first_head_by`.
pub async fn serve<S, F, B>(
    (reader, mut writer): (ClientRead, ClientWrite),
    settings: Settings,
    first_head_by: Instant,
    close: Arc<CloseRequest>,
    mut service: S,
) where
    S: FnMut(Request<ClientBody>) -> F,
    F: Future<Output = Result<Response<B>, Infallible>>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let mut read = Some(Box::new(ReadSide {
        reader,
        buffer: BytesMut::with_capacity(READ_CHUNK),
    }));
    let mut outbox = Outbox::default();
    let mut heads = BytesMut::new();
    // The map the next request's head is read into: taken from `spare_maps` when the head
    // has arrived, so that it is the map an answer released last.
    let mut spare = HeaderMap::new();
    let mut timer = Box::pin(tokio::time::sleep_until(first_head_by));
    loop {
        let Some(side) = read.as_mut() else { return };
        let head =
            poll_fn(|cx| side.poll_head(cx, &settings, timer.as_mut(), &close, &mut spare)).await;
        let head = match head {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(status) => {
                outbox.push(response::refusal(status, Version::HTTP_11));
                finish(&mut outbox, &mut writer, &settings).await;
                return;
            }
        };
        let RequestHead {
            parts,
            framing,
            mut keep_alive,
            expects_continue,
            accepts_trailers,
        } = head;
        let head_request = parts.method == Method::HEAD;
        let version = parts.version;
        let (body, handoff) = if framing == Framing::Empty {
            (ClientBody::Empty, None)
        } else {
            let Some(side) = read.take() else { return };
            let handoff = Arc::new(Handoff::default());
            let body = InboundBody {
                side: Some(side),
                decoder: BodyDecoder::new(framing),
                handoff: Arc::clone(&handoff),
                continue_owed: expects_continue,
            };
            (ClientBody::H1(body), Some(handoff))
        };

        // The answer, while the connection is watched.
        let mut answer = pin!(service(Request::from_parts(parts, body)));
        let answered = poll_fn(|cx| {
            if let Poll::Ready(Ok(response)) = answer.as_mut().poll(cx) {
                return Poll::Ready(Some(response));
            }
            if let Some(handoff) = &handoff {
                if handoff.take_continue(cx.waker()) {
                    outbox.push(Bytes::from_static(CONTINUE));
                }
                if outbox.queued() > 0 {
                    if let Poll::Ready(Err(_)) = outbox.poll_write(cx, &mut writer) {
                        return Poll::Ready(None);
                    }
                }
            }
            if let Some(side) = read.as_mut() {
                if side.poll_gone(cx, settings.max_head_bytes) {
                    return Poll::Ready(None);
                }
            }
            if keep_alive && close.is_requested(cx.waker()) {
                keep_alive = false;
            }
            Poll::Pending
        })
        .await;
        let Some(answer) = answered else { return };

        // The answer's head and body. A request body already read to its end has handed the
        // read side back; one dropped unread leaves the connection mid-request, so the answer
        // says it closes.
        if let (None, Some(handoff)) = (&read, &handoff) {
            read = handoff.take_back();
            if read.is_none() && Arc::strong_count(handoff) == 1 {
                keep_alive = false;
            }
        }
        let (parts, body) = answer.into_parts();
        let framing = response::framing(
            head_request,
            version,
            parts.status,
            &parts.headers,
            body.size_hint().exact(),
        );
        let closing = !keep_alive || framing == BodyFraming::UntilClose;
        let (head, asked_close) = response::write_head(
            &mut heads,
            version,
            parts.status,
            &parts.headers,
            framing,
            closing,
        );
        keep_alive = !closing && !asked_close;
        spare_maps::give(parts.headers);
        outbox.start(head, framing);
        let mut body = pin!((framing != BodyFraming::None).then_some(body));
        let written = poll_fn(|cx| loop {
            let mut waiting = false;
            while let Some(piece) = body.as_mut().as_pin_mut() {
                if outbox.queued() >= WRITE_HIGH_WATER {
                    break;
                }
                let queued = match piece.poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) => outbox.push_data(data),
                        Err(frame) => {
                            let trailers = frame.into_trailers().ok();
                            body.set(None);
                            outbox.push_end(trailers.as_ref().filter(|_| accepts_trailers))
                        }
                    },
                    Poll::Ready(Some(Err(_))) => return Poll::Ready(false),
                    Poll::Ready(None) => {
                        body.set(None);
                        outbox.push_end(None)
                    }
                    Poll::Pending => {
                        waiting = true;
                        break;
                    }
                };
                if queued.is_err() {
                    return Poll::Ready(false);
                }
            }
            match outbox.poll_write(cx, &mut writer) {
                Poll::Ready(Err(_)) => return Poll::Ready(false),
                Poll::Ready(Ok(())) if body.is_none() => return Poll::Ready(true),
                Poll::Ready(Ok(())) if !waiting => continue,
                _ => {
                    if let Some(side) = read.as_mut() {
                        if side.poll_gone(cx, settings.max_head_bytes) {
                            return Poll::Ready(false);
                        }
                    }
                    return Poll::Pending;
                }
            }
        })
        .await;
        if !written {
            return;
        }
        if read.is_none() {
            // The body's end hands the read side back; a body not read to its end leaves the
            // connection mid-request, so it closes.
            read = handoff.and_then(|handoff| handoff.take_back());
        }
        if !keep_alive || read.is_none() {
            finish(&mut outbox, &mut writer, &settings).await;
            return;
        }
        let next_head_by = crate::clock::now() + settings.header_read_timeout;
        timer.as_mut().reset(next_head_by);
    }
}

/// Writes what is queued and closes the writing side, within `header_read_timeout`.
async fn finish(outbox: &mut Outbox, writer: &mut ClientWrite, settings: &Settings) {
    let _ = tokio::time::timeout(settings.header_read_timeout, async {
        if poll_fn(|cx| outbox.poll_write(cx, writer)).await.is_ok() {
            let _ = writer.shutdown().await;
        }
    })
    .await;
}

/// What a request's body and its connection share: the read side on its way back, and the
/// body's wish for `100 Continue`.
#[derive(Default)]
struct Handoff {
    side: Mutex<Option<Box<ReadSide>>>,
    continue_wanted: AtomicBool,
    server: AtomicWaker,
}

impl Handoff {
    /// Whether the body asked for `100 Continue` since the last look.
    fn take_continue(&self, waker: &Waker) -> bool {
        self.server.register(waker);
        self.continue_wanted.swap(false, Ordering::AcqRel)
    }

    fn give_back(&self, side: Box<ReadSide>) {
        *self.side.lock().unwrap_or_else(|p| p.into_inner()) = Some(side);
    }

    fn take_back(&self) -> Option<Box<ReadSide>> {
        self.side.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// A request's body, read from its connection as it is polled.
pub struct InboundBody {
    side: Option<Box<ReadSide>>,
    decoder: BodyDecoder,
    handoff: Arc<Handoff>,
    continue_owed: bool,
}

impl InboundBody {
    /// The body is over: the read side goes back to the connection.
    fn give_back(&mut self) {
        if let Some(side) = self.side.take() {
            self.handoff.give_back(side);
        }
    }

    #[cold]
    fn fail(&mut self, error: BoxError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.side = None;
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for InboundBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if std::mem::take(&mut this.continue_owed) {
            this.handoff.continue_wanted.store(true, Ordering::Release);
            this.handoff.server.wake();
        }
        let Some(side) = this.side.as_mut() else {
            return Poll::Ready(None);
        };
        let ReadSide { reader, buffer } = &mut **side;
        match ready!(read::poll_body_frame(&mut this.decoder, cx, reader, buffer)) {
            Some(Ok(frame)) => {
                if this.decoder.is_done() {
                    this.give_back();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            None => {
                this.give_back();
                Poll::Ready(None)
            }
            Some(Err(e)) => this.fail(format!("the request body could not be read: {e}").into()),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder.remaining() {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}
