//! Request criticality (SPEC §3): which calls a bulkhead keeps when it must choose.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How much a request matters. Ordered: `Sheddable < Standard < Critical`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Criticality {
    /// Drop first under load (recommendations, prefetch).
    Sheddable,
    /// The default.
    #[default]
    Standard,
    /// Keep as long as anything runs (checkout, login).
    Critical,
}

impl Criticality {
    /// Every class, lowest first.
    pub const ALL: [Criticality; 3] = [
        Criticality::Sheddable,
        Criticality::Standard,
        Criticality::Critical,
    ];

    /// The wire and config spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Criticality::Sheddable => "sheddable",
            Criticality::Standard => "standard",
            Criticality::Critical => "critical",
        }
    }

    /// Index into per-class arrays, lowest class first.
    pub const fn index(self) -> usize {
        match self {
            Criticality::Sheddable => 0,
            Criticality::Standard => 1,
            Criticality::Critical => 2,
        }
    }
}

impl fmt::Display for Criticality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `levee-criticality` value that is not one of the three classes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCriticality(pub String);

impl fmt::Display for UnknownCriticality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown criticality `{}`: use critical, standard or sheddable",
            self.0
        )
    }
}

impl std::error::Error for UnknownCriticality {}

impl FromStr for Criticality {
    type Err = UnknownCriticality;
    /// Parses a header or config value; ASCII case and surrounding spaces are ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Criticality::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| UnknownCriticality(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_header_values_and_orders_classes() {
        assert_eq!(
            " Critical ".parse::<Criticality>(),
            Ok(Criticality::Critical)
        );
        assert!("urgent".parse::<Criticality>().is_err());
        assert!(Criticality::Sheddable < Criticality::Standard);
        assert!(Criticality::Standard < Criticality::Critical);
        assert_eq!(Criticality::default(), Criticality::Standard);
    }
}
