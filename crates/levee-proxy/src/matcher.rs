//! Route matching (SPEC §12 `match`): every given condition must hold; routes are tried in
//! file order and the first match wins.
//!
//! - `path_prefix` is segment-aware: `/inv` matches `/inv`, `/inv/` and `/inv/items`, never
//!   `/inventory`. A prefix ending in `/` (and `/` itself) matches anything below it.
//! - `path` is an exact match on the path (the query string is not part of it).
//! - `host` is compared without the port, case-insensitively; `*.example.com` matches exactly
//!   one more label (`a.example.com`, not `example.com` nor `a.b.example.com`). The host comes
//!   from the `Host` header or, for HTTP/2, the `:authority`.
//! - `methods`: any of them (case-sensitive, as HTTP methods are).
//! - `headers`: each named header must be present with exactly that value (when a header is
//!   sent several times, any one value may match).

use http::{HeaderMap, Method, Uri};
use levee_config::MatchConfig;

/// One route's compiled conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    path_prefix: Option<String>,
    path: Option<String>,
    host: Option<HostPattern>,
    methods: Vec<Method>,
    headers: Vec<(http::HeaderName, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// `*.suffix`: the suffix with its leading dot, lowercased.
    Wildcard(String),
}

/// A match condition that can never be met or is malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatcherError(pub String);

impl std::fmt::Display for MatcherError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MatcherError {}

impl Matcher {
    /// Compiles `config`.
    pub fn new(config: &MatchConfig) -> Result<Matcher, MatcherError> {
        let methods = config
            .methods
            .iter()
            .map(|m| {
                Method::from_bytes(m.as_bytes()).map_err(|_| {
                    MatcherError(format!("match.methods: `{m}` is not an HTTP method"))
                })
            })
            .collect::<Result<_, _>>()?;
        let headers = config
            .headers
            .iter()
            .map(|(name, value)| {
                http::HeaderName::from_bytes(name.as_bytes())
                    .map(|n| (n, value.clone()))
                    .map_err(|_| {
                        MatcherError(format!("match.headers: `{name}` is not a header name"))
                    })
            })
            .collect::<Result<_, _>>()?;
        let host = config.host.as_deref().map(|h| {
            let h = h.to_ascii_lowercase();
            match h.strip_prefix('*') {
                Some(suffix) => HostPattern::Wildcard(suffix.to_string()),
                None => HostPattern::Exact(h),
            }
        });
        Ok(Matcher {
            path_prefix: config.path_prefix.clone(),
            path: config.path.clone(),
            host,
            methods,
            headers,
        })
    }

    /// True when the request meets every condition.
    pub fn matches(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        let path = uri.path();
        if let Some(exact) = &self.path {
            if path != exact {
                return false;
            }
        }
        if let Some(prefix) = &self.path_prefix {
            if !prefix_matches(prefix, path) {
                return false;
            }
        }
        if !self.methods.is_empty() && !self.methods.contains(method) {
            return false;
        }
        if let Some(pattern) = &self.host {
            let Some(host) = request_host(uri, headers) else {
                return false;
            };
            let host = host.to_ascii_lowercase();
            let ok = match pattern {
                HostPattern::Exact(h) => host == *h,
                HostPattern::Wildcard(suffix) => host
                    .strip_suffix(suffix.as_str())
                    .is_some_and(|label| !label.is_empty() && !label.contains('.')),
            };
            if !ok {
                return false;
            }
        }
        self.headers.iter().all(|(name, value)| {
            headers
                .get_all(name)
                .iter()
                .any(|v| v.as_bytes() == value.as_bytes())
        })
    }
}

/// Segment-aware prefix match.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    let Some(rest) = path.strip_prefix(prefix) else {
        return false;
    };
    rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/')
}

/// The request's host without the port: `Host`, else the URI's authority (HTTP/2).
pub fn request_host<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    let raw = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))?;
    Some(strip_port(raw))
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // [v6]:port
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..=h.len()]);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn m(config: MatchConfig) -> Matcher {
        Matcher::new(&config).expect("valid")
    }

    fn req(path: &str, host: &str) -> (Method, Uri, HeaderMap) {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, host.parse().expect("host"));
        (Method::GET, path.parse().expect("uri"), headers)
    }

    #[test]
    fn prefixes_respect_segments() {
        let inv = m(MatchConfig {
            path_prefix: Some("/inv".into()),
            ..MatchConfig::default()
        });
        for (path, expected) in [
            ("/inv", true),
            ("/inv/", true),
            ("/inv/items?x=1", true),
            ("/inventory", false),
            ("/in", false),
        ] {
            let (method, uri, headers) = req(path, "a");
            assert_eq!(inv.matches(&method, &uri, &headers), expected, "{path}");
        }
        let root = m(MatchConfig {
            path_prefix: Some("/".into()),
            ..MatchConfig::default()
        });
        let (method, uri, headers) = req("/anything", "a");
        assert!(root.matches(&method, &uri, &headers));
    }

    #[test]
    fn hosts_methods_and_headers() {
        let wild = m(MatchConfig {
            host: Some("*.Example.com".into()),
            methods: vec!["GET".into()],
            headers: BTreeMap::from([("x-tenant".to_string(), "blue".to_string())]),
            ..MatchConfig::default()
        });
        let (method, uri, mut headers) = req("/", "api.example.com:8080");
        assert!(!wild.matches(&method, &uri, &headers), "header missing");
        headers.insert("x-tenant", "blue".parse().expect("value"));
        assert!(wild.matches(&method, &uri, &headers));
        assert!(!wild.matches(&Method::POST, &uri, &headers));
        headers.insert(http::header::HOST, "a.b.example.com".parse().expect("host"));
        assert!(!wild.matches(&method, &uri, &headers));
        headers.insert(http::header::HOST, "example.com".parse().expect("host"));
        assert!(!wild.matches(&method, &uri, &headers));
    }

    #[test]
    fn exact_path_and_bad_methods() {
        let exact = m(MatchConfig {
            path: Some("/healthz".into()),
            ..MatchConfig::default()
        });
        let (method, uri, headers) = req("/healthz?verbose", "a");
        assert!(exact.matches(&method, &uri, &headers));
        let (method, uri, headers) = req("/healthz/x", "a");
        assert!(!exact.matches(&method, &uri, &headers));
        assert!(Matcher::new(&MatchConfig {
            methods: vec!["GE T".into()],
            ..MatchConfig::default()
        })
        .is_err());
        assert_eq!(strip_port("[::1]:80"), "[::1]");
    }
}
