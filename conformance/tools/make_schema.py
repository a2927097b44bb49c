#!/usr/bin/env python3
"""Writes conformance/schema.json from the step catalogue below.

The catalogue is the single list of each policy's actions, their arguments and the
expectation keys the runners understand; edit it when a runner learns a new step, then run
`python3 conformance/tools/make_schema.py`. `make test` checks that schema.json is current.
"""
import json
import pathlib

DUR = {"type": "string", "pattern": r"^\s*[0-9.]+(ns|us|µs|μs|ms|s|m|h)([0-9.]+(ns|us|µs|μs|ms|s|m|h))*\s*$",
       "description": "a duration string such as 250ms, 1.5s or 1m30s"}
DUR_OR_NULL = {"anyOf": [DUR, {"type": "null"}]}
OUTCOME = {"enum": ["success", "failure", "timeout", "cancelled", "rejected", "ignored"]}
CRIT = {"enum": ["critical", "standard", "sheddable"]}
ID = {"type": "string", "minLength": 1}
INT = {"type": "integer", "minimum": 0}
BOOL = {"type": "boolean"}
STR = {"type": "string"}
ANY = {}
ATTEMPT = {"anyOf": [{"type": "integer", "minimum": 100, "maximum": 599},
                     {"type": "string", "pattern": "^[1-5][0-9][0-9]$"},
                     {"enum": ["connect_failure", "reset", "refused_stream", "timeout", "cancelled"]}]}
EVENTS = {"type": "array", "items": {"type": "object", "additionalProperties": False, "required": ["from", "to", "reason"],
          "properties": {"from": STR, "to": STR, "reason": STR, "at": DUR}}}
IDS = {"type": "array", "items": ID}
FLOAT_TEXT = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$", "description": "a float as decimal text, compared bit for bit"}
STR_OR_NULL = {"type": ["string", "null"]}
BUDGET = {"deposits": INT, "retries": INT, "available": INT}
BUCKET = {"available": INT, "tracked_keys": INT}

BREAKER_COMMON = {"state": STR, "events": EVENTS, "counted": INT, "failures": INT, "slow": INT, "consecutive_failures": INT}
BULKHEAD_COMMON = {"in_flight": INT, "queue_depth": INT, "limit": INT, "class_limits": {"type": "object"},
                   "granted": IDS, "evicted": IDS, "timed_out": IDS}

