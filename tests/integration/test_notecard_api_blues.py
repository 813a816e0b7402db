#!/usr/bin/python3
"""api.json (the project's Notecard API description) against Blues' published schema set, an
optional extra named by NOTEGW_SCHEMA_DIR: every difference in the requests api.json
describes (a field Blues' schema lacks, a type, an enum value, a required key, a missing
schema) must be a row of the reviewed table in docs/notecard-api.md, with its reason; a new
difference, or a row that no longer matches one, fails. Fields Blues describes and api.json
leaves out are not differences: api.json describes what notegw uses."""
import json
import os

from simtest import check, finish
from sim import TOP_SRCDIR, api, schema_dir

TABLE_DOC = os.path.join(TOP_SRCDIR, "docs", "notecard-api.md")
TABLE_HEADING = "## Differences from Blues' schemas"
KINDS = {"no-schema", "extra", "type", "enum", "required", "optional"}

if not schema_dir():
    print("SKIP: NOTEGW_SCHEMA_DIR not set", flush=True)
    raise SystemExit(77)
if not os.path.isdir(schema_dir()):
    print("NOTEGW_SCHEMA_DIR is not a directory: %s" % schema_dir(), flush=True)
    raise SystemExit(1)


def blues_types(p):
    """The set of type names a Blues property allows ("string[]" for arrays of strings)."""
    types = set()
    alts = [p] + p.get("oneOf", []) + p.get("anyOf", [])
    for a in alts:
        t = a.get("type")
        for x in t if isinstance(t, list) else [t] if t else []:
            if x == "array" and (a.get("items") or {}).get("type") == "string":
                x = "string[]"
            types.add(x)
    return types


def our_types(spec):
    return set(spec["type"].split("|"))


def differences(a):
    out = set()
    for name in a.names():
        r = a.requests[name]
        for side, kind in (("request", "req"), ("answer", "rsp")):
            path = os.path.join(schema_dir(), "%s.%s.notecard.api.json" % (name, kind))
            if not os.path.exists(path):
                out.add((name, side, "-", "no-schema"))
                continue
            with open(path, encoding="utf-8") as f:
                schema = json.load(f)
            props = {k: v for k, v in schema.get("properties", {}).items()
                     if k not in ("req", "cmd")}
            ours = r[side]
            for field, spec in ours["fields"].items():
                s = {"type": spec} if isinstance(spec, str) else spec
                p = props.get(field)
                if p is None:
                    out.add((name, side, field, "extra"))
                    continue
                bt = blues_types(p)
                if bt and our_types(s) != bt:
                    out.add((name, side, field, "type"))
                if "enum" in s and "enum" in p and set(s["enum"]) - set(p["enum"]):
                    out.add((name, side, field, "enum"))
            breq = set(schema.get("required", [])) - {"req", "cmd"}
            oreq = set(ours.get("required", []))
            for field in oreq - breq:
                out.add((name, side, field, "required"))
            for field in breq - oreq:
                out.add((name, side, field, "optional"))
    return out


def table():
    """{(request, side, field, kind): reason} from the reviewed table."""
    rows = {}
    with open(TABLE_DOC, encoding="utf-8") as f:
        text = f.read()
    check(TABLE_HEADING in text, "%s has the heading %r" % (TABLE_DOC, TABLE_HEADING))
    section = text.split(TABLE_HEADING, 1)[-1].split("\n## ", 1)[0]
    for line in section.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or cells[0] in ("request", "") or set(cells[0]) <= set("-: "):
            continue
        key = tuple(c.strip("`") for c in cells[:4])
        check(key[3] in KINDS, "table row %s: difference is one of %s" % (key, sorted(KINDS)))
        check(cells[4] != "", "table row %s has a reason" % (key,))
        check(key not in rows, "table row %s listed once" % (key,))
        rows[key] = cells[4]
    return rows


found = differences(api())
reviewed = table()
for d in sorted(found):
    if d in reviewed:
        print("difference %s: %s" % (" ".join(d), reviewed[d]), flush=True)
    else:
        check(False, "new difference, not in the table of %s: | %s | reason |" %
              (os.path.relpath(TABLE_DOC, TOP_SRCDIR), " | ".join(d)))
for d in sorted(set(reviewed) - found):
    check(False, "table row no longer a difference (remove it): %s" % " | ".join(d))
check(len(found) > 0 or not reviewed, "differences found")
finish()
