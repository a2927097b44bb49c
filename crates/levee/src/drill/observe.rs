//! Breaker states as the admin API reports them, read every `poll` and kept as a history of
//! changes per endpoint key.

use super::client::{self, HttpClient};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Each endpoint's state changes, in order: `(time from start, state)`. The first entry is
/// the first state seen.
pub type History = BTreeMap<String, Vec<(Duration, String)>>;

/// The history so far and the last read's error, shared with the progress line.
#[derive(Debug, Default)]
pub struct Observed {
    /// State changes per endpoint.
    pub history: History,
    /// Why the last read failed, if it did.
    pub last_error: Option<String>,
    /// Reads that failed.
    pub failed_reads: u64,
}

/// Reads `GET {admin}/api/breakers` every `poll` until `until` has passed.
pub async fn watch(
    client: HttpClient,
    admin: String,
    poll: Duration,
    start: Instant,
    until: Duration,
    observed: Arc<Mutex<Observed>>,
) {
    let url = format!("{}/api/breakers", admin.trim_end_matches('/'));
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let now = start.elapsed();
        if now > until {
            break;
        }
        let read = match client::request("GET", &url, None, None) {
            Ok(request) => client::send(&client, request, poll.max(Duration::from_secs(1)))
                .await
                .and_then(|answer| parse(&answer.body, answer.status)),
            Err(e) => Err(e),
        };
        let mut observed = observed.lock().unwrap_or_else(|e| e.into_inner());
        match read {
            Ok(states) => {
                observed.last_error = None;
                for (key, state) in states {
                    let changes = observed.history.entry(key).or_default();
                    if changes.last().is_none_or(|(_, last)| *last != state) {
                        changes.push((now, state));
                    }
                }
            }
            Err(e) => {
                observed.failed_reads += 1;
                observed.last_error = Some(e);
            }
        }
    }
}

/// `{"breakers": [{"key": "inventory", "state": "open", ...}]}` → `(key, state)` pairs.
fn parse(body: &[u8], status: u16) -> Result<Vec<(String, String)>, String> {
    if status != 200 {
        return Err(format!("GET /api/breakers answered {status}"));
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("GET /api/breakers: {e}"))?;
    let list = value
        .get("breakers")
        .and_then(|b| b.as_array())
        .ok_or("GET /api/breakers: no `breakers` list")?;
    Ok(list
        .iter()
        .filter_map(|b| {
            Some((
                b.get("key")?.as_str()?.to_string(),
                b.get("state")?.as_str()?.to_string(),
            ))
        })
        .collect())
}

/// The state at `t`: the last change at or before it.
pub fn state_at(changes: &[(Duration, String)], t: Duration) -> Option<&str> {
    changes
        .iter()
        .take_while(|(at, _)| *at <= t)
        .last()
        .map(|(_, state)| state.as_str())
}

/// The first moment in `[from, to]` at which the state satisfies `wanted`.
pub fn first_in(
    changes: &[(Duration, String)],
    from: Duration,
    to: Duration,
    wanted: impl Fn(&str) -> bool,
) -> Option<Duration> {
    if state_at(changes, from).is_some_and(&wanted) {
        return Some(from);
    }
    changes
        .iter()
        .find(|(at, state)| *at > from && *at <= to && wanted(state))
        .map(|(at, _)| *at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    #[test]
    fn parses_the_admin_list() {
        let body = br#"{"breakers":[{"key":"inventory","state":"half_open","mode":"enforce"}]}"#;
        assert_eq!(
            parse(body, 200).unwrap(),
            vec![("inventory".to_string(), "half_open".to_string())]
        );
        assert!(parse(body, 503).is_err());
        assert!(parse(b"[]", 200).is_err());
    }

    #[test]
    fn finds_the_first_matching_state_in_a_window() {
        let changes = vec![
            (s(0.1), "closed".to_string()),
            (s(10.4), "open".to_string()),
            (s(15.4), "half_open".to_string()),
            (s(15.6), "closed".to_string()),
        ];
        assert_eq!(state_at(&changes, s(12.0)), Some("open"));
        assert_eq!(state_at(&changes, s(0.0)), None);
        assert_eq!(
            first_in(&changes, s(10.0), s(12.0), |x| x == "open"),
            Some(s(10.4))
        );
        assert_eq!(first_in(&changes, s(10.0), s(10.3), |x| x == "open"), None);
        assert_eq!(
            first_in(&changes, s(11.0), s(12.0), |x| x == "open"),
            Some(s(11.0))
        );
        assert_eq!(
            first_in(&changes, s(11.0), s(20.0), |x| x == "closed"),
            Some(s(15.6))
        );
    }
}
