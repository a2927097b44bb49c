//! Generated hostile input over real sockets: whatever a client writes, the proxy answers with a
//! well-formed 4xx or closes the connection. It never answers `500` (a caught panic) or a `5xx`
//! that blames the healthy upstream, never hangs, and keeps serving everyone else.
//!
//! Each test starts one proxy and one `inventory` upstream with the `hostile.rs` config (every
//! path routes to the upstream) and runs proptest's runner on a runtime of its own. Every case
//! uses a fresh connection. After every case a plain `GET /items/1` on another fresh connection
//! must still get `200`. Reads are bounded by `PATIENCE` only so that a hang fails the test
//! instead of stalling it; no test sleeps or measures a duration. Seeds are random; a failure
//! prints its smallest input, and nothing is written to disk.
//!
//! Where the answer is knowable the test states it exactly:
//! - a byte that cannot start a method, a header line HTTP forbids, conflicting
//!   `Content-Length`s, a non-chunked `Transfer-Encoding` and `Transfer-Encoding` on HTTP/1.0
//!   get hyper's bare `400`, and the upstream never sees them;
//! - a malformed Levee header gets `400 bad_request`, a spent deadline `504 deadline_exceeded`,
//!   and neither reaches the upstream;
//! - an unusable `x-request-id` or `traceparent` is replaced, never refused;
//! - `Transfer-Encoding: chunked` next to a `Content-Length` is framed by the chunks alone and
//!   the connection closes after the answer (RFC 9112 §6.3), so nothing can be smuggled behind
//!   it;
//! - an HTTP/2 preface followed by junk gets HTTP/2 frames only (SETTINGS, perhaps GOAWAY);
//! - a request head that stalls is closed after `header_read_timeout`, and so is a connection
//!   that sends nothing, or only part of the HTTP/2 preface.
//!
//! - a malformed or cut-off request body that streams to the upstream is the client's fault:
//!   a `4xx` (or no answer, when the client is gone), never an upstream failure that counts
//!   against the route's breaker.

mod support;

use http::StatusCode;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{TestCaseError, TestRunner};
use std::future::Future;
use std::net::SocketAddr;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Cases per property: enough to wander, few enough for the file to run in seconds.
const CASES: u32 = 48;

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The limits of `hostile.rs`.
const LIMITS: &str =
    "max_header_bytes: 8192, max_body_bytes: 1000, body_timeout: 300ms, retry_buffer_bytes: 100";

/// One proxy in front of one `inventory`, on a runtime the proptest runner can block on.
struct World {
    upstream: inventory::Server,
    proxy: Harness,
    /// Last, so it is dropped after the servers that run on it.
    runtime: tokio::runtime::Runtime,
}

impl World {
    fn start() -> World {
        World::start_with(LIMITS)
    }

    fn start_with(limits: &str) -> World {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (upstream, proxy) = runtime.block_on(async {
            let upstream = inventory("inventory").await;
            let proxy = proxy_with_limits(&upstream, limits).await;
            (upstream, proxy)
        });
        World {
            upstream,
            proxy,
            runtime,
        }
    }

    /// Runs `case` on [`CASES`] values of `strategy`, each followed by [`World::still_serves`].
    /// A failure panics with proptest's report, which holds the smallest failing input.
    fn check<S, F, Fut>(&self, strategy: S, case: F)
    where
        S: Strategy,
        F: Fn(S::Value) -> Fut,
        Fut: Future<Output = Result<(), TestCaseError>>,
    {
        self.check_cases(CASES, strategy, case);
    }

    /// [`World::check`] with `cases` cases.
    fn check_cases<S, F, Fut>(&self, cases: u32, strategy: S, case: F)
    where
        S: Strategy,
        F: Fn(S::Value) -> Fut,
        Fut: Future<Output = Result<(), TestCaseError>>,
    {
        // No persistence file: a failure prints its input, and the tree stays untouched.
        // Shrinking is bounded: a case that hangs takes `PATIENCE` to fail each time.
        let config = ProptestConfig {
            failure_persistence: None,
            max_shrink_iters: 64,
            max_shrink_time: 30_000,
            ..ProptestConfig::with_cases(cases)
        };
        let result = TestRunner::new(config).run(&strategy, |value| {
            self.runtime.block_on(async {
                case(value).await?;
                self.still_serves().await
            })
        });
        if let Err(e) = result {
            panic!("{e}");
        }
    }

    /// Calls the upstream has received so far.
    fn received(&self) -> u64 {
        self.upstream.state.stats.received()
    }

    /// A normal request on a fresh connection still gets its `200`.
    async fn still_serves(&self) -> Result<(), TestCaseError> {
        let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let answer = try_send(client, get(&self.proxy.url("/items/1")))
            .await
            .map_err(|e| TestCaseError::fail(format!("the proxy stopped serving: {e}")))?;
        prop_assert_eq!(
            answer.status,
            StatusCode::OK,
            "the proxy stopped serving: {}",
            answer.text()
        );
        Ok(())
    }

