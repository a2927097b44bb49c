//! One YAML snippet per kind of mistake, with the exact `line:column`, key path and the words
//! of the message that tell the user what to do.

use levee_config::{parse, parse_in, Problem};

/// A valid config the tests change one line of.
const GOOD: &str = "\
listeners:
  - address: 127.0.0.1:8080
upstreams:
  inventory:
    endpoints: [127.0.0.1:7001, 127.0.0.1:7002]
routes:
  - match: {path_prefix: /inventory}
    upstream: inventory
";

fn problems(text: &str) -> Vec<Problem> {
    match parse(text, "levee.yaml") {
        Ok(config) => panic!("expected problems, got a config: {config:?}"),
        Err(err) => err.into_problems(),
    }
}

/// Exactly one problem, at `line:column`, about `path`, whose message holds every fragment.
#[track_caller]
fn one(text: &str, line: usize, column: usize, path: &str, fragments: &[&str]) -> Problem {
    let all = problems(text);
    assert_eq!(all.len(), 1, "expected one problem, got {all:#?}");
    let p = all.into_iter().next().expect("one problem");
    assert_eq!(
        (p.line, p.column, p.path.as_str()),
        (line, column, path),
        "{p}"
    );
    for fragment in fragments {
        assert!(p.message.contains(fragment), "{fragment:?} not in: {p}");
    }
    p
}

/// GOOD with `extra` appended under the first route.
fn with_route(extra: &str) -> String {
    format!("{GOOD}{extra}")
}

/// GOOD with `extra` appended under the inventory upstream.
fn with_upstream(extra: &str) -> String {
    GOOD.replace(
        "    endpoints: [127.0.0.1:7001, 127.0.0.1:7002]\n",
        &format!("    endpoints: [127.0.0.1:7001, 127.0.0.1:7002]\n{extra}"),
    )
}

#[test]
fn the_good_base_is_good() {
    let config = parse(GOOD, "levee.yaml").expect("valid");
    assert_eq!(config.routes.len(), 1);
}

#[test]
fn display_is_file_line_column_path_message() {
    let p = one(
        &with_route("    timeout: 800\n"),
        9,
        14,
        "routes[0].timeout",
        &[],
    );
    assert_eq!(
        p.to_string(),
        "levee.yaml:9:14: routes[0].timeout: duration `800` has no unit: write `800ms` or \
         `800s` (units: ns, us, ms, s, m, h)"
    );
}

// ---- YAML syntax ---------------------------------------------------------------------------

#[test]
fn unclosed_flow_list() {
    let text = GOOD.replace("127.0.0.1:7002]", "127.0.0.1:7002");
    one(
        &text,
        6,
        7,
        "",
        &[
            "YAML syntax error",
            "the `[` at line 5, column 16 is not closed",
        ],
    );
}

#[test]
fn tab_indentation() {
    let text = GOOD.replace("    upstream: inventory", "\tupstream: inventory");
    let p = one(
        &text,
        8,
        2,
        "",
        &["YAML syntax error", "indent with spaces"],
    );
    assert!(p
        .to_string()
        .starts_with("levee.yaml:8:2: YAML syntax error"));
}

#[test]
fn bad_indentation() {
    let text = GOOD.replace("    upstream: inventory", "   upstream: inventory");
    one(&text, 8, 4, "", &["YAML syntax error", "indent the key"]);
}

#[test]
fn second_document() {
    let text = format!("{GOOD}---\nservice: other\n");
    one(&text, 9, 1, "", &["second YAML document"]);
}

#[test]
fn unsupported_tag() {
    let text = with_route("    timeout: !include timeout.yaml\n");
    one(&text, 9, 14, "", &["`!include` is not supported"]);
}

#[test]
fn empty_file() {
    one(
        "",
        1,
        1,
        "",
        &["no settings", "listeners", "upstreams", "routes"],
    );
    one("# only a comment\n", 1, 1, "", &["no settings"]);
}

#[test]
fn duplicate_key() {
    let text = with_route("    upstream: other\n");
    one(
        &text,
        9,
        5,
        "routes[0].upstream",
        &["duplicate key \"upstream\"", "line 8"],
    );
}

