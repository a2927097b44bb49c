//! Rate limits (SPEC §6): a token bucket per route, optionally one per value of a request
//! header: `rate_limit: {rate: 100/s, burst: 50, key: header:x-client-id}`. A request over the
//! limit is `rejected` with `rate_limited` (429) and told when a token will be there.
//!
//! The bucket is exact integer arithmetic, so every implementation admits the same requests:
//!
//! - `rate: N/<unit>` with `period_ns` = 1 s, 1 min or 1 h in nanoseconds. One token is
//!   `period_ns` *units*; time adds `N` units per nanosecond. A request costs one token
//!   (`period_ns` units).
//! - `capacity = burst × period_ns`; a bucket starts full.
//! - On each request at `now`: if `now` is after the last refill,
//!   `tokens = min(capacity, tokens + elapsed_ns × N)` and the refill time becomes `now` (a
//!   `now` at or before it adds nothing). Then, if `tokens >= period_ns`, the request is
//!   allowed and `tokens -= period_ns`; otherwise it is limited with
//!   `retry_after = ceil((period_ns - tokens) / N)` nanoseconds and the bucket is unchanged.
//!   All values fit in 128-bit unsigned integers.
//!
//! [`KeyedRateLimiter`] keeps one bucket per key (the header's value; a missing header, or a
//! route without `key`, uses the shared key `""`). It tracks at most `max_keys` keys and evicts
//! the least recently used one (the key whose last request is oldest) to make room; an evicted
//! key that returns starts with a full bucket. Key values longer than 256 bytes are cut to
//! their first 256 bytes. Rules and vectors: `conformance/policies/rate_limit.md`.

use crate::time::{duration_nanos, Timestamp};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// The largest count a rate may have.
pub const MAX_RATE_COUNT: u64 = 1_000_000_000;
/// The largest burst.
pub const MAX_BURST: u64 = 1_000_000_000;
/// The default `max_keys`.
pub const DEFAULT_MAX_KEYS: usize = 10_000;
/// Key values are cut to this many bytes.
pub const MAX_KEY_BYTES: usize = 256;

/// The period of a [`Rate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Per {
    /// `/s`
    Second,
    /// `/m`
    Minute,
    /// `/h`
    Hour,
}

impl Per {
    /// The period's length.
    pub const fn duration(self) -> Duration {
        match self {
            Per::Second => Duration::from_secs(1),
            Per::Minute => Duration::from_secs(60),
            Per::Hour => Duration::from_secs(3600),
        }
    }

    /// The unit as written: `s`, `m` or `h`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Per::Second => "s",
            Per::Minute => "m",
            Per::Hour => "h",
        }
    }
}

/// A rate such as `100/s`, `600/m` or `5000/h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    count: u64,
    per: Per,
}

impl Rate {
    /// `count` requests per `per`; `count` must be in `1..=1_000_000_000`.
    pub fn new(count: u64, per: Per) -> Result<Rate, String> {
        if count == 0 {
            return Err(format!(
                "rate `0/{}` allows no requests: use a positive count such as `100/s`, or \
                 remove rate_limit to turn it off",
                per.as_str()
            ));
        }
        if count > MAX_RATE_COUNT {
            return Err(format!(
                "rate `{count}/{}` is above the largest supported count, {MAX_RATE_COUNT}",
                per.as_str()
            ));
        }
        Ok(Rate { count, per })
    }

    /// Requests per period.
    pub const fn count(self) -> u64 {
        self.count
    }

    /// The period.
    pub const fn per(self) -> Per {
        self.per
    }

    /// The period in nanoseconds.
    pub fn period_nanos(self) -> u64 {
        duration_nanos(self.per.duration())
    }
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(input: &str) -> Result<Rate, String> {
        let text = input.trim();
        let malformed = || {
            format!(
                "rate `{text}` is not `<count>/<unit>`: write e.g. `100/s`, `600/m` or `5000/h`"
            )
        };
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "rate `{text}` has no unit: write `{text}/s`, `{text}/m` or `{text}/h`"
            ));
        }
        let (count, unit) = text.split_once('/').ok_or_else(malformed)?;
        let per = match unit {
            "s" => Per::Second,
            "m" => Per::Minute,
            "h" => Per::Hour,
            _ => return Err(malformed()),
        };
        if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        let count = count.parse::<u64>().unwrap_or(u64::MAX);
        Rate::new(count, per)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, self.per.as_str())
    }
}

