//! Which of the request headers Levee reads a request carries, found in one pass over its
//! names.
//!
//! Levee reads about ten request headers of its own or of the protocols it speaks
//! (`traceparent`, `x-request-id`, `levee-criticality`, `levee-timeout-ms`, ...), and most
//! requests carry none of them. Each lookup in a `HeaderMap` hashes the name and probes the
//! table, about 150 instructions for these non-standard names: ten of them were 3 % of a
//! proxied request's instructions (docs/benchmarks.md, the fifth data-path pass). One walk over
//! the request's few names costs less than two lookups, and every lookup it rules out is
//! skipped.

use http::HeaderMap;
use levee_core::names::header;

/// A set of the headers [`Carried::scan`] looks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Carried(u16);

impl Carried {
    pub(crate) const TRACEPARENT: Carried = Carried(1 << 0);
    pub(crate) const REQUEST_ID: Carried = Carried(1 << 1);
    pub(crate) const CRITICALITY: Carried = Carried(1 << 2);
    pub(crate) const TIMEOUT_MS: Carried = Carried(1 << 3);
    pub(crate) const GRPC_TIMEOUT: Carried = Carried(1 << 4);
    pub(crate) const IDEMPOTENCY_KEY: Carried = Carried(1 << 5);
    pub(crate) const X_FORWARDED_FOR: Carried = Carried(1 << 6);
    pub(crate) const FAULT: Carried = Carried(1 << 7);
    pub(crate) const FAULT_TOKEN: Carried = Carried(1 << 8);
    pub(crate) const TRACESTATE: Carried = Carried(1 << 9);

    /// The headers of this set that `headers` holds (any number of values each).
    pub(crate) fn scan(headers: &HeaderMap) -> Carried {
        let mut found = 0;
        for name in headers.keys() {
            found |= match name.as_str() {
                header::TRACEPARENT => Self::TRACEPARENT.0,
                header::TRACESTATE => Self::TRACESTATE.0,
                header::REQUEST_ID => Self::REQUEST_ID.0,
                header::CRITICALITY => Self::CRITICALITY.0,
                header::TIMEOUT_MS => Self::TIMEOUT_MS.0,
                header::GRPC_TIMEOUT => Self::GRPC_TIMEOUT.0,
                header::IDEMPOTENCY_KEY => Self::IDEMPOTENCY_KEY.0,
                "x-forwarded-for" => Self::X_FORWARDED_FOR.0,
                crate::fault::FAULT_HEADER => Self::FAULT.0,
                crate::fault::FAULT_TOKEN_HEADER => Self::FAULT_TOKEN.0,
                _ => 0,
            };
        }
        Carried(found)
    }

    /// Whether any header of `these` was found.
    pub(crate) fn any(self, these: Carried) -> bool {
        self.0 & these.0 != 0
    }

    /// `self` with `these` added: for a header the proxy inserts itself.
    pub(crate) fn with(self, these: Carried) -> Carried {
        Carried(self.0 | these.0)
    }
}

impl std::ops::BitOr for Carried {
    type Output = Carried;

    fn bitor(self, other: Carried) -> Carried {
        self.with(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const ALL: [(&str, Carried); 10] = [
        ("traceparent", Carried::TRACEPARENT),
        ("tracestate", Carried::TRACESTATE),
        ("x-request-id", Carried::REQUEST_ID),
        ("levee-criticality", Carried::CRITICALITY),
        ("levee-timeout-ms", Carried::TIMEOUT_MS),
        ("grpc-timeout", Carried::GRPC_TIMEOUT),
        ("idempotency-key", Carried::IDEMPOTENCY_KEY),
        ("x-forwarded-for", Carried::X_FORWARDED_FOR),
        ("levee-fault", Carried::FAULT),
        ("levee-fault-token", Carried::FAULT_TOKEN),
    ];

    #[test]
    fn finds_each_header_alone_whatever_its_case_on_the_wire() {
        for (name, bit) in ALL {
            let mut headers = HeaderMap::new();
            headers.insert(http::header::HOST, HeaderValue::from_static("a"));
            // HeaderName lowercases what the client sent.
            let upper = http::HeaderName::from_bytes(name.to_ascii_uppercase().as_bytes());
            headers.append(upper.expect("a valid name"), HeaderValue::from_static("1"));
            headers.append("x-other", HeaderValue::from_static("2"));
            let carried = Carried::scan(&headers);
            assert_eq!(carried, bit, "{name}");
            for (other, other_bit) in ALL {
                assert_eq!(carried.any(other_bit), other == name, "{name} / {other}");
            }
        }
    }

    #[test]
    fn finds_them_together_and_none_in_a_plain_request() {
        let mut headers = HeaderMap::new();
        for (name, _) in ALL {
            headers.append(name, HeaderValue::from_static("1"));
            headers.append(name, HeaderValue::from_static("2"));
        }
        let everything = ALL
            .iter()
            .fold(Carried::default(), |set, (_, bit)| set | *bit);
        assert_eq!(Carried::scan(&headers), everything);

        let mut plain = HeaderMap::new();
        plain.insert(http::header::HOST, HeaderValue::from_static("a"));
        plain.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
        plain.insert("levee-faults", HeaderValue::from_static("near miss"));
        assert_eq!(Carried::scan(&plain), Carried::default());
        assert!(!Carried::scan(&plain).any(everything));
    }
}
