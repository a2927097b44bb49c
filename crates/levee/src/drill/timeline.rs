//! The timeline: each event's action at its time, through the admin API or a plain request.

use super::client::{self, HttpClient};
use super::scenario::{Event, FaultAction, Scenario};
use std::time::Duration;
use tokio::time::Instant;

/// What one event did.
#[derive(Debug, Clone)]
pub struct Done {
    /// When it ran, from the start.
    pub at: Duration,
    /// What it did, in words.
    pub what: String,
    /// `Err` with why it failed; a failed event fails the drill, since what followed did
    /// not test what the scenario says.
    pub result: Result<(), String>,
}

/// One line describing an event.
pub fn describe(event: &Event) -> String {
    if let Some(f) = &event.fault {
        let mut parts = Vec::new();
        if let Some(d) = &f.delay {
            parts.push(format!(
                "delay {} {}%",
                levee_core::duration::format(d.duration),
                d.percent
            ));
        }
        if let Some(a) = &f.abort {
            parts.push(format!("abort {} {}%", a.status, a.percent));
        }
        if let Some(r) = &f.reset {
            parts.push(format!("reset {}%", r.percent));
        }
        if let Some(h) = &f.hang {
            parts.push(format!("hang {}%", h.percent));
        }
        return format!("fault {}: {}", f.route, parts.join(", "));
    }
    if let Some(route) = &event.heal {
        return format!("heal {route}");
    }
    if let Some(level) = event.level {
        return format!("degradation level {level}");
    }
    if let Some(o) = &event.override_ {
        return format!("override {} {}", o.endpoint, o.state);
    }
    if let Some(r) = &event.request {
        return format!("{} {}", r.method, r.url);
    }
    "nothing".to_string()
}

/// The JSON body of `PUT /api/faults/{route}`: the fault block without `route`, durations as
/// text.
pub fn fault_body(fault: &FaultAction) -> serde_json::Value {
    let mut body = serde_json::Map::new();
    if let Some(d) = &fault.delay {
        body.insert(
            "delay".into(),
            serde_json::json!({
                "percent": d.percent,
                "duration": levee_core::duration::format(d.duration),
            }),
        );
    }
    if let Some(a) = &fault.abort {
        body.insert(
            "abort".into(),
            serde_json::json!({"percent": a.percent, "status": a.status}),
        );
    }
    if let Some(r) = &fault.reset {
        body.insert("reset".into(), serde_json::json!({"percent": r.percent}));
    }
    if let Some(h) = &fault.hang {
        body.insert("hang".into(), serde_json::json!({"percent": h.percent}));
    }
    serde_json::Value::Object(body)
}

/// Runs every event at its time; results arrive on `done` as they happen.
pub async fn run(
    scenario: Scenario,
    client: HttpClient,
    token: Option<String>,
    start: Instant,
    done: tokio::sync::mpsc::UnboundedSender<Done>,
) {
    let mut order: Vec<usize> = (0..scenario.timeline.len()).collect();
    order.sort_by_key(|i| scenario.timeline[*i].at);
    let admin = scenario
        .admin
        .as_ref()
        .map(|a| a.url.trim_end_matches('/').to_string())
        .unwrap_or_default();
    for index in order {
        let event = &scenario.timeline[index];
        tokio::time::sleep_until(start + event.at).await;
        let result = act(event, &admin, token.as_deref(), &client).await;
        let _ = done.send(Done {
            at: start.elapsed(),
            what: describe(event),
            result,
        });
    }
}

async fn act(
    event: &Event,
    admin: &str,
    token: Option<&str>,
    client: &HttpClient,
) -> Result<(), String> {
    let (method, url, body, authorised) = if let Some(f) = &event.fault {
        let body = fault_body(f).to_string();
        (
            "PUT".to_string(),
            format!("{admin}/api/faults/{}", f.route),
            Some(body),
            true,
        )
    } else if let Some(route) = &event.heal {
        (
            "DELETE".to_string(),
            format!("{admin}/api/faults/{route}"),
            None,
            true,
        )
    } else if let Some(level) = event.level {
        let body = serde_json::json!({ "level": level }).to_string();
        (
            "PUT".to_string(),
            format!("{admin}/api/degradation"),
            Some(body),
            true,
        )
    } else if let Some(o) = &event.override_ {
        let body = serde_json::json!({ "state": o.state }).to_string();
        let url = format!("{admin}/api/breakers/{}/override", o.endpoint);
        ("PUT".to_string(), url, Some(body), true)
    } else if let Some(r) = &event.request {
        (r.method.clone(), r.url.clone(), r.body.clone(), false)
    } else {
        return Err("the event has no action".into());
    };
    let token = if authorised { token } else { None };
    let request = client::request(&method, &url, token, body)?;
    let answer = client::send(client, request, Duration::from_secs(5))
        .await
        .map_err(|e| format!("{method} {url}: {e}"))?;
    if (200..300).contains(&answer.status) {
        Ok(())
    } else {
        let body = String::from_utf8_lossy(&answer.body);
        let detail = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_string))
            .unwrap_or_else(|| body.chars().take(200).collect());
        let hint = if answer.status == 401 {
            " (is the admin token in the scenario's `admin.token_env` variable?)"
        } else {
            ""
        };
        Err(format!(
            "{method} {url} answered {}: {detail}{hint}",
            answer.status
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::scenario::{AbortFault, DelayFault};

    #[test]
    fn fault_body_is_the_admin_api_shape() {
        let fault = FaultAction {
            route: "inventory".into(),
            delay: Some(DelayFault {
                duration: Duration::from_millis(200),
                percent: 50.0,
            }),
            abort: Some(AbortFault {
                status: 503,
                percent: 100.0,
            }),
            reset: None,
            hang: None,
        };
        assert_eq!(
            fault_body(&fault),
            serde_json::json!({
                "delay": {"percent": 50.0, "duration": "200ms"},
                "abort": {"percent": 100.0, "status": 503}
            })
        );
    }
}