/// Reads a string (or a bare number, to report it) for `FromStr` types in config.
fn text_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    deserializer.deserialize_any(Visitor)
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        text_or_number(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Where a request's rate-limit key comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeySource {
    /// `header:<name>`: the value of this request header (name stored in lower case).
    Header(String),
}

impl KeySource {
    /// The header to read, for `header:` keys.
    pub fn header(&self) -> Option<&str> {
        match self {
            KeySource::Header(name) => Some(name),
        }
    }
}

/// RFC 9110 `tchar`: the characters of a header name.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl FromStr for KeySource {
    type Err = String;
    fn from_str(input: &str) -> Result<KeySource, String> {
        let text = input.trim();
        let Some(name) = text.strip_prefix("header:") else {
            return Err(format!(
                "rate limit key `{text}` is not supported: write `header:<name>`, such as \
                 `header:x-client-id`"
            ));
        };
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(format!(
                "rate limit key `{text}` does not name a valid header: write \
                 `header:<name>`, such as `header:x-client-id`"
            ));
        }
        Ok(KeySource::Header(name.to_ascii_lowercase()))
    }
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Header(name) => write!(f, "header:{name}"),
        }
    }
}

impl<'de> Deserialize<'de> for KeySource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        text_or_number(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for KeySource {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

fn default_max_keys() -> usize {
    DEFAULT_MAX_KEYS
}

/// `rate_limit:` on a route (SPEC §6). `rate` is required; unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained rate: `100/s`, `600/m`, `5000/h`.
    pub rate: Rate,
    /// Requests allowed at once after a quiet spell; defaults to the rate's count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    /// One bucket per value of this header; one bucket for the route when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeySource>,
    /// Most keys tracked at once (least recently used evicted).
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
}

impl RateLimitConfig {
    /// A config with this rate and every other key at its default.
    pub fn new(rate: Rate) -> Self {
        RateLimitConfig {
            rate,
            burst: None,
            key: None,
            max_keys: DEFAULT_MAX_KEYS,
        }
    }

    /// The effective burst: `burst`, or the rate's count.
    pub fn burst(&self) -> u64 {
        self.burst.unwrap_or(self.rate.count)
    }

    /// Checks the values; the message says what is wrong, where, and how to fix it.
    pub fn validate(&self) -> Result<(), String> {
        match self.burst {
            Some(0) => {
                return Err(
                    "rate_limit.burst is 0: it must be at least 1 (it defaults to the \
                            rate's count)"
                        .to_string(),
                )
            }
            Some(b) if b > MAX_BURST => {
                return Err(format!(
                    "rate_limit.burst is {b}: the largest supported burst is {MAX_BURST}"
                ))
            }
            _ => {}
        }
        if self.max_keys == 0 {
            return Err(
                "rate_limit.max_keys is 0: it must be at least 1 (the default is \
                        10000)"
                    .to_string(),
            );
        }
        Ok(())
    }
}

/// The answer to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateDecision {
    /// Go ahead; one token was taken.
    Allowed,
    /// Over the limit: reject with `rate_limited`.
    Limited {
        /// When the next token will be there.
        retry_after: Duration,
    },
}

impl RateDecision {
    /// True for [`RateDecision::Allowed`].
    pub fn is_allowed(self) -> bool {
        matches!(self, RateDecision::Allowed)
    }
}

