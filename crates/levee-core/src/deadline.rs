//! Deadlines travel as remaining time (SPEC §5).
//!
//! Inbound, Levee reads `levee-timeout-ms` (whole milliseconds) or `grpc-timeout`; the call's
//! deadline is the shorter of the route's `timeout` and the inbound remaining time
//! ([`effective_deadline`]). Outbound, it writes what is left at the moment of sending
//! ([`Deadline::remaining`], [`format_timeout_ms`], [`format_grpc_timeout`]). A remaining time
//! of zero means the deadline is already spent: the edge rejects the call with
//! `deadline_exceeded` before any upstream work.
//!
//! Rules, identical in every implementation (details and vectors:
//! `conformance/policies/deadline.md`):
//!
//! - Every remaining time is capped at [`MAX_REMAINING`] (`2^63 - 1` ns, about 292 years, the
//!   largest Go `time.Duration`), so every implementation can hold every value.
//! - `levee-timeout-ms`: 1 to 18 ASCII digits, nothing else; surrounding spaces and tabs are
//!   ignored. Written as `floor(remaining / 1ms)`: Levee never promises more time than is left.
//! - `grpc-timeout`: 1 to 8 ASCII digits and one unit `H M S m u n` (gRPC over HTTP/2).
//!   Written as grpc-go does: the smallest unit whose value, rounded up, fits in 8 digits.
//! - A malformed header is a [`DeadlineError`] with a kind (`empty`, `negative`,
//!   `not_a_number`, `too_long`, `missing_unit`, `unknown_unit`) and a message that names the
//!   header and the fix; the edge answers `bad_request`. Parsing never panics.

use crate::error::ErrorCode;
use crate::names::header;
use crate::time::{duration_nanos, Timestamp};
use std::fmt;
use std::time::Duration;

/// The longest remaining time any implementation holds: `2^63 - 1` nanoseconds.
pub const MAX_REMAINING: Duration = Duration::from_nanos(i64::MAX as u64);

/// Most digits accepted in `levee-timeout-ms`.
pub const MAX_TIMEOUT_MS_DIGITS: usize = 18;

/// Most digits accepted in `grpc-timeout` (the gRPC HTTP/2 spec: `TimeoutValue → {positive
/// integer as ASCII string of at most 8 digits}`).
pub const MAX_GRPC_DIGITS: usize = 8;

/// What was wrong with a deadline header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadlineErrorKind {
    /// No value, or only spaces.
    Empty,
    /// A leading `-`.
    Negative,
    /// Anything but ASCII digits where digits belong (a `+`, a fraction, inner spaces, a unit
    /// on `levee-timeout-ms`).
    NotANumber,
    /// More digits than the header allows (18 for `levee-timeout-ms`, 8 for `grpc-timeout`).
    TooLong,
    /// `grpc-timeout` digits without a unit.
    MissingUnit,
    /// `grpc-timeout` with a unit other than `H M S m u n`.
    UnknownUnit,
}

impl DeadlineErrorKind {
    /// The snake_case spelling used in vectors and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeadlineErrorKind::Empty => "empty",
            DeadlineErrorKind::Negative => "negative",
            DeadlineErrorKind::NotANumber => "not_a_number",
            DeadlineErrorKind::TooLong => "too_long",
            DeadlineErrorKind::MissingUnit => "missing_unit",
            DeadlineErrorKind::UnknownUnit => "unknown_unit",
        }
    }
}

impl fmt::Display for DeadlineErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A malformed `levee-timeout-ms` or `grpc-timeout` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadlineError {
    /// The header's name.
    pub header: &'static str,
    /// What was wrong.
    pub kind: DeadlineErrorKind,
    /// The value as received, cut at 64 characters.
    pub value: String,
}

impl DeadlineError {
    fn new(header: &'static str, kind: DeadlineErrorKind, value: &str) -> Self {
        DeadlineError {
            header,
            kind,
            value: value.chars().take(64).collect(),
        }
    }

    /// The SPEC §7 code the edge answers with: `bad_request`.
    pub const fn code(&self) -> ErrorCode {
        ErrorCode::BadRequest
    }
}

