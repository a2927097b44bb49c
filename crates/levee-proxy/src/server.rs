//! Listeners and connections. A plaintext listener speaks HTTP/1.1 and HTTP/2 with prior
//! knowledge (h2c) on the same port, chosen by the connection's first bytes; a TLS listener
//! negotiates `h2` or `http/1.1` by ALPN. HTTP/1.1 is served by Levee's own server side
//! (`h1::server`, see its module doc for why), HTTP/2 by hyper's.
//!
//! Defences against slow and hostile clients (`limits`):
//! - **connections**: at most `max_connections` per listener; beyond that the listener stops
//!   accepting until one closes (the kernel's backlog holds the rest) instead of accepting and
//!   dropping;
//! - **request head**: `header_read_timeout` for the head (and the TLS handshake), measured
//!   from accept for the first request; at most `max_header_bytes` (`431`); malformed heads
//!   get `400` (`h1::request`). On a plaintext connection [`await_first_bytes`] peeks (leaving
//!   the bytes in the socket) until they differ from the HTTP/2 preface or are all of it, and
//!   closes the connection if the client is still short of that at `header_read_timeout` or
//!   closes first; an HTTP/1 request line differs at its first bytes and passes at the first
//!   peek. TLS connections choose by ALPN, inside the handshake's bound;
//! - **idle**: a connection with no request in flight for `idle_timeout` is closed gracefully
//!   (HTTP/1.1 keep-alive connections are also bounded by `header_read_timeout` while they
//!   wait for the next head);
//! - **HTTP/2**: `h2_max_concurrent_streams` and `h2_max_pending_reset_streams` (the rapid
//!   reset defence), and the head limit as `max_header_list_size`;
//! - **bodies**: `max_body_bytes` and `body_timeout`, enforced by the pipeline;
//! - **panics**: a request whose handling panics is answered `500` and logged; the process and
//!   the connection's other requests carry on.
//!
//! Shutdown is graceful: [`Server::shutdown`] stops the accept loops (closing the listening
//! sockets), asks every connection to finish what it has in flight and close (HTTP/2 sends
//! GOAWAY), and waits for them up to a timeout.

use crate::body::ProxyBody;
use crate::carried::Carried;
use crate::client_body::ClientBody;
use crate::error::ProxyError;
use crate::h1;
use crate::h1::server::{ClientRead, ClientWrite};
use crate::pipeline::{self, ConnInfo};
use crate::proxy::{Proxy, Shared};
use crate::responses;
use crate::tls;
use futures_util::task::AtomicWaker;
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use levee_config::{Config, LimitsConfig};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

/// A bound, not yet serving, listener.
pub struct BoundListener {
    name: String,
    local_addr: SocketAddr,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
}

