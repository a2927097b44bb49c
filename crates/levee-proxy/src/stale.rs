//! `stale_if_error` (SPEC §7): the last good response of each cacheable GET of a route, kept so
//! it can be served, marked stale, when the upstream fails.
//!
//! - **Cacheable**: a GET answered `200` whose `Cache-Control` has neither `no-store` nor
//!   `private`, and whose body (with its headers) fits in the route's `max_bytes`. The key is
//!   the host and the path with its query.
//! - **Stored** as the body streams to the client (a copy is kept while it fits); a body that
//!   breaks off or carries trailers is not stored.
//! - **Bounded** by bytes: least recently used entries are evicted to stay within `max_bytes`.
//! - **Served** while its age is at most `max_stale`, with `Age` (seconds since it was stored,
//!   plus the `Age` it arrived with) and `levee-degraded: stale; reason=<code>`.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, StatusCode};
use http_body::{Body, Frame, SizeHint};
use levee_config::StaleIfErrorConfig;
use levee_core::time::SystemClock;
use levee_core::{Clock, Timestamp};
use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

/// Bytes charged per header on top of its name and value (map overhead).
const HEADER_OVERHEAD: u64 = 32;

/// A stored response.
#[derive(Debug, Clone)]
pub struct CachedResponse {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
}

#[derive(Debug)]
struct Entry {
    response: CachedResponse,
    stored_at: Timestamp,
    size: u64,
    tick: u64,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    by_use: BTreeMap<u64, String>,
    tick: u64,
    bytes: u64,
}

/// One route's stale cache.
#[derive(Debug)]
pub struct StaleCache {
    config: StaleIfErrorConfig,
    inner: Mutex<Inner>,
}