impl fmt::Display for DeadlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (h, v) = (self.header, self.value.escape_debug());
        let fix = if self.header == header::GRPC_TIMEOUT {
            "send 1 to 8 digits and a unit (H, M, S, m, u or n), such as `grpc-timeout: 250m`"
        } else {
            "send the remaining time as whole milliseconds, digits only, such as \
             `levee-timeout-ms: 250`"
        };
        match self.kind {
            DeadlineErrorKind::Empty => write!(f, "{h} header is empty: {fix}"),
            DeadlineErrorKind::Negative => {
                write!(
                    f,
                    "{h} header `{v}` is negative: {fix}; send 0 if no time is left"
                )
            }
            DeadlineErrorKind::NotANumber => {
                write!(f, "{h} header `{v}` is not a whole number: {fix}")
            }
            DeadlineErrorKind::TooLong => write!(
                f,
                "{h} header `{v}` has more than {} digits: {fix}",
                if self.header == header::GRPC_TIMEOUT {
                    MAX_GRPC_DIGITS
                } else {
                    MAX_TIMEOUT_MS_DIGITS
                }
            ),
            DeadlineErrorKind::MissingUnit => write!(f, "{h} header `{v}` has no unit: {fix}"),
            DeadlineErrorKind::UnknownUnit => {
                write!(f, "{h} header `{v}` has an unknown unit: {fix}")
            }
        }
    }
}

impl std::error::Error for DeadlineError {}

fn trim_ows(value: &str) -> &str {
    value.trim_matches(|c| c == ' ' || c == '\t')
}

/// What is wrong with the form of `digits` (ignoring length), if anything.
fn digits_form(digits: &str) -> Option<DeadlineErrorKind> {
    if digits.starts_with('-') {
        Some(DeadlineErrorKind::Negative)
    } else if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        Some(DeadlineErrorKind::NotANumber)
    } else {
        None
    }
}

/// Checks that `digits` is 1..=`max` ASCII digits (`max` <= 18) and returns their value.
fn parse_digits(
    header: &'static str,
    value: &str,
    digits: &str,
    max: usize,
) -> Result<u64, DeadlineError> {
    let err = |kind| DeadlineError::new(header, kind, value);
    if let Some(kind) = digits_form(digits) {
        return Err(err(kind));
    }
    if digits.len() > max {
        return Err(err(DeadlineErrorKind::TooLong));
    }
    digits
        .parse::<u64>()
        .map_err(|_| err(DeadlineErrorKind::TooLong))
}

fn capped(nanos: u128) -> Duration {
    let max = duration_nanos(MAX_REMAINING);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(max).min(max))
}

/// Reads `levee-timeout-ms`: the remaining time in whole milliseconds (`0` = already spent).
///
/// ```
/// use levee_core::deadline::parse_timeout_ms;
/// use std::time::Duration;
/// assert_eq!(parse_timeout_ms("250"), Ok(Duration::from_millis(250)));
/// assert_eq!(parse_timeout_ms("-1").unwrap_err().kind.as_str(), "negative");
/// ```
pub fn parse_timeout_ms(value: &str) -> Result<Duration, DeadlineError> {
    let text = trim_ows(value);
    if text.is_empty() {
        return Err(DeadlineError::new(
            header::TIMEOUT_MS,
            DeadlineErrorKind::Empty,
            value,
        ));
    }
    let ms = parse_digits(header::TIMEOUT_MS, value, text, MAX_TIMEOUT_MS_DIGITS)?;
    Ok(capped(u128::from(ms) * 1_000_000))
}

/// Writes `levee-timeout-ms`: whole milliseconds, rounded down.
///
/// ```
/// use levee_core::deadline::format_timeout_ms;
/// use std::time::Duration;
/// assert_eq!(format_timeout_ms(Duration::from_micros(250_999)), "250");
/// ```
pub fn format_timeout_ms(remaining: Duration) -> String {
    remaining.min(MAX_REMAINING).as_millis().to_string()
}

/// A `grpc-timeout` unit and its length in nanoseconds.
fn grpc_unit(unit: char) -> Option<u128> {
    Some(match unit {
        'H' => 3_600_000_000_000,
        'M' => 60_000_000_000,
        'S' => 1_000_000_000,
        'm' => 1_000_000,
        'u' => 1_000,
        'n' => 1,
        _ => return None,
    })
}