// ---- types, unknown keys, missing keys -----------------------------------------------------

#[test]
fn unknown_key_suggests_the_closest() {
    let text = with_upstream("    breaker: {failure_threshold: 50}\n");
    let p = one(
        &text,
        6,
        15,
        "upstreams.inventory.breaker.failure_threshold",
        &[
            "unknown key \"failure_threshold\"; did you mean \"failure_rate_threshold\"?",
            "allowed here: window, minimum_calls, failure_rate_threshold",
        ],
    );
    assert!(p.message.starts_with("unknown key"));
}

#[test]
fn unknown_key_in_go_case_style() {
    let text = with_route("    retry: {maxAttempts: 3}\n");
    one(
        &text,
        9,
        13,
        "routes[0].retry.maxAttempts",
        &["did you mean \"max_attempts\"?"],
    );
}

#[test]
fn unknown_top_level_key() {
    let text = format!("listener:\n  - address: 127.0.0.1:8081\n{GOOD}");
    one(
        &text,
        1,
        1,
        "listener",
        &["unknown key \"listener\"; did you mean \"listeners\"?"],
    );
}

#[test]
fn type_error() {
    let text = with_route("    retry: {max_attempts: many}\n");
    one(
        &text,
        9,
        27,
        "routes[0].retry.max_attempts",
        &["expected a whole number (0 or more), found the text \"many\""],
    );
}

#[test]
fn quoted_number() {
    let text = with_route("    retry: {max_attempts: \"3\"}\n");
    one(
        &text,
        9,
        27,
        "routes[0].retry.max_attempts",
        &["remove the quotes"],
    );
}

#[test]
fn yaml_1_1_boolean() {
    let text = with_route("    retry: {retry_non_idempotent: yes}\n");
    one(
        &text,
        9,
        35,
        "routes[0].retry.retry_non_idempotent",
        &["expected true or false", "write true or false"],
    );
}

#[test]
fn list_where_a_block_belongs() {
    let text = with_upstream("    breaker: [50]\n");
    one(
        &text,
        6,
        14,
        "upstreams.inventory.breaker",
        &["expected a block of settings", "found a list"],
    );
}

#[test]
fn unknown_enum_value() {
    let text = with_upstream("    balancer: roundrobin\n");
    one(
        &text,
        6,
        15,
        "upstreams.inventory.balancer",
        &[
            "unknown value \"roundrobin\"; did you mean \"round_robin\"?",
            "p2c_ewma, round_robin, least_request",
        ],
    );
}

#[test]
fn bare_number_duration() {
    let text = with_upstream("    connect_timeout: 250\n");
    one(
        &text,
        6,
        22,
        "upstreams.inventory.connect_timeout",
        &["duration `250` has no unit", "write `250ms` or `250s`"],
    );
}

#[test]
fn unknown_duration_unit() {
    let text = with_route("    fallback: {stale_if_error: {max_stale: 5min}}\n");
    one(
        &text,
        9,
        44,
        "routes[0].fallback.stale_if_error.max_stale",
        &["unknown unit `min`", "ns, us, ms, s, m, h"],
    );
}

#[test]
fn bad_rate() {
    let text = with_route("    rate_limit: {rate: 100}\n");
    one(
        &text,
        9,
        24,
        "routes[0].rate_limit.rate",
        &["rate `100` has no unit", "`100/s`"],
    );
}

#[test]
fn bad_status_list() {
    let text = with_upstream("    failure_statuses: [5xx, 700]\n");
    one(
        &text,
        6,
        23,
        "upstreams.inventory.failure_statuses",
        &["status 700 is outside 100-599"],
    );
}

#[test]
fn missing_required_key_in_a_route() {
    let text = GOOD.replace("    upstream: inventory\n", "    timeout: 1s\n");
    one(
        &text,
        7,
        5,
        "routes[0]",
        &["missing required key \"upstream\"", "upstream: inventory"],
    );
}

#[test]
fn missing_top_level_keys_are_all_listed() {
    let all = problems("service: checkout\n");
    let messages: Vec<&str> = all.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(all.len(), 3, "{messages:#?}");
    for (p, key) in all.iter().zip(["listeners", "upstreams", "routes"]) {
        assert_eq!((p.line, p.column, p.path.as_str()), (1, 1, ""));
        assert!(
            p.message
                .starts_with(&format!("missing required key \"{key}\"")),
            "{p}"
        );
    }
}

