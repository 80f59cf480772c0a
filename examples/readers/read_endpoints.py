#!/usr/bin/env python3
"""A Roster reader in Python: validates a published endpoints.json against the
committed JSON Schema and prints what a consumer would route to.

Usage: read_endpoints.py SCHEMA ENDPOINTS_JSON
Needs only the standard library and `jsonschema` (Debian: python3-jsonschema).
Prints one JSON object: {"valid": true, "revision": N, "ready": ["instance/address:port", ...]}
or {"valid": false, "errors": ["path: message", ...]} and exits 1.
A stale document (the operator could not publish the current set, e.g. over the
ConfigMap budget) is valid but must not be routed from: it prints
{"valid": true, "revision": N, "stale": {...}, "ready": []} and exits 2.
"""
import json
import sys

import jsonschema


def main() -> int:
    schema_path, doc_path = sys.argv[1], sys.argv[2]
    with open(schema_path, encoding="utf-8") as f:
        schema = json.load(f)
    with open(doc_path, encoding="utf-8") as f:
        doc = json.load(f)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        out = ["/".join(str(p) for p in e.absolute_path) + ": " + e.message for e in errors]
        print(json.dumps({"valid": False, "errors": out}))
        return 1
    if doc["formatVersion"] != 1:
        print(json.dumps({"valid": False, "errors": [f"unsupported formatVersion {doc['formatVersion']}"]}))
        return 1
    if doc.get("stale") is not None:
        print(json.dumps({"valid": True, "revision": doc["revision"], "stale": doc["stale"], "ready": []}))
        return 2
    # What JSON Schema cannot express: ready is true exactly for Ready and Panic.
    ready = []
    for ep in doc["endpoints"]:
        if ep["ready"] != (ep["state"] in ("Ready", "Panic")):
            print(json.dumps({"valid": False, "errors": [f"{ep['instance']}: ready contradicts state"]}))
            return 1
        if ep["ready"]:
            ready.append(f"{ep['instance']}/{ep['address']}:{ep['ports'][0]['port']}")
    print(json.dumps({"valid": True, "revision": doc["revision"], "strategy": doc["loadBalancing"]["strategy"], "ready": ready}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