/// One token bucket (see the module doc for the arithmetic). Not thread-safe by itself.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    count: u128,
    cost: u128,
    capacity: u128,
    tokens: u128,
    refilled_at: Timestamp,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(rate: Rate, burst: u64, now: Timestamp) -> Self {
        let cost = u128::from(rate.period_nanos());
        let capacity = u128::from(burst) * cost;
        TokenBucket {
            count: u128::from(rate.count.max(1)),
            cost,
            capacity,
            tokens: capacity,
            refilled_at: now,
        }
    }

    /// Takes one token at `now`, or says when one will be there.
    pub fn try_acquire(&mut self, now: Timestamp) -> RateDecision {
        self.refill(now);
        if self.tokens >= self.cost {
            self.tokens -= self.cost;
            RateDecision::Allowed
        } else {
            let wait = (self.cost - self.tokens).div_ceil(self.count);
            RateDecision::Limited {
                retry_after: Duration::from_nanos(u64::try_from(wait).unwrap_or(u64::MAX)),
            }
        }
    }

    /// Whole tokens available at `now` (refilling first).
    pub fn available(&mut self, now: Timestamp) -> u64 {
        self.refill(now);
        u64::try_from(self.tokens / self.cost.max(1)).unwrap_or(u64::MAX)
    }

    fn refill(&mut self, now: Timestamp) {
        if now > self.refilled_at {
            let elapsed = u128::from(now.as_nanos() - self.refilled_at.as_nanos());
            let added = elapsed.saturating_mul(self.count);
            self.tokens = self.tokens.saturating_add(added).min(self.capacity);
            self.refilled_at = now;
        }
    }
}

#[derive(Debug)]
struct Entry {
    bucket: TokenBucket,
    last_used: u64,
}

#[derive(Debug, Default)]
struct Keys {
    buckets: HashMap<Box<[u8]>, Entry>,
    /// `last_used` tick → key, oldest first.
    by_use: BTreeMap<u64, Box<[u8]>>,
    tick: u64,
}

/// A route's rate limiter: one bucket per key, at most `max_keys` keys. Thread-safe.
#[derive(Debug)]
pub struct KeyedRateLimiter {
    config: RateLimitConfig,
    keys: Mutex<Keys>,
}

impl KeyedRateLimiter {
    /// A limiter with no keys yet. The config should have passed
    /// [`RateLimitConfig::validate`]; `max_keys` of 0 is treated as 1.
    pub fn new(config: RateLimitConfig) -> Self {
        KeyedRateLimiter {
            config,
            keys: Mutex::new(Keys::default()),
        }
    }

    /// The config.
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// Admits or limits one request. `key` is the value of the configured key header (`None`
    /// when the request lacks it); it is ignored when the config has no `key`.
    pub fn acquire(&self, key: Option<&[u8]>, now: Timestamp) -> RateDecision {
        let key = match (&self.config.key, key) {
            (Some(_), Some(k)) => &k[..k.len().min(MAX_KEY_BYTES)],
            _ => &[][..],
        };
        let mut keys = self.lock();
        keys.tick += 1;
        let tick = keys.tick;
        let Keys {
            buckets, by_use, ..
        } = &mut *keys;
        if let Some(entry) = buckets.get_mut(key) {
            by_use.remove(&entry.last_used);
            by_use.insert(tick, key.into());
            entry.last_used = tick;
            return entry.bucket.try_acquire(now);
        }
        while buckets.len() >= self.config.max_keys.max(1) {
            let Some((_, oldest)) = by_use.pop_first() else {
                break;
            };
            buckets.remove(&oldest);
        }
        let mut bucket = TokenBucket::new(self.config.rate, self.config.burst(), now);
        let decision = bucket.try_acquire(now);
        buckets.insert(
            key.into(),
            Entry {
                bucket,
                last_used: tick,
            },
        );
        by_use.insert(tick, key.into());
        decision
    }

    /// Keys tracked now.
    pub fn tracked_keys(&self) -> usize {
        self.lock().buckets.len()
    }

