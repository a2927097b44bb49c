//! Checks that need the whole typed config: references between blocks, addresses, impossible
//! values and levee-core's own `validate()` of every policy block (SPEC §12: "dangling
//! references and impossible values are errors that name the file, line and column").
//!
//! Every check reports instead of stopping, so one `levee check` run lists every mistake.
//! A problem names the key path of the setting it is about; its position is that setting's
//! value in the file, or the nearest enclosing block the file did write when the setting was
//! left at its default (for example `open.max_wait` when only `open.wait` was raised).

use crate::error::Problem;
use crate::model::{Config, MatchConfig, RegistryMode, RouteConfig, UpstreamConfig};
use crate::path::KeyPath;
use crate::suggest;
use crate::yaml::Node;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest drain (`delay + timeout`) accepted: orchestrators stop waiting long before.
const MAX_DRAIN: Duration = Duration::from_secs(3600);

/// Highest degradation level (SPEC §10).
const MAX_LEVEL: u8 = 3;

/// Runs every check; `base_dir` (the config file's directory) enables the TLS file checks.
pub(crate) fn check(
    config: &Config,
    root: &Node,
    file: &str,
    base_dir: Option<&Path>,
) -> Vec<Problem> {
    let mut checker = Checker {
        root,
        file,
        base_dir,
        problems: Vec::new(),
    };
    checker.service(config);
    checker.listeners(config);
    checker.registry(config);
    checker.limits(config);
    checker.drain(config);
    checker.upstreams(config);
    checker.routes(config);
    checker.problems
}

/// A relative path resolved against the config file's directory.
pub(crate) fn resolve(base_dir: &Path, file: &str) -> PathBuf {
    let path = Path::new(file);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    }
}

struct Checker<'a> {
    root: &'a Node,
    file: &'a str,
    base_dir: Option<&'a Path>,
    problems: Vec<Problem>,
}

/// Whether port 0 ("pick a free port") makes sense for the address.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PortZero {
    /// Listeners: the OS picks a port.
    Allowed,
    /// Endpoints: there is nothing to connect to on port 0.
    Rejected,
}

/// A checked `host:port`, normalized for duplicate detection.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPort {
    host: String,
    ip: Option<IpAddr>,
    port: u16,
}

impl HostPort {
    /// True when binding both would fail: same port and same host, or one is the
    /// unspecified address (0.0.0.0, ::) of the other's family.
    fn clashes_with(&self, other: &HostPort) -> bool {
        if self.port != other.port || self.port == 0 {
            return false;
        }
        if self.host == other.host {
            return true;
        }
        match (self.ip, other.ip) {
            (Some(a), Some(b)) => {
                a.is_ipv4() == b.is_ipv4() && (a.is_unspecified() || b.is_unspecified())
            }
            _ => false,
        }
    }
}

/// RFC 9110 token characters (header names, methods).
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn is_token(text: &str) -> bool {
    !text.is_empty() && text.chars().all(is_tchar)
}

/// A header value may hold any visible character, space and tab; no line breaks or controls.
fn is_header_value(text: &str) -> bool {
    text.chars().all(|c| c == '\t' || !c.is_control())
}

