//! `hyper-floor --listen ADDR --upstream ADDR`: the least an HTTP/1.1 proxy built on hyper can
//! do, as a benchmark peer (bench/proxy.sh, target `hyper`).
//!
//! Levee's proxy runs every request through hyper's server connection on one side and hyper's
//! client connection on the other. This program keeps exactly those two and drops everything
//! else: no routing, no header rewriting, no policies, no metrics, no log, no pool (each client
//! connection gets its own upstream connection, made when the client connects), one thread.
//! Its CPU per request is the floor under Levee's on the same stack; the difference between
//! the two is what Levee's own work costs (docs/benchmarks.md).

use clap::Parser;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};

#[derive(Parser, Debug)]
#[command(about = "A bare hyper pass-through proxy: the floor under Levee's proxy")]
struct Args {
    /// Where to accept clients.
    #[arg(long)]
    listen: SocketAddr,
    /// The one upstream every request goes to.
    #[arg(long)]
    upstream: SocketAddr,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(args.listen).await?;
    loop {
        let (client, _) = listener.accept().await?;
        let upstream = args.upstream;
        tokio::spawn(async move {
            if let Err(e) = relay(client, upstream).await {
                eprintln!("hyper-floor: {e}");
            }
        });
    }
}

/// Serves one client connection over its own upstream connection.
async fn relay(client: TcpStream, upstream: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    client.set_nodelay(true)?;
    let stream = TcpStream::connect(upstream).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    // HTTP/1.1 serves a connection's requests one at a time, so the lock is never contended;
    // it is only held to start a request, never across an await.
    let sender = Arc::new(Mutex::new(sender));
    let service = service_fn(move |request: Request<Incoming>| {
        let sender = Arc::clone(&sender);
        async move { forward(&sender, request).await }
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(client), service)
        .await?;
    Ok(())
}

async fn forward(
    sender: &Mutex<SendRequest<Incoming>>,
    request: Request<Incoming>,
) -> Result<Response<Incoming>, hyper::Error> {
    // The upstream connection is ready again once the previous response's body is read.
    std::future::poll_fn(|cx| lock(sender).poll_ready(cx)).await?;
    let response = lock(sender).send_request(request);
    response.await
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