/// Reads `grpc-timeout`: 1 to 8 digits and a unit (`H` hours, `M` minutes, `S` seconds,
/// `m` milliseconds, `u` microseconds, `n` nanoseconds).
///
/// ```
/// use levee_core::deadline::parse_grpc_timeout;
/// use std::time::Duration;
/// assert_eq!(parse_grpc_timeout("250m"), Ok(Duration::from_millis(250)));
/// assert_eq!(parse_grpc_timeout("250").unwrap_err().kind.as_str(), "missing_unit");
/// ```
pub fn parse_grpc_timeout(value: &str) -> Result<Duration, DeadlineError> {
    let h = header::GRPC_TIMEOUT;
    let text = trim_ows(value);
    let Some(unit) = text.chars().next_back() else {
        return Err(DeadlineError::new(h, DeadlineErrorKind::Empty, value));
    };
    if unit.is_ascii_digit() {
        // Digits only: report a sign or a stray character first, else the missing unit.
        let kind = digits_form(text).unwrap_or(DeadlineErrorKind::MissingUnit);
        return Err(DeadlineError::new(h, kind, value));
    }
    let digits = &text[..text.len() - unit.len_utf8()];
    let Some(unit_nanos) = grpc_unit(unit) else {
        // A well-formed number with a bad unit is `unknown_unit`; otherwise the number's
        // problem is reported.
        let kind = digits_form(digits).unwrap_or(DeadlineErrorKind::UnknownUnit);
        return Err(DeadlineError::new(h, kind, value));
    };
    let count = parse_digits(h, value, digits, MAX_GRPC_DIGITS)?;
    Ok(capped(u128::from(count) * unit_nanos))
}

/// Writes `grpc-timeout` as grpc-go's `encodeTimeout` does: zero (or less) is `0n`; otherwise
/// the first of `n u m S M H` whose value, rounded up, is at most 99 999 999.
///
/// ```
/// use levee_core::deadline::format_grpc_timeout;
/// use std::time::Duration;
/// assert_eq!(format_grpc_timeout(Duration::from_millis(250)), "250000u");
/// assert_eq!(format_grpc_timeout(Duration::from_secs(1)), "1000000u");
/// ```
pub fn format_grpc_timeout(remaining: Duration) -> String {
    let nanos = remaining.min(MAX_REMAINING).as_nanos();
    if nanos == 0 {
        return "0n".to_string();
    }
    const MAX_VALUE: u128 = 99_999_999;
    for (unit, size) in [
        ('n', 1u128),
        ('u', 1_000),
        ('m', 1_000_000),
        ('S', 1_000_000_000),
        ('M', 60_000_000_000),
    ] {
        let value = nanos.div_ceil(size);
        if value <= MAX_VALUE {
            return format!("{value}{unit}");
        }
    }
    format!("{}H", nanos.div_ceil(3_600_000_000_000))
}

/// The call's deadline: the shorter of the route's `timeout` and the inbound remaining time;
/// `None` when neither is set.
pub fn effective_deadline(
    route_timeout: Option<Duration>,
    inbound: Option<Duration>,
) -> Option<Duration> {
    let shorter = match (route_timeout, inbound) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    shorter.map(|d| d.min(MAX_REMAINING))
}

/// The inbound remaining time from the request's headers: `levee-timeout-ms` and/or
/// `grpc-timeout` (`None` when a header is absent). When both are present, both must be well
/// formed and the shorter applies. `Ok(None)`: the caller sent no deadline.
pub fn inbound_remaining(
    timeout_ms: Option<&str>,
    grpc_timeout: Option<&str>,
) -> Result<Option<Duration>, DeadlineError> {
    let ms = timeout_ms.map(parse_timeout_ms).transpose()?;
    let grpc = grpc_timeout.map(parse_grpc_timeout).transpose()?;
    Ok(effective_deadline(ms, grpc))
}

/// A deadline fixed on the monotonic clock, from which the remaining time can be read later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Deadline {
    expires_at: Timestamp,
}

impl Deadline {
    /// The deadline `remaining` after `now`.
    pub fn after(now: Timestamp, remaining: Duration) -> Self {
        Deadline {
            expires_at: now + remaining.min(MAX_REMAINING),
        }
    }

    /// When it expires.
    pub fn expires_at(self) -> Timestamp {
        self.expires_at
    }

    /// Time left at `now`; zero once expired.
    pub fn remaining(self, now: Timestamp) -> Duration {
        self.expires_at.saturating_since(now)
    }

    /// True when no time is left at `now` (reject with `deadline_exceeded`).
    pub fn is_spent(self, now: Timestamp) -> bool {
        self.remaining(now).is_zero()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn kind<T: fmt::Debug>(r: Result<T, DeadlineError>) -> &'static str {
        r.unwrap_err().kind.as_str()
    }