/// A DNS name (letters, digits, `-`, `_`; labels of 1 to 63 characters).
fn is_hostname(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Checks `host:port`; the message says what is wrong and shows the fix.
fn host_port(text: &str, zero: PortZero) -> Result<HostPort, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("the address is empty: write host:port, such as 127.0.0.1:8080".into());
    }
    if let Some((scheme, rest)) = t.split_once("://") {
        let rest = rest.trim_end_matches('/');
        return Err(format!(
            "`{t}` is a URL: write only host:port, such as `{rest}` (without `{scheme}://`)"
        ));
    }
    if t.contains('/') {
        return Err(format!(
            "`{t}` has a path: write only host:port, such as 127.0.0.1:8080"
        ));
    }
    let checked = if let Ok(addr) = t.parse::<SocketAddr>() {
        HostPort {
            host: addr.ip().to_string(),
            ip: Some(addr.ip()),
            port: addr.port(),
        }
    } else {
        if t.starts_with('[') {
            return Err(format!(
                "`{t}` is not a valid IPv6 address with a port: write it as `[::1]:8080`"
            ));
        }
        let Some((host, port)) = t.rsplit_once(':') else {
            return Err(format!(
                "`{t}` has no port: write host:port, such as `{t}:8080`"
            ));
        };
        if host.contains(':') {
            return Err(format!(
                "`{t}` looks like an IPv6 address without brackets: write `[{host}]:{port}`"
            ));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| format!("the port `{port}` in `{t}` is not a number from 1 to 65535"))?;
        if host.is_empty() {
            return Err(format!(
                "`{t}` has no host: write 0.0.0.0:{port} for every interface, or \
                 127.0.0.1:{port} for this machine only"
            ));
        }
        if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(format!(
                "`{host}` in `{t}` is not a valid IPv4 address (four numbers from 0 to 255, \
                 such as 127.0.0.1)"
            ));
        }
        if !is_hostname(host) {
            return Err(format!(
                "`{host}` in `{t}` is not a valid host name: use letters, digits, `-` and \
                 dots, such as `localhost:{port}`, or an IP address"
            ));
        }
        HostPort {
            host: host.to_ascii_lowercase(),
            ip: None,
            port,
        }
    };
    if zero == PortZero::Rejected && checked.port == 0 {
        return Err(format!(
            "`{t}` has port 0: give the port the endpoint listens on"
        ));
    }
    Ok(checked)
}

/// Names of upstreams and routes appear in metric labels, breaker keys (`upstream/route`)
/// and admin API paths, so they are kept to characters that need no escaping anywhere.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty: use letters, digits, `_`, `-` and `.`".into());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "the name \"{name}\" contains {bad:?}: use only letters, digits, `_`, `-` and `.` \
             (names appear in metrics, breaker keys `upstream/route` and admin URLs)"
        ));
    }
    Ok(())
}

/// A valid environment variable name.
fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn fmt_duration(d: Duration) -> String {
    levee_core::duration::format(d)
}

