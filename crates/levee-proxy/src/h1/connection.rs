//! One HTTP/1.1 connection to an upstream endpoint, driven by the task of the request that
//! uses it: the request is written and the response head read in the request's future, the
//! response body read as hyper's server polls it ([`ResponseBody`]). A connection is owned by
//! one exchange at a time; it goes back to its pool ([`Recycle`]) when the response body has
//! been read to its end on a connection that persists, and is closed when it is dropped
//! before that (which is how an upstream request is cancelled).

use super::decode::{self, BodyDecoder, Head, Parsed};
use super::encode::{self, BodyFraming};
use super::read::{self, BodyError, READ_CHUNK};
use super::write::Outbox;
use crate::body::{BoxError, ProxyBody};
use bytes::{Buf, Bytes, BytesMut};
use http::Method;
use http_body::{Body, Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;
use tokio::net::TcpStream;

/// Where a connection goes when its exchange is over and it may carry another.
pub trait Recycle: Send + Sync {
    /// Takes `connection` back.
    fn recycle(&self, connection: Box<Connection>);
}

/// An open connection and the bytes read from it that no exchange has used yet. Always
/// boxed, once, when it is opened: it moves between the pool, the request's future and the
/// response body, and a box moves as one word.
pub struct Connection {
    stream: TcpStream,
    read: BytesMut,
}

/// Opens a connection to `host:port` within `timeout`, with `TCP_NODELAY`.
pub async fn connect(host: &str, port: u16, timeout: Duration) -> io::Result<Box<Connection>> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Ok(stream) => stream?,
        Err(_) => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no connection within {} ms", timeout.as_millis()),
            ))
        }
    };
    stream.set_nodelay(true)?;
    Ok(Box::new(Connection {
        stream,
        read: BytesMut::with_capacity(READ_CHUNK),
    }))
}

impl Connection {
    /// Whether an idle connection still looks usable: nothing has arrived on it (an idle
    /// upstream sends nothing but its close). Without a system call unless the socket has
    /// turned readable since it was last read.
    pub fn is_open(&mut self) -> bool {
        if !self.read.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Reads what has arrived into the read buffer: `Ok(0)` when the upstream closed.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        read::poll_fill(&mut self.stream, &mut self.read, cx)
    }

    /// Writes `request` and waits for the response head. On success the connection moves
    /// into the response body, which hands it to `home` when the exchange is over.
    ///
    /// The request is borrowed, not moved in: the pool's future that calls this one holds it
    /// already (and may send it again), and a moved-in request would be held twice.
    pub async fn exchange(
        mut self: Box<Self>,
        request: &mut Outgoing,
        home: Option<Arc<dyn Recycle>>,
    ) -> Result<http::Response<ResponseBody>, ExchangeError> {
        let mut received = false;
        let head = std::future::poll_fn(|cx| {
            self.poll_head(
                cx,
                &mut request.writer,
                &request.method,
                &mut request.spare,
                &mut received,
            )
        })
        .await
        .map_err(|error| ExchangeError {
            error,
            nothing_received: !received,
        })?;
        let Head {
            parts,
            framing,
            keep_alive,
        } = head;
        let body = ResponseBody::new(
            self,
            BodyDecoder::new(framing),
            request.writer.take().map(Box::new),
            keep_alive,
            home,
        );
        Ok(http::Response::from_parts(parts, body))
    }

