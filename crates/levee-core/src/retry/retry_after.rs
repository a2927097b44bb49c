//! Reading an upstream's `Retry-After` (RFC 9110 §10.2.3; SPEC §4).
//!
//! The value is either delta-seconds (`120`) or an HTTP-date
//! (`Wed, 21 Oct 2015 07:28:00 GMT`). Rules, identical in every implementation:
//!
//! - Leading and trailing spaces and tabs are ignored.
//! - delta-seconds: one or more ASCII digits, nothing else (no sign, no fraction). Values above
//!   `2^31` seconds (about 68 years, the cap RFC 9111 §1.2.2 gives for delta-seconds) count as
//!   `2^31` seconds.
//! - HTTP-date: ASCII, in one of the three formats of RFC 9110 §5.6.7 exactly (IMF-fixdate,
//!   RFC 850 with a two-digit year, where `00`-`69` means 2000-2069 and `70`-`99` means
//!   1970-1999, and asctime), a real calendar date from 1970 to 9999 whose weekday matches the
//!   date. The result is `date - now` in whole seconds, or zero when the date is not after
//!   `now`.
//! - Anything else is malformed and ignored (`None`): a bad `Retry-After` never fails a call.

use std::time::{Duration, UNIX_EPOCH};

/// The largest delta-seconds value honoured (2^31 s).
pub const MAX_DELTA_SECONDS: u64 = 1 << 31;

/// Parses a `Retry-After` value; `now_unix` is the current wall-clock time in whole seconds
/// since the Unix epoch (only HTTP-dates use it). `None` when the value is malformed.
///
/// ```
/// use levee_core::retry::parse_retry_after;
/// use std::time::Duration;
/// assert_eq!(parse_retry_after("120", 0), Some(Duration::from_secs(120)));
/// let now = 1_445_412_470; // 2015-10-21 07:27:50 UTC
/// assert_eq!(
///     parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
///     Some(Duration::from_secs(10))
/// );
/// assert_eq!(parse_retry_after("soon", now), None);
/// ```
pub fn parse_retry_after(value: &str, now_unix: u64) -> Option<Duration> {
    let text = value.trim_matches(|c| c == ' ' || c == '\t');
    if text.is_empty() {
        return None;
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        // Leading zeros are allowed; more digits than fit in u64 saturate to the cap.
        let seconds = text
            .parse::<u64>()
            .unwrap_or(u64::MAX)
            .min(MAX_DELTA_SECONDS);
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    let at_unix = at.duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at_unix.saturating_sub(now_unix)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: u64 = 1_445_412_470; // Wed, 21 Oct 2015 07:27:50 GMT

    #[test]
    fn delta_seconds() {
        assert_eq!(parse_retry_after("0", NOW), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(" 5\t", NOW), Some(Duration::from_secs(5)));
        assert_eq!(parse_retry_after("007", NOW), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("99999999999999999999999", NOW),
            Some(Duration::from_secs(MAX_DELTA_SECONDS))
        );
    }

    #[test]
    fn http_dates_in_all_three_formats() {
        let want = Some(Duration::from_secs(10));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", NOW),
            want
        );
        assert_eq!(
            parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", NOW),
            want
        );
        assert_eq!(parse_retry_after("Wed Oct 21 07:28:00 2015", NOW), want);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", NOW),
            Some(Duration::ZERO),
            "past dates mean retry now"
        );
    }

    #[test]
    fn malformed_values_are_ignored() {
        for bad in [
            "",
            " ",
            "-5",
            "+5",
            "1.5",
            "5s",
            "1 2",
            "soon",
            "Thu, 21 Oct 2015 07:28:00 GMT",
            "Wed, 21 Oct 2015 07:28:00 UTC",
            "Wed, 32 Oct 2015 07:28:00 GMT",
            "é",
        ] {
            assert_eq!(parse_retry_after(bad, NOW), None, "{bad:?}");
        }
    }
}