    /// Whole tokens left for `key` at `now` (a key not tracked has a full bucket).
    pub fn available(&self, key: Option<&[u8]>, now: Timestamp) -> u64 {
        let key = match (&self.config.key, key) {
            (Some(_), Some(k)) => &k[..k.len().min(MAX_KEY_BYTES)],
            _ => &[][..],
        };
        match self.lock().buckets.get_mut(key) {
            Some(entry) => entry.bucket.available(now),
            None => self.config.burst(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Keys> {
        // The map is valid after any panic elsewhere: no invariant spans two statements that
        // could unwind.
        self.keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at_ms(ms: u64) -> Timestamp {
        Timestamp::from_nanos(ms * 1_000_000)
    }

    fn limiter(json: &str) -> KeyedRateLimiter {
        let config: RateLimitConfig = serde_json::from_str(json).unwrap();
        config.validate().unwrap();
        KeyedRateLimiter::new(config)
    }

    #[test]
    fn rates_parse_and_reject_nonsense() {
        assert_eq!("100/s".parse::<Rate>().unwrap().to_string(), "100/s");
        assert_eq!(
            "600/m".parse::<Rate>().unwrap().period_nanos(),
            60_000_000_000
        );
        assert_eq!("5/h".parse::<Rate>().unwrap().per(), Per::Hour);
        for bad in [
            "", "100", "100/", "/s", "100/d", "-1/s", "1.5/s", "0/s", "1 /s", "x/s",
        ] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
        assert!("100".parse::<Rate>().unwrap_err().contains("`100/s`"));
        assert!("99999999999999999999999/s".parse::<Rate>().is_err());
    }

    #[test]
    fn key_sources_need_a_header_name() {
        assert_eq!(
            "header:X-Client-Id".parse::<KeySource>(),
            Ok(KeySource::Header("x-client-id".into()))
        );
        assert!("ip"
            .parse::<KeySource>()
            .unwrap_err()
            .contains("header:<name>"));
        assert!("header:".parse::<KeySource>().is_err());
        assert!("header:a b".parse::<KeySource>().is_err());
    }

    #[test]
    fn burst_then_steady_refill() {
        let l = limiter(r#"{"rate": "10/s", "burst": 3}"#);
        for _ in 0..3 {
            assert!(l.acquire(None, at_ms(0)).is_allowed());
        }
        assert_eq!(
            l.acquire(None, at_ms(0)),
            RateDecision::Limited {
                retry_after: Duration::from_millis(100)
            }
        );
        assert_eq!(
            l.acquire(None, at_ms(40)),
            RateDecision::Limited {
                retry_after: Duration::from_millis(60)
            }
        );
        assert!(l.acquire(None, at_ms(100)).is_allowed());
        assert!(!l.acquire(None, at_ms(100)).is_allowed());
    }

    #[test]
    fn keys_are_isolated_and_evicted_least_recently_used_first() {
        let l = limiter(r#"{"rate": "1/m", "key": "header:x-client-id", "max_keys": 2}"#);
        assert!(l.acquire(Some(b"a"), at_ms(0)).is_allowed());
        assert!(l.acquire(Some(b"b"), at_ms(0)).is_allowed());
        assert!(!l.acquire(Some(b"a"), at_ms(1)).is_allowed());
        // c evicts b (least recently used); b returns with a full bucket.
        assert!(l.acquire(Some(b"c"), at_ms(2)).is_allowed());
        assert_eq!(l.tracked_keys(), 2);
        assert!(!l.acquire(Some(b"a"), at_ms(3)).is_allowed());
        assert!(l.acquire(Some(b"b"), at_ms(4)).is_allowed());
    }

    #[test]
    fn missing_key_shares_one_bucket() {
        let l = limiter(r#"{"rate": "1/s", "key": "header:x-client-id"}"#);
        assert!(l.acquire(None, at_ms(0)).is_allowed());
        assert!(!l.acquire(Some(b""), at_ms(0)).is_allowed());
        assert!(l.acquire(Some(b"x"), at_ms(0)).is_allowed());
    }

    #[test]
    fn config_errors() {
        let err = |json: &str| {
            serde_json::from_str::<RateLimitConfig>(json)
                .map_err(|e| e.to_string())
                .and_then(|c| c.validate())
                .unwrap_err()
        };
        assert!(err(r#"{}"#).contains("rate"));
        assert!(err(r#"{"rate": 100}"#).contains("no unit"));
        assert!(err(r#"{"rate": "1/s", "burst": 0}"#).contains("burst"));
        assert!(err(r#"{"rate": "1/s", "max_keys": 0}"#).contains("max_keys"));
        assert!(err(r#"{"rate": "1/s", "bursts": 2}"#).contains("unknown field"));
    }
}