impl BoundListener {
    /// The listener's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address it is bound to (the real port when the config said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

/// Binds every listener of `config` (TLS material is loaded here, so a bad file stops the
/// start rather than the first handshake).
pub async fn bind(config: &Config) -> Result<Vec<BoundListener>, ProxyError> {
    let mut bound = Vec::with_capacity(config.listeners.len());
    for l in &config.listeners {
        let listener = TcpListener::bind(&l.address)
            .await
            .map_err(|source| ProxyError::Bind {
                listener: l.name.clone(),
                address: l.address.clone(),
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| ProxyError::Bind {
            listener: l.name.clone(),
            address: l.address.clone(),
            source,
        })?;
        let tls = l.tls.as_ref().map(tls::acceptor).transpose()?;
        tracing::info!(listener = %l.name, address = %local_addr, tls = tls.is_some(), "listening");
        bound.push(BoundListener {
            name: l.name.clone(),
            local_addr,
            listener,
            tls,
        });
    }
    Ok(bound)
}

/// The serving listeners.
pub struct Server {
    stop: watch::Sender<bool>,
    accept_loops: Vec<JoinHandle<()>>,
    connections: Vec<(Arc<Semaphore>, u32)>,
    addresses: Vec<(String, SocketAddr)>,
}

impl Server {
    /// Starts serving `listeners` with `proxy`. Connection limits are read from the config
    /// running now; changing them needs a restart.
    pub fn start(proxy: &Proxy, listeners: Vec<BoundListener>) -> Server {
        let limits = proxy.config().limits.clone();
        let (stop, _) = watch::channel(false);
        let mut accept_loops = Vec::new();
        let mut connections = Vec::new();
        let mut addresses = Vec::new();
        let max = u32::try_from(limits.max_connections.clamp(1, Semaphore::MAX_PERMITS))
            .unwrap_or(u32::MAX);
        for listener in listeners {
            let slots = Arc::new(Semaphore::new(max as usize));
            connections.push((Arc::clone(&slots), max));
            addresses.push((listener.name.clone(), listener.local_addr));
            accept_loops.push(tokio::spawn(accept_loop(
                Arc::clone(&proxy.shared),
                listener,
                limits.clone(),
                slots,
                stop.subscribe(),
            )));
        }
        Server {
            stop,
            accept_loops,
            connections,
            addresses,
        }
    }

    /// Each listener's name and bound address.
    pub fn addresses(&self) -> &[(String, SocketAddr)] {
        &self.addresses
    }

    /// Stops accepting, asks every connection to finish and close, and waits for them at most
    /// `timeout`. True when every connection closed in time.
    pub async fn shutdown(self, timeout: Duration) -> bool {
        let _ = self.stop.send(true);
        for handle in self.accept_loops {
            let _ = handle.await;
        }
        let all_closed = async {
            for (slots, max) in &self.connections {
                // Every slot back means every connection has closed.
                let _ = slots.acquire_many(*max).await;
            }
        };
        tokio::time::timeout(timeout, all_closed).await.is_ok()
    }
}

async fn accept_loop(
    shared: Arc<Shared>,
    bound: BoundListener,
    limits: LimitsConfig,
    slots: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let tls = bound.tls.clone();
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        let accepted = tokio::select! {
            accepted = bound.listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let (stream, peer, accepted_at) = match accepted {
            // The head's bound (`header_read_timeout`) runs from here.
            Ok((stream, peer)) => (stream, peer, Instant::now()),
            Err(e) => {
                // Out of file descriptors or a connection reset before accept: wait a moment
                // rather than spin.
                tracing::warn!(listener = %bound.name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        let limits = limits.clone();
        let tls = tls.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let _slot = slot;
            serve_connection(shared, stream, peer, accepted_at, tls, limits, stop).await;
        });
    }
}

async fn serve_connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    accepted_at: Instant,
    tls: Option<TlsAcceptor>,
    limits: LimitsConfig,
    stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    // A bound too far to represent is none (30 years, as `tokio::time::timeout` has it).
    let head_deadline = accepted_at
        .checked_add(limits.header_read_timeout)
        .unwrap_or_else(|| accepted_at + Duration::from_secs(30 * 365 * 86_400));
    match tls {
        None => {
            let first = tokio::time::timeout_at(head_deadline, await_first_bytes(&stream)).await;
            let info = ConnInfo {
                peer: Some(peer),
                tls: false,
            };
            match first {
                Ok(Ok(FirstBytes::Http1)) => {
                    let halves = h1::server::split_plain(stream);
                    drive_h1(shared, halves, info, limits, stop, head_deadline).await;
                }
                Ok(Ok(FirstBytes::Http2)) => {
                    drive_h2(shared, TokioIo::new(stream), info, limits, stop).await;
                }
                Ok(Ok(FirstBytes::Closed)) => {
                    tracing::debug!(peer = %peer, "client closed before a request");
                }
                Ok(Err(e)) => {
                    tracing::debug!(peer = %peer, error = %e, "reading the first bytes failed");
                }
                Err(_) => {
                    tracing::debug!(peer = %peer, "no request within header_read_timeout");
                }
            }
        }
        Some(acceptor) => {
            let handshake = tokio::time::timeout_at(head_deadline, acceptor.accept(stream));
            match handshake.await {
                Ok(Ok(stream)) => {
                    let info = ConnInfo {
                        peer: Some(peer),
                        tls: true,
                    };
                    if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                        drive_h2(shared, TokioIo::new(stream), info, limits, stop).await;
                    } else {
                        let halves = h1::server::split_tls(stream);
                        drive_h1(shared, halves, info, limits, stop, head_deadline).await;
                    }
                }
                Ok(Err(e)) => tracing::debug!(peer = %peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
            }
        }
    }
}

/// The HTTP/2 connection preface (RFC 9113 §3.4), which tells an h2c client from an HTTP/1
/// one.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the bytes waiting on a plaintext connection say (see [`await_first_bytes`]).
#[derive(Debug, PartialEq, Eq)]
enum FirstBytes {
    /// They differ from the HTTP/2 preface: HTTP/1 (or junk, for the HTTP/1 server to refuse).
    Http1,
    /// The whole HTTP/2 preface: h2c with prior knowledge.
    Http2,
    /// The client closed (or half-closed) before sending enough to choose by.
    Closed,
}

/// Whether `peeked` (the first bytes of a connection, at most the preface's length) is enough
/// to choose a protocol: a byte differs from the preface, or it is the whole preface.
fn decisive(peeked: &[u8]) -> bool {
    peeked.len() >= H2_PREFACE.len() || !H2_PREFACE.starts_with(peeked)
}

/// The protocol decisive bytes choose.
fn chosen(peeked: &[u8]) -> FirstBytes {
    if peeked == H2_PREFACE {
        FirstBytes::Http2
    } else {
        FirstBytes::Http1
    }
}

/// Waits until the bytes the client has sent are decisive (see [`decisive`]), without reading
/// them: they stay in the socket for the chosen server. The caller bounds the wait with
/// `header_read_timeout`. (hyper-util's `auto` builder, which chose before, waited for them
/// with no timer at all: hyperium/hyper#3756.)
///
/// The common case costs one peek: an HTTP/1 request line differs from `PRI * ...` at its
/// first byte (`POST`, `PUT` and `PATCH` at the second), and an h2c client sends the whole
/// preface in one write. Only bytes that are a strict prefix of the preface wait for more.
/// The HTTP/1 head's own bound runs from accept too, so a client that sends nothing decisive,
/// or no whole head, is closed at `header_read_timeout` from accept.
async fn await_first_bytes(stream: &TcpStream) -> std::io::Result<FirstBytes> {
    let mut buf = [0u8; H2_PREFACE.len()];
    // Waits for the first bytes (or the end) to arrive.
    let n = stream.peek(&mut buf).await?;
    if n == 0 {
        return Ok(FirstBytes::Closed);
    }
    if decisive(&buf[..n]) {
        return Ok(chosen(&buf[..n]));
    }
    await_rest_of_preface(stream, &mut buf).await
}

/// [`await_first_bytes`] once the client has sent a strict prefix of the preface: waits for
/// more to arrive and peeks again.
///
/// Peeking leaves the socket readable, so `TcpStream::peek` would return the same bytes at
/// once, forever. Instead each peek runs inside `try_io` and reports "would block" while the
/// bytes are still a strict prefix, which clears tokio's readiness; the next arrival (or the
/// client's FIN) sets it again and wakes `ready`. `try_io` clears the readiness only if no
/// event came in since it was read, so bytes arriving during the peek are not missed. The peek
/// inside is a plain `recv(MSG_PEEK)` on a duplicate of the socket's descriptor: `try_io`'s
/// closure must not use the tokio stream's own methods, which manage the readiness themselves.
#[cfg(unix)]
async fn await_rest_of_preface(
    stream: &TcpStream,
    buf: &mut [u8; H2_PREFACE.len()],
) -> std::io::Result<FirstBytes> {
    use std::io::ErrorKind;
    use std::os::fd::AsFd;
    use tokio::io::Interest;
    // Shares the socket (and its non-blocking mode); dropping it closes only the duplicate.
    let probe = std::net::TcpStream::from(stream.as_fd().try_clone_to_owned()?);
    loop {
        let ready = stream.ready(Interest::READABLE).await?;
        let peeked = stream.try_io(Interest::READABLE, || {
            let n = probe.peek(&mut buf[..])?;
            if n > 0 && !decisive(&buf[..n]) && !ready.is_read_closed() {
                // Nothing new: wait for the next arrival.
                return Err(ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        match peeked {
            // Whole preface or a byte that differs; otherwise the end, or a half-close after
            // a prefix that can never become the preface.
            Ok(n) if n > 0 && decisive(&buf[..n]) => return Ok(chosen(&buf[..n])),
            Ok(_) => return Ok(FirstBytes::Closed),
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Without a portable way to peek from inside `try_io`, other platforms take a strict prefix
/// of the preface for HTTP/1 (whose server refuses it).
#[cfg(not(unix))]
async fn await_rest_of_preface(
    _stream: &TcpStream,
    _buf: &mut [u8; H2_PREFACE.len()],
) -> std::io::Result<FirstBytes> {
    Ok(FirstBytes::Http1)
}

/// The answer to one request on a connection of either protocol: the pipeline's, or `500` if
/// handling it panicked.
fn answer(
    shared: &Arc<Shared>,
    info: &ConnInfo,
    activity: &Arc<Activity>,
    request: http::Request<ClientBody>,
) -> impl std::future::Future<Output = Result<http::Response<pipeline::Attached>, Infallible>> + Send
{
    // Which of Levee's headers the request carries, for the pipeline too. A clone of the id's
    // value shares its bytes: the text is only made if the handler panics.
    let carried = Carried::scan(request.headers());
    let id_for_panic = if carried.any(Carried::REQUEST_ID) {
        request
            .headers()
            .get(levee_http::headers::name::REQUEST_ID)
            .cloned()
    } else {
        None
    };
    let guards = pipeline::Guards::new(activity.begin());
    // No `async` block around the pipeline's future: it would be one more state machine to
    // move (the call's own future is boxed inside `handle`).
    let (shared, info) = (Arc::clone(shared), info.clone());
    Answer::new(
        move || pipeline::handle(shared, info, request, carried, guards),
        id_for_panic,
    )
}

/// Serves one HTTP/1.1 connection with Levee's own server side until it closes; it closes
/// gracefully on stop or idleness. The first head is due by `first_head_by`.
async fn drive_h1(
    shared: Arc<Shared>,
    halves: (ClientRead, ClientWrite),
    info: ConnInfo,
    limits: LimitsConfig,
    stop: watch::Receiver<bool>,
    first_head_by: Instant,
) {
    let activity = Arc::new(Activity::new());
    let close = Arc::new(CloseRequest::default());
    let _watchdog = watch_in_background(&activity, &limits, stop, &close);
    let settings = h1::server::Settings {
        header_read_timeout: limits.header_read_timeout,
        max_head_bytes: limits.max_header_bytes,
    };
    let serving = h1::server::serve(halves, settings, first_head_by, close, |request| {
        answer(&shared, &info, &activity, request)
    });
    let mut serving = std::pin::pin!(serving);
    // Each poll reads the clock at most once for all the requests' work in it (`clock`).
    std::future::poll_fn(|cx| {
        crate::clock::during_poll(|| std::future::Future::poll(serving.as_mut(), cx))
    })
    .await;
}

/// Serves one HTTP/2 connection (hyper's) until it closes, shutting it down gracefully (GOAWAY)
/// on stop or idleness.
async fn drive_h2<I>(
    shared: Arc<Shared>,
    io: TokioIo<I>,
    info: ConnInfo,
    limits: LimitsConfig,
    stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_pending_accept_reset_streams(limits.h2_max_pending_reset_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let activity = Arc::new(Activity::new());
    let peer = info.peer;
    let service = {
        let activity = Arc::clone(&activity);
        service_fn(move |request: http::Request<Incoming>| {
            answer(&shared, &info, &activity, request.map(ClientBody::H2))
        })
    };
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let close = Arc::new(CloseRequest::default());
    let _watchdog = watch_in_background(&activity, &limits, stop, &close);
    let mut closing = false;
    let result = std::future::poll_fn(|cx| {
        crate::clock::during_poll(|| {
            if !closing && close.is_requested(cx.waker()) {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
            std::future::Future::poll(connection.as_mut(), cx)
        })
    })
    .await;
    if let Err(e) = result {
        tracing::debug!(peer = ?peer, error = %e, "connection ended with an error");
    }
}

/// Stop and idleness are watched by a task of their own, which raises `close`: a connection's
/// task is woken for nearly every read and write, and polling a stop signal and an idle timer
/// on each of those wake-ups cost more than the flag's load.
fn watch_in_background(
    activity: &Arc<Activity>,
    limits: &LimitsConfig,
    stop: watch::Receiver<bool>,
    close: &Arc<CloseRequest>,
) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(watch_connection(
        Arc::clone(activity),
        limits.idle_timeout,
        stop,
        Arc::clone(close),
    )))
}

/// A connection's request to finish what it has in flight and close (see
/// [`watch_in_background`]).
#[derive(Default)]
pub(crate) struct CloseRequest {
    requested: AtomicBool,
    waker: AtomicWaker,
}

impl CloseRequest {
    /// Whether a close was asked for; `waker` is woken when one is.
    pub(crate) fn is_requested(&self, waker: &std::task::Waker) -> bool {
        self.waker.register(waker);
        self.requested.load(Ordering::Acquire)
    }

    fn raise(&self) {
        self.requested.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// Raises `close` when the server stops or once the connection has had no request in flight
/// for `idle_timeout`.
async fn watch_connection(
    activity: Arc<Activity>,
    idle_timeout: Duration,
    mut stop: watch::Receiver<bool>,
    close: Arc<CloseRequest>,
) {
    loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
            _ = tokio::time::sleep(activity.until_idle(idle_timeout)) => {
                if activity.is_idle_for(idle_timeout) {
                    break;
                }
            }
        }
    }
    close.raise();
}

/// Aborts a task when its owner goes: a connection's watchdog ends with the connection.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pin_project_lite::pin_project! {
    /// A request's answer, or `500` if handling it panicked.
    ///
    /// The handler is started at once, inside an unwind guard of its own (`pipeline::handle`
    /// does its synchronous part and returns a small future, the call's own being boxed), so
    /// the request and its companions are not kept in this future to be moved again at its
    /// first poll; each poll runs inside the guard too.
    struct Answer<F> {
        #[pin]
        handling: Option<F>,
        id_for_panic: Option<http::HeaderValue>,
    }
}

impl<F> Answer<F> {
    fn new<S>(start: S, id_for_panic: Option<http::HeaderValue>) -> Self
    where
        S: FnOnce() -> F,
    {
        Answer {
            handling: std::panic::catch_unwind(AssertUnwindSafe(start)).ok(),
            id_for_panic,
        }
    }
}

impl<F, B> std::future::Future for Answer<F>
where
    F: std::future::Future<Output = http::Response<B>>,
    B: From<ProxyBody>,
{
    type Output = Result<http::Response<B>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let handling = &mut this.handling;
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| {
            handling.as_mut().as_pin_mut().map(|h| h.poll(cx))
        }));
        match polled {
            Ok(Some(Poll::Pending)) => Poll::Pending,
            Ok(Some(Poll::Ready(response))) => Poll::Ready(Ok(response)),
            // A panic now, when it started, or polled again after one.
            Ok(None) | Err(_) => {
                handling.set(None);
                let id = this.id_for_panic.as_ref().and_then(|v| v.to_str().ok());
                Poll::Ready(Ok(internal_error(id.unwrap_or("")).map(B::from)))
            }
        }
    }
}

fn internal_error(request_id: &str) -> http::Response<ProxyBody> {
    tracing::error!(request_id, "request handling panicked; answered 500");
    responses::plain(
        http::StatusCode::INTERNAL_SERVER_ERROR,
        "Levee failed while handling this request.",
        "",
    )
}

/// Requests in flight on one connection and when the last one ended.
struct Activity {
    active: AtomicUsize,
    last: Mutex<Instant>,
}

impl Activity {
    fn new() -> Self {
        Activity {
            active: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        }
    }

    fn begin(self: &Arc<Self>) -> ActiveRequest {
        self.active.fetch_add(1, Ordering::AcqRel);
        ActiveRequest(Arc::clone(self))
    }

    fn last(&self) -> Instant {
        *self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_idle_for(&self, limit: Duration) -> bool {
        self.active.load(Ordering::Acquire) == 0 && self.last().elapsed() >= limit
    }

    /// How long to sleep before looking again.
    fn until_idle(&self, limit: Duration) -> Duration {
        if self.active.load(Ordering::Acquire) > 0 {
            return limit;
        }
        limit
            .saturating_sub(self.last().elapsed())
            .max(Duration::from_millis(10))
    }
}

/// One request on a connection, until its response body is done.
pub(crate) struct ActiveRequest(Arc<Activity>);

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        *self.0.last.lock().unwrap_or_else(|p| p.into_inner()) = crate::clock::now();
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use http::StatusCode;

    type Ready = std::future::Ready<http::Response<ProxyBody>>;

    fn answered<F>(answer: Answer<F>) -> http::Response<ProxyBody>
    where
        F: std::future::Future<Output = http::Response<ProxyBody>>,
    {
        let polled = std::pin::pin!(answer).now_or_never();
        polled.expect("ready at the first poll").unwrap()
    }

    #[test]
    fn the_first_bytes_are_decisive_once_they_leave_the_h2_preface_or_complete_it() {
        for cut in 0..H2_PREFACE.len() {
            assert!(
                !decisive(&H2_PREFACE[..cut]),
                "a strict prefix of {cut} bytes"
            );
        }
        assert!(decisive(H2_PREFACE));
        for line in [
            &b"GET / HTTP/1.1"[..],
            b"POST",
            b"PUT",
            b"PATCH",
            b"PRI * HTTP/1.1",
        ] {
            assert!(decisive(line), "{}", line.escape_ascii());
        }
        assert!(
            !decisive(b"P"),
            "POST, PUT and PATCH differ at the second byte"
        );
    }

    /// A connected pair: the client's end and the proxy's.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    /// `await_first_bytes` on `server`, once `first` has arrived; if `then` is given, the
    /// wait must still be pending after `first`, and `then` is sent (or, if empty, the client
    /// half-closes) before it ends.
    async fn first_bytes(first: &[u8], then: Option<&[u8]>) -> (FirstBytes, TcpStream) {
        use tokio::io::AsyncWriteExt;
        let (mut client, server) = pair().await;
        if first.is_empty() {
            client.shutdown().await.unwrap();
        } else {
            client.write_all(first).await.unwrap();
        }
        // Whatever the wait does next, `first` is there to peek.
        server.readable().await.unwrap();
        let verdict = {
            let waiting = await_first_bytes(&server);
            tokio::pin!(waiting);
            match then {
                None => waiting.await.unwrap(),
                Some(rest) => {
                    assert!(futures_util::poll!(waiting.as_mut()).is_pending());
                    if rest.is_empty() {
                        client.shutdown().await.unwrap();
                    } else {
                        client.write_all(rest).await.unwrap();
                    }
                    waiting.await.unwrap()
                }
            }
        };
        (verdict, server)
    }

    #[tokio::test]
    async fn an_http1_request_line_chooses_http1_at_once_and_is_left_in_the_socket() {
        use tokio::io::AsyncReadExt;
        let line = b"GET / HTTP/1.1\r\n";
        let (verdict, mut server) = first_bytes(line, None).await;
        assert_eq!(verdict, FirstBytes::Http1);
        let mut read = [0u8; 16];
        server.read_exact(&mut read).await.unwrap();
        assert_eq!(&read, line);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_preface_in_pieces_is_awaited_until_whole() {
        let (verdict, _) = first_bytes(&H2_PREFACE[..16], Some(&H2_PREFACE[16..])).await;
        assert_eq!(verdict, FirstBytes::Http2);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_p_is_awaited_until_the_method_leaves_the_preface() {
        let (verdict, _) = first_bytes(b"P", Some(b"OST / HTTP/1.1\r\n")).await;
        assert_eq!(verdict, FirstBytes::Http1);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_close_before_anything_or_inside_the_preface_is_closed() {
        assert_eq!(first_bytes(b"", None).await.0, FirstBytes::Closed);
        let (verdict, _) = first_bytes(&H2_PREFACE[..5], Some(b"")).await;
        assert_eq!(verdict, FirstBytes::Closed);
    }

    #[test]
    fn the_handler_s_response_passes_through() {
        let answer = Answer::new(
            || std::future::ready(responses::plain(StatusCode::IM_A_TEAPOT, "short", "")),
            None,
        );
        assert_eq!(answered(answer).status(), StatusCode::IM_A_TEAPOT);
    }

    #[test]
    fn a_panic_while_starting_the_handler_is_answered_500() {
        let answer = Answer::new(
            || -> Ready { panic!("boom in the handler's first part") },
            None,
        );
        assert_eq!(answered(answer).status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn a_panic_inside_the_handler_s_future_is_answered_500() {
        let id = http::HeaderValue::from_static("req-7");
        let answer = Answer::new(
            || async { panic!("boom in the handler's future") },
            Some(id),
        );
        assert_eq!(answered(answer).status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
