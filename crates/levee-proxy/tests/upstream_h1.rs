//! Levee's own HTTP/1.1 client (`h1`) against upstreams that speak the wire forms a real
//! fleet sends: chunked bodies with trailers, bodies that run to the close, bodiless answers,
//! interim responses, answers dribbled a byte at a time, connections closed while idle, and
//! answers that are broken. Each upstream here is a raw TCP server writing exact bytes.

mod support;

use bytes::Bytes;
use http::{Method, StatusCode};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a scripted upstream does after writing an answer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum After {
    KeepOpen,
    Close,
}

/// How a scripted upstream writes an answer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pace {
    Whole,
    ByteByByte,
}

/// One request as the upstream received it: its head and its (de-chunked) body.
#[derive(Clone, Debug)]
struct Received {
    head: String,
    body: Vec<u8>,
}

type Script = dyn Fn(&Received) -> (Vec<u8>, After, Pace) + Send + Sync;

/// A raw HTTP/1.1 upstream: for each request, `script` gives the exact bytes to answer.
/// Returns its address, the connections it accepted and the requests it received.
async fn scripted(
    script: impl Fn(&Received) -> (Vec<u8>, After, Pace) + Send + Sync + 'static,
) -> (SocketAddr, Arc<AtomicUsize>, Arc<Mutex<Vec<Received>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let received = Arc::new(Mutex::new(Vec::new()));
    let script: Arc<Script> = Arc::new(script);
    let (count, log) = (Arc::clone(&accepted), Arc::clone(&received));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let (script, log) = (Arc::clone(&script), Arc::clone(&log));
            tokio::spawn(serve_scripted(stream, script, log));
        }
    });
    (addr, accepted, received)
}

async fn serve_scripted(
    mut stream: TcpStream,
    script: Arc<Script>,
    log: Arc<Mutex<Vec<Received>>>,
) {
    stream.set_nodelay(true).expect("nodelay");
    let mut buffer = Vec::new();
    while let Some(request) = read_request(&mut stream, &mut buffer).await {
        log.lock().expect("log").push(request.clone());
        let (answer, after, pace) = script(&request);
        let written = match pace {
            Pace::Whole => stream.write_all(&answer).await,
            Pace::ByteByByte => {
                let mut result = Ok(());
                for byte in answer {
                    result = stream.write_all(&[byte]).await;
                    tokio::task::yield_now().await;
                }
                result
            }
        };
        if written.is_err() || after == After::Close {
            return;
        }
    }
}

/// Reads one request (head, and a `Content-Length` or chunked body); `None` at the close.
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Received> {
    let head_end = loop {
        if let Some(at) = find(buffer, b"\r\n\r\n") {
            break at + 4;
        }
        fill(stream, buffer).await?;
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    buffer.drain(..head_end);
    let lower = head.to_ascii_lowercase();
    let mut body = Vec::new();
    if lower.contains("transfer-encoding: chunked") {
        loop {
            let line_end = loop {
                if let Some(at) = find(buffer, b"\r\n") {
                    break at;
                }
                fill(stream, buffer).await?;
            };
            let line = String::from_utf8_lossy(&buffer[..line_end]).to_string();
            let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
            buffer.drain(..line_end + 2);
            while buffer.len() < size + 2 {
                fill(stream, buffer).await?;
            }
            body.extend_from_slice(&buffer[..size]);
            buffer.drain(..size + 2);
            if size == 0 {
                break;
            }
        }
    } else if let Some(line) = lower.lines().find(|l| l.starts_with("content-length:")) {
        let length: usize = line["content-length:".len()..].trim().parse().ok()?;
        while buffer.len() < length {
            fill(stream, buffer).await?;
        }
        body = buffer.drain(..length).collect();
    }
    Some(Received { head, body })
}

async fn fill(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buffer.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A route to `upstream` with retries off, so each call is one attempt.
fn yaml(upstream: SocketAddr) -> String {
    config(
        &format!("  up: {{endpoints: [{upstream}]}}\n"),
        "  - {match: {path_prefix: /}, upstream: up, retry: {max_attempts: 1}}\n",
    )
}

fn answer(raw: &str) -> Vec<u8> {
    raw.as_bytes().to_vec()
}

#[tokio::test]
async fn a_chunked_answer_is_relayed_and_its_connection_reused() {
    let (up, accepted, _) = scripted(|_| {
        (
            answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-checksum: 7\r\n\r\n"),
            After::KeepOpen,
            Pace::Whole,
        )
    })
    .await;
    let proxy = Harness::start(&yaml(up)).await;
    for _ in 0..3 {
        let r = send(get(&proxy.url("/items"))).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.text(), "hello world");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one connection carried all three"
    );
}

#[tokio::test]
async fn an_answer_that_runs_to_the_close_is_whole_and_its_connection_not_reused() {
    let (up, accepted, _) = scripted(|_| {
        (
            answer("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the very end"),
            After::Close,
            Pace::Whole,
        )
    })
    .await;
    let proxy = Harness::start(&yaml(up)).await;
    for _ in 0..2 {
        let r = send(get(&proxy.url("/items"))).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.text(), "until the very end");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn bodiless_answers_leave_the_connection_in_step() {
    // A HEAD answer announces a length it does not send, and a 204 has none: were either
    // read as having a body, the next answer on the connection would be misread.
    let (up, accepted, _) = scripted(|request| {
        let raw = if request.head.starts_with("HEAD") {
            "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n"
        } else if request.head.starts_with("DELETE") {
            "HTTP/1.1 204 No Content\r\n\r\n"
        } else {
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        };
        (answer(raw), After::KeepOpen, Pace::Whole)
    })
    .await;
    let proxy = Harness::start(&yaml(up)).await;
    let head = send(request(Method::HEAD, &proxy.url("/items"), Bytes::new())).await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("content-length"), Some("11"));
    assert!(head.body.is_empty());
    let deleted = send(request(
        Method::DELETE,
        &proxy.url("/items/1"),
        Bytes::new(),
    ))
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let r = send(get(&proxy.url("/items"))).await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "ok"));
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn interim_answers_are_skipped() {
    let (up, _, _) = scripted(|_| {
        (
            answer("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone"),
            After::KeepOpen,
            Pace::Whole,
        )
    })
    .await;
    let proxy = Harness::start(&yaml(up)).await;
    let r = send(request(Method::POST, &proxy.url("/items"), "x")).await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::CREATED, "done"));
}

