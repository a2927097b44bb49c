//! Levee's own HTTP/1.1 server side (`h1::server`) against clients that write exact bytes:
//! pipelined requests, bodies followed by more requests on the same connection,
//! `Expect: 100-continue`, HTTP/1.0 clients, `HEAD`, and streamed answers with trailers. The
//! upstream is a real `inventory` server; the client is a raw TCP socket.

mod support;

use std::net::SocketAddr;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An answer as the client read it.
#[derive(Debug)]
struct Answer {
    head: String,
    body: Vec<u8>,
    trailers: String,
}

impl Answer {
    fn status(&self) -> u16 {
        self.head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A raw client connection and the bytes it has read but not yet used.
struct Client {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        Client {
            stream: TcpStream::connect(addr).await.expect("connect"),
            buffer: Vec::new(),
        }
    }

    async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Reads more; false at the end of the connection.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(PATIENCE, self.stream.read(&mut chunk))
            .await
            .expect("the proxy answered in time")
            .unwrap_or(0);
        self.buffer.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// `n` bytes, or `None` if the connection ended first.
    async fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buffer.len() < n {
            if !self.fill().await {
                return None;
            }
        }
        Some(self.buffer.drain(..n).collect())
    }

    /// A line ending in CRLF (without it).
    async fn line(&mut self) -> String {
        loop {
            if let Some(at) = self.buffer.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buffer.drain(..at + 2).collect();
                return String::from_utf8_lossy(&line[..at]).into_owned();
            }
            assert!(self.fill().await, "the connection ended inside a line");
        }
    }

    /// The next head (status line and fields).
    async fn head(&mut self) -> String {
        let mut head = String::new();
        loop {
            let line = self.line().await;
            if line.is_empty() {
                return head;
            }
            head.push_str(&line);
            head.push('\n');
        }
    }

    /// The next answer to a request of `method`, read by its framing.
    async fn answer(&mut self, method: &str) -> Answer {
        let head = self.head().await;
        let mut answer = Answer {
            head,
            body: Vec::new(),
            trailers: String::new(),
        };
        let status = answer.status();
        if method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status) {
            return answer;
        }
        if answer.header("transfer-encoding") == Some("chunked") {
            loop {
                let size = self.line().await;
                let size = usize::from_str_radix(size.split(';').next().unwrap_or(""), 16)
                    .expect("a chunk size");
                if size == 0 {
                    answer.trailers = self.head().await;
                    return answer;
                }
                answer
                    .body
                    .extend(self.take(size).await.expect("a whole chunk"));
                assert_eq!(self.take(2).await.as_deref(), Some(&b"\r\n"[..]));
            }
        }
        match answer.header("content-length") {
            Some(length) => {
                let length = length.parse().expect("a length");
                answer.body = self.take(length).await.expect("the whole body");
            }
            None => {
                while self.fill().await {}
                answer.body = std::mem::take(&mut self.buffer);
            }
        }
        answer
    }

    /// Whether the proxy closed the connection (nothing more arrives).
    async fn closed(&mut self) -> bool {
        self.buffer.is_empty() && !self.fill().await
    }
}

async fn proxy() -> (inventory::Server, Harness) {
    let upstream = inventory("inv").await;
    let harness = proxy_with_limits(&upstream, "max_body_bytes: 1024").await;
    (upstream, harness)
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: levee.test\r\n\r\n")
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let (upstream, harness) = proxy().await;
    let mut client = Client::connect(harness.addr).await;
    client
        .write(format!("{}{}{}", get("/items/1"), get("/items/2"), get("/items/3")).as_bytes())
        .await;
    for id in 1..=3 {
        let answer = client.answer("GET").await;
        assert_eq!(answer.status(), 200, "{answer:?}");
        assert!(
            answer.text().contains(&format!("\"id\":\"{id}\"")),
            "{answer:?}"
        );
        assert!(answer.header("date").is_some(), "every answer has a date");
    }
    assert_eq!(upstream.state.stats.received(), 3);
}

#[tokio::test]
async fn bodies_of_both_framings_leave_the_connection_ready_for_the_next_request() {
    let (upstream, harness) = proxy().await;
    let mut client = Client::connect(harness.addr).await;
    client
        .write(b"POST /echo HTTP/1.1\r\nHost: levee.test\r\nContent-Length: 5\r\n\r\nhello")
        .await;
    let answer = client.answer("POST").await;
    assert_eq!((answer.status(), answer.text().as_str()), (200, "hello"));
    client.write(get("/items/4").as_bytes()).await;
    assert_eq!(client.answer("GET").await.status(), 200);
    // Chunked, with an extension and a trailer field, in pieces.
    client
        .write(b"POST /echo HTTP/1.1\r\nHost: levee.test\r\nTransfer-Encoding: chunked\r\n\r\n4;x=1\r\nRust")
        .await;
    client
        .write(b"\r\n6\r\n rocks\r\n0\r\nx-t: 1\r\n\r\n")
        .await;
    let answer = client.answer("POST").await;
    assert_eq!(
        (answer.status(), answer.text().as_str()),
        (200, "Rust rocks")
    );
    client.write(get("/items/5").as_bytes()).await;
    assert_eq!(client.answer("GET").await.status(), 200);
    let bodies = upstream.state.stats.bodies();
    assert_eq!(bodies.len(), 2);
    assert_eq!(&bodies[1][..], b"Rust rocks");
}