# policy -> action -> (args schema properties, required args, expectation properties)
CATALOGUE = {
    "breaker": {
        "acquire": ({"id": ID}, [], {**BREAKER_COMMON, "permitted": BOOL, "probe": BOOL, "shadow_rejected": BOOL, "retry_after": DUR_OR_NULL}),
        "record": ({"id": ID, "outcome": OUTCOME, "duration": DUR}, ["id", "outcome"], BREAKER_COMMON),
        "call": ({"outcome": OUTCOME, "duration": DUR}, ["outcome"], {**BREAKER_COMMON, "permitted": BOOL}),
        "calls": ({"outcome": OUTCOME, "duration": DUR, "count": INT}, ["outcome", "count"], {**BREAKER_COMMON, "rejected": INT}),
        "override": ({"state": {"enum": ["forced_open", "disabled", "none"]}}, ["state"], BREAKER_COMMON),
        "mode": ({"mode": {"enum": ["observe", "enforce"]}}, ["mode"], BREAKER_COMMON),
        "reconfigure": ({"config": {"type": "object"}}, ["config"], BREAKER_COMMON),
        "check": ({}, [], BREAKER_COMMON),
    },
    "bulkhead": {
        "acquire": ({"id": ID, "criticality": CRIT}, ["id"], {**BULKHEAD_COMMON, "result": {"enum": ["permitted", "queued", "rejected"]}, "reason": STR, "deadline": ANY}),
        "release": ({"id": ID}, ["id"], BULKHEAD_COMMON),
        "complete": ({"id": ID, "outcome": OUTCOME}, ["id", "outcome"], BULKHEAD_COMMON),
        "cancel": ({"id": ID}, ["id"], BULKHEAD_COMMON),
        "expire": ({}, [], {**BULKHEAD_COMMON, "expired": INT}),
        "state": ({}, [], BULKHEAD_COMMON),
    },
    "adaptive_limit": {
        "sample": ({"rtt": DUR, "in_flight": INT, "outcome": OUTCOME}, ["rtt", "in_flight", "outcome"], {"limit": INT, "estimate": FLOAT_TEXT, "long_rtt_ns": ANY}),
        "state": ({}, [], {"limit": INT, "estimate": FLOAT_TEXT, "long_rtt_ns": ANY}),
    },
    "retry": {
        "decide": ({"attempts_made": INT, "result": ATTEMPT, "idempotent": BOOL, "remaining": DUR_OR_NULL, "breaker_open": BOOL, "retry_after": DUR_OR_NULL, "previous_backoff": DUR_OR_NULL},
                   ["attempts_made", "result"], {"decision": {"enum": ["retry", "give_up"]}, "after": DUR, "backoff": DUR, "reason": STR, **BUDGET}),
        "backoff": ({"attempts_made": INT, "previous_backoff": DUR_OR_NULL}, ["attempts_made"], {"backoff": DUR}),
        "deposit": ({"count": INT}, [], BUDGET),
        "budget": ({}, [], BUDGET),
        "idempotent": ({"method": STR, "idempotency_key": BOOL}, ["method"], {"idempotent": BOOL}),
        "parse_retry_after": ({"value": STR, "now_unix": INT}, ["value"], {"retry_after": DUR_OR_NULL}),
    },
    "retry_budget": {
        "deposit": ({"count": INT}, [], BUDGET),
        "withdraw": ({"count": INT}, [], {"allowed": BOOL, "allowed_count": INT, **BUDGET}),
        "snapshot": ({}, [], BUDGET),
    },
    "deadline": {
        "parse_timeout_ms": ({"value": STR}, ["value"], {"remaining": DUR_OR_NULL, "error": ANY}),
        "format_timeout_ms": ({"remaining": DUR}, ["remaining"], {"value": STR}),
        "parse_grpc_timeout": ({"value": STR}, ["value"], {"remaining": DUR_OR_NULL, "error": ANY}),
        "format_grpc_timeout": ({"remaining": DUR}, ["remaining"], {"value": STR}),
        "effective": ({"route_timeout": DUR_OR_NULL, "inbound": DUR_OR_NULL}, [], {"deadline": DUR_OR_NULL}),
        "inbound": ({"timeout_ms": STR_OR_NULL, "grpc_timeout": STR_OR_NULL, "route_timeout": DUR_OR_NULL}, [], {"deadline": DUR_OR_NULL, "error": ANY, "code": ANY}),
        "outbound": ({}, [], {"remaining": DUR_OR_NULL, "timeout_ms": ANY, "grpc_timeout": ANY, "spent": BOOL}),
    },
    "rate_limit": {
        "request": ({"key": STR_OR_NULL}, [], {"allowed": BOOL, "retry_after": DUR_OR_NULL, **BUCKET}),
        "requests": ({"key": STR_OR_NULL, "count": INT}, ["count"], {"allowed_count": INT, "limited_count": INT, **BUCKET}),
        "inspect": ({"key": STR_OR_NULL}, [], BUCKET),
    },
    "outcome": {
        "classify": ({"result": ATTEMPT}, ["result"], {"outcome": OUTCOME, "counted": BOOL, "failure": BOOL}),
        "classify_grpc": ({"code": INT}, ["code"], {"outcome": OUTCOME, "counted": BOOL, "failure": BOOL}),
        "slow": ({"duration": DUR, "slow_call_duration": DUR}, ["duration", "slow_call_duration"], {"slow": BOOL}),
    },
    "duration": {
        "parse": ({"value": STR}, ["value"], {"nanos": {"type": ["integer", "null"]}, "error": {"type": ["string", "null"]}, "message_contains": STR}),
        "format": ({"nanos": INT}, ["nanos"], {"value": STR}),
    },
    "error": {
        "describe": ({"code": STR, "upstream": STR, "retry_after": DUR}, ["code"],
                     {"status": INT, "type": STR, "title": STR, "degraded": BOOL, "detail": STR, "retry_after_s": {"type": ["integer", "null"]}}),
    },
    "names": {
        "list": ({}, [], {k: {"type": "array", "items": STR} for k in
                          ["metrics", "headers", "outcomes", "breaker_states", "transition_reasons", "error_codes", "criticalities"]}),
    },
}

COMMON_ACTIONS = {
    "advance": DUR,
    "random": {"type": "array", "items": {"type": "number", "minimum": 0, "exclusiveMaximum": 1}},
}


def step_schema(actions):
    variants = []
    for name, schema in COMMON_ACTIONS.items():
        variants.append({"type": "object", "required": [name], "additionalProperties": False,
                         "properties": {name: schema, "comment": STR}})
    for name, (args, required, expect) in actions.items():
        variants.append({
            "type": "object", "required": [name], "additionalProperties": False,
            "properties": {
                name: {"type": "object", "additionalProperties": False, "required": required, "properties": args},
                "expect": {"type": "object", "additionalProperties": False, "properties": expect},
                "comment": STR,
            },
        })
    return {"oneOf": variants}


schema = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:levee:conformance:vector",
    "title": "Levee conformance vector",
    "description": "One behaviour of the Levee contract (SPEC.md) as timed steps with expected results. See conformance/README.md.",
    "type": "object",
    "additionalProperties": False,
    "required": ["description", "spec", "policy"],
    "properties": {
        "description": {"type": "string", "minLength": 10},
        "spec": {"type": "string", "description": "the SPEC section(s) this vector pins, e.g. §2"},
        "policy": {"enum": sorted(CATALOGUE)},
        "config": {"type": "object", "description": "the policy's config in the YAML shape; SPEC defaults for absent keys"},
        "config_error": {"type": "string", "minLength": 1, "description": "the config must be rejected with a message containing this"},
        "steps": {"type": "array", "minItems": 1},
    },
    "oneOf": [{"required": ["steps"], "not": {"required": ["config_error"]}},
              {"required": ["config_error"], "not": {"required": ["steps"]}}],
    "allOf": [
        {"if": {"properties": {"policy": {"const": policy}}},
         "then": {"properties": {"steps": {"items": step_schema(actions)}}}}
        for policy, actions in sorted(CATALOGUE.items())
    ],
}

out = pathlib.Path(__file__).resolve().parent.parent / "schema.json"
text = json.dumps(schema, indent=1, ensure_ascii=False) + "\n"
if __name__ == "__main__":
    import sys
    if "--check" in sys.argv:
        if out.read_text() != text:
            sys.exit("conformance/schema.json is out of date: run python3 conformance/tools/make_schema.py")
    else:
        out.write_text(text)