#[test]
fn type_errors_are_reported_one_per_block() {
    let text = "\
listeners:
  - address: 127.0.0.1:8080
    nmae: ingress
upstreams:
  inventory:
    endpoints: [127.0.0.1:7001]
    connect_timeout: 1
routes:
  - upstream: inventory
    timeout: fast
  - upstream: inventory
    criticality: urgent
";
    let found: Vec<(usize, usize, String)> = problems(text)
        .into_iter()
        .map(|p| (p.line, p.column, p.path))
        .collect();
    assert_eq!(
        found,
        [
            (3, 5, "listeners[0].nmae".to_string()),
            (7, 22, "upstreams.inventory.connect_timeout".to_string()),
            (10, 14, "routes[0].timeout".to_string()),
            (12, 18, "routes[1].criticality".to_string()),
        ]
    );
}

#[test]
fn type_errors_are_reported_key_by_key_within_a_block() {
    let text = "\
listeners: [{address: 127.0.0.1:8080}]
upstreams:
  inventory:
    endpoints: 127.0.0.1:7001
    health_check: {}
routes:
  - upstream: inventory
    criticality:
    timeout: 1.5
    retry: {backoff: {jitter: ful}}
";
    let found: Vec<(usize, usize, String, String)> = problems(text)
        .into_iter()
        .map(|p| (p.line, p.column, p.path, p.message))
        .collect();
    let expected = [
        (4, 16, "upstreams.inventory.endpoints", "expected a list"),
        (
            5,
            19,
            "upstreams.inventory.health_check",
            "missing required key \"path\"",
        ),
        (
            8,
            16,
            "routes[0].criticality",
            "expected one of: sheddable, standard, critical; found nothing",
        ),
        (9, 14, "routes[0].timeout", "duration `1.5` has no unit"),
        (
            10,
            31,
            "routes[0].retry.backoff.jitter",
            "did you mean \"full\"?",
        ),
    ];
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for (got, want) in found.iter().zip(expected) {
        assert_eq!((got.0, got.1, got.2.as_str()), (want.0, want.1, want.2));
        assert!(got.3.contains(want.3), "{got:?}");
    }
}

#[test]
fn missing_keys_at_two_depths_are_both_reported() {
    let text = GOOD.replace(
        "    upstream: inventory\n",
        "    fallback: {stale_if_error: {}}\n",
    );
    let found: Vec<(usize, usize, String)> = problems(&text)
        .into_iter()
        .map(|p| (p.line, p.column, p.path))
        .collect();
    assert_eq!(
        found,
        [
            (7, 5, "routes[0]".to_string()),
            (8, 32, "routes[0].fallback.stale_if_error".to_string()),
        ]
    );
}

// ---- meaning -------------------------------------------------------------------------------

#[test]
fn dangling_upstream_lists_the_defined_ones() {
    let text = GOOD.replace("    upstream: inventory", "    upstream: inventroy");
    one(
        &text,
        8,
        15,
        "routes[0].upstream",
        &[
            "no upstream named \"inventroy\"",
            "did you mean \"inventory\"?",
            "defined upstreams: inventory",
        ],
    );
}

#[test]
fn breaker_validation_points_at_the_key() {
    let text = with_upstream("    breaker:\n      failure_rate_threshold: 150\n");
    one(
        &text,
        7,
        31,
        "upstreams.inventory.breaker.failure_rate_threshold",
        &["failure_rate_threshold is 150", "at most 100"],
    );
}

#[test]
fn breaker_validation_of_a_defaulted_key_points_at_the_block() {
    let text = with_upstream("    breaker: {open: {wait: 90s}}\n");
    one(
        &text,
        6,
        21,
        "upstreams.inventory.breaker.open.max_wait",
        &["open.max_wait (1m) is shorter than open.wait (90s)"],
    );
}