    /// The same over HTTP/2 with prior knowledge.
    async fn still_serves_h2(&self) -> Result<(), TestCaseError> {
        let client = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build(HttpConnector::new());
        let answer = try_send(client, get(&self.proxy.url("/items/1")))
            .await
            .map_err(|e| TestCaseError::fail(format!("the proxy stopped serving h2: {e}")))?;
        prop_assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Raw exchanges and what comes back.

/// What the client does after writing its bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Then {
    /// Shuts its write side (so the proxy sees the end of the input) and reads until the close.
    CloseWrite,
    /// Keeps the connection open and reads until a whole response head has arrived.
    ReadHead,
    /// Keeps the connection open and reads until the proxy closes it.
    ReadToClose,
}

/// What a raw connection got back.
struct Reply {
    bytes: Vec<u8>,
    /// The read ended with an error (a reset) rather than a clean close.
    reset: bool,
}

/// Writes `raw` on a fresh connection to `addr` and reads what comes back, as `then` says.
async fn exchange(addr: SocketAddr, raw: &[u8], then: Then) -> Result<Reply, TestCaseError> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| TestCaseError::fail(format!("connect: {e}")))?;
    // The proxy may answer and close before it has read everything: a failed write is fine.
    let _ = stream.write_all(raw).await;
    if then == Then::CloseWrite {
        let _ = stream.shutdown().await;
    }
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            if then == Then::ReadHead && head_end(&bytes).is_some() {
                return false;
            }
            match stream.read(&mut buf).await {
                Ok(0) => return false,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
                Err(_) => return true,
            }
        }
    };
    let outcome = tokio::time::timeout(PATIENCE, read).await;
    match outcome {
        Ok(reset) => Ok(Reply { bytes, reset }),
        Err(_) => Err(TestCaseError::fail(format!(
            "neither an answer nor a close within {PATIENCE:?} (the proxy hangs) after: {}",
            raw.escape_ascii()
        ))),
    }
}

/// Where the first response head ends (after its blank line).
fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// `tchar` of RFC 9110 §5.6.2: what a method or a header name is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A response head, checked to be well-formed HTTP/1.x.
#[derive(Debug)]
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
    /// Bytes of the head, blank line included.
    len: usize,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// hyper's own answer to a request it could not parse: a bare `400` that closes the
    /// connection. Levee's answers always carry an `x-request-id`.
    fn is_parser_400(&self) -> bool {
        self.status == 400
            && self.header("x-request-id").is_none()
            && self.header("content-length") == Some("0")
            && self.header("connection") == Some("close")
    }
}

/// Parses and checks the response head at the start of `bytes`.
fn parse_head(bytes: &[u8]) -> Result<Head, String> {
    let len = head_end(bytes).ok_or_else(|| {
        format!(
            "not a complete HTTP response head: {}",
            bytes.escape_ascii()
        )
    })?;
    // Every line up to the blank one, each with its line end.
    let mut lines = bytes[..len - 2]
        .split_inclusive(|b| *b == b'\n')
        .map(|line| {
            line.strip_suffix(b"\r\n")
                .ok_or_else(|| format!("a line not ended by CRLF: {}", line.escape_ascii()))
        });
    let status_line = lines.next().ok_or("no status line")??;
    let rest = status_line
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix(b"HTTP/1.0 "))
        .ok_or_else(|| {
            format!(
                "not an HTTP/1.x status line: {}",
                status_line.escape_ascii()
            )
        })?;
    let code = rest.get(..3).unwrap_or(rest);
    let well_formed = code.len() == 3
        && code.iter().all(u8::is_ascii_digit)
        && (code[0] >= b'1' && code[0] <= b'5')
        && rest.get(3).is_none_or(|b| *b == b' ')
        && rest.iter().all(|b| *b == b'\t' || *b >= b' ' && *b != 0x7f);
    if !well_formed {
        return Err(format!("bad status line: {}", status_line.escape_ascii()));
    }
    let status = code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    let mut headers = Vec::new();
    for line in lines {
        let line = line?;
        let colon = line
            .iter()
            .position(|b| *b == b':')
            .ok_or_else(|| format!("a header line without a colon: {}", line.escape_ascii()))?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let name_ok = !name.is_empty() && name.iter().copied().all(is_tchar);
        let value_ok = value
            .iter()
            .all(|b| *b == b'\t' || *b >= b' ' && *b != 0x7f);
        if !name_ok || !value_ok {
            return Err(format!("a malformed header line: {}", line.escape_ascii()));
        }
        headers.push((
            String::from_utf8_lossy(name).into_owned(),
            String::from_utf8_lossy(value).trim().to_string(),
        ));
    }
    Ok(Head {
        status,
        headers,
        len,
    })
}

/// The whole of a reply that holds exactly one response whose body has a `content-length`.
fn parse_whole(reply: &Reply) -> Result<(Head, &[u8]), TestCaseError> {
    let head = parse_head(&reply.bytes).map_err(TestCaseError::fail)?;
    let body = &reply.bytes[head.len..];
    let length: usize = head
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| TestCaseError::fail(format!("no content-length: {head:?}")))?;
    prop_assert_eq!(
        body.len(),
        length,
        "one response and nothing after it: {}",
        reply.bytes.escape_ascii()
    );
    Ok((head, body))
}

/// The `code` of a Levee problem+json body.
fn problem_code(head: &Head, body: &[u8]) -> Result<String, TestCaseError> {
    prop_assert_eq!(
        head.header("content-type"),
        Some("application/problem+json")
    );
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| TestCaseError::fail(format!("problem body is not JSON: {e}")))?;
    Ok(value["code"].as_str().unwrap_or("").to_string())
}

// ---------------------------------------------------------------------------------------------
// 1. Arbitrary bytes, then the end of the input.

/// Starts of a request line, so that some inputs get past the request line into the headers.
const REQUEST_LINES: [&str; 4] = [
    "GET /items/1 HTTP/1.1\r\n",
    "GET /items/1 HTTP/1.1\r\nHost: x\r\n",
    "POST /echo HTTP/1.1\r\n",
    "GET / HTTP/1.0\r\n",
];

