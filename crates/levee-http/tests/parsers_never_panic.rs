//! Fuzz-style properties: every parser of untrusted header bytes returns a value or a typed
//! error for any input, and never panics.

use http::{HeaderMap, HeaderValue};
use levee_core::deadline::MAX_REMAINING;
use levee_http::degraded::parse_degraded;
use levee_http::headers::{criticality, inbound_deadline, write_deadline};
use levee_http::request_id::ensure_request_id;
use levee_http::trace::{TraceContext, TraceParent};
use proptest::prelude::*;
use std::time::Duration;

/// Header-like strings: mostly near-valid shapes, plus arbitrary text.
fn header_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9a-fA-F-]{0,70}",
        "[0-9]{0,25}[HMSmun]?",
        "[ -~]{0,80}",
        "(00|ff|cc)-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-.{0,5})?",
    ]
}

fn map_with(name: &'static str, values: &[Vec<u8>]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for v in values {
        if let Ok(value) = HeaderValue::from_bytes(v) {
            map.append(name, value);
        }
    }
    map
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn traceparent_parse_never_panics(s in header_text()) {
        if let Ok(tp) = TraceParent::parse(&s) {
            // Whatever parses writes back as a valid version-00 value.
            let written = tp.to_string();
            prop_assert_eq!(written.len(), 55);
            prop_assert_eq!(TraceParent::parse(&written).map(|p| p.trace_id), Ok(tp.trace_id));
        }
    }

    #[test]
    fn degraded_parse_never_panics(s in header_text()) {
        let _ = parse_degraded(&s);
    }

    #[test]
    fn levee_headers_never_panic(
        values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..3),
        text in header_text(),
    ) {
        for name in ["levee-criticality", "levee-timeout-ms", "grpc-timeout", "traceparent", "x-request-id"] {
            let mut map = map_with(name, &values);
            if let Ok(v) = HeaderValue::from_str(&text) {
                map.append(name, v);
            }
            let _ = criticality(&map);
            if let Ok(Some(remaining)) = inbound_deadline(&map) {
                write_deadline(&mut map, remaining);
                // What Levee writes, Levee (and the next hop) can read back.
                prop_assert!(inbound_deadline(&map).is_ok());
            }
            let ctx = TraceContext::from_headers(&map);
            ctx.inject(&mut map);
            prop_assert!(TraceParent::parse(map["traceparent"].to_str().unwrap_or("")).is_ok());
            let id = ensure_request_id(&mut map);
            prop_assert!(!id.is_empty());
        }
    }

    #[test]
    fn outbound_deadline_round_trips_within_a_millisecond(nanos in any::<u64>()) {
        let mut map = HeaderMap::new();
        map.insert("content-type", HeaderValue::from_static("application/grpc"));
        // Levee caps every remaining time at MAX_REMAINING (levee-core's rule).
        let remaining = Duration::from_nanos(nanos).min(MAX_REMAINING);
        write_deadline(&mut map, remaining);
        let read = inbound_deadline(&map);
        prop_assert!(read.is_ok());
        let read = read.unwrap_or_default().unwrap_or_default();
        // Never promises more time than was left, and loses less than a millisecond.
        prop_assert!(read <= remaining);
        prop_assert!(remaining - read < Duration::from_millis(1));
    }
}