#[test]
fn bulkhead_validation() {
    let text = with_upstream("    bulkhead: {max_concurrent: 10, max_queue: 5}\n");
    one(
        &text,
        6,
        47,
        "upstreams.inventory.bulkhead.max_queue",
        &["max_queue is 5 but max_wait is 0s", "set max_wait"],
    );
}

#[test]
fn route_bulkhead_and_breaker_are_validated_too() {
    let text = with_route("    bulkhead: {max_concurrent: 0}\n    breaker: {minimum_calls: 0}\n");
    let all = problems(&text);
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!(
        (all[0].line, all[0].column, all[0].path.as_str()),
        (9, 32, "routes[0].bulkhead.max_concurrent")
    );
    assert_eq!(
        (all[1].line, all[1].column, all[1].path.as_str()),
        (10, 30, "routes[0].breaker.minimum_calls")
    );
}

#[test]
fn retry_validation() {
    let text = with_route("    retry: {max_attempts: 0}\n");
    one(
        &text,
        9,
        27,
        "routes[0].retry.max_attempts",
        &["max_attempts is 0", "use 1 to turn retries off"],
    );
    let text = with_route("    retry:\n      backoff: {base: 2s, max: 1s}\n");
    one(
        &text,
        10,
        23,
        "routes[0].retry.backoff.base",
        &["backoff.base (2s) is longer than backoff.max (1s)"],
    );
}

#[test]
fn rate_limit_validation() {
    let text = with_route("    rate_limit: {rate: 10/s, burst: 0}\n");
    one(
        &text,
        9,
        37,
        "routes[0].rate_limit.burst",
        &["rate_limit.burst is 0", "at least 1"],
    );
}

#[test]
fn listener_address_must_have_a_port() {
    let text = GOOD.replace("127.0.0.1:8080", "127.0.0.1");
    one(
        &text,
        2,
        14,
        "listeners[0].address",
        &["`127.0.0.1` has no port", "`127.0.0.1:8080`"],
    );
}

#[test]
fn listener_hostnames_are_fine_garbage_is_not() {
    let text = GOOD.replace("127.0.0.1:8080", "localhost:8080");
    parse(&text, "levee.yaml").expect("hostnames resolve at bind time");
    let text = GOOD.replace("127.0.0.1:8080", "\"local host:8080\"");
    one(
        &text,
        2,
        14,
        "listeners[0].address",
        &["not a valid host name"],
    );
    let text = GOOD.replace("127.0.0.1:8080", "::1:8080");
    one(&text, 2, 14, "listeners[0].address", &["`[::1]:8080`"]);
}

#[test]
fn duplicate_listener_addresses() {
    let text = GOOD.replace(
        "  - address: 127.0.0.1:8080\n",
        "  - address: 127.0.0.1:8080\n  - {name: second, address: 0.0.0.0:8080}\n",
    );
    one(
        &text,
        3,
        29,
        "listeners[1].address",
        &["already taken by listeners[0]", "change the port"],
    );
    // Port 0 means "any free port": never a clash.
    let text = GOOD.replace(
        "  - address: 127.0.0.1:8080\n",
        "  - address: 127.0.0.1:0\n  - address: 127.0.0.1:0\n",
    );
    parse(&text, "levee.yaml").expect("port 0 twice is fine");
}

#[test]
fn listener_on_the_default_admin_address() {
    let text = GOOD.replace("127.0.0.1:8080", "127.0.0.1:9901");
    one(
        &text,
        2,
        14,
        "listeners[0].address",
        &["the admin API's address", "admin.address"],
    );
}

#[test]
fn admin_address_is_checked() {
    let text = format!("{GOOD}admin: {{address: 9901}}\n");
    one(&text, 9, 18, "admin.address", &["`9901` has no port"]);
}

#[test]
fn no_listeners_or_routes() {
    let text = GOOD
        .replace("  - address: 127.0.0.1:8080\n", "")
        .replace("listeners:", "listeners: []");
    one(
        &text,
        1,
        12,
        "listeners",
        &["no listeners", "add at least one"],
    );
    let text = GOOD
        .replace(
            "  - match: {path_prefix: /inventory}\n    upstream: inventory\n",
            "",
        )
        .replace("routes:", "routes: []");
    one(&text, 6, 9, "routes", &["no routes"]);
}