    #[test]
    fn timeout_ms_accepts_digits_only() {
        assert_eq!(parse_timeout_ms("0"), Ok(Duration::ZERO));
        assert_eq!(parse_timeout_ms(" 0250\t"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_timeout_ms("999999999999999999"), Ok(MAX_REMAINING));
        assert_eq!(kind(parse_timeout_ms("")), "empty");
        assert_eq!(kind(parse_timeout_ms("  ")), "empty");
        assert_eq!(kind(parse_timeout_ms("-5")), "negative");
        assert_eq!(kind(parse_timeout_ms("+5")), "not_a_number");
        assert_eq!(kind(parse_timeout_ms("1 0")), "not_a_number");
        assert_eq!(kind(parse_timeout_ms("1.5")), "not_a_number");
        assert_eq!(kind(parse_timeout_ms("250ms")), "not_a_number");
        assert_eq!(kind(parse_timeout_ms("١٢")), "not_a_number");
        assert_eq!(kind(parse_timeout_ms("1000000000000000000")), "too_long");
    }

    #[test]
    fn timeout_ms_errors_name_the_header_and_the_fix() {
        let msg = parse_timeout_ms("abc").unwrap_err().to_string();
        assert!(
            msg.contains("levee-timeout-ms") && msg.contains("`levee-timeout-ms: 250`"),
            "{msg}"
        );
    }

    #[test]
    fn timeout_ms_is_written_rounded_down() {
        assert_eq!(format_timeout_ms(Duration::from_nanos(999_999)), "0");
        assert_eq!(format_timeout_ms(Duration::from_millis(800)), "800");
        assert_eq!(format_timeout_ms(Duration::MAX), "9223372036854");
    }

    #[test]
    fn grpc_timeout_every_unit() {
        assert_eq!(parse_grpc_timeout("2H"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout("3M"), Ok(Duration::from_secs(180)));
        assert_eq!(parse_grpc_timeout("4S"), Ok(Duration::from_secs(4)));
        assert_eq!(parse_grpc_timeout("5m"), Ok(Duration::from_millis(5)));
        assert_eq!(parse_grpc_timeout("6u"), Ok(Duration::from_micros(6)));
        assert_eq!(parse_grpc_timeout("7n"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_grpc_timeout("99999999H"), Ok(MAX_REMAINING));
    }

    #[test]
    fn grpc_timeout_malformed() {
        assert_eq!(kind(parse_grpc_timeout("")), "empty");
        assert_eq!(kind(parse_grpc_timeout("100")), "missing_unit");
        assert_eq!(kind(parse_grpc_timeout("100x")), "unknown_unit");
        assert_eq!(kind(parse_grpc_timeout("100é")), "unknown_unit");
        assert_eq!(kind(parse_grpc_timeout("S")), "not_a_number");
        assert_eq!(kind(parse_grpc_timeout("-1S")), "negative");
        assert_eq!(kind(parse_grpc_timeout("1.5S")), "not_a_number");
        assert_eq!(kind(parse_grpc_timeout("123456789n")), "too_long");
        assert_eq!(kind(parse_grpc_timeout("-1")), "negative");
        assert_eq!(kind(parse_grpc_timeout("-")), "not_a_number");
        assert_eq!(
            kind(parse_grpc_timeout("123456789012345678901234")),
            "missing_unit"
        );
        assert!(parse_grpc_timeout("x").is_err());
    }

    #[test]
    fn grpc_timeout_is_written_like_grpc_go() {
        assert_eq!(format_grpc_timeout(Duration::ZERO), "0n");
        assert_eq!(
            format_grpc_timeout(Duration::from_nanos(99_999_999)),
            "99999999n"
        );
        assert_eq!(
            format_grpc_timeout(Duration::from_nanos(100_000_001)),
            "100001u"
        );
        assert_eq!(format_grpc_timeout(Duration::from_secs(100)), "100000m");
        assert_eq!(format_grpc_timeout(Duration::from_secs(100_000)), "100000S");
        assert_eq!(
            format_grpc_timeout(Duration::from_secs(100_000_000)),
            "1666667M"
        );
        assert_eq!(format_grpc_timeout(Duration::MAX), "2562048H");
    }

    #[test]
    fn effective_deadline_is_the_minimum() {
        let ms = Duration::from_millis;
        assert_eq!(effective_deadline(None, None), None);
        assert_eq!(effective_deadline(Some(ms(800)), None), Some(ms(800)));
        assert_eq!(effective_deadline(None, Some(ms(300))), Some(ms(300)));
        assert_eq!(
            effective_deadline(Some(ms(800)), Some(ms(300))),
            Some(ms(300))
        );
    }

    #[test]
    fn deadline_counts_down() {
        let d = Deadline::after(Timestamp::from_nanos(1_000), Duration::from_micros(5));
        assert_eq!(
            d.remaining(Timestamp::from_nanos(2_000)),
            Duration::from_micros(4)
        );
        assert!(d.is_spent(Timestamp::from_nanos(6_000)));
        assert!(d.is_spent(Timestamp::from_nanos(60_000)));
    }
}
