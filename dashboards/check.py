#!/usr/bin/env python3
"""Checks dashboards/*.json against SPEC §11 (python3 standard library only).

For every PromQL query of every dashboard (each panel target's `expr`, and each templating
variable's `label_values(...)` query) it fails when:

- a metric name is not a SPEC §11 series: counters under their SPEC name (ending in `_total`),
  gauges under theirs, the histogram only as `_bucket`, `_sum` or `_count`;
- a selector matches a label the metric does not have (its SPEC labels, plus `service` and
  `language` which every series carries, plus `le` on `_bucket` only), or uses `__name__`;
- a `by (...)` / `without (...)` label is missing from any metric inside that aggregation, or
  an `on (...)` / `ignoring (...)` / `group_left (...)` / `group_right (...)` label from every
  metric of the enclosing expression;
- it calls `label_replace` / `label_join` (they invent labels) or an unknown function.

It also checks the dashboard itself: `__inputs` declares DS_PROMETHEUS, every panel and target
uses it, panel ids are unique, panels do not overlap, the `service`, `language` and `endpoint`
variables exist, and every SPEC §11 metric appears on some panel. The table below is SPEC §11;
it is cross-checked against the two files of public strings, crates/levee-core/src/names.rs and
go/names.go, so a renamed metric fails here rather than on a blank panel.

Usage: python3 dashboards/check.py [dashboard.json ...]   (default: every dashboards/*.json)
"""

import glob
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# SPEC §11: metric -> (type, labels). Every series also has `service` and `language`.
SPEC = {
    "levee_calls_total": ("counter", ("endpoint", "outcome")),
    "levee_call_duration_seconds": ("histogram", ("endpoint", "outcome")),
    "levee_breaker_state": ("gauge", ("endpoint", "state")),
    "levee_breaker_transitions_total": ("counter", ("endpoint", "from", "to", "reason")),
    "levee_bulkhead_in_flight": ("gauge", ("partition",)),
    "levee_bulkhead_queue_depth": ("gauge", ("partition",)),
    "levee_bulkhead_rejections_total": ("counter", ("partition", "criticality", "reason")),
    "levee_retries_total": ("counter", ("endpoint", "reason")),
    "levee_retry_budget_exhausted_total": ("counter", ("endpoint",)),
    "levee_fallbacks_total": ("counter", ("route", "kind")),
    "levee_rate_limited_total": ("counter", ("route",)),
    "levee_degradation_level": ("gauge", ()),
    "levee_registry_connected": ("gauge", ()),
}
COMMON = ("service", "language")


def series_labels():
    """Every series name a query may use -> (SPEC metric, allowed labels)."""
    out = {}
    for name, (kind, labels) in SPEC.items():
        allowed = set(labels) | set(COMMON)
        if kind == "histogram":
            out[name + "_bucket"] = (name, allowed | {"le"})
            out[name + "_sum"] = (name, allowed)
            out[name + "_count"] = (name, allowed)
        else:
            out[name] = (name, allowed)
    return out


SERIES = series_labels()

AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}
FUNCTIONS = {
    "abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min",
    "day_of_month", "day_of_week", "day_of_year", "days_in_month", "delta", "deriv", "exp",
    "floor", "histogram_avg", "histogram_count", "histogram_fraction", "histogram_quantile",
    "histogram_stddev", "histogram_stdvar", "histogram_sum", "holt_winters", "hour", "idelta",
    "increase", "irate", "ln", "log10", "log2", "minute", "month", "predict_linear", "rate",
    "resets", "round", "scalar", "sgn", "sort", "sort_desc", "sqrt", "time", "timestamp",
    "vector", "year", "avg_over_time", "min_over_time", "max_over_time", "sum_over_time",
    "count_over_time", "quantile_over_time", "stddev_over_time", "stdvar_over_time",
    "last_over_time", "present_over_time", "start", "end", "acos", "acosh", "asin", "asinh", "atan", "atanh",
    "cos", "cosh", "sin", "sinh", "tan", "tanh", "deg", "rad", "pi",
}
FORBIDDEN_FUNCTIONS = {"label_replace", "label_join"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "atan2", "inf", "nan"}

TOKEN = re.compile(
    r"""\s+|(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)"""
    r"""|(?P<range>\[[^\]]*\])"""
    r"""|(?P<dur>(?:\d+(?:ms|s|m|h|d|w|y))+(?![A-Za-z0-9_:]))"""
    r"""|(?P<num>0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"""
    r"""|(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)"""
    r"""|(?P<var>\$\{?[A-Za-z0-9_]+\}?)"""
    r"""|(?P<op>==|!=|=~|!~|<=|>=|[-+*/%^<>=(){},@])"""
)


