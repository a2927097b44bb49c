//! Open-loop traffic: each stream starts requests at its rate whatever the answers' speed, so
//! a slow dependency shows as latency and failures, not as fewer requests (no coordinated
//! omission).

use super::client::{self, HttpClient};
use super::scenario::{Scenario, Traffic};
use bytes::Bytes;
use http_body_util::Full;
use levee_core::Criticality;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Requests in flight at most, over all streams; beyond it a due request is counted as
/// failed (`client overloaded`) rather than delaying the schedule.
const MAX_IN_FLIGHT: usize = 2048;

/// One request's record.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Index into the scenario's traffic.
    pub stream: usize,
    /// The class it was sent as.
    pub criticality: Criticality,
    /// When it was due, from the drill's start.
    pub sent: Duration,
    /// How long the answer took.
    pub latency: Duration,
    /// The status; `None` when there was no answer.
    pub status: Option<u16>,
    /// The answer carried `levee-degraded`.
    pub degraded: bool,
    /// Why there was no answer.
    pub error: Option<String>,
}

impl Sample {
    /// Answered without a server error: 2xx to 4xx (degraded answers included) — the user
    /// got a page. 5xx, timeouts and connection errors are failures.
    pub fn succeeded(&self) -> bool {
        matches!(self.status, Some(s) if s < 500)
    }

    /// Succeeded and was not degraded.
    pub fn normal(&self) -> bool {
        self.succeeded() && !self.degraded
    }
}

/// The class of request number `n` of a stream: the shares are met exactly every 100
/// requests, interleaved (stride 37 is coprime with 100) rather than in blocks.
pub fn class_of(mix: &[(Criticality, u32)], n: u64) -> Criticality {
    if mix.is_empty() {
        return Criticality::Standard;
    }
    let slot = (n * 37 % 100) as u32;
    let mut upto = 0;
    for (class, share) in mix {
        upto += share;
        if slot < upto {
            return *class;
        }
    }
    mix.last().map_or(Criticality::Standard, |(c, _)| *c)
}

/// Starts every stream; samples arrive on the returned channel until `duration` has passed
/// and the last answers are in.
pub fn start(
    scenario: &Scenario,
    client: HttpClient,
    start: Instant,
) -> mpsc::UnboundedReceiver<Sample> {
    let (tx, rx) = mpsc::unbounded_channel();
    let limit = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    for (index, traffic) in scenario.traffic.iter().enumerate() {
        let url = match (&traffic.url, &traffic.path) {
            (Some(url), _) => url.clone(),
            (None, Some(path)) => format!(
                "{}{}",
                scenario
                    .target
                    .as_deref()
                    .unwrap_or("")
                    .trim_end_matches('/'),
                path
            ),
            (None, None) => continue,
        };
        tokio::spawn(stream(
            index,
            traffic.clone(),
            url,
            scenario.duration,
            client.clone(),
            start,
            tx.clone(),
            limit.clone(),
        ));
    }
    rx
}

#[allow(clippy::too_many_arguments)]
async fn stream(
    index: usize,
    traffic: Traffic,
    url: String,
    duration: Duration,
    client: HttpClient,
    start: Instant,
    tx: mpsc::UnboundedSender<Sample>,
    limit: Arc<tokio::sync::Semaphore>,
) {
    let period_nanos = traffic.rate.period_nanos() / traffic.rate.count().max(1);
    let period = Duration::from_nanos(period_nanos.max(1));
    let mix: Vec<(Criticality, u32)> = traffic
        .criticality
        .iter()
        .rev()
        .map(|(class, share)| (*class, *share))
        .collect();
    let traffic = Arc::new(traffic);
    let mut n: u64 = 0;
    loop {
        let due = period * u32::try_from(n).unwrap_or(u32::MAX);
        if due >= duration {
            break;
        }
        tokio::time::sleep_until(start + due).await;
        let criticality = class_of(&mix, n);
        n += 1;
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            let _ = tx.send(Sample {
                stream: index,
                criticality,
                sent: due,
                latency: Duration::ZERO,
                status: None,
                degraded: false,
                error: Some("client overloaded: too many requests in flight".into()),
            });
            continue;
        };
        let (client, tx, traffic, url) = (client.clone(), tx.clone(), traffic.clone(), url.clone());
        tokio::spawn(async move {
            let sample = one(&client, &traffic, &url, criticality, index, due, start).await;
            let _ = tx.send(sample);
            drop(permit);
        });
    }
}

async fn one(
    client: &HttpClient,
    traffic: &Traffic,
    url: &str,
    criticality: Criticality,
    stream: usize,
    due: Duration,
    start: Instant,
) -> Sample {
    let mut sample = Sample {
        stream,
        criticality,
        sent: due,
        latency: Duration::ZERO,
        status: None,
        degraded: false,
        error: None,
    };
    let request = build(traffic, url, criticality);
    let result = match request {
        Ok(request) => client::send(client, request, traffic.timeout).await,
        Err(e) => Err(e),
    };
    // Latency from when the request was due, not when it left: a late start is the
    // client's delay and still counts (coordinated-omission corrected).
    sample.latency = start.elapsed().saturating_sub(due);
    match result {
        Ok(answer) => {
            sample.status = Some(answer.status);
            sample.degraded = answer.degraded.is_some();
        }
        Err(e) => sample.error = Some(e),
    }
    sample
}

fn build(
    traffic: &Traffic,
    url: &str,
    criticality: Criticality,
) -> Result<http::Request<Full<Bytes>>, String> {
    let mut builder = http::Request::builder()
        .method(traffic.method.as_str())
        .uri(url)
        .header("levee-criticality", criticality.as_str());
    for (name, value) in &traffic.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder
        .body(Full::new(Bytes::from(
            traffic.body.clone().unwrap_or_default(),
        )))
        .map_err(|e| format!("{} {url}: {e}", traffic.method))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_mix_is_exact_every_hundred_and_interleaved() {
        let mix = vec![(Criticality::Critical, 80), (Criticality::Sheddable, 20)];
        let classes: Vec<Criticality> = (0..100).map(|n| class_of(&mix, n)).collect();
        let critical = classes
            .iter()
            .filter(|c| **c == Criticality::Critical)
            .count();
        assert_eq!(critical, 80);
        // Not 80 criticals then 20 sheddables: a sheddable among the first ten.
        assert!(
            classes[..10].contains(&Criticality::Sheddable),
            "{classes:?}"
        );
        assert_eq!(class_of(&[], 7), Criticality::Standard);
    }
}