#[tokio::test]
async fn expect_100_continue_is_answered_when_the_body_is_wanted() {
    let (_upstream, harness) = proxy().await;
    let mut client = Client::connect(harness.addr).await;
    client
        .write(b"POST /echo HTTP/1.1\r\nHost: levee.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        .await;
    // Nothing of the body is sent until the proxy asks for it.
    let interim = client.answer("POST").await;
    assert_eq!(interim.status(), 100, "{interim:?}");
    client.write(b"howdy").await;
    let answer = client.answer("POST").await;
    assert_eq!((answer.status(), answer.text().as_str()), (200, "howdy"));

    // A body refused on its announced length is never asked for: the answer comes at once.
    client
        .write(b"POST /echo HTTP/1.1\r\nHost: levee.test\r\nExpect: 100-continue\r\nContent-Length: 4096\r\n\r\n")
        .await;
    let answer = client.answer("POST").await;
    assert_eq!(answer.status(), 413, "{answer:?}");
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(
        client.closed().await,
        "the unread body leaves the connection unusable"
    );
}

#[tokio::test]
async fn http10_clients_get_http10_answers_closed_unless_they_keep_alive() {
    let (_upstream, harness) = proxy().await;
    let mut client = Client::connect(harness.addr).await;
    client.write(b"GET /items/1 HTTP/1.0\r\n\r\n").await;
    let answer = client.answer("GET").await;
    assert!(answer.head.starts_with("HTTP/1.0 200"), "{answer:?}");
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(client.closed().await);

    let mut client = Client::connect(harness.addr).await;
    for id in [1, 2] {
        client
            .write(format!("GET /items/{id} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").as_bytes())
            .await;
        let answer = client.answer("GET").await;
        assert!(answer.head.starts_with("HTTP/1.0 200"), "{answer:?}");
        assert_eq!(answer.header("connection"), Some("keep-alive"));
        assert!(answer.header("content-length").is_some());
    }
}

#[tokio::test]
async fn head_answers_carry_no_body_and_the_connection_stays_in_step() {
    let (_upstream, harness) = proxy().await;
    let mut client = Client::connect(harness.addr).await;
    client
        .write(
            format!(
                "HEAD /items/1 HTTP/1.1\r\nHost: levee.test\r\n\r\n{}",
                get("/items/2")
            )
            .as_bytes(),
        )
        .await;
    // inventory has no HEAD route: its 404 says a length and sends no body.
    let head = client.answer("HEAD").await;
    assert_eq!(head.status(), 404, "{head:?}");
    assert!(
        head.header("content-length").is_some_and(|l| l != "0"),
        "{head:?}"
    );
    let answer = client.answer("GET").await;
    assert_eq!(answer.status(), 200, "{answer:?}");
    assert!(answer.text().contains("\"id\":\"2\""), "{answer:?}");
}

#[tokio::test]
async fn streamed_answers_are_chunked_with_trailers_for_clients_that_take_them() {
    // Over h2c the upstream's gRPC answer carries its trailers (hyper's HTTP/1.1 server sends
    // none without a `Trailer` header), so the client side's choice is what is tested.
    let upstream = inventory("inv").await;
    let harness = Harness::start(&config(
        &format!("  inv: {{endpoints: [{}], protocol: h2c}}\n", upstream.addr),
        "  - {match: {path_prefix: /}, upstream: inv}\n",
    ))
    .await;
    let grpc = |te: &str| {
        format!(
            "POST /grpc.Echo/Echo HTTP/1.1\r\nHost: levee.test\r\nContent-Type: application/grpc\r\n{te}Content-Length: 5\r\n\r\nabcde"
        )
    };
    let mut client = Client::connect(harness.addr).await;
    client.write(grpc("TE: trailers\r\n").as_bytes()).await;
    let answer = client.answer("POST").await;
    assert_eq!(answer.status(), 200, "{answer:?}");
    assert_eq!(answer.header("transfer-encoding"), Some("chunked"));
    assert_eq!(answer.body, b"abcde");
    assert!(answer.trailers.contains("grpc-status: 0"), "{answer:?}");

    client.write(grpc("").as_bytes()).await;
    let answer = client.answer("POST").await;
    assert_eq!(
        (answer.status(), answer.body.as_slice()),
        (200, &b"abcde"[..])
    );
    assert!(
        answer.trailers.is_empty(),
        "no TE: trailers, no trailers: {answer:?}"
    );

    // HTTP/1.0 has no chunks: the body runs to the close.
    let mut client = Client::connect(harness.addr).await;
    client
        .write(
            b"POST /grpc.Echo/Echo HTTP/1.0\r\nContent-Type: application/grpc\r\nContent-Length: 3\r\n\r\nxyz",
        )
        .await;
    let answer = client.answer("POST").await;
    assert!(answer.head.starts_with("HTTP/1.0 200"), "{answer:?}");
    assert_eq!(answer.header("transfer-encoding"), None);
    assert_eq!(answer.body, b"xyz");
}

#[tokio::test]
async fn versions_other_than_1x_get_505_and_broken_lines_400() {
    let (_upstream, harness) = proxy().await;
    for (raw, status) in [
        ("GET / HTTP/2.0\r\n\r\n", 505),
        ("GET /a b HTTP/1.1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n", 400),
    ] {
        let mut client = Client::connect(harness.addr).await;
        client.write(raw.as_bytes()).await;
        let answer = client.answer("GET").await;
        assert_eq!(answer.status(), status, "{raw:?}: {answer:?}");
        assert_eq!(answer.header("connection"), Some("close"));
        assert!(client.closed().await);
    }
}
