//! Duration strings (SPEC preamble): `250ms`, `5s`, `2m`, `1m30s`, `1.5s`.
//!
//! Units are `ns`, `us` (or `µs`), `ms`, `s`, `m` and `h`; a value may chain several
//! (`1h30m`) and use decimals (`0.5s`). A bare number is rejected, `0` included, because
//! `timeout: 30` is ambiguous and guessing the unit is how outages start. Errors say what was
//! wrong and show the fix. [`format`] writes the shortest exact form, which [`parse`] reads back.

use std::fmt;
use std::time::Duration;

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    /// The string was empty or only whitespace.
    Empty,
    /// A number without a unit, such as `250`.
    BareNumber(String),
    /// A leading minus sign.
    Negative(String),
    /// A unit that is not one of `ns us µs ms s m h`.
    UnknownUnit {
        /// The whole input.
        input: String,
        /// The unit as written.
        unit: String,
    },
    /// Not a sequence of `<number><unit>`.
    Malformed(String),
    /// Longer than about 584 years.
    Overflow(String),
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationError::Empty => {
                write!(
                    f,
                    "empty duration: write a number with a unit, such as `250ms` or `5s`"
                )
            }
            DurationError::BareNumber(input) => write!(
                f,
                "duration `{input}` has no unit: write `{input}ms` or `{input}s` \
                 (units: ns, us, ms, s, m, h)"
            ),
            DurationError::Negative(input) => write!(
                f,
                "duration `{input}` is negative: durations count time forward, write `{}`",
                input.trim_start_matches('-')
            ),
            DurationError::UnknownUnit { input, unit } => write!(
                f,
                "duration `{input}` has unknown unit `{unit}`: use one of ns, us, ms, s, m, h"
            ),
            DurationError::Malformed(input) => write!(
                f,
                "duration `{input}` is not a number followed by a unit: write e.g. `250ms`, \
                 `1.5s` or `1m30s`"
            ),
            DurationError::Overflow(input) => {
                write!(
                    f,
                    "duration `{input}` is too long: the limit is about 584 years"
                )
            }
        }
    }
}

impl std::error::Error for DurationError {}

/// Parses a duration string such as `250ms` or `1m30s`.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(levee_core::duration::parse("1m30s"), Ok(Duration::from_secs(90)));
/// assert!(levee_core::duration::parse("250").is_err());
/// ```
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let text = input.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.starts_with('-') {
        return Err(DurationError::Negative(text.to_string()));
    }
    if text.chars().all(|c| c.is_ascii_digit() || c == '.')
        && text.chars().any(|c| c.is_ascii_digit())
    {
        return Err(DurationError::BareNumber(text.to_string()));
    }
    let malformed = || DurationError::Malformed(text.to_string());
    let overflow = || DurationError::Overflow(text.to_string());
    let mut total: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() || number.starts_with('.') && number.len() == 1 {
            return Err(malformed());
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(malformed()),
            other => {
                return Err(DurationError::UnknownUnit {
                    input: text.to_string(),
                    unit: other.to_string(),
                })
            }
        };
        let (whole, fraction) = match number.split_once('.') {
            Some((w, f)) => (w, f),
            None => (number, ""),
        };
        if fraction.contains('.') || (whole.is_empty() && fraction.is_empty()) {
            return Err(malformed());
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| overflow())?
        };
        total = whole
            .checked_mul(unit_nanos)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(overflow)?;
        // The fraction contributes floor(fraction * unit) nanoseconds, computed exactly.
        let mut scale = unit_nanos;
        for digit in fraction.chars() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            total += u128::from(digit.to_digit(10).ok_or_else(malformed)?) * scale;
        }
        rest = next;
    }
    let nanos = u64::try_from(total).map_err(|_| overflow())?;
    Ok(Duration::from_nanos(nanos))
}

/// Formats a duration in the shortest exact form [`parse`] reads back: `5s`, `250ms`, `1m30s`
/// is written `90s`, `1500ms` stays `1500ms`.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(levee_core::duration::format(Duration::from_millis(250)), "250ms");
/// assert_eq!(levee_core::duration::format(Duration::from_secs(120)), "2m");
/// ```
pub fn format(d: Duration) -> String {
    let nanos = d.as_nanos();
    for (unit, size) in [
        ("h", 3_600_000_000_000u128),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
    ] {
        if nanos != 0 && nanos.is_multiple_of(size) {
            return format!("{}{unit}", nanos / size);
        }
    }
    if nanos == 0 {
        "0s".to_string()
    } else {
        format!("{nanos}ns")
    }
}

/// Serde adapter for `Duration` fields written as duration strings:
/// `#[serde(with = "levee_core::duration::serde_str")]`.
pub mod serde_str {
    use super::{format, parse};
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Reads a duration string.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = DurationText::deserialize(deserializer)?;
        parse(&text.0).map_err(serde::de::Error::custom)
    }

    /// Writes a duration string.
    pub fn serialize<S: Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(*d))
    }

    /// A string, or a bare number turned into text so that the error can show the fix.
    pub(super) struct DurationText(pub String);

    impl<'de> Deserialize<'de> for DurationText {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Visitor;
            impl serde::de::Visitor<'_> for Visitor {
                type Value = DurationText;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a duration string such as \"250ms\" or \"5s\"")
                }
                fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DurationText, E> {
                    Ok(DurationText(v.to_string()))
                }
                fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<DurationText, E> {
                    Ok(DurationText(v.to_string()))
                }
                fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<DurationText, E> {
                    Ok(DurationText(v.to_string()))
                }
                fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<DurationText, E> {
                    Ok(DurationText(v.to_string()))
                }
            }
            deserializer.deserialize_any(Visitor)
        }
    }

    /// The same adapter for `Option<Duration>`.
    pub mod option {
        use super::DurationText;
        use serde::{Deserialize, Deserializer, Serializer};
        use std::time::Duration;

        /// Reads an optional duration string.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Duration>, D::Error> {
            match Option::<DurationText>::deserialize(deserializer)? {
                Some(text) => super::parse(&text.0)
                    .map(Some)
                    .map_err(serde::de::Error::custom),
                None => Ok(None),
            }
        }

        /// Writes an optional duration string.
        pub fn serialize<S: Serializer>(
            d: &Option<Duration>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, serializer),
                None => serializer.serialize_none(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_compound_forms() {
        assert_eq!(parse("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse("7us"), Ok(Duration::from_micros(7)));
        assert_eq!(parse("7µs"), Ok(Duration::from_micros(7)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_bare_numbers_with_the_fix() {
        let err = parse("250").unwrap_err();
        assert_eq!(err, DurationError::BareNumber("250".into()));
        assert!(err.to_string().contains("`250ms`"), "{err}");
        assert!(matches!(parse("0"), Err(DurationError::BareNumber(_))));
    }

    #[test]
    fn rejects_malformed_input_without_panicking() {
        assert!(matches!(parse(""), Err(DurationError::Empty)));
        assert!(matches!(parse("-5s"), Err(DurationError::Negative(_))));
        assert!(matches!(
            parse("5 parsecs"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(parse("ms"), Err(DurationError::Malformed(_))));
        assert!(matches!(parse("1.2.3s"), Err(DurationError::Malformed(_))));
        assert!(matches!(
            parse("99999999999999999999999h"),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn format_round_trips() {
        for d in [
            0,
            1,
            999,
            1_000,
            1_500_000,
            250_000_000,
            5_000_000_000,
            90_000_000_000,
        ] {
            let d = Duration::from_nanos(d);
            assert_eq!(parse(&format(d)), Ok(d), "{}", format(d));
        }
    }
}
