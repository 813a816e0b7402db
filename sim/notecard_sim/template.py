"""Note template byte accounting, from the type hints Blues documents for note.template.

Hints (note-c's TINT8.. constants): true = bool (1 byte); 11/12/13/14/18 = signed int of
1/2/3/4/8 bytes; 21/22/23/24 = unsigned int of 1/2/3/4 bytes; 12.1/14.1/18.1 = IEEE float of
2/4/8 bytes; a string "N" of digits = UTF-8 text of at most N bytes (fixed, "0" = variable length,
stored as its bytes plus a terminator); any other string reserves its own length. Other integer
hints count as 4-byte ints and other float hints as 4-byte floats (the simulator's choice).
A template without `format:"compact"` also carries metadata (time, location, location time):
counted as 16 bytes (the simulator's estimate; the card does not document it).
"""

INT_SIZES = {11: 1, 12: 2, 13: 3, 14: 4, 18: 8, 21: 1, 22: 2, 23: 3, 24: 4}
INT_RANGES = {11: (-2**7, 2**7 - 1), 12: (-2**15, 2**15 - 1), 13: (-2**23, 2**23 - 1),
              14: (-2**31, 2**31 - 1), 18: (-2**63, 2**63 - 1), 21: (0, 2**8 - 1),
              22: (0, 2**16 - 1), 23: (0, 2**24 - 1), 24: (0, 2**32 - 1)}
FLOAT_SIZES = {12.1: 2, 14.1: 4, 18.1: 8}
META_BYTES = 16


class TemplateError(Exception):
    pass


def _field(hint):
    """(kind, size, extra) for one hint value."""
    if isinstance(hint, bool):
        return ("bool", 1, None)
    if isinstance(hint, int):
        return ("int", INT_SIZES.get(hint, 4), INT_RANGES.get(hint, INT_RANGES[14]))
    if isinstance(hint, float):
        return ("float", FLOAT_SIZES.get(hint, 4), None)
    if isinstance(hint, str):
        if hint.isdigit():
            n = int(hint)
            return ("string", n, n == 0)
        return ("string", len(hint.encode("utf-8")), False)
    if isinstance(hint, dict):
        return ("object", None, compile_body(hint))
    raise TemplateError("template field type is not supported {template}")


def compile_body(body):
    return {k: _field(v) for k, v in body.items()}


def fixed_size(fields):
    total = 0
    for kind, size, extra in fields.values():
        if kind == "object":
            total += fixed_size(extra)
        elif kind == "string" and extra:
            total += 1
        else:
            total += size
    return total


def record_size(template):
    """Bytes of one record without variable-length content (the note.template `bytes`)."""
    n = fixed_size(compile_body(template["body"]))
    if template.get("format") != "compact":
        n += META_BYTES
    return n


def _check(fields, body, path=""):
    """Bytes a body takes under the template; raises TemplateError when it does not fit."""
    total = 0
    for key, value in body.items():
        if key not in fields:
            raise TemplateError("field '%s%s' is not in the template {template-incompatible}"
                                % (path, key))
        kind, size, extra = fields[key]
        bad = TemplateError("field '%s%s' does not match its template type "
                            "{template-incompatible}" % (path, key))
        if kind == "bool":
            if not isinstance(value, bool):
                raise bad
        elif kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad
            if not extra[0] <= value <= extra[1]:
                raise TemplateError("field '%s%s' is out of range for its template type "
                                    "{template-incompatible}" % (path, key))
        elif kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise bad
        elif kind == "string":
            if not isinstance(value, str):
                raise bad
            n = len(value.encode("utf-8"))
            if extra:
                total += n
            elif n > size:
                raise TemplateError("field '%s%s' is longer than its template allows "
                                    "{template-incompatible}" % (path, key))
        elif kind == "object":
            if not isinstance(value, dict):
                raise bad
            total += _check(extra, value, path + key + ".")
    return total


def note_size(template, body, payload_len):
    """On-air bytes of one templated note (fixed record + variable strings + payload)."""
    fields = compile_body(template["body"])
    variable = _check(fields, body or {})
    return record_size(template) + variable + payload_len