impl Checker<'_> {
    /// Reports a problem at `path`'s value.
    fn report(&mut self, path: &KeyPath, message: impl Into<String>) {
        let (pos, _) = path.locate(self.root);
        self.push(pos, path, message.into());
    }

    /// Reports a problem with the key that ends `path` (a bad name), at the key itself.
    fn report_key(&mut self, path: &KeyPath, message: impl Into<String>) {
        let (pos, _) = path.locate_key(self.root);
        self.push(pos, path, message.into());
    }

    fn push(&mut self, pos: crate::yaml::Pos, path: &KeyPath, message: String) {
        self.problems.push(Problem {
            file: self.file.to_string(),
            line: pos.line,
            column: pos.column,
            path: path.to_string(),
            message,
        });
    }

    /// Reports a levee-core `validate()` message about the block at `block`. Those messages
    /// start with the key they are about (`open.max_wait (1s) is shorter…`), so the problem
    /// points at that key when the file wrote it.
    fn report_block(&mut self, block: &KeyPath, block_name: &str, message: String) {
        let lead: String = message
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '.')
            .collect();
        let lead = lead.trim_end_matches('.');
        let lead = lead
            .strip_prefix(block_name)
            .map(|rest| rest.trim_start_matches('.'))
            .unwrap_or(lead);
        let path = if lead.is_empty() {
            block.clone()
        } else {
            block.keys(lead)
        };
        self.report(&path, message);
    }

    fn positive(&mut self, path: &KeyPath, value: Duration, fix: &str) {
        if value.is_zero() {
            self.report(path, format!("is 0s: {fix}"));
        }
    }

    fn env_name(&mut self, path: &KeyPath, name: &str) {
        if !is_env_name(name) {
            self.report(
                path,
                format!(
                    "\"{name}\" is not an environment variable name: use letters, digits and \
                     `_`, not starting with a digit, such as LEVEE_ADMIN_TOKEN"
                ),
            );
        }
    }

    fn service(&mut self, config: &Config) {
        if config.service.trim().is_empty() {
            self.report(
                &KeyPath::root().key("service"),
                "the service name is empty: name this instance's service, such as \
                 `service: checkout` (it labels every metric)",
            );
        }
    }

    fn listeners(&mut self, config: &Config) {
        let listeners = KeyPath::root().key("listeners");
        if config.listeners.is_empty() {
            self.report(
                &listeners,
                "no listeners: add at least one, such as `- address: 127.0.0.1:8080`",
            );
        }
        let mut bound: Vec<(HostPort, usize)> = Vec::new();
        for (i, listener) in config.listeners.iter().enumerate() {
            let at = listeners.index(i);
            if listener.name.trim().is_empty() {
                self.report(
                    &at.key("name"),
                    "the listener name is empty: name it for logs and metrics, such as \
                     `name: ingress`",
                );
            }
            match host_port(&listener.address, PortZero::Allowed) {
                Err(message) => self.report(&at.key("address"), message),
                Ok(addr) => {
                    if let Some((_, other)) = bound.iter().find(|(b, _)| b.clashes_with(&addr)) {
                        self.report(
                            &at.key("address"),
                            format!(
                                "`{}` is already taken by listeners[{other}]: two listeners \
                                 cannot bind the same address; change the port",
                                listener.address
                            ),
                        );
                    }
                    bound.push((addr, i));
                }
            }
            if let Some(tls) = &listener.tls {
                self.tls_file(&at.keys("tls.cert"), &tls.cert, "certificate");
                self.tls_file(&at.keys("tls.key"), &tls.key, "private key");
            }
        }
        let admin = KeyPath::root().key("admin");
        match host_port(&config.admin.address, PortZero::Allowed) {
            Err(message) => self.report(&admin.key("address"), message),
            Ok(addr) => {
                let clash = bound
                    .iter()
                    .find(|(b, _)| b.clashes_with(&addr))
                    .map(|(_, i)| *i);
                let written = admin.key("address").locate(self.root).1;
                match clash {
                    Some(i) if written => self.report(
                        &admin.key("address"),
                        format!(
                            "`{}` is already taken by listeners[{i}]: the admin API needs its \
                             own address; change the port",
                            config.admin.address
                        ),
                    ),
                    // The admin address is the default: point at the listener that took it.
                    Some(i) => self.report(
                        &listeners.index(i).key("address"),
                        format!(
                            "`{}` is the admin API's address (admin.address defaults to {}): \
                             change this port, or move the admin API with admin.address",
                            config.listeners[i].address, config.admin.address
                        ),
                    ),
                    None => {}
                }
            }
        }
        self.env_name(&admin.key("token_env"), &config.admin.token_env);
    }

    fn tls_file(&mut self, path: &KeyPath, file: &str, what: &str) {
        if file.trim().is_empty() {
            self.report(
                path,
                format!("the TLS {what} file is empty: give the path of a PEM file"),
            );
            return;
        }
        let Some(base) = self.base_dir else {
            return;
        };
        let resolved = resolve(base, file);
        let shown = if Path::new(file).is_absolute() {
            String::new()
        } else {
            format!(" (looked for {})", resolved.display())
        };
        match std::fs::metadata(&resolved) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => self.report(
                path,
                format!(
                    "the TLS {what} `{file}` is not a file{shown}: give the path of a PEM file"
                ),
            ),
            Err(err) => self.report(
                path,
                format!(
                    "cannot read the TLS {what} `{file}`{shown}: {err}; relative paths are \
                     resolved against the config file's directory"
                ),
            ),
        }
    }

    fn registry(&mut self, config: &Config) {
        let at = KeyPath::root().key("registry");
        let registry = &config.registry;
        match (registry.mode, &registry.url) {
            (RegistryMode::Remote, None) => self.report(
                &at.key("mode"),
                "mode is remote but no url is set: add the registry's address, such as \
                 `url: http://127.0.0.1:9911`, or use `mode: embedded`",
            ),
            (RegistryMode::Embedded, Some(_)) => self.report(
                &at.key("url"),
                "url is set but mode is embedded, so it would be ignored: add `mode: remote` \
                 to use that registry, or remove url",
            ),
            _ => {}
        }
        if let Some(url) = &registry.url {
            let host = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"));
            if no_host(host) {
                self.report(
                    &at.key("url"),
                    format!(
                        "`{url}` is not an http:// or https:// URL: write the registry's \
                         address, such as http://127.0.0.1:9911"
                    ),
                );
            }
        }
        if let Some(backend) = &registry.backend {
            let host = backend
                .strip_prefix("redis://")
                .or_else(|| backend.strip_prefix("rediss://"));
            if no_host(host) {
                self.report(
                    &at.key("backend"),
                    format!(
                        "`{backend}` is not a redis:// or rediss:// URL: write the Redis \
                         address, such as redis://127.0.0.1:6379, or remove backend to keep \
                         the state in memory"
                    ),
                );
            }
        }
        self.positive(
            &at.key("stale_ttl"),
            registry.stale_ttl,
            "fleet state would be dropped at once when the registry is unreachable; use e.g. 30s",
        );
        self.positive(
            &at.key("report_interval"),
            registry.report_interval,
            "reports need an interval; use e.g. 1s",
        );
        self.env_name(&at.key("token_env"), &registry.token_env);
    }

    fn limits(&mut self, config: &Config) {
        let at = KeyPath::root().key("limits");
        let l = &config.limits;
        let durations = [
            ("header_read_timeout", l.header_read_timeout, "10s"),
            ("body_timeout", l.body_timeout, "30s"),
            ("idle_timeout", l.idle_timeout, "60s"),
        ];
        for (key, value, default) in durations {
            if value.is_zero() {
                self.report(
                    &at.key(key),
                    format!("{key} is 0s: every client would time out at once; use e.g. {default}"),
                );
            }
        }
        let counts = [
            ("max_header_bytes", l.max_header_bytes as u64, "65536"),
            ("max_body_bytes", l.max_body_bytes, "10485760"),
            ("max_connections", l.max_connections as u64, "10000"),
            (
                "h2_max_concurrent_streams",
                u64::from(l.h2_max_concurrent_streams),
                "256",
            ),
            (
                "h2_max_pending_reset_streams",
                l.h2_max_pending_reset_streams as u64,
                "100",
            ),
            ("retry_buffer_bytes", l.retry_buffer_bytes as u64, "65536"),
        ];
        for (key, value, default) in counts {
            if value == 0 {
                self.report(
                    &at.key(key),
                    format!("{key} is 0: it must be at least 1 (the default is {default})"),
                );
            }
        }
    }

    fn drain(&mut self, config: &Config) {
        let at = KeyPath::root().key("drain");
        let d = &config.drain;
        self.positive(
            &at.key("timeout"),
            d.timeout,
            "in-flight requests would be cut off at shutdown; use e.g. 30s",
        );
        if d.delay.saturating_add(d.timeout) > MAX_DRAIN {
            self.report(
                &at,
                format!(
                    "drain would take up to {} (delay {} + timeout {}), more than an hour: \
                     orchestrators stop waiting long before (Kubernetes: 30s by default); use \
                     e.g. delay: 5s and timeout: 30s",
                    fmt_duration(d.delay.saturating_add(d.timeout)),
                    fmt_duration(d.delay),
                    fmt_duration(d.timeout)
                ),
            );
        }
    }

    fn upstreams(&mut self, config: &Config) {
        let upstreams = KeyPath::root().key("upstreams");
        if config.upstreams.is_empty() {
            self.report(
                &upstreams,
                "no upstreams: add at least one, such as `inventory: {endpoints: \
                 [127.0.0.1:7001]}`",
            );
        }
        for (name, upstream) in &config.upstreams {
            let at = upstreams.key(name);
            if let Err(message) = check_name(name) {
                self.report_key(&at, message);
            }
            self.upstream(&at, upstream);
        }
    }

    fn upstream(&mut self, at: &KeyPath, upstream: &UpstreamConfig) {
        if upstream.endpoints.is_empty() {
            self.report(
                &at.key("endpoints"),
                "no endpoints: list at least one host:port, such as `[127.0.0.1:7001]`",
            );
        }
        let mut seen: Vec<HostPort> = Vec::new();
        for (i, endpoint) in upstream.endpoints.iter().enumerate() {
            let path = at.key("endpoints").index(i);
            match host_port(endpoint, PortZero::Rejected) {
                Err(message) => self.report(&path, message),
                Ok(addr) => {
                    if seen.contains(&addr) {
                        self.report(&path, format!("`{endpoint}` is listed twice: remove one"));
                    }
                    seen.push(addr);
                }
            }
        }
        self.positive(
            &at.key("connect_timeout"),
            upstream.connect_timeout,
            "every connection attempt would fail at once; use e.g. 1s",
        );
        if let Some(hc) = &upstream.health_check {
            let hc_at = at.key("health_check");
            if !hc.path.starts_with('/') {
                self.report(
                    &hc_at.key("path"),
                    format!(
                        "the health check path \"{}\" must start with `/`, such as `/{}`",
                        hc.path,
                        hc.path.trim_start_matches('/')
                    ),
                );
            }
            self.positive(&hc_at.key("interval"), hc.interval, "use e.g. 5s");
            self.positive(&hc_at.key("timeout"), hc.timeout, "use e.g. 1s");
            if !hc.timeout.is_zero() && hc.timeout > hc.interval && !hc.interval.is_zero() {
                self.report(
                    &hc_at.key("timeout"),
                    format!(
                        "the check timeout ({}) is longer than the interval ({}): checks \
                         would overlap; lower timeout or raise interval",
                        fmt_duration(hc.timeout),
                        fmt_duration(hc.interval)
                    ),
                );
            }
            if hc.healthy == 0 {
                self.report(
                    &hc_at.key("healthy"),
                    "healthy is 0: use at least 1 (passes in a row to become healthy)",
                );
            }
            if hc.unhealthy == 0 {
                self.report(
                    &hc_at.key("unhealthy"),
                    "unhealthy is 0: use at least 1 (failures in a row to become unhealthy)",
                );
            }
        }
        let outlier = &upstream.outlier;
        if outlier.max_ejection_percent > 100 {
            self.report(
                &at.keys("outlier.max_ejection_percent"),
                format!(
                    "max_ejection_percent is {}: it is a percentage, use 0 to 100",
                    outlier.max_ejection_percent
                ),
            );
        }
        if outlier.consecutive_failures > 0 && outlier.base_ejection.is_zero() {
            self.report(
                &at.keys("outlier.base_ejection"),
                "base_ejection is 0s: ejected endpoints would return at once; use e.g. 30s, or \
                 set consecutive_failures: 0 to turn ejection off",
            );
        }
        if let Err(message) = upstream.breaker.validate() {
            self.report_block(&at.key("breaker"), "breaker", message);
        }
        if let Err(message) = upstream.bulkhead.validate() {
            self.report_block(&at.key("bulkhead"), "bulkhead", message);
        }
    }

    fn routes(&mut self, config: &Config) {
        let routes = KeyPath::root().key("routes");
        if config.routes.is_empty() {
            self.report(
                &routes,
                "no routes: add at least one, such as `- {match: {path_prefix: /}, upstream: \
                 NAME}`",
            );
        }
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        let mut matchers: BTreeMap<String, usize> = BTreeMap::new();
        let mut catch_all: Option<usize> = None;
        for (i, route) in config.routes.iter().enumerate() {
            let at = routes.index(i);
            let name = route.name_or_default(i);
            if let Some(explicit) = &route.name {
                if let Err(message) = check_name(explicit) {
                    self.report(&at.key("name"), message);
                }
            }
            if let Some(first) = names.get(&name) {
                self.report(
                    &at.key("name"),
                    format!(
                        "the route name \"{name}\" is already used by routes[{first}]: route \
                         names label metrics and breaker keys, so give each route its own"
                    ),
                );
            } else {
                names.insert(name.clone(), i);
            }
            self.route(config, &at, route);
            // An earlier route with no conditions, or with the very same ones, takes every
            // request this route would match: certainly a mistake. (Keyed by the matcher's
            // debug text so that a file with thousands of routes stays linear.)
            let key = format!("{:?}", route.matcher);
            let shadowed_by = catch_all.or_else(|| matchers.get(&key).copied());
            if route.matcher == MatchConfig::default() {
                catch_all = catch_all.or(Some(i));
            }
            matchers.entry(key).or_insert(i);
            if let Some(j) = shadowed_by {
                self.report(
                    &at.key("match"),
                    format!(
                        "this route can never match: routes[{j}] (\"{}\") comes first and \
                         matches every request this one would; move this route above it, or \
                         narrow routes[{j}]'s match",
                        config.routes[j].name_or_default(j)
                    ),
                );
            }
        }
    }

    fn route(&mut self, config: &Config, at: &KeyPath, route: &RouteConfig) {
        if !config.upstreams.contains_key(&route.upstream) {
            let defined: Vec<&str> = config.upstreams.keys().map(String::as_str).collect();
            let hint = suggest::did_you_mean(&route.upstream, defined.iter().copied());
            let list = if defined.is_empty() {
                "no upstreams are defined".to_string()
            } else {
                format!("defined upstreams: {}", defined.join(", "))
            };
            self.report(
                &at.key("upstream"),
                format!("no upstream named \"{}\"{hint} ({list})", route.upstream),
            );
        }
        self.matcher(&at.key("match"), &route.matcher);
        if route.timeout == Some(Duration::ZERO) {
            self.report(
                &at.key("timeout"),
                "timeout is 0s: every request would fail at once; use e.g. 800ms, or remove \
                 timeout to use only the caller's deadline",
            );
        }
        if let Err(message) = route.retry.validate() {
            self.report_block(&at.key("retry"), "retry", message);
        }
        if let Some(rate_limit) = &route.rate_limit {
            if let Err(message) = rate_limit.validate() {
                self.report_block(&at.key("rate_limit"), "rate_limit", message);
            }
        }
        if let Some(breaker) = &route.breaker {
            if let Err(message) = breaker.validate() {
                self.report_block(&at.key("breaker"), "breaker", message);
            }
        }
        if let Some(bulkhead) = &route.bulkhead {
            if let Err(message) = bulkhead.validate() {
                self.report_block(&at.key("bulkhead"), "bulkhead", message);
            }
        }
        let fallback = at.key("fallback");
        if let Some(stale) = &route.fallback.stale_if_error {
            let stale_at = fallback.key("stale_if_error");
            self.positive(
                &stale_at.key("max_stale"),
                stale.max_stale,
                "no stale response could ever be served; use e.g. 5m",
            );
            if stale.max_bytes == 0 {
                self.report(
                    &stale_at.key("max_bytes"),
                    "max_bytes is 0: the cache could hold nothing; use e.g. 16777216 (16 MiB)",
                );
            }
        }
        if let Some(fixed) = &route.fallback.static_response {
            let static_at = fallback.key("static");
            if !(100..=599).contains(&fixed.status) {
                self.report(
                    &static_at.key("status"),
                    format!(
                        "status {} is not an HTTP status: use 100 to 599, such as 200 or 503",
                        fixed.status
                    ),
                );
            }
            self.headers(&static_at.key("headers"), &fixed.headers, true);
        }
        if let Some(fault) = &route.fault {
            let fault_at = at.key("fault");
            for (key, message) in fault.problems() {
                self.report(&fault_at.keys(&key), message);
            }
        }
        if let Some(level) = route.shed_at_level {
            if level > MAX_LEVEL {
                self.report(
                    &at.key("shed_at_level"),
                    format!(
                        "shed_at_level is {level}: degradation levels go from 0 (normal) to \
                         {MAX_LEVEL} (critical traffic only); use a level from 1 to \
                         {MAX_LEVEL} (0 sheds the route always)"
                    ),
                );
            }
        }
    }

    fn matcher(&mut self, at: &KeyPath, m: &MatchConfig) {
        for (key, value) in [("path_prefix", &m.path_prefix), ("path", &m.path)] {
            if let Some(value) = value {
                if !value.starts_with('/') {
                    self.report(
                        &at.key(key),
                        format!(
                            "{key} \"{value}\" must start with `/`, such as `/{}`",
                            value.trim_start_matches('/')
                        ),
                    );
                }
            }
        }
        if let Some(host) = &m.host {
            if let Err(message) = check_host_pattern(host) {
                self.report(&at.key("host"), message);
            }
        }
        for (i, method) in m.methods.iter().enumerate() {
            let path = at.key("methods").index(i);
            if !is_token(method) {
                self.report(
                    &path,
                    format!("\"{method}\" is not an HTTP method: write e.g. GET or POST"),
                );
            } else if method.chars().any(|c| c.is_ascii_lowercase()) {
                self.report(
                    &path,
                    format!(
                        "methods are case-sensitive and \"{method}\" would never match: write \
                         {}",
                        method.to_ascii_uppercase()
                    ),
                );
            }
        }
        self.headers(&at.key("headers"), &m.headers, false);
    }

    fn headers(&mut self, at: &KeyPath, headers: &BTreeMap<String, String>, response: bool) {
        for (name, value) in headers {
            let path = at.key(name);
            if !is_token(name) {
                self.report_key(
                    &path,
                    format!(
                        "\"{name}\" is not a valid header name: use letters, digits and \
                         `-`, such as x-client-id"
                    ),
                );
            } else if response
                && (name.eq_ignore_ascii_case("content-length")
                    || name.eq_ignore_ascii_case("transfer-encoding"))
            {
                self.report_key(
                    &path,
                    format!("{name} is set by Levee from the body: remove it"),
                );
            }
            if !is_header_value(value) {
                self.report(
                    &path,
                    format!(
                        "the value of header \"{name}\" contains a line break or control \
                         character: header values are one line of text"
                    ),
                );
            }
        }
    }
}