#[test]
fn endpoints_must_be_host_port() {
    let text = GOOD.replace("127.0.0.1:7002]", "http://127.0.0.1:7002]");
    one(
        &text,
        5,
        33,
        "upstreams.inventory.endpoints[1]",
        &["is a URL", "`127.0.0.1:7002`"],
    );
    let text = GOOD.replace("127.0.0.1:7002]", "127.0.0.1:0]");
    one(
        &text,
        5,
        33,
        "upstreams.inventory.endpoints[1]",
        &["port 0"],
    );
    let text = GOOD.replace("127.0.0.1:7002]", "127.0.0.1:7001]");
    one(
        &text,
        5,
        33,
        "upstreams.inventory.endpoints[1]",
        &["listed twice"],
    );
}

#[test]
fn empty_endpoints() {
    let text = GOOD.replace("[127.0.0.1:7001, 127.0.0.1:7002]", "[]");
    one(
        &text,
        5,
        16,
        "upstreams.inventory.endpoints",
        &["no endpoints", "host:port"],
    );
}

#[test]
fn upstream_names_are_plain() {
    let text = GOOD
        .replace("  inventory:\n", "  inventory/v2:\n")
        .replace("upstream: inventory", "upstream: inventory/v2");
    one(&text, 4, 3, "upstreams.\"inventory/v2\"", &["contains '/'"]);
}

#[test]
fn health_check_path() {
    let text = with_upstream("    health_check: {path: healthz}\n");
    one(
        &text,
        6,
        26,
        "upstreams.inventory.health_check.path",
        &["must start with `/`", "`/healthz`"],
    );
    let text = with_upstream("    health_check: {path: /h, interval: 1s, timeout: 2s}\n");
    one(
        &text,
        6,
        53,
        "upstreams.inventory.health_check.timeout",
        &["longer than the interval"],
    );
}

#[test]
fn static_fallback_status() {
    let text = with_route("    fallback: {static: {status: 700}}\n");
    one(
        &text,
        9,
        33,
        "routes[0].fallback.static.status",
        &["status 700", "100 to 599"],
    );
    let text = with_route("    fallback: {static: {headers: {content-length: \"5\"}}}\n");
    one(
        &text,
        9,
        35,
        "routes[0].fallback.static.headers.content-length",
        &["set by Levee"],
    );
}

#[test]
fn shed_at_level_range() {
    let text = with_route("    shed_at_level: 4\n");
    one(
        &text,
        9,
        20,
        "routes[0].shed_at_level",
        &["shed_at_level is 4", "0 (normal) to 3"],
    );
    let text = with_route("    shed_at_level: 300\n");
    one(
        &text,
        9,
        20,
        "routes[0].shed_at_level",
        &["the number 300 is out of range", "0 to 255"],
    );
}

#[test]
fn match_paths_start_with_a_slash() {
    let text = GOOD.replace("{path_prefix: /inventory}", "{path_prefix: inventory}");
    one(
        &text,
        7,
        26,
        "routes[0].match.path_prefix",
        &["must start with `/`", "`/inventory`"],
    );
    let text = GOOD.replace("{path_prefix: /inventory}", "{path: items}");
    one(
        &text,
        7,
        19,
        "routes[0].match.path",
        &["must start with `/`"],
    );
}

#[test]
fn match_headers_and_methods() {
    let text = GOOD.replace(
        "{path_prefix: /inventory}",
        "{path_prefix: /inventory, headers: {\"x client\": a}}",
    );
    one(
        &text,
        7,
        48,
        "routes[0].match.headers.\"x client\"",
        &["not a valid header name"],
    );
    let text = GOOD.replace(
        "{path_prefix: /inventory}",
        "{path_prefix: /inventory, methods: [GET, post]}",
    );
    one(
        &text,
        7,
        53,
        "routes[0].match.methods[1]",
        &["case-sensitive", "write POST"],
    );
    let text = GOOD.replace(
        "{path_prefix: /inventory}",
        "{path_prefix: /inventory, host: \"shop.example.com:443\"}",
    );
    one(&text, 7, 44, "routes[0].match.host", &["without the port"]);
}