fn arbitrary_input() -> impl Strategy<Value = Vec<u8>> {
    let not_a_method_start = any::<u8>().prop_filter("a byte no method starts with", |b| {
        !is_tchar(*b) && *b != b'\r' && *b != b'\n'
    });
    prop_oneof![
        vec(any::<u8>(), 0..2048),
        (not_a_method_start, vec(any::<u8>(), 0..2047)).prop_map(|(first, rest)| [
            vec![first],
            rest
        ]
        .concat()),
        (select(REQUEST_LINES.to_vec()), vec(any::<u8>(), 0..2000)).prop_map(|(line, rest)| [
            line.as_bytes(),
            &rest
        ]
        .concat()),
    ]
}

async fn arbitrary_bytes_case(world: &World, raw: Vec<u8>) -> Result<(), TestCaseError> {
    if raw.starts_with(H2_PREFACE) {
        // HTTP/2: `h2_preface_then_arbitrary_bytes` covers it.
        return Ok(());
    }
    let before = world.received();
    let reply = exchange(world.proxy.addr, &raw, Then::CloseWrite).await?;
    let shown = raw.escape_ascii();
    let starts_badly = raw
        .first()
        .is_some_and(|b| !is_tchar(*b) && *b != b'\r' && *b != b'\n');
    // Without `HTTP/1.` no request line is complete: the input is malformed or cut short.
    let has_version = raw.windows(7).any(|w| w == b"HTTP/1.");
    if starts_badly || !has_version {
        if reply.bytes.is_empty() && !starts_badly {
            // Cut short: closed without an answer, which is all a server can do.
            prop_assert!(!reply.reset, "reset rather than closed: {shown}");
        } else {
            let head = parse_head(&reply.bytes).map_err(TestCaseError::fail)?;
            prop_assert!(head.is_parser_400(), "{head:?} for {shown}");
            prop_assert_eq!(
                reply.bytes.len(),
                head.len,
                "nothing after the 400: {}",
                reply.bytes.escape_ascii()
            );
        }
        prop_assert_eq!(world.received(), before, "reached the upstream: {}", shown);
    } else if !reply.bytes.is_empty() {
        // Possibly a request, cut short by the end of the input (hyper then drops it).
        let head = parse_head(&reply.bytes).map_err(TestCaseError::fail)?;
        prop_assert!(head.status < 500, "{head:?} for {shown}");
        if head.status == 400 {
            prop_assert_eq!(world.received(), before, "reached the upstream: {}", shown);
        }
    }
    Ok(())
}

#[test]
fn arbitrary_bytes_get_a_400_or_a_close() {
    let world = World::start();
    world.check(arbitrary_input(), |raw| arbitrary_bytes_case(&world, raw));
}

// ---------------------------------------------------------------------------------------------
// 2. Random edits of a valid request head.

/// A valid request head without its blank line. The edits keep away from body framing
/// (`Content-Length`, `Transfer-Encoding`) and from `levee-timeout-ms`, whose `0` would be a
/// legitimate `504`: `levee_headers_with_junk` and `framing_headers` cover those exactly.
const TEMPLATE: &[u8] = b"GET /items/1 HTTP/1.1\r\n\
Host: levee.test\r\n\
Accept: application/json\r\n\
levee-criticality: standard\r\n\
x-request-id: req-0001\r\n\
traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n";

#[derive(Debug, Clone)]
enum Edit {
    Insert(Index, u8),
    Delete(Index),
    Replace(Index, u8),
}

fn edit_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        any::<u8>(),
        select(b"\r\n\t :;,/\\\"\x00\x01\x7f\x80\xff%?#@-".to_vec()),
    ]
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<Index>(), edit_byte()).prop_map(|(at, b)| Edit::Insert(at, b)),
        any::<Index>().prop_map(Edit::Delete),
        (any::<Index>(), edit_byte()).prop_map(|(at, b)| Edit::Replace(at, b)),
    ];
    vec(edit, 0..6)
}

/// `TEMPLATE` with `edits` applied and the head ended by a blank line whatever the edits did,
/// so the proxy never waits for more of the head.
fn edited(edits: &[Edit]) -> Vec<u8> {
    let mut head = TEMPLATE.to_vec();
    for edit in edits {
        match edit {
            Edit::Insert(at, b) => head.insert(at.index(head.len() + 1), *b),
            Edit::Delete(at) if !head.is_empty() => {
                head.remove(at.index(head.len()));
            }
            Edit::Replace(at, b) if !head.is_empty() => {
                let i = at.index(head.len());
                head[i] = *b;
            }
            Edit::Delete(_) | Edit::Replace(..) => {}
        }
    }
    // A head already ended leaves empty lines, which HTTP/1.1 skips before the next request.
    head.extend_from_slice(b"\r\n\r\n");
    head
}

async fn edited_head_case(world: &World, edits: Vec<Edit>) -> Result<(), TestCaseError> {
    let raw = edited(&edits);
    let shown = raw.escape_ascii();
    let before = world.received();
    let reply = exchange(world.proxy.addr, &raw, Then::ReadHead).await?;
    // The head is always complete, so there is always an answer.
    let head =
        parse_head(&reply.bytes).map_err(|e| TestCaseError::fail(format!("{e} for {shown}")))?;
    prop_assert!(
        head.status < 500,
        "a server error for a client's mistake: {head:?} for {shown}"
    );
    if raw.strip_suffix(b"\r\n\r\n") == Some(TEMPLATE) {
        prop_assert_eq!(head.status, 200, "the unedited request: {:?}", head);
    }
    if head.status == 400 {
        // Refused by the parser or by Levee; inventory itself never answers 400.
        prop_assert_eq!(
            world.received(),
            before,
            "a refused request reached the upstream: {}",
            shown
        );
    }
    if !head.is_parser_400() {
        // Everything that went through Levee carries a usable request id.
        let id = head.header("x-request-id").unwrap_or("");
        prop_assert!(
            (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()),
            "x-request-id {id:?} for {shown}"
        );
    }
    Ok(())
}