class QueryError(Exception):
    pass


def tokenize(expr):
    tokens, pos = [], 0
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m:
            raise QueryError(f"cannot read {expr[pos:pos + 20]!r}")
        pos = m.end()
        for kind in ("str", "range", "dur", "num", "ident", "var", "op"):
            if m.group(kind) is not None:
                tokens.append((kind, m.group(kind)))
                break
    return tokens


def nest(tokens):
    """Parenthesised groups as nested lists; `{...}` selectors as ("sel", [tokens])."""
    stack = [[]]
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        if text == "{":
            j = i + 1
            while j < len(tokens) and tokens[j][1] != "}":
                j += 1
            if j == len(tokens):
                raise QueryError("unclosed {")
            stack[-1].append(("sel", tokens[i + 1:j]))
            i = j + 1
            continue
        if text == "}":
            raise QueryError("unbalanced }")
        if text == "(":
            stack.append([])
        elif text == ")":
            if len(stack) == 1:
                raise QueryError("unbalanced )")
            group = stack.pop()
            stack[-1].append(("group", group))
        else:
            stack[-1].append((kind, text))
        i += 1
    if len(stack) != 1:
        raise QueryError("unbalanced (")
    return stack[0]


def selector_labels(sel_tokens):
    """Label names of a `{...}` matcher list."""
    names, i = [], 0
    while i < len(sel_tokens):
        kind, text = sel_tokens[i]
        if text == ",":
            i += 1
            continue
        if (kind != "ident" or i + 2 >= len(sel_tokens)
                or sel_tokens[i + 1][1] not in ("=", "!=", "=~", "!~")
                or sel_tokens[i + 2][0] != "str"):
            raise QueryError(f"bad label matcher near {text!r}")
        names.append(text)
        i += 3
    return names


def metrics_in(items):
    """Every series name in a nested list (recursively)."""
    found = []
    for kind, value in items:
        if kind == "metric":
            found.append(value)
        elif kind == "group":
            found.extend(metrics_in(value))
    return found


def label_list(group):
    names = []
    for kind, text in group:
        if kind == "ident":
            names.append(text)
        elif text != ",":
            raise QueryError(f"bad label list near {text!r}")
    return names


def check_items(items, errors):
    """Marks metrics, checks selectors and functions; returns the items with metrics resolved."""
    out = []
    for idx, (kind, value) in enumerate(items):
        nxt = items[idx + 1] if idx + 1 < len(items) else (None, None)
        prev = items[idx - 1] if idx > 0 else (None, None)
        if kind == "group" and prev[0] == "ident" and prev[1] in GROUPING:
            try:
                out.append(("labels", label_list(value)))
            except QueryError as e:
                errors.append(str(e))
        elif kind == "group":
            out.append(("group", check_items(value, errors)))
        elif kind == "sel":
            if prev[0] != "ident" or prev[1] in KEYWORDS:
                errors.append("a selector without a metric name")
            continue
        elif kind == "ident":
            if value in KEYWORDS:
                out.append(("kw", value))
            elif nxt[0] == "group" or value in AGGREGATIONS and nxt[1] in ("by", "without"):
                if value in FORBIDDEN_FUNCTIONS:
                    errors.append(f"{value}() invents labels outside SPEC §11")
                elif value not in FUNCTIONS and value not in AGGREGATIONS:
                    errors.append(f"unknown function {value}()")
                out.append(("func", value))
            elif value in SERIES:
                out.append(("metric", value))
                if nxt[0] == "sel":
                    _, allowed = SERIES[value]
                    for label in selector_labels(nxt[1]):
                        if label == "__name__":
                            errors.append(f"{value}: __name__ matchers are not allowed")
                        elif label not in allowed:
                            errors.append(f"{value}: label {label!r} is not one of "
                                          f"{sorted(allowed)}")
            else:
                base = value[:-len("_total")] if value.endswith("_total") else None
                hint = ""
                if value + "_total" in SERIES:
                    hint = f" (counters are exposed as {value}_total)"
                elif value in SPEC:
                    hint = f" (a histogram: use {value}_bucket, _sum or _count)"
                elif base in SPEC:
                    hint = f" (gauge: {base})"
                errors.append(f"{value} is not a SPEC §11 metric{hint}")
        else:
            out.append((kind, value))
    return out