#[test]
fn duplicate_route_names() {
    let text = format!(
        "{GOOD}    name: items\n  - name: items\n    match: {{path_prefix: /other}}\n    \
         upstream: inventory\n"
    );
    one(
        &text,
        10,
        11,
        "routes[1].name",
        &["\"items\" is already used by routes[0]"],
    );
    // A default name (`route2`) counts too.
    let text = format!(
        "{GOOD}    name: route2\n  - match: {{path_prefix: /other}}\n    upstream: inventory\n"
    );
    one(
        &text,
        10,
        5,
        "routes[1].name",
        &["\"route2\" is already used"],
    );
}

#[test]
fn shadowed_route() {
    let text = format!("{GOOD}  - match: {{path_prefix: /inventory}}\n    upstream: inventory\n");
    one(
        &text,
        9,
        12,
        "routes[1].match",
        &["can never match", "routes[0]"],
    );
}

#[test]
fn route_timeout_zero() {
    let text = with_route("    timeout: 0s\n");
    one(&text, 9, 14, "routes[0].timeout", &["timeout is 0s"]);
}

#[test]
fn stale_if_error_is_fine_on_any_method() {
    let text = GOOD.replace(
        "{path_prefix: /inventory}",
        "{path_prefix: /inventory, methods: [POST]}",
    );
    let text = format!("{text}    fallback: {{stale_if_error: {{max_stale: 5m}}}}\n");
    parse(&text, "levee.yaml").expect("only GETs are cached; other methods skip the cache");
}

#[test]
fn registry_remote_needs_a_url() {
    let text = format!("{GOOD}registry: {{mode: remote}}\n");
    one(
        &text,
        9,
        18,
        "registry.mode",
        &["mode is remote but no url", "url: http://"],
    );
    let text = format!("{GOOD}registry: {{mode: remote, url: 127.0.0.1:9911}}\n");
    one(
        &text,
        9,
        31,
        "registry.url",
        &["not an http:// or https:// URL"],
    );
    let text = format!("{GOOD}registry: {{url: http://127.0.0.1:9911}}\n");
    one(&text, 9, 17, "registry.url", &["mode is embedded"]);
    let text = format!(
        "{GOOD}registry: {{mode: remote, url: http://127.0.0.1:9911, backend: redis://r:6379}}\n"
    );
    parse(&text, "levee.yaml").expect("valid remote registry");
}

#[test]
fn limits_must_be_positive() {
    let text = format!("{GOOD}limits:\n  max_body_bytes: 0\n  idle_timeout: 0s\n");
    let all = problems(&text);
    let found: Vec<(usize, usize, &str)> = all
        .iter()
        .map(|p| (p.line, p.column, p.path.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (10, 19, "limits.max_body_bytes"),
            (11, 17, "limits.idle_timeout")
        ]
    );
}

#[test]
fn drain_must_be_sane() {
    let text = format!("{GOOD}drain: {{timeout: 0s}}\n");
    one(&text, 9, 18, "drain.timeout", &["is 0s", "in-flight"]);
    let text = format!("{GOOD}drain: {{delay: 30m, timeout: 45m}}\n");
    one(&text, 9, 8, "drain", &["more than an hour"]);
}

#[test]
fn anchors_and_merge_keys_share_blocks() {
    let text = "\
listeners: [{address: 127.0.0.1:8080}]
upstreams:
  inventory: &defaults
    endpoints: [127.0.0.1:7001]
    breaker: {failure_rate_threshold: 40}
  pricing:
    <<: *defaults
    endpoints: [127.0.0.1:7005]
routes:
  - {match: {path_prefix: /inventory}, upstream: inventory}
  - {match: {path_prefix: /price}, upstream: pricing}
";
    let config = parse(text, "levee.yaml").expect("valid");
    let pricing = &config.upstreams["pricing"];
    assert_eq!(pricing.endpoints, ["127.0.0.1:7005"]);
    assert_eq!(pricing.breaker.failure_rate_threshold, 40.0);
}

