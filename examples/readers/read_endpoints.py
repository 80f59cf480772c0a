#!/usr/bin/env python3
"""A Roster reader in Python: validates a published endpoints.json against the
committed JSON Schema and prints what a consumer would route to.

Usage: read_endpoints.py SCHEMA ENDPOINTS_JSON [PART_JSON ...]
Needs only the standard library and `jsonschema` (Debian: python3-jsonschema).
Prints one JSON object: {"valid": true, "revision": N, "ready": ["instance/address:port", ...]}
or {"valid": false, "errors": ["path: message", ...]} and exits 1.
A stale document (the operator could not publish the current set, e.g. over the
ConfigMap budget) is valid but must not be routed from: it prints
{"valid": true, "revision": N, "stale": {...}, "ready": []} and exits 2.

Format 2 (a split document, docs/publish.md): ENDPOINTS_JSON is the head and
the PART_JSON files are the `endpoints-part.json` texts of its part ConfigMaps,
in any order; the format-2 schemas are read from SCHEMA's directory. A part the
head lists that is not given, or not at the head's revision and hash, is a torn
read: it prints {"valid": true, "torn": "..."} and exits 3 (read the head again).
"""
import hashlib
import json
import os
import sys

import jsonschema


def validator(path):
    with open(path, encoding="utf-8") as f:
        schema = json.load(f)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def errors_of(v, doc, prefix=""):
    errors = sorted(v.iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [prefix + "/".join(str(p) for p in e.absolute_path) + ": " + e.message for e in errors]


def fail(errors):
    print(json.dumps({"valid": False, "errors": errors}))
    return 1


def assemble(schema_dir, head, part_paths):
    """The endpoints of a format-2 head, or (None, result, exit code)."""
    part_v = validator(os.path.join(schema_dir, "endpoints-part.v2.schema.json"))
    texts = {}
    for path in part_paths:
        with open(path, "rb") as f:
            data = f.read()
        texts[hashlib.sha256(data).hexdigest()] = data
    endpoints = []
    for index, ref in enumerate(head["parts"]):
        data = texts.get(ref["sha256"])
        if data is None:
            return None, {"valid": True, "torn": f"part {ref['name']} missing or not at revision {head['revision']}"}, 3
        part = json.loads(data.decode("utf-8"))
        errs = errors_of(part_v, part, ref["name"] + ": ")
        if errs:
            return None, {"valid": False, "errors": errs}, 1
        if part["revision"] != head["revision"] or part["index"] != index or len(part["endpoints"]) != ref["endpoints"]:
            return None, {"valid": False, "errors": [f"{ref['name']}: does not match the head"]}, 1
        endpoints.extend(part["endpoints"])
    if len(endpoints) != head["endpointCount"]:
        return None, {"valid": False, "errors": ["the parts do not hold endpointCount endpoints"]}, 1
    return endpoints, None, 0


def main() -> int:
    schema_path, doc_path, part_paths = sys.argv[1], sys.argv[2], sys.argv[3:]
    with open(doc_path, encoding="utf-8") as f:
        doc = json.load(f)
    if doc.get("formatVersion") == 2:
        schema_dir = os.path.dirname(os.path.abspath(schema_path))
        errs = errors_of(validator(os.path.join(schema_dir, "endpoints.v2.schema.json")), doc)
        if errs:
            return fail(errs)
        endpoints, result, code = assemble(schema_dir, doc, part_paths)
        if endpoints is None:
            print(json.dumps(result))
            return code
    else:
        errs = errors_of(validator(schema_path), doc)
        if errs:
            return fail(errs)
        if doc["formatVersion"] != 1:
            return fail([f"unsupported formatVersion {doc['formatVersion']}"])
        if doc.get("stale") is not None:
            print(json.dumps({"valid": True, "revision": doc["revision"], "stale": doc["stale"], "ready": []}))
            return 2
        endpoints = doc["endpoints"]
    # What JSON Schema cannot express: ready is true exactly for Ready and Panic.
    ready = []
    for ep in endpoints:
        if ep["ready"] != (ep["state"] in ("Ready", "Panic")):
            return fail([f"{ep['instance']}: ready contradicts state"])
        if ep["ready"]:
            ready.append(f"{ep['instance']}/{ep['address']}:{ep['ports'][0]['port']}")
    print(json.dumps({"valid": True, "revision": doc["revision"], "strategy": doc["loadBalancing"]["strategy"], "ready": ready}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
