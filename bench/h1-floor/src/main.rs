//! `h1-floor --listen ADDR --upstream ADDR [--server own|hyper] [--client own|hyper] [--raw]`:
//! an HTTP/1.1 pass-through proxy that frames HTTP/1.1 itself on one side or both, as a
//! benchmark peer (`PROXY=h1 bench/callgrind.sh` and its variants).
//!
//! bench/hyper-floor measures the least a proxy on hyper's server and client connections costs
//! per request. Levee's remaining distance to HAProxy (docs/benchmarks.md) is about as large as
//! what that floor spends in hyper's dispatchers, channels and connection state machines, so
//! the question for issue #3 is what owning the HTTP/1.1 codec would take off. This program
//! answers it without writing that codec: it reads a request head with httparse (the parser
//! hyper uses), builds the `http::HeaderMap` Levee's pipeline works on (header values sliced
//! from the read buffer, as hyper does), writes the upstream head from the map, and does the
//! same for the response, all in the client connection's own task: no channels, no second
//! task. `--raw` skips the map and forwards the heads' bytes as they came (HAProxy-like).
//! `--server hyper` keeps hyper's server connection towards the client and `--client hyper`
//! hyper's client connection towards the upstream, so each side's share can be told apart
//! (both hyper is bench/hyper-floor).
//!
//! What it leaves out, so its figure is a floor and not a design: only `Content-Length` (or
//! empty) bodies, buffered whole; no chunked coding, `Expect`, upgrades, pipelining limits,
//! timeouts, hop-by-hop handling or error responses beyond closing the connection; one
//! upstream connection per client connection, made when the client connects; one thread.

use bytes::{Bytes, BytesMut};
use clap::{Parser, ValueEnum};
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// At most this many headers in a head (hyper's default is 100).
const MAX_HEADERS: usize = 100;

#[derive(Parser, Debug)]
#[command(about = "An HTTP/1.1 pass-through proxy with its own framing: a second floor")]
struct Args {
    /// Where to accept clients.
    #[arg(long)]
    listen: SocketAddr,
    /// The one upstream every request goes to.
    #[arg(long)]
    upstream: SocketAddr,
    /// Forward the heads' bytes as they came instead of through an `http::HeaderMap` (only
    /// with both sides `own`).
    #[arg(long)]
    raw: bool,
    /// Who frames HTTP/1.1 towards the client.
    #[arg(long, value_enum, default_value_t = Codec::Own)]
    server: Codec,
    /// Who frames HTTP/1.1 towards the upstream.
    #[arg(long, value_enum, default_value_t = Codec::Own)]
    client: Codec,
}