impl StaleCache {
    /// An empty cache.
    pub fn new(config: StaleIfErrorConfig) -> Self {
        StaleCache {
            config,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Its config.
    pub fn config(&self) -> &StaleIfErrorConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cache key of a request: host and path with query.
    pub fn key(host: Option<&str>, uri: &http::Uri) -> String {
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        format!("{}{}", host.unwrap_or(""), path)
    }

    /// True when a request may be answered from (and its response stored in) the cache.
    pub fn request_is_cacheable(method: &Method) -> bool {
        method == Method::GET
    }

    /// True when a response may be stored, judging by its head.
    pub fn response_is_cacheable(status: StatusCode, headers: &HeaderMap) -> bool {
        if status != StatusCode::OK {
            return false;
        }
        !headers
            .get_all(http::header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|d| d.trim().to_ascii_lowercase())
            .any(|d| d == "no-store" || d == "private")
    }

    /// The largest body worth copying for a response with `headers`.
    pub fn body_budget(&self, headers: &HeaderMap) -> u64 {
        self.config.max_bytes.saturating_sub(headers_size(headers))
    }

    /// The entry for `key` if it is at most `max_stale` old at `now`, with its age.
    pub fn get(&self, key: &str, now: Timestamp) -> Option<(CachedResponse, Duration)> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let Inner {
            entries, by_use, ..
        } = &mut *inner;
        let entry = entries.get_mut(key)?;
        let age = now.saturating_since(entry.stored_at);
        if age > self.config.max_stale {
            return None;
        }
        by_use.remove(&entry.tick);
        by_use.insert(tick, key.to_string());
        entry.tick = tick;
        Some((entry.response.clone(), age))
    }

    /// Stores `response` under `key` at `now`, evicting least recently used entries to fit.
    pub fn put(&self, key: String, response: CachedResponse, now: Timestamp) {
        let size = response.body.len() as u64 + headers_size(&response.headers);
        if size > self.config.max_bytes {
            return;
        }
        let mut inner = self.lock();
        if let Some(old) = inner.entries.remove(&key) {
            inner.by_use.remove(&old.tick);
            inner.bytes -= old.size;
        }
        while inner.bytes + size > self.config.max_bytes {
            let Some((_, oldest)) = inner.by_use.pop_first() else {
                break;
            };
            if let Some(old) = inner.entries.remove(&oldest) {
                inner.bytes -= old.size;
            }
        }
        inner.tick += 1;
        let tick = inner.tick;
        inner.by_use.insert(tick, key.clone());
        inner.bytes += size;
        inner.entries.insert(
            key,
            Entry {
                response,
                stored_at: now,
                size,
                tick,
            },
        );
    }

    /// Entries and bytes held.
    #[cfg(test)]
    pub fn usage(&self) -> (usize, u64) {
        let inner = self.lock();
        (inner.entries.len(), inner.bytes)
    }
}

fn headers_size(headers: &HeaderMap) -> u64 {
    headers
        .iter()
        .map(|(n, v)| (n.as_str().len() + v.len()) as u64 + HEADER_OVERHEAD)
        .sum()
}

/// A response body that streams to the client and, if it completes within the budget, stores
/// a copy in the stale cache.
pub struct CachingBody<B> {
    inner: B,
    pending: Option<Pending>,
}

struct Pending {
    cache: Arc<StaleCache>,
    key: String,
    status: StatusCode,
    headers: HeaderMap,
    copy: BytesMut,
    budget: u64,
}

impl<B> CachingBody<B> {
    /// Wraps `inner`; stores it under `key` if it completes within the cache's budget.
    pub fn new(
        inner: B,
        cache: Arc<StaleCache>,
        key: String,
        status: StatusCode,
        headers: HeaderMap,
    ) -> Self {
        let budget = cache.body_budget(&headers);
        CachingBody {
            inner,
            pending: Some(Pending {
                cache,
                key,
                status,
                headers,
                copy: BytesMut::new(),
                budget,
            }),
        }
    }
}

impl<B> CachingBody<B> {
    fn store(&mut self) {
        if let Some(p) = self.pending.take() {
            let response = CachedResponse {
                status: p.status,
                headers: p.headers,
                body: p.copy.freeze(),
            };
            p.cache.put(p.key, response, SystemClock.now());
        }
    }
}

impl<B> Body for CachingBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if let Some(p) = &mut this.pending {
                        if (p.copy.len() + data.len()) as u64 > p.budget {
                            this.pending = None;
                        } else {
                            p.copy.extend_from_slice(data);
                        }
                    }
                    // A body of known length ends with its last byte: hyper stops polling
                    // there, so the copy is stored now rather than on a final `None`.
                    if this.inner.is_end_stream() {
                        this.store();
                    }
                } else {
                    // Trailers: not something a stale copy can honestly replay.
                    this.pending = None;
                }
            }
            Poll::Ready(Some(Err(_))) => this.pending = None,
            Poll::Ready(None) => this.store(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp::from_nanos(1_000_000_000_000);

    fn cache(max_bytes: u64) -> StaleCache {
        StaleCache::new(StaleIfErrorConfig {
            max_stale: Duration::from_secs(60),
            max_bytes,
        })
    }

    fn response(body: &'static [u8]) -> CachedResponse {
        CachedResponse {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from_static(body),
        }
    }

    #[test]
    fn serves_within_max_stale_only() {
        let c = cache(1000);
        c.put("a".into(), response(b"hello"), T0);
        let (hit, age) = c.get("a", T0 + Duration::from_secs(5)).expect("hit");
        assert_eq!(hit.body, "hello");
        assert_eq!(age, Duration::from_secs(5));
        assert!(c.get("a", T0 + Duration::from_secs(61)).is_none());
    }

    #[test]
    fn evicts_least_recently_used_to_fit() {
        let c = cache(20);
        c.put("a".into(), response(b"0123456789"), T0);
        c.put("b".into(), response(b"0123456789"), T0);
        assert!(c.get("a", T0).is_some());
        c.put("c".into(), response(b"0123456789"), T0);
        assert!(c.get("a", T0).is_some());
        assert!(c.get("b", T0).is_none());
        assert_eq!(c.usage(), (2, 20));
        c.put("big".into(), response(b"012345678901234567890"), T0);
        assert!(c.get("big", T0).is_none());
    }

    #[test]
    fn cacheability_follows_status_and_cache_control() {
        let mut headers = HeaderMap::new();
        assert!(StaleCache::response_is_cacheable(StatusCode::OK, &headers));
        assert!(!StaleCache::response_is_cacheable(
            StatusCode::CREATED,
            &headers
        ));
        headers.insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("max-age=5, No-Store"),
        );
        assert!(!StaleCache::response_is_cacheable(StatusCode::OK, &headers));
    }
}