#[test]
fn edited_request_heads_get_a_4xx_or_their_normal_answer() {
    let world = World::start();
    world.check(edits(), |edits| edited_head_case(&world, edits));
}

// ---------------------------------------------------------------------------------------------
// 3. Levee's own headers, and the ones it reads, with junk in them.

#[derive(Debug, Clone)]
enum LeveeHeader {
    Criticality(Vec<u8>),
    TimeoutMs(String),
    GrpcTimeout(String),
    /// A Levee header sent twice, with values that are each valid.
    Repeated(&'static str, &'static str, &'static str),
    Traceparent(String),
    RequestId(Vec<u8>),
}

/// What the proxy must answer.
#[derive(Debug)]
enum Expect {
    /// `200` from the upstream.
    Served,
    /// Levee's `4xx`/`5xx` with this status and problem code, the upstream untouched.
    Refused(u16, &'static str),
}

/// Space and horizontal tab, the whitespace HTTP trims around values.
fn trim_ows(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

/// A valid W3C `traceparent` (version 00, non-zero ids).
fn traceparent() -> impl Strategy<Value = String> {
    ("[0-9a-f]{32}", "[0-9a-f]{16}", "[0-9a-f]{2}")
        .prop_filter("non-zero ids", |(t, p, _)| {
            t.bytes().any(|b| b != b'0') && p.bytes().any(|b| b != b'0')
        })
        .prop_map(|(t, p, f)| format!("00-{t}-{p}-{f}"))
}

fn levee_header() -> impl Strategy<Value = LeveeHeader> {
    let criticality = prop_oneof![
        select(vec![
            "critical",
            "standard",
            "sheddable",
            "SHEDDABLE",
            " Critical\t"
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        "[ -~]{0,24}".prop_map(String::into_bytes),
        // Not text: obs-text bytes among letters.
        vec(prop_oneof![Just(b'a'), 0x80u8..=0xff], 1..12),
    ];
    let timeout_ms = prop_oneof![
        "0{1,18}",
        (10_000u64..=999_999_999_999_999_999).prop_map(|n| n.to_string()),
        "[1-9][0-9]{18,30}",
        "[ -~]{0,20}".prop_filter("not a number", |s| {
            !trim_ows(s).bytes().all(|b| b.is_ascii_digit()) || trim_ows(s).is_empty()
        }),
    ];
    let grpc_timeout = "[ -~]{0,16}".prop_filter("not a grpc-timeout", |s| {
        let t = trim_ows(s);
        let Some((digits, unit)) = t.len().checked_sub(1).map(|i| t.split_at(i)) else {
            return true;
        };
        !((1..=8).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && "HMSmun".contains(unit))
    });
    let repeated = select(vec![
        ("levee-criticality", "standard", "critical"),
        ("levee-criticality", "standard", "standard"),
        ("levee-timeout-ms", "60000", "60000"),
        ("levee-timeout-ms", "60000", "5000"),
    ])
    .prop_map(|(name, a, b)| LeveeHeader::Repeated(name, a, b));
    let bad_traceparent = prop_oneof![
        // Too short for any version.
        "[ -~]{0,54}",
        // A valid one with a letter that is not hex in its ids.
        (traceparent(), 3usize..52, "[g-z]").prop_map(|(mut t, at, c)| {
            let at = if at == 35 { 36 } else { at };
            t.replace_range(at..=at, &c);
            t
        }),
        Just("00-00000000000000000000000000000000-00f067aa0ba902b7-01".to_string()),
    ];
    let request_id = prop_oneof![
        "[!-~]{1,128}".prop_map(String::into_bytes),
        "[!-~]{129,200}".prop_map(String::into_bytes),
        "[!-~]{1,20} [!-~]{1,20}".prop_map(String::into_bytes),
        ("[!-~]{0,10}", 0x80u8..=0xff, "[!-~]{0,10}").prop_map(|(a, b, c)| [
            a.as_bytes(),
            &[b],
            c.as_bytes()
        ]
        .concat()),
    ];
    prop_oneof![
        criticality.prop_map(LeveeHeader::Criticality),
        timeout_ms.prop_map(LeveeHeader::TimeoutMs),
        grpc_timeout.prop_map(LeveeHeader::GrpcTimeout),
        repeated,
        traceparent().prop_map(LeveeHeader::Traceparent),
        bad_traceparent.prop_map(LeveeHeader::Traceparent),
        request_id.prop_map(LeveeHeader::RequestId),
    ]
}

impl LeveeHeader {
    /// The header lines to send.
    fn lines(&self) -> Vec<u8> {
        let line = |name: &str, value: &[u8]| [name.as_bytes(), b": ", value, b"\r\n"].concat();
        match self {
            LeveeHeader::Criticality(v) => line("levee-criticality", v),
            LeveeHeader::TimeoutMs(v) => line("levee-timeout-ms", v.as_bytes()),
            LeveeHeader::GrpcTimeout(v) => line("grpc-timeout", v.as_bytes()),
            LeveeHeader::Repeated(name, a, b) => {
                [line(name, a.as_bytes()), line(name, b.as_bytes())].concat()
            }
            LeveeHeader::Traceparent(v) => line("traceparent", v.as_bytes()),
            LeveeHeader::RequestId(v) => line("x-request-id", v),
        }
    }

    /// The answer SPEC's rules give (levee-http's `headers` and `request_id` modules).
    fn expect(&self) -> Expect {
        let bad = Expect::Refused(400, "bad_request");
        match self {
            LeveeHeader::Criticality(v) => {
                let known = std::str::from_utf8(v).is_ok_and(|s| {
                    ["critical", "standard", "sheddable"]
                        .iter()
                        .any(|c| c.eq_ignore_ascii_case(trim_ows(s)))
                });
                if known {
                    Expect::Served
                } else {
                    bad
                }
            }
            LeveeHeader::TimeoutMs(v) => {
                let t = trim_ows(v);
                if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) || t.len() > 18 {
                    bad
                } else if t.bytes().all(|b| b == b'0') {
                    Expect::Refused(504, "deadline_exceeded")
                } else {
                    Expect::Served
                }
            }
            LeveeHeader::GrpcTimeout(_) | LeveeHeader::Repeated(..) => bad,
            LeveeHeader::Traceparent(_) | LeveeHeader::RequestId(_) => Expect::Served,
        }
    }
}

/// The trace id of a well-formed version-00 `traceparent`.
fn trace_id_of(traceparent: &str) -> Option<&str> {
    let parts: Vec<&str> = traceparent.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    match parts[..] {
        ["00", t, p, f] if hex(t, 32) && hex(p, 16) && hex(f, 2) => Some(t),
        _ => None,
    }
}

async fn levee_header_case(world: &World, header: LeveeHeader) -> Result<(), TestCaseError> {
    let raw = [
        b"GET /items/1 HTTP/1.1\r\nHost: levee.test\r\n".as_slice(),
        &header.lines(),
        b"Connection: close\r\n\r\n",
    ]
    .concat();
    let before = world.received();
    let reply = exchange(world.proxy.addr, &raw, Then::ReadToClose).await?;
    let (head, body) = parse_whole(&reply)?;
    match header.expect() {
        Expect::Refused(status, code) => {
            prop_assert_eq!(head.status, status, "{:?}", head);
            prop_assert_eq!(problem_code(&head, body)?, code);
            prop_assert_eq!(
                world.received(),
                before,
                "a refused request reached the upstream"
            );
        }
        Expect::Served => {
            prop_assert_eq!(head.status, 200, "{:?}: {}", head, body.escape_ascii());
            prop_assert_eq!(world.received(), before + 1);
        }
    }
    let id = head.header("x-request-id").unwrap_or("");
    match &header {
        LeveeHeader::RequestId(sent) => {
            let usable = (1..=128).contains(&sent.len()) && sent.iter().all(u8::is_ascii_graphic);
            if usable {
                prop_assert_eq!(id.as_bytes(), sent.as_slice(), "a usable id is kept");
            } else {
                // Replaced by a new UUID v4.
                let uuid = id.len() == 36
                    && id.bytes().enumerate().all(|(i, b)| match i {
                        8 | 13 | 18 | 23 => b == b'-',
                        14 => b == b'4',
                        _ => b.is_ascii_hexdigit(),
                    });
                prop_assert!(uuid, "an unusable id is replaced by a UUID v4, not {id:?}");
            }
        }
        LeveeHeader::Traceparent(sent) => {
            let seen = head.header("x-traceparent-seen").unwrap_or("");
            let seen_trace = trace_id_of(seen);
            prop_assert!(seen_trace.is_some(), "the upstream got {seen:?}");
            prop_assert_ne!(seen, sent.as_str(), "a new span for the hop");
            match trace_id_of(sent) {
                Some(t) if t.bytes().any(|b| b != b'0') => {
                    prop_assert_eq!(seen_trace, Some(t), "the caller's trace continues");
                }
                _ => prop_assert_ne!(seen_trace, Some("00000000000000000000000000000000")),
            }
            if trace_id_of(sent).is_none() {
                prop_assert!(
                    !sent.contains(seen_trace.unwrap_or("-")),
                    "a new trace for junk"
                );
            }
        }
        LeveeHeader::TimeoutMs(sent) if head.status == 200 => {
            // The upstream got what is left of the caller's deadline, never more.
            let left: u128 = head
                .header("x-deadline-ms")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| TestCaseError::fail(format!("no deadline forwarded: {head:?}")))?;
            let asked: u128 = trim_ows(sent).parse().unwrap_or(0);
            prop_assert!(
                0 < left && left <= asked,
                "asked {asked} ms, upstream got {left}"
            );
        }
        _ => {}
    }
    prop_assert!(!id.is_empty(), "every Levee answer has an x-request-id");
    Ok(())
}

#[test]
fn levee_headers_with_junk_get_400_and_never_reach_the_upstream() {
    let world = World::start();
    world.check(levee_header(), |header| levee_header_case(&world, header));
}

// ---------------------------------------------------------------------------------------------
// 4. Header lines that are not header lines.

/// A header line HTTP/1.1 forbids (RFC 9112 §5, RFC 9110 §5.5), whatever else the request is.
fn malformed_header_line() -> impl Strategy<Value = Vec<u8>> {
    let tchars = "[A-Za-z0-9!#$%&'*+.^_`|~-]{0,8}";
    // Not a tchar, not the colon, not a line end.
    let not_in_a_name = any::<u8>().prop_filter("a byte no header name holds", |b| {
        !is_tchar(*b) && !b":\r\n".contains(b)
    });
    // A control byte other than HTAB and the line ends (and DEL).
    let control = prop_oneof![0x00u8..=0x08, 0x0bu8..=0x0c, 0x0eu8..=0x1f, Just(0x7fu8)];
    prop_oneof![
        // A name with a byte no name holds (a space before the colon among them).
        (tchars, not_in_a_name, tchars, "[ -~]{0,16}").prop_map(|(a, bad, b, value)| {
            [a.as_bytes(), &[bad], b.as_bytes(), b": ", value.as_bytes()].concat()
        }),
        // No name.
        "[ -~]{0,16}".prop_map(|value| [b": ", value.as_bytes()].concat()),
        // No colon.
        "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,16}".prop_map(String::into_bytes),
        // A control byte in the value.
        ("[!-~]{1,8}", "[ -~]{0,8}", control, "[ -~]{0,8}").prop_map(|(name, a, ctl, b)| {
            [name.as_bytes(), b": ", a.as_bytes(), &[ctl], b.as_bytes()].concat()
        }),
        // A folded (obs-fold) continuation line.
        (select(vec![b' ', b'\t']), "[!-~]{1,16}").prop_map(|(fold, value)| [
            &[fold],
            value.as_bytes()
        ]
        .concat()),
    ]
}

async fn malformed_header_line_case(world: &World, line: Vec<u8>) -> Result<(), TestCaseError> {
    let raw = [
        b"GET /items/1 HTTP/1.1\r\nHost: levee.test\r\nAccept: */*\r\n".as_slice(),
        &line,
        b"\r\nConnection: close\r\n\r\n",
    ]
    .concat();
    let before = world.received();
    let reply = exchange(world.proxy.addr, &raw, Then::ReadToClose).await?;
    let (head, _) = parse_whole(&reply)?;
    prop_assert!(
        head.is_parser_400(),
        "{:?} for {}",
        head,
        raw.escape_ascii()
    );
    prop_assert_eq!(world.received(), before, "reached the upstream");
    Ok(())
}

#[test]
fn malformed_header_lines_get_the_parser_s_400() {
    let world = World::start();
    world.check(malformed_header_line(), |line| {
        malformed_header_line_case(&world, line)
    });
}

// ---------------------------------------------------------------------------------------------
// 5. Body framing: Content-Length and Transfer-Encoding, alone, doubled and together.

#[derive(Debug, Clone)]
enum Framing {
    /// Two `Content-Length`s that differ.
    TwoLengths(u64, u64),
    /// The same `Content-Length` twice, with that body (small enough to be buffered).
    SameLengthTwice(Vec<u8>),
    /// A `Content-Length` that is not a number.
    BadLength(String),
    /// A length over `max_body_bytes`, announced and not sent.
    TooLong(u64),
    /// A `Transfer-Encoding` whose last coding is not `chunked`.
    NotChunked(&'static str),
    /// `Transfer-Encoding: chunked` on HTTP/1.0.
    ChunkedOnHttp10(Vec<u8>),
    /// `Transfer-Encoding: chunked` and a `Content-Length`, in either order, with a chunked
    /// body and a second request pipelined behind it.
    ChunkedAndLength {
        length_first: bool,
        length: u64,
        chunks: Vec<Vec<u8>>,
    },
}

/// The chunked coding of `chunks` and its last chunk (RFC 9112 §7.1).
fn chunked(chunks: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in chunks.iter().filter(|c| !c.is_empty()) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn framing() -> impl Strategy<Value = Framing> {
    let body = |max| vec(any::<u8>(), 0..max);
    prop_oneof![
        (0u64..5000, 0u64..5000)
            .prop_filter("different", |(a, b)| a != b)
            .prop_map(|(a, b)| Framing::TwoLengths(a, b)),
        body(100).prop_map(Framing::SameLengthTwice),
        prop_oneof![
            "[ -~]{0,12}".prop_filter("not a number", |s| {
                let t = trim_ows(s);
                t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit())
            }),
            (0u64..1000).prop_map(|n| format!("+{n}")),
            (0u64..1000).prop_map(|n| format!("-{n}")),
            (0u64..1000).prop_map(|n| format!("{n}, {n}")),
            (0u64..1000).prop_map(|n| format!("0x{n:x}")),
            "[1-9][0-9]{20,24}",
        ]
        .prop_map(Framing::BadLength),
        (1001u64..1_000_000_000_000).prop_map(Framing::TooLong),
        select(vec![
            "gzip",
            "identity",
            "chunked, gzip",
            "chunked;q=1",
            "chunked, identity"
        ])
        .prop_map(Framing::NotChunked),
        body(50).prop_map(Framing::ChunkedOnHttp10),
        (any::<bool>(), 0u64..100_000, vec(body(60), 0..6)).prop_map(
            |(length_first, length, chunks)| Framing::ChunkedAndLength {
                length_first,
                length,
                chunks,
            }
        ),
    ]
}

async fn framing_case(world: &World, framing: Framing) -> Result<(), TestCaseError> {
    let post = |headers: &str, body: &[u8]| {
        [
            format!(
                "POST /echo HTTP/1.1\r\nHost: levee.test\r\nConnection: close\r\n{headers}\r\n"
            )
            .as_bytes(),
            body,
        ]
        .concat()
    };
    let raw = match &framing {
        // The parser refuses these on their heads: no body is sent.
        Framing::TwoLengths(a, b) => post(
            &format!("Content-Length: {a}\r\nContent-Length: {b}\r\n"),
            b"",
        ),
        Framing::SameLengthTwice(body) => post(
            &format!("Content-Length: {0}\r\nContent-Length: {0}\r\n", body.len()),
            body,
        ),
        Framing::BadLength(v) => post(&format!("Content-Length: {v}\r\n"), b""),
        Framing::TooLong(n) => post(&format!("Content-Length: {n}\r\n"), b""),
        Framing::NotChunked(te) => post(&format!("Transfer-Encoding: {te}\r\n"), b""),
        Framing::ChunkedOnHttp10(body) => [
            b"POST /echo HTTP/1.0\r\nHost: levee.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                .as_slice(),
            &chunked(std::slice::from_ref(body)),
        ]
        .concat(),
        Framing::ChunkedAndLength {
            length_first,
            length,
            chunks,
        } => {
            let (cl, te) = (
                format!("Content-Length: {length}\r\n"),
                "Transfer-Encoding: chunked\r\n".to_string(),
            );
            let headers = if *length_first { cl + &te } else { te + &cl };
            // No `Connection: close`: the proxy must close by itself.
            [
                format!("POST /echo HTTP/1.1\r\nHost: levee.test\r\n{headers}\r\n").as_bytes(),
                &chunked(chunks),
                b"GET /items/2 HTTP/1.1\r\nHost: levee.test\r\n\r\n",
            ]
            .concat()
        }
    };
    let before = world.received();
    let reply = exchange(world.proxy.addr, &raw, Then::ReadToClose).await?;
    let (head, body) = parse_whole(&reply)?;
    match &framing {
        Framing::TwoLengths(..)
        | Framing::BadLength(_)
        | Framing::NotChunked(_)
        | Framing::ChunkedOnHttp10(_) => {
            prop_assert!(head.is_parser_400(), "{:?}", head);
            prop_assert_eq!(world.received(), before);
        }
        Framing::TooLong(_) => {
            prop_assert_eq!(head.status, 413, "{:?}", head);
            prop_assert_eq!(world.received(), before);
        }
        Framing::SameLengthTwice(sent) => {
            prop_assert_eq!(head.status, 200, "{:?}", head);
            prop_assert_eq!(body, sent.as_slice());
            prop_assert_eq!(world.received(), before + 1);
        }
        Framing::ChunkedAndLength { chunks, .. } => {
            // The chunks frame the body; the length is ignored; the connection closes after
            // this answer, so the pipelined `GET /items/2` is never served.
            prop_assert_eq!(head.status, 200, "{:?}", head);
            let data = chunks.concat();
            prop_assert_eq!(body, data.as_slice());
            prop_assert_eq!(head.header("connection"), Some("close"));
            prop_assert_eq!(
                world.received(),
                before + 1,
                "only the POST reached the upstream"
            );
            let sent = world.upstream.state.stats.bodies();
            prop_assert_eq!(sent.last().map(|b| b.to_vec()), Some(data));
        }
    }
    Ok(())
}

#[test]
fn framing_headers_are_refused_or_framed_by_the_chunks() {
    let world = World::start();
    world.check(framing(), |framing| framing_case(&world, framing));
}

// ---------------------------------------------------------------------------------------------
// 6. The HTTP/2 preface, then anything.

/// An empty client SETTINGS frame, to get past the first frame some of the time.
const EMPTY_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

fn h2_input() -> impl Strategy<Value = Vec<u8>> {
    (any::<bool>(), vec(any::<u8>(), 0..2048)).prop_map(|(settings, junk)| {
        let settings = if settings { EMPTY_SETTINGS } else { &[] };
        [H2_PREFACE, settings, &junk].concat()
    })
}

async fn h2_case(world: &World, raw: Vec<u8>) -> Result<(), TestCaseError> {
    let before = world.received();
    let reply = exchange(world.proxy.addr, &raw, Then::CloseWrite).await?;
    // The server speaks HTTP/2 frames only: its SETTINGS first, then perhaps a GOAWAY.
    prop_assert!(
        !reply.bytes.is_empty() || reply.reset,
        "closed without its SETTINGS"
    );
    let mut rest = reply.bytes.as_slice();
    let mut first = true;
    while !rest.is_empty() {
        if rest.len() < 9 {
            prop_assert!(reply.reset, "a torn frame header: {}", rest.escape_ascii());
            break;
        }
        let length = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        let (kind, stream) = (
            rest[3],
            u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]) & 0x7fff_ffff,
        );
        prop_assert!(length <= 16_384, "a frame over the default size: {length}");
        if first {
            prop_assert_eq!((kind, stream), (4, 0), "SETTINGS on stream 0 first");
            first = false;
        }
        if kind == 7 {
            prop_assert!(stream == 0 && length >= 8, "a malformed GOAWAY");
        }
        if rest.len() < 9 + length {
            prop_assert!(reply.reset, "a torn frame: {}", rest.escape_ascii());
            break;
        }
        rest = &rest[9 + length..];
    }
    prop_assert_eq!(world.received(), before, "junk frames reached the upstream");
    Ok(())
}

#[test]
fn h2_preface_then_arbitrary_bytes() {
    let world = World::start();
    world.check(h2_input(), |raw| h2_case(&world, raw));
    world
        .runtime
        .block_on(world.still_serves_h2())
        .unwrap_or_else(|e| panic!("{e}"));
}

// ---------------------------------------------------------------------------------------------
// 7. Heads that stall: the proxy closes them after `header_read_timeout` (200 ms here). The
// checks wait for the close, bounded only by `PATIENCE`.

/// Limits with a short `header_read_timeout` (and the default 60 s `idle_timeout`).
const STALL_LIMITS: &str = "header_read_timeout: 200ms";

/// Cases per stall property: each waits out the proxy's `header_read_timeout`.
const STALL_CASES: u32 = 12;

/// A valid request head, of which the stall tests send a strict prefix.
const STALL_HEAD: &[u8] = b"GET /items/1 HTTP/1.1\r\nHost: levee.test\r\nAccept: */*\r\n";

/// Writes `raw`, keeps the connection open, and expects the proxy to close it with at most a
/// 4xx.
async fn stalled_case(world: &World, raw: &[u8]) -> Result<(), TestCaseError> {
    let reply = exchange(world.proxy.addr, raw, Then::ReadToClose).await?;
    if !reply.bytes.is_empty() {
        let head = parse_head(&reply.bytes).map_err(TestCaseError::fail)?;
        prop_assert!((400..500).contains(&head.status), "{:?}", head);
    }
    Ok(())
}

#[test]
fn stalled_http1_heads_are_closed_after_header_read_timeout() {
    let world = World::start_with(STALL_LIMITS);
    world.check_cases(STALL_CASES, 1..STALL_HEAD.len(), |cut| {
        stalled_case(&world, &STALL_HEAD[..cut])
    });
}

// A connection that sends nothing, or only part of the HTTP/2 preface, is closed after
// `header_read_timeout` too, not held until `idle_timeout` (60 s by default): hyper-util's `auto`
// builder reads the first 24 bytes to choose HTTP/1 or HTTP/2 with no timer, and hyper starts
// `header_read_timeout` only after that (hyperium/hyper#3756, #3962), so the proxy bounds that
// first read itself (`server::await_first_bytes`). Were it not bounded, the 10 s guard would
// fail the test.
#[test]
fn stalled_h2_prefaces_are_closed_after_header_read_timeout() {
    let world = World::start_with(STALL_LIMITS);
    world.check_cases(STALL_CASES, 0..H2_PREFACE.len(), |cut| {
        stalled_case(&world, &H2_PREFACE[..cut])
    });
}

// ---------------------------------------------------------------------------------------------
// 8. A bad body that streams to the upstream.
//
// A request body that is not buffered (no length, or over `retry_buffer_bytes`) streams to the
// upstream. When hyper fails to read it from the client — a malformed chunk, or the client
// closing before the announced length — the upstream request fails. That is the client's
// fault (`400`, as the buffered path answers), not the upstream's: were it recorded as an
// upstream failure, 20 such requests (the breaker's `minimum_calls`) would open the route's
// breaker for every client, which `still_serves` after each case would catch.

#[derive(Debug, Clone)]
enum BadBody {
    /// A chunk size that is not hex.
    ChunkSize(String),
    /// A chunk of size 1 followed by more data and no CRLF where its size says it ends.
    ChunkTooLong(Vec<u8>),
    /// A body of over `retry_buffer_bytes` cut short by the end of the input.
    CutShort { announced: usize, sent: usize },
}

fn bad_body() -> impl Strategy<Value = BadBody> {
    prop_oneof![
        "[g-zG-Z!-/][ -~]{0,8}".prop_map(BadBody::ChunkSize),
        vec(any::<u8>().prop_filter("not CR", |b| *b != b'\r'), 1..40)
            .prop_map(BadBody::ChunkTooLong),
        (101usize..1000)
            .prop_flat_map(|announced| (Just(announced), 0..announced))
            .prop_map(|(announced, sent)| BadBody::CutShort { announced, sent }),
    ]
}

async fn bad_body_case(world: &World, bad: BadBody) -> Result<(), TestCaseError> {
    let chunked_head = b"POST /echo HTTP/1.1\r\nHost: levee.test\r\nConnection: close\r\n\
Transfer-Encoding: chunked\r\n\r\n"
        .as_slice();
    let (raw, then) = match &bad {
        BadBody::ChunkSize(size) => (
            [chunked_head, size.as_bytes(), b"\r\nhello\r\n0\r\n\r\n"].concat(),
            Then::ReadToClose,
        ),
        BadBody::ChunkTooLong(data) => (
            [chunked_head, b"1\r\n", data, b"X\r\n0\r\n\r\n"].concat(),
            Then::ReadToClose,
        ),
        BadBody::CutShort { announced, sent } => (
            [
                format!(
                    "POST /echo HTTP/1.1\r\nHost: levee.test\r\n\
                     Content-Length: {announced}\r\n\r\n"
                )
                .as_bytes(),
                &vec![b'y'; *sent],
            ]
            .concat(),
            Then::CloseWrite,
        ),
    };
    let reply = exchange(world.proxy.addr, &raw, then).await?;
    if !reply.bytes.is_empty() {
        let head = parse_head(&reply.bytes).map_err(TestCaseError::fail)?;
        prop_assert!(
            (400..500).contains(&head.status),
            "the client's bad body is not the upstream's failure: {}",
            reply.bytes.escape_ascii()
        );
    } else {
        prop_assert!(then == Then::CloseWrite, "no answer to a complete head");
    }
    Ok(())
}

#[test]
fn bad_streamed_bodies_are_the_client_s_fault() {
    let world = World::start();
    world.check(bad_body(), |bad| bad_body_case(&world, bad));
}