#[tokio::test]
async fn an_answer_dribbled_a_byte_at_a_time_is_read_whole() {
    let (up, _, _) = scripted(|_| {
        (
            answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Slow: yes\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"),
            After::KeepOpen,
            Pace::ByteByByte,
        )
    })
    .await;
    let proxy = Harness::start(&yaml(up)).await;
    let r = send(get(&proxy.url("/items"))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-slow"), Some("yes"));
    assert_eq!(r.text(), "abcde");
}

#[tokio::test]
async fn request_bodies_arrive_whole_in_either_framing() {
    let (up, _, received) = scripted(|request| {
        let raw = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{}",
            request.body.len().to_string().len(),
            request.body.len()
        );
        (answer(&raw), After::KeepOpen, Pace::Whole)
    })
    .await;
    let proxy = Harness::start(&yaml(up)).await;
    // Larger than the retry buffer: streamed to the upstream with its Content-Length.
    let big = vec![b'x'; 300 * 1024];
    let r = send(request(Method::POST, &proxy.url("/upload"), big.clone())).await;
    assert_eq!(
        (r.status, r.text()),
        (StatusCode::OK, big.len().to_string())
    );
    // A chunked request of unknown length: forwarded chunked.
    let mut client = TcpStream::connect(proxy.addr).await.expect("connect");
    client
        .write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n")
        .await
        .expect("write");
    let mut raw = Vec::new();
    client.read_to_end(&mut raw).await.expect("read");
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(raw.ends_with("\r\n\r\n9"), "{raw}");
    let received = received.lock().expect("log").clone();
    assert_eq!(received.len(), 2);
    assert!(received[0]
        .head
        .to_ascii_lowercase()
        .contains("content-length: 307200"));
    assert!(received[1]
        .head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked"));
    assert_eq!(received[1].body, b"wikipedia");
}

#[tokio::test]
async fn a_connection_closed_while_idle_is_replaced_without_failing_the_call() {
    // Every answer says nothing of closing, and then the connection is closed: the next
    // call finds its pooled connection dead.
    let (up, accepted, _) = scripted(|_| {
        (
            answer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            After::Close,
            Pace::Whole,
        )
    })
    .await;
    let proxy = Harness::start(&yaml(up)).await;
    for _ in 0..4 {
        let r = send(get(&proxy.url("/items"))).await;
        assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "ok"));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_broken_answer_is_a_502_problem() {
    let (up, _, _) = scripted(|request| {
        let raw = if request.head.contains("/garbage") {
            "this is not HTTP\r\n\r\n"
        } else {
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nok"
        };
        (answer(raw), After::Close, Pace::Whole)
    })
    .await;
    let proxy = Harness::start(&yaml(up)).await;
    for path in ["/garbage", "/disagreeing-lengths"] {
        let r = send(get(&proxy.url(path))).await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{path}: {}", r.text());
        assert_eq!(
            r.header("content-type"),
            Some("application/problem+json"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_body_cut_short_fails_the_answer_instead_of_hanging() {
    let (up, _, _) = scripted(|_| {
        (
            answer("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf"),
            After::Close,
            Pace::Whole,
        )
    })
    .await;
    let proxy = Harness::start(&yaml(up)).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let result = try_send(client, get(&proxy.url("/items"))).await;
    let error = result
        .err()
        .expect("a truncated body is an error, not an answer");
    assert!(!error.contains("no answer in time"), "{error}");
}
