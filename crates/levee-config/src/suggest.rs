//! "did you mean …?": the closest of the allowed words to a misspelt one.
//!
//! Two kinds of near miss are common in config files: typos (`failure_treshold`) and the same
//! words in another case style, often carried over from the Go SDK (`failureRateThreshold`,
//! `failure-rate-threshold`). The second kind is matched exactly after folding case and
//! dropping `_` and `-`; the first by Jaro–Winkler similarity, which favours a shared start.

/// Lower case without `_` and `-`.
fn fold(word: &str) -> String {
    word.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The allowed word closest to `word`, if any is close enough to be worth suggesting.
pub(crate) fn closest<'a, I>(word: &str, allowed: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let folded = fold(word);
    let mut best: Option<(&'a str, f64)> = None;
    for candidate in allowed {
        if candidate == word {
            continue;
        }
        let score = if fold(candidate) == folded {
            2.0
        } else {
            let folded_candidate = fold(candidate);
            let prefix = folded.len() >= 4
                && (folded_candidate.starts_with(&folded) || folded.starts_with(&folded_candidate));
            let similarity = strsim::jaro_winkler(&folded, &folded_candidate);
            if prefix {
                similarity.max(0.9)
            } else {
                similarity
            }
        };
        if score >= 0.82 && best.is_none_or(|(_, b)| score > b) {
            best = Some((candidate, score));
        }
    }
    best.map(|(c, _)| c)
}

/// `; did you mean "x"?`, or nothing.
pub(crate) fn did_you_mean<'a, I>(word: &str, allowed: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    closest(word, allowed)
        .map(|c| format!("; did you mean \"{c}\"?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BREAKER: [&str; 9] = [
        "window",
        "minimum_calls",
        "failure_rate_threshold",
        "slow_call_rate_threshold",
        "slow_call_duration",
        "consecutive_failures",
        "open",
        "half_open",
        "mode",
    ];

    #[test]
    fn suggests_the_intended_key() {
        assert_eq!(
            closest("failure_threshold", BREAKER),
            Some("failure_rate_threshold")
        );
        assert_eq!(
            closest("failureRateThreshold", BREAKER),
            Some("failure_rate_threshold")
        );
        assert_eq!(closest("minimum_call", BREAKER), Some("minimum_calls"));
        assert_eq!(closest("halfopen", BREAKER), Some("half_open"));
        assert_eq!(
            closest("p2c", ["p2c_ewma", "round_robin"]),
            Some("p2c_ewma")
        );
        assert_eq!(closest("random", ["p2c_ewma", "round_robin"]), None);
        assert_eq!(
            closest("p2c_ewm", ["p2c_ewma", "round_robin"]),
            Some("p2c_ewma")
        );
        assert_eq!(
            closest("Critical", ["critical", "standard"]),
            Some("critical")
        );
    }

    #[test]
    fn stays_quiet_when_nothing_is_close() {
        assert_eq!(closest("zzz", BREAKER), None);
        assert_eq!(closest("colour", BREAKER), None);
        assert_eq!(did_you_mean("zzz", BREAKER), "");
    }
}
