//! Levee's own HTTP/1.1, both sides of the proxy:
//! - **the client side**, towards upstreams: requests written (`encode`) and answers read
//!   (`decode`) on connections the pool (`crate::pool`) keeps (`connection`);
//! - **the server side**, towards clients: requests read (`request`) and answered
//!   (`response`) on each client connection (`server`; its module doc has the decisions);
//! - shared: a head's fields into an `http::HeaderMap` (`fields`), vectored writing of a
//!   framed message (`write`) and reading a framed body (`read`); emptied maps are kept per
//!   thread for the next request's head (`spare_maps`).
//!
//! Why not hyper's `client::conn::http1`: it runs each connection in a task of its own and
//! hands requests, responses and response bodies across channels (`want`, an mpsc queue, a
//! oneshot, a body channel). bench/h1-floor measured what that costs, with everything else
//! equal (`PROXY=h1 H1_ARGS='--server hyper' bench/callgrind.sh` against bench/hyper-floor):
//! about 6,900 of the 23,900 instructions a request of the bare hyper proxy, the largest single
//! share of the distance to HAProxy that issue #3 measures (docs/benchmarks.md, "The seventh
//! data-path pass"). Here the request's own task writes the request and reads the answer,
//! with httparse (the parser hyper uses) and `http`'s types, so nothing else changes for the
//! pipeline. hyper still serves HTTP/2 clients and h2c upstreams.
//!
//! Client-side decisions (the same as hyper's client unless said):
//! Decisions (the same as hyper's client unless said):
//! - **Framing** (`encode`): the request's `Content-Length` if it has one, none for a body
//!   known to be empty (`Content-Length: 0` for `POST`/`PUT`/`PATCH`), the exact size of a body
//!   that knows it, chunked otherwise. A body that yields more or less than its
//!   `Content-Length` fails the exchange.
//! - **Responses** (`decode`, RFC 9112 §6.3): no body for `HEAD`, 204 and 304; a final
//!   `chunked` coding frames the body, and wins over `Content-Length` (the connection is then
//!   not reused); `Content-Length` values must agree; otherwise the body runs to the close.
//!   Interim (1xx) responses are skipped; 101 is refused (upgrades are not proxied). Heads and
//!   trailer sections are limited to 64 KiB and 100 fields.
//! - **Reuse**: HTTP/1.1 unless the upstream says `close`, HTTP/1.0 only with `keep-alive`;
//!   never after a body that ran to the close, a request body not written whole, or bytes
//!   beyond the response.
//! - **Full duplex**: the request body keeps being written while the response is read, so an
//!   upstream that answers early (a 413 mid-upload) is heard; if the rest cannot be written,
//!   the answer stands and the connection is closed after it.
//! - **A reused connection that the upstream had closed**: an idle connection is checked
//!   before use (without a system call unless its socket turned readable), and if an exchange
//!   on a reused connection still fails before any byte of an answer arrived, the request is
//!   sent once more on a fresh connection when that is safe — no body and an idempotent method
//!   (Go's `net/http` rule; hyper only re-sends requests it had not begun to write).

pub mod connection;
pub mod decode;
pub mod encode;
pub mod fields;
pub mod read;
pub mod request;
pub mod response;
pub mod server;
pub mod spare_maps;
pub mod write;