/// A `host` match: a host name without port, optionally `*.` for one label.
fn check_host_pattern(host: &str) -> Result<(), String> {
    if host.contains("://") || host.contains('/') {
        return Err(format!(
            "host \"{host}\" must be a host name only, such as example.com (no scheme or path)"
        ));
    }
    if host.contains(':') && host.parse::<IpAddr>().is_err() {
        return Err(format!(
            "host \"{host}\" has a port: hosts are matched without the port, so write \"{}\"",
            host.rsplit_once(':').map_or(host, |(h, _)| h)
        ));
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    if host.parse::<IpAddr>().is_ok() || is_hostname(name) {
        Ok(())
    } else {
        Err(format!(
            "host \"{host}\" is not a valid host name: use letters, digits, `-` and dots; \
             `*.example.com` matches one label"
        ))
    }
}

/// True when a URL had the wrong scheme (`None`) or nothing after it.
fn no_host(rest: Option<&str>) -> bool {
    rest.is_none_or(|r| r.trim().trim_end_matches('/').is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_accepts_the_usual_forms() {
        for ok in [
            "127.0.0.1:8080",
            "0.0.0.0:0",
            "[::1]:9901",
            "localhost:80",
            "inventory.svc.cluster.local:7001",
            "my_service:80",
        ] {
            assert!(host_port(ok, PortZero::Allowed).is_ok(), "{ok}");
        }
    }

    #[test]
    fn host_port_explains_mistakes() {
        let err = |t: &str, z| host_port(t, z).expect_err(t);
        assert!(err("127.0.0.1", PortZero::Allowed).contains("has no port"));
        assert!(err("http://a:1/", PortZero::Allowed).contains("is a URL"));
        assert!(err("::1:80", PortZero::Allowed).contains("without brackets"));
        assert!(err("256.1.1.1:80", PortZero::Allowed).contains("not a valid IPv4"));
        assert!(err("a:99999", PortZero::Allowed).contains("not a number from 1 to 65535"));
        assert!(err(":80", PortZero::Allowed).contains("has no host"));
        assert!(err("a b:80", PortZero::Allowed).contains("not a valid host name"));
        assert!(err("a:0", PortZero::Rejected).contains("port 0"));
        assert!(err("", PortZero::Allowed).contains("empty"));
    }

    #[test]
    fn clashes() {
        let hp = |t| host_port(t, PortZero::Allowed).expect("valid");
        assert!(hp("127.0.0.1:80").clashes_with(&hp("127.0.0.1:80")));
        assert!(hp("0.0.0.0:80").clashes_with(&hp("127.0.0.1:80")));
        assert!(!hp("0.0.0.0:80").clashes_with(&hp("[::1]:80")));
        assert!(!hp("127.0.0.1:0").clashes_with(&hp("127.0.0.1:0")));
        assert!(!hp("127.0.0.1:80").clashes_with(&hp("127.0.0.1:81")));
        assert!(hp("LOCALHOST:80").clashes_with(&hp("localhost:80")));
    }

    #[test]
    fn host_patterns() {
        assert!(check_host_pattern("example.com").is_ok());
        assert!(check_host_pattern("*.example.com").is_ok());
        assert!(check_host_pattern("::1").is_ok());
        assert!(check_host_pattern("example.com:8080")
            .expect_err("port")
            .contains("write \"example.com\""));
        assert!(check_host_pattern("https://example.com").is_err());
        assert!(check_host_pattern("a.*.com").is_err());
    }

    #[test]
    fn names_and_env() {
        assert!(check_name("inventory-v2.eu_1").is_ok());
        assert!(check_name("a/b").expect_err("slash").contains("'/'"));
        assert!(check_name("").is_err());
        assert!(is_env_name("LEVEE_ADMIN_TOKEN"));
        assert!(!is_env_name("1X"));
        assert!(!is_env_name(""));
    }
}