def check_grouping(items, errors):
    """Checks by/without/on/ignoring/group_* label lists against the metrics they apply to."""
    scope = metrics_in(items)
    for idx, (kind, value) in enumerate(items):
        if kind == "group":
            check_grouping(value, errors)
        if kind != "kw" or value not in GROUPING:
            continue
        if idx + 1 >= len(items) or items[idx + 1][0] != "labels":
            if value in ("group_left", "group_right"):
                continue
            errors.append(f"{value} without a label list")
            continue
        labels = items[idx + 1][1]
        if value in ("by", "without"):
            # `agg by (l) (expr)` or `agg (expr) by (l)`
            if idx > 0 and items[idx - 1][0] == "func":
                arg = items[idx + 2] if idx + 2 < len(items) else (None, None)
            else:
                arg = items[idx - 1] if idx > 0 else (None, None)
            if arg[0] != "group":
                errors.append(f"cannot find the argument of {value} ({', '.join(labels)})")
                continue
            targets = metrics_in(arg[1])
        else:
            targets = scope
        for label in labels:
            missing = sorted({m for m in targets if label not in SERIES[m][1]})
            if missing:
                errors.append(f"{value} ({label}): {', '.join(missing)} has no label {label!r}")


def check_expr(expr):
    """The problems of one PromQL query (empty when it uses only SPEC §11 names and labels),
    and the SPEC metrics it reads."""
    errors = []
    try:
        items = check_items(nest(tokenize(expr)), errors)
        check_grouping(items, errors)
        used = {SERIES[m][0] for m in metrics_in(items)}
    except QueryError as e:
        return [str(e)], set()
    if not used and not errors:
        errors.append("reads no Levee metric")
    return errors, used


LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<sel>.+?)\s*,\s*)?(?P<label>[A-Za-z_]\w*)\s*\)\s*$",
                          re.S)


def check_variable_query(query):
    m = LABEL_VALUES.match(query)
    if not m:
        return [f"not a label_values(...) query: {query!r}"], set()
    if not m.group("sel"):
        return ["label_values(label) without a metric scans every series: name a SPEC metric"], set()
    errors, used = check_expr(m.group("sel"))
    items = nest(tokenize(m.group("sel")))
    names = [v for k, v in items if k == "ident" and v in SERIES]
    for name in names:
        if m.group("label") not in SERIES[name][1]:
            errors.append(f"{name} has no label {m.group('label')!r}")
    return errors, used


def all_panels(panels):
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))


def overlaps(a, b):
    return (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
            and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])


def check_dashboard(path):
    """(problems, number of queries checked)."""
    problems, count, used = [], 0, set()
    with open(path, encoding="utf-8") as f:
        dash = json.load(f)
    inputs = [i.get("name") for i in dash.get("__inputs", []) if i.get("pluginId") == "prometheus"]
    if inputs != ["DS_PROMETHEUS"]:
        problems.append("__inputs must declare exactly one Prometheus input, DS_PROMETHEUS")
    ds_ok = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    ids, boxes = set(), []
    for p in all_panels(dash.get("panels", [])):
        where = f"panel {p.get('id')} {p.get('title')!r}"
        if p.get("id") in ids:
            problems.append(f"{where}: duplicate id")
        ids.add(p.get("id"))
        gp = p.get("gridPos", {})
        if not all(isinstance(gp.get(k), int) for k in "xywh") or gp["x"] + gp["w"] > 24:
            problems.append(f"{where}: bad gridPos {gp}")
        else:
            for other_where, other in boxes:
                if overlaps(gp, other):
                    problems.append(f"{where}: overlaps {other_where}")
            boxes.append((where, gp))
        if p.get("type") == "row":
            continue
        if p.get("datasource") != ds_ok:
            problems.append(f"{where}: datasource must be {ds_ok}")
        if not p.get("targets"):
            problems.append(f"{where}: no queries")
        for t in p.get("targets", []):
            if t.get("datasource", ds_ok) != ds_ok:
                problems.append(f"{where} {t.get('refId')}: datasource must be {ds_ok}")
            if "expr" not in t:
                problems.append(f"{where} {t.get('refId')}: no expr")
                continue
            count += 1
            errors, u = check_expr(t["expr"])
            used |= u
            problems.extend(f"{where} {t.get('refId')}: {e}" for e in errors)
    variables = {}
    for v in dash.get("templating", {}).get("list", []):
        variables[v.get("name")] = v
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        count += 1
        errors, _ = check_variable_query(q or "")
        problems.extend(f"variable {v.get('name')}: {e}" for e in errors)
    for name in ("service", "language", "endpoint"):
        if variables.get(name, {}).get("type") != "query":
            problems.append(f"templating variable {name!r} (label_values query) is missing")
    for name in sorted(set(SPEC) - used):
        problems.append(f"no panel shows {name}")
    return problems, count


