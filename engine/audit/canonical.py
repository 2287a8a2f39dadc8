"""Canonical JSON: the one byte form of a value that the audit log hashes and compares.
Same value in, same bytes out, on every machine and Python version; see `canonical_json`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import msgspec

from engine.decision import NotPlain
from engine.decision import plain as to_plain
from engine.errors import CanonicalError

__all__ = ["canonical_json", "plain", "sha256_hex"]


def canonical_json(value: Any) -> bytes:
    """The canonical JSON bytes of `value`.

    Specification (version 1):
    - Output is UTF-8 JSON with no insignificant whitespace: separators are exactly "," and ":".
    - Object keys must be strings; members are sorted by key in Unicode code point order
      (Python's `str` ordering, not RFC 8785's UTF-16 order); duplicate keys cannot arise.
    - Strings are emitted as UTF-8, not \\u-escaped, except `"`, `\\` and control characters
      U+0000..U+001F, which use JSON's short escapes (\\n, \\t, ...) or \\u00XX. Lone surrogates are refused.
    - Integers (and bools: true/false) are JSON numbers in decimal without exponent; None is null.
    - `Decimal` is a JSON *string* holding `str(d)`, which keeps its exponent: Decimal("1.50") -> "1.50",
      distinct from "1.5". NaN and infinities are refused.
    - `datetime.datetime` -> ISO 8601 string via isoformat() (naive datetimes are refused: a log
      read years later must not guess a time zone); `datetime.date` -> "YYYY-MM-DD".
    - Enums -> their value; lists and tuples -> arrays; dataclasses -> objects of their fields.
    - Floats are refused: binary floats have no single decimal spelling a regulator can re-read.
      Convert them explicitly (Decimal, or a string) before they reach the log.
    - Anything else (bytes, sets, objects) is refused with CanonicalError.
    Parsing the output with `json.loads` gives `plain(value)`, and canonical_json of that is the same bytes.
    The value rules are engine.decision.plain's (floats="refuse"); this adds the byte form.
    """
    return dumps_plain(plain(value))


def dumps_plain(value: Any) -> bytes:
    """canonical_json of a value that is already `plain` (e.g. a built record's body): the same
    bytes without walking the value again.

    msgspec writes them (~10x faster than json.dumps on a decision record): for plain values its
    sorted-key, UTF-8 output is json.dumps(sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    byte for byte (the same short escapes and lowercase \\u00XX for control characters, keys in
    code point order, integers of any size). A value it has no form for (a str or int subclass)
    takes json.dumps itself; json_dumps_plain is the reference the tests compare it with."""
    try:
        return _encode(value)
    except (TypeError, OverflowError):
        return json_dumps_plain(value)
    except UnicodeEncodeError as exc:
        raise CanonicalError(f"string is not valid Unicode: {exc.reason}") from None


def json_dumps_plain(value: Any) -> bytes:
    """dumps_plain through the standard library's json.dumps: the specification's reference form."""
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalError(f"string is not valid Unicode: {exc.reason}") from None


_encode = msgspec.json.Encoder(order="sorted").encode


def plain(value: Any) -> Any:
    """`value` as JSON-native types only (dict with str keys, list, str, int, bool, None): the
    engine.decision.plain contract with floats refused, raising CanonicalError."""
    try:
        return to_plain(value, "refuse")
    except NotPlain as exc:
        raise CanonicalError(str(exc)) from None


def plain_text_floats(value: Any) -> Any:
    """Like `plain`, but floats become their repr text instead of being refused (audit records
    keep raw model outputs and timings as exact text)."""
    try:
        return to_plain(value, "text")
    except NotPlain as exc:
        raise CanonicalError(str(exc)) from None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