    fn poll_head(
        &mut self,
        cx: &mut Context<'_>,
        writer: &mut Option<Writer>,
        method: &Method,
        spare: &mut http::HeaderMap,
        received: &mut bool,
    ) -> Poll<Result<Head, BoxError>> {
        if let Some(w) = writer.as_mut() {
            match w.poll_write(cx, &mut self.stream) {
                Poll::Ready(Ok(())) => *writer = None,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        loop {
            match decode::parse_head(&mut self.read, method, spare)? {
                Parsed::Head(head) => return Poll::Ready(Ok(head)),
                Parsed::Interim { len } => {
                    self.read.advance(len);
                    continue;
                }
                Parsed::Partial => {}
            }
            match ready!(self.poll_fill(cx)) {
                Ok(0) if self.read.is_empty() => {
                    return Poll::Ready(Err(closed("before answering").into()))
                }
                Ok(0) => return Poll::Ready(Err(closed("in the middle of its answer").into())),
                Ok(_) => *received = true,
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
    }
}

#[cold]
fn closed(when: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the upstream closed the connection {when}"),
    )
}

/// Why an exchange failed, and whether the upstream had sent anything at all (a reused
/// connection that fails so was most likely closed by the upstream while idle).
#[derive(Debug)]
pub struct ExchangeError {
    /// What went wrong.
    pub error: BoxError,
    /// No byte of a response had arrived.
    pub nothing_received: bool,
}

/// A request ready to go: its method (a `HEAD` answer has no body) and its bytes, and its
/// emptied header map, which the answer's head is read into.
pub struct Outgoing {
    method: Method,
    /// Until the request is written whole (or the rest moves into the response body).
    writer: Option<Writer>,
    spare: http::HeaderMap,
}

impl Outgoing {
    /// Encodes `request` (its URI in origin form).
    pub fn new(request: http::Request<ProxyBody>) -> Self {
        let (parts, body) = request.into_parts();
        let framing = encode::body_framing(
            &parts.headers,
            body.is_end_stream(),
            body.size_hint().exact(),
        );
        let head = encode::write_head(&parts.method, &parts.uri, &parts.headers, framing);
        let mut spare = parts.headers;
        spare.clear();
        Outgoing {
            method: parts.method,
            writer: Some(Writer::new(head, body, framing)),
            spare,
        }
    }

    /// What it takes to send the same request again, if that is safe: it has no body and its
    /// method is idempotent (RFC 9110 §9.2.2), so an upstream that did receive it the first
    /// time is not asked to do something twice that it would not have done once.
    pub fn replay(&self) -> Option<Replay> {
        let idempotent = matches!(
            self.method,
            Method::GET
                | Method::HEAD
                | Method::OPTIONS
                | Method::TRACE
                | Method::PUT
                | Method::DELETE
        );
        let writer = self.writer.as_ref()?;
        if !idempotent || writer.outbox.framing() != BodyFraming::None {
            return None;
        }
        Some(Replay {
            method: self.method.clone(),
            head: writer.head.clone(),
        })
    }
}

/// A bodiless request kept to be sent again ([`Outgoing::replay`]).
pub struct Replay {
    method: Method,
    head: Bytes,
}

impl Replay {
    /// The request, ready to go again.
    pub fn into_outgoing(self) -> Outgoing {
        Outgoing {
            method: self.method,
            writer: Some(Writer::new(
                self.head,
                crate::body::empty(),
                BodyFraming::None,
            )),
            spare: http::HeaderMap::new(),
        }
    }
}

/// Writes a request: its head, then its body in its framing, as the body yields it.
struct Writer {
    head: Bytes,
    outbox: Outbox,
    body: Option<ProxyBody>,
}

impl Writer {
    fn new(head: Bytes, body: ProxyBody, framing: BodyFraming) -> Self {
        let mut outbox = Outbox::default();
        outbox.start(head.clone(), framing);
        let body = (framing != BodyFraming::None).then_some(body);
        Writer { head, outbox, body }
    }

    /// Writes what it can: `Ready(Ok)` once the whole request is written.
    fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        stream: &mut TcpStream,
    ) -> Poll<Result<(), BoxError>> {
        loop {
            ready!(self.outbox.poll_write(cx, stream))?;
            let Some(body) = self.body.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            match ready!(Pin::new(body).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.outbox.push_data(data)?,
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            self.outbox.push_end(Some(&trailers))?;
                            self.body = None;
                        }
                    }
                },
                Some(Err(e)) => return Poll::Ready(Err(e)),
                None => {
                    self.body = None;
                    self.outbox.push_end(None)?;
                }
            }
        }
    }
}

/// A response body read from its connection as it is polled.
pub struct ResponseBody {
    connection: Option<Box<Connection>>,
    decoder: BodyDecoder,
    /// The rest of the request body, when the upstream answered before it was all written
    /// (rare, so boxed: the body travels through several futures' states).
    writer: Option<Box<Writer>>,
    keep_alive: bool,
    home: Option<Arc<dyn Recycle>>,
}

impl ResponseBody {
    fn new(
        connection: Box<Connection>,
        decoder: BodyDecoder,
        writer: Option<Box<Writer>>,
        keep_alive: bool,
        home: Option<Arc<dyn Recycle>>,
    ) -> Self {
        let mut body = ResponseBody {
            connection: Some(connection),
            decoder,
            writer,
            keep_alive,
            home,
        };
        if body.decoder.is_done() {
            body.finish();
        }
        body
    }

    /// The exchange is over: the connection goes home if it may carry another one (it
    /// persists, the request was written whole, and nothing beyond the response arrived).
    fn finish(&mut self) {
        let Some(connection) = self.connection.take() else {
            return;
        };
        if self.keep_alive && self.writer.is_none() && connection.read.is_empty() {
            if let Some(home) = self.home.take() {
                home.recycle(connection);
            }
        }
    }

    #[cold]
    fn fail(&mut self, error: impl Into<BoxError>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.connection = None;
        Poll::Ready(Some(Err(error.into())))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let (Some(writer), Some(connection)) = (this.writer.as_mut(), this.connection.as_mut()) {
            // The upstream has answered; the rest of the request is written as it can be,
            // and if it cannot, the answer still stands but the connection is not reused.
            match writer.poll_write(cx, &mut connection.stream) {
                Poll::Ready(Ok(())) => this.writer = None,
                Poll::Ready(Err(_)) => {
                    this.writer = None;
                    this.keep_alive = false;
                }
                Poll::Pending => {}
            }
        }
        let Some(connection) = this.connection.as_mut() else {
            return Poll::Ready(None);
        };
        let Connection { stream, read } = &mut **connection;
        match ready!(read::poll_body_frame(&mut this.decoder, cx, stream, read)) {
            Some(Ok(frame)) => {
                if this.decoder.is_done() {
                    this.finish();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            None => {
                // Its end, or the close that ends a body running to it (such a connection is
                // never kept: `finish` drops it).
                this.finish();
                Poll::Ready(None)
            }
            Some(Err(BodyError::Invalid(e))) => this.fail(e),
            Some(Err(BodyError::Io(e))) => this.fail(e),
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