def check_sources():
    """The SPEC table above against names.rs and names.go (names, types and labels)."""
    problems = []
    sources = {
        "crates/levee-core/src/names.rs":
            re.compile(r'///\s*(\w+)[^:\n]*(?::\s*(.*))?\n\s*pub const \w+: &str = "(levee_\w+)";'),
        "go/names.go":
            re.compile(r'\s*Metric\w+\s*=\s*"(levee_\w+)"\s*//\s*(\w+)(?:[^:\n]*:\s*(.*))?'),
    }
    for rel, pattern in sources.items():
        path = os.path.join(ROOT, rel)
        if not os.path.exists(path):
            problems.append(f"{rel} not found")
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        found = {}
        for m in pattern.finditer(text):
            if rel.endswith(".rs"):
                kind, labels, name = m.group(1), m.group(2), m.group(3)
            else:
                name, kind, labels = m.group(1), m.group(2), m.group(3)
            found[name] = (kind, tuple(re.findall(r"[a-z_]+", labels or "")))
        for name, (kind, labels) in SPEC.items():
            if name not in found:
                problems.append(f"{rel}: {name} not found")
            elif found[name] != (kind, labels):
                problems.append(f"{rel}: {name} is {found[name]}, SPEC §11 says {(kind, labels)}")
        for name in sorted(set(found) - set(SPEC)):
            problems.append(f"{rel}: {name} is not in SPEC §11 (update dashboards/check.py)")
    return problems


def self_test():
    """The checker must reject what it exists to catch."""
    ok = [
        'sum by (endpoint, outcome) (rate(levee_calls_total{service=~"$service"}[$__rate_interval]))',
        'histogram_quantile(0.99, sum by (le, endpoint) (rate(levee_call_duration_seconds_bucket[5m])))',
        'max(levee_degradation_level) or vector(0)',
        'sum(rate(levee_call_duration_seconds_sum[5m])) / sum(rate(levee_call_duration_seconds_count[5m]))',
    ]
    bad = [
        'rate(levee_calls[5m])',                                    # counter without _total
        'rate(levee_requests_total[5m])',                           # not a SPEC name
        'levee_call_duration_seconds',                              # histogram without suffix
        'sum(rate(levee_calls_total{route="x"}[5m]))',              # label of another metric
        'sum by (route) (rate(levee_calls_total[5m]))',             # grouping label missing
        'sum(rate(levee_retries_total[5m])) by (outcome)',          # trailing by, label missing
        'histogram_quantile(0.5, sum by (le) (rate(levee_calls_total[5m])))',  # le off a histogram
        '{__name__="levee_calls_total"}',                           # selector without a name
        'label_replace(levee_degradation_level, "x", "$1", "service", "(.*)")',
        'levee_calls_total_created',                                # OpenMetrics extra series
    ]
    failures = [q for q in ok if check_expr(q)[0]]
    failures += [q for q in bad if not check_expr(q)[0]]
    if check_variable_query('label_values(levee_calls_total, endpoint)')[0]:
        failures.append("label_values(levee_calls_total, endpoint)")
    if not check_variable_query('label_values(levee_degradation_level, endpoint)')[0]:
        failures.append("label_values(levee_degradation_level, endpoint)")
    return failures


def main(argv):
    failures = self_test()
    if failures:
        print("dashboards: check.py self-test failed on:", *failures, sep="\n  ", file=sys.stderr)
        return 2
    problems = check_sources()
    paths = argv[1:] or sorted(glob.glob(os.path.join(HERE, "*.json")))
    if not paths:
        problems.append("no dashboards/*.json found")
    total = 0
    for path in paths:
        found, count = check_dashboard(path)
        total += count
        problems.extend(f"{os.path.relpath(path, ROOT)}: {p}" for p in found)
    if problems:
        print("dashboards: queries or dashboard do not match SPEC §11:", file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)
        return 1
    print(f"dashboards: {total} queries use only SPEC metric names")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