/// Who frames HTTP/1.1 on one side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Codec {
    /// This program: httparse and a write buffer, in the connection's task.
    Own,
    /// hyper's connection (`server::conn::http1` or `client::conn::http1`).
    Hyper,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.server == Codec::Hyper && args.client == Codec::Hyper {
        return Err("both sides hyper is bench/hyper-floor".into());
    }
    if args.raw && (args.server == Codec::Hyper || args.client == Codec::Hyper) {
        return Err("--raw forwards heads as they came: only with both sides own".into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(args.listen).await?;
    loop {
        let (client, _) = listener.accept().await?;
        let (upstream, raw, server, codec) = (args.upstream, args.raw, args.server, args.client);
        tokio::spawn(async move {
            let served = match UpstreamSide::connect(upstream, codec).await {
                Ok(upstream) if server == Codec::Own => relay(client, upstream, raw).await,
                Ok(upstream) => serve_with_hyper(client, upstream).await,
                Err(e) => Err(e),
            };
            if let Err(e) = served {
                eprintln!("h1-floor: {e}");
            }
        });
    }
}

/// Which side a head comes from: its start line differs.
#[derive(Clone, Copy)]
enum Side {
    Request,
    Response,
}

/// One message: its head as received, the parsed start line and headers, and its body.
struct Message {
    head: Bytes,
    start: StartLine,
    headers: HeaderMap,
    body: Bytes,
}

enum StartLine {
    Request { method: Method, target: Bytes },
    Response { status: StatusCode, reason: Bytes },
}

/// The upstream connection of one client connection, framed by this program or by hyper.
enum UpstreamSide {
    Own { stream: TcpStream, buffer: BytesMut },
    Hyper(SendRequest<Full<Bytes>>),
}

impl UpstreamSide {
    async fn connect(upstream: SocketAddr, codec: Codec) -> io::Result<UpstreamSide> {
        let stream = TcpStream::connect(upstream).await?;
        stream.set_nodelay(true)?;
        Ok(match codec {
            Codec::Own => UpstreamSide::Own {
                stream,
                buffer: BytesMut::with_capacity(8192),
            },
            Codec::Hyper => {
                let (sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .map_err(io::Error::other)?;
                tokio::spawn(connection);
                UpstreamSide::Hyper(sender)
            }
        })
    }

    /// Sends `request` and reads the whole response; `out` is the write buffer to use.
    async fn exchange(
        &mut self,
        request: Message,
        out: &mut Vec<u8>,
        raw: bool,
    ) -> io::Result<Message> {
        match self {
            UpstreamSide::Own { stream, buffer } => {
                write_message(out, &request, raw);
                stream.write_all(out).await?;
                read_message(stream, buffer, Side::Response, raw)
                    .await?
                    .ok_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the upstream closed the connection before answering",
                        )
                    })
            }
            UpstreamSide::Hyper(sender) => {
                let StartLine::Request { method, target } = request.start else {
                    return Err(invalid("a response where a request was expected"));
                };
                let mut upstream_request = Request::new(Full::new(request.body));
                *upstream_request.method_mut() = method;
                *upstream_request.uri_mut() = Uri::from_maybe_shared(target).map_err(invalid)?;
                *upstream_request.headers_mut() = request.headers;
                std::future::poll_fn(|cx| sender.poll_ready(cx))
                    .await
                    .map_err(io::Error::other)?;
                let response = sender
                    .send_request(upstream_request)
                    .await
                    .map_err(io::Error::other)?;
                let (parts, body) = response.into_parts();
                let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
                Ok(Message {
                    head: Bytes::new(),
                    start: StartLine::Response {
                        status: parts.status,
                        reason: Bytes::from_static(
                            parts.status.canonical_reason().unwrap_or("").as_bytes(),
                        ),
                    },
                    headers: parts.headers,
                    body,
                })
            }
        }
    }
}

/// Serves one client connection, framed by this program, one exchange at a time.
async fn relay(mut client: TcpStream, mut upstream: UpstreamSide, raw: bool) -> io::Result<()> {
    client.set_nodelay(true)?;
    let mut from_client = BytesMut::with_capacity(8192);
    let mut out = Vec::with_capacity(8192);
    loop {
        let Some(request) = read_message(&mut client, &mut from_client, Side::Request, raw).await?
        else {
            return Ok(());
        };
        let response = upstream.exchange(request, &mut out, raw).await?;
        write_message(&mut out, &response, raw);
        client.write_all(&out).await?;
    }
}

