#!/usr/bin/env python3
"""Validates every conformance vector against conformance/schema.json.

Run by `make test`. Fails naming the file and the JSON path of each violation, and fails
if fewer than MINIMUM vectors exist (the foundation promises at least 80).
"""
import json
import pathlib
import sys

import jsonschema

MINIMUM = 80
root = pathlib.Path(__file__).resolve().parent
schema = json.loads((root / "schema.json").read_text())
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)

files = sorted((root / "vectors").rglob("*.json"))
errors = []
for path in files:
    rel = path.relative_to(root.parent)
    try:
        vector = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        errors.append(f"{rel}: invalid JSON: {e}")
        continue
    if path.parent.name != vector.get("policy"):
        errors.append(f"{rel}: policy {vector.get('policy')!r} does not match its directory {path.parent.name!r}")
    for err in sorted(validator.iter_errors(vector), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in err.absolute_path) or "(top)"
        errors.append(f"{rel}: {where}: {err.message[:300]}")

print(f"schema: {len(files) - len({e.split(':')[0] for e in errors})} of {len(files)} vectors valid")
if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
if len(files) < MINIMUM:
    print(f"only {len(files)} vectors; the suite promises at least {MINIMUM}", file=sys.stderr)
    sys.exit(1)