#[test]
fn many_problems_at_once_in_file_order() {
    let text = "\
listeners:
  - address: 127.0.0.1
upstreams:
  inventory:
    endpoints: []
routes:
  - match: {path_prefix: inventory}
    upstream: nowhere
    shed_at_level: 9
";
    let found: Vec<(usize, usize)> = problems(text)
        .into_iter()
        .map(|p| (p.line, p.column))
        .collect();
    assert_eq!(found, [(2, 14), (5, 16), (7, 26), (8, 15), (9, 20)]);
}

#[test]
fn byte_order_mark_and_crlf_line_ends() {
    parse(&format!("\u{feff}{GOOD}"), "levee.yaml").expect("a BOM is fine");
    let crlf = GOOD.replace('\n', "\r\n");
    parse(&crlf, "levee.yaml").expect("CRLF is fine");
    let bad = with_route("    timeout: 800\n").replace('\n', "\r\n");
    one(&bad, 9, 14, "routes[0].timeout", &["no unit"]);
}

#[test]
fn many_routes_stay_fast() {
    let mut text = String::from(GOOD);
    for i in 0..5000 {
        text.push_str(&format!(
            "  - {{match: {{path_prefix: /r{i}}}, upstream: inventory}}\n"
        ));
    }
    let started = std::time::Instant::now();
    let config = parse(&text, "levee.yaml").expect("valid");
    assert_eq!(config.routes.len(), 5001);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

// ---- files ---------------------------------------------------------------------------------

fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("levee-config-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn tls_files_must_exist_and_are_resolved() {
    let dir = scratch_dir("tls");
    std::fs::create_dir_all(dir.join("certs")).expect("certs dir");
    std::fs::write(dir.join("certs/server.pem"), "PEM").expect("cert");
    let text = GOOD.replace(
        "  - address: 127.0.0.1:8080\n",
        "  - address: 127.0.0.1:8443\n    tls: {cert: certs/server.pem, key: certs/server.key}\n",
    );
    let err = parse_in(&text, "levee.yaml", &dir).expect_err("key missing");
    let p = &err.problems()[0];
    assert_eq!(err.problems().len(), 1, "{err}");
    assert_eq!(
        (p.line, p.column, p.path.as_str()),
        (3, 40, "listeners[0].tls.key")
    );
    assert!(p
        .message
        .contains("cannot read the TLS private key `certs/server.key`"));
    assert!(
        p.message.contains("server.key)"),
        "shows the resolved path: {p}"
    );

    std::fs::write(dir.join("certs/server.key"), "PEM").expect("key");
    let config = parse_in(&text, "levee.yaml", &dir).expect("valid");
    let tls = config.listeners[0].tls.as_ref().expect("tls");
    assert_eq!(
        std::path::Path::new(&tls.cert),
        dir.join("certs/server.pem")
    );
    assert_eq!(std::path::Path::new(&tls.key), dir.join("certs/server.key"));

    // load() resolves against the config file's own directory.
    std::fs::write(dir.join("levee.yaml"), &text).expect("config");
    let loaded = levee_config::load(dir.join("levee.yaml")).expect("valid");
    assert_eq!(loaded, config);

    // parse() touches no files.
    parse(&text.replace("server.key", "absent.key"), "levee.yaml").expect("no file checks");
}

#[test]
fn load_reports_unreadable_files() {
    let dir = scratch_dir("unreadable");
    let missing = dir.join("missing.yaml");
    let err = levee_config::load(&missing).expect_err("missing");
    let p = &err.problems()[0];
    assert_eq!((p.line, p.column), (0, 0));
    assert!(p.to_string().starts_with(&format!(
        "{}: cannot read the config file",
        missing.display()
    )));

    let bad = dir.join("latin1.yaml");
    std::fs::write(&bad, b"listeners:\n  - address: caf\xe9:80\n").expect("write");
    let err = levee_config::load(&bad).expect_err("not UTF-8");
    let p = &err.problems()[0];
    assert_eq!((p.line, p.column), (2, 17));
    assert!(p.message.contains("not UTF-8"));
}

#[test]
fn huge_input_is_refused_quickly() {
    let text = "#".repeat(levee_config::MAX_FILE_BYTES + 1);
    let err = parse(&text, "big.yaml").expect_err("too large");
    assert!(err.to_string().contains("larger than"));
}