/// Serves one client connection with hyper's server connection in front of `upstream`.
async fn serve_with_hyper(client: TcpStream, upstream: UpstreamSide) -> io::Result<()> {
    client.set_nodelay(true)?;
    // HTTP/1.1 serves a connection's requests one at a time: the upstream side is taken out
    // for an exchange and put back after it, so the lock is never contended nor held across
    // an await.
    let upstream = Arc::new(Mutex::new(Some((upstream, Vec::with_capacity(8192)))));
    let service = service_fn(move |request: Request<Incoming>| {
        let upstream = Arc::clone(&upstream);
        async move {
            let taken = lock(&upstream).take();
            let (mut side, mut out) = taken.ok_or_else(|| invalid("a second request at once"))?;
            let (parts, body) = request.into_parts();
            let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
            let target = Bytes::copy_from_slice(
                parts
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .as_bytes(),
            );
            let message = Message {
                head: Bytes::new(),
                start: StartLine::Request {
                    method: parts.method,
                    target,
                },
                headers: parts.headers,
                body,
            };
            let answered = side.exchange(message, &mut out, false).await;
            *lock(&upstream) = Some((side, out));
            let answer = answered?;
            let mut response = Response::new(Full::new(answer.body));
            if let StartLine::Response { status, .. } = answer.start {
                *response.status_mut() = status;
            }
            *response.headers_mut() = answer.headers;
            Ok::<_, io::Error>(response)
        }
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(client), service)
        .await
        .map_err(io::Error::other)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reads the next message from `stream` (`None`: closed between messages).
async fn read_message(
    stream: &mut TcpStream,
    buffer: &mut BytesMut,
    side: Side,
    raw: bool,
) -> io::Result<Option<Message>> {
    loop {
        if let Some((head_len, start, fields, body_len)) = parse_head(buffer, side)? {
            while buffer.len() < head_len + body_len {
                if stream.read_buf(buffer).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
            let head = buffer.split_to(head_len).freeze();
            let body = buffer.split_to(body_len).freeze();
            let headers = if raw {
                HeaderMap::new()
            } else {
                header_map(&head, &fields)?
            };
            let start = match start {
                RawStart::Request { method, target } => StartLine::Request {
                    method: Method::from_bytes(&head[method.0..method.1]).map_err(invalid)?,
                    target: head.slice(target.0..target.1),
                },
                RawStart::Response { status, reason } => StartLine::Response {
                    status: StatusCode::from_u16(status).map_err(invalid)?,
                    reason: head.slice(reason.0..reason.1),
                },
            };
            return Ok(Some(Message {
                head,
                start,
                headers,
                body,
            }));
        }
        if stream.read_buf(buffer).await? == 0 {
            return if buffer.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
    }
}

/// Offsets into the head, so the parse does not borrow the buffer past `parse_head`.
type Span = (usize, usize);

enum RawStart {
    Request { method: Span, target: Span },
    Response { status: u16, reason: Span },
}

/// A complete head at the start of `buffer`: its length, start line, header offsets and the
/// body's length; `None` when more bytes are needed.
#[allow(clippy::type_complexity)]
fn parse_head(
    buffer: &[u8],
    side: Side,
) -> io::Result<Option<(usize, RawStart, Vec<(Span, Span)>, usize)>> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let at = |s: &[u8]| -> Span {
        let start = s.as_ptr() as usize - buffer.as_ptr() as usize;
        (start, start + s.len())
    };
    let (head_len, start, headers) = match side {
        Side::Request => {
            let mut request = httparse::Request::new(&mut storage);
            let httparse::Status::Complete(len) = request.parse(buffer).map_err(invalid)? else {
                return Ok(None);
            };
            let method = at(request.method.unwrap_or_default().as_bytes());
            let target = at(request.path.unwrap_or_default().as_bytes());
            (len, RawStart::Request { method, target }, request.headers)
        }
        Side::Response => {
            let mut response = httparse::Response::new(&mut storage);
            let httparse::Status::Complete(len) = response.parse(buffer).map_err(invalid)? else {
                return Ok(None);
            };
            let status = response.code.unwrap_or_default();
            let reason = at(response.reason.unwrap_or_default().as_bytes());
            (len, RawStart::Response { status, reason }, response.headers)
        }
    };
    let mut body_len = 0;
    let mut fields = Vec::with_capacity(headers.len());
    for header in headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            body_len = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| invalid("a Content-Length that is not a number"))?;
        }
        fields.push((at(header.name.as_bytes()), at(header.value)));
    }
    Ok(Some((head_len, start, fields, body_len)))
}

/// The head's headers as a map, the values sliced from `head` (no copy).
fn header_map(head: &Bytes, fields: &[(Span, Span)]) -> io::Result<HeaderMap> {
    let mut headers = HeaderMap::with_capacity(fields.len());
    for &(name, value) in fields {
        let name = HeaderName::from_bytes(&head[name.0..name.1]).map_err(invalid)?;
        let value =
            HeaderValue::from_maybe_shared(head.slice(value.0..value.1)).map_err(invalid)?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// Writes `message` into `out` (cleared first): the head as received with `raw`, else from
/// its start line and header map, then the body.
fn write_message(out: &mut Vec<u8>, message: &Message, raw: bool) {
    out.clear();
    if raw {
        out.extend_from_slice(&message.head);
    } else {
        match &message.start {
            StartLine::Request { method, target } => {
                out.extend_from_slice(method.as_str().as_bytes());
                out.push(b' ');
                out.extend_from_slice(target);
                out.extend_from_slice(b" HTTP/1.1\r\n");
            }
            StartLine::Response { status, reason } => {
                out.extend_from_slice(b"HTTP/1.1 ");
                out.extend_from_slice(status.as_str().as_bytes());
                out.push(b' ');
                out.extend_from_slice(reason);
                out.extend_from_slice(b"\r\n");
            }
        }
        for (name, value) in &message.headers {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if !message.headers.contains_key(CONTENT_LENGTH) && !message.body.is_empty() {
            out.extend_from_slice(format!("content-length: {}\r\n", message.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(&message.body);
}

fn invalid(error: impl ToString) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error.to_string())
}
