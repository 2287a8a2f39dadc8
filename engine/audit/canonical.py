"""Canonical JSON: the one byte form of a value that the audit log hashes and compares.
Same value in, same bytes out, on every machine and Python version; see `canonical_json`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from decimal import Decimal
from enum import Enum
from typing import Any

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
    """
    return dumps_plain(plain(value))


def dumps_plain(value: Any) -> bytes:
    """canonical_json of a value that is already `plain` (e.g. a built record's body): the same
    bytes without walking the value again."""
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalError(f"string is not valid Unicode: {exc.reason}") from None


def plain(value: Any) -> Any:
    """`value` as JSON-native types only (dict with str keys, list, str, int, bool, None)."""
    return _plain(value, False)


def plain_text_floats(value: Any) -> Any:
    """Like `plain`, but floats become their repr text instead of being refused: one walk that does
    what `plain(floats_as_text(value))` does, for building records on the decision path."""
    return _plain(value, True)


def _plain(value: Any, float_text: bool) -> Any:
    """`value` as JSON-native types only (dict with str keys, list, str, int, bool, None); floats
    are refused, or with `float_text` written as their shortest round-trip text (repr)."""
    kind = type(value)
    # exact-type fast paths first: records are mostly str/int/dict/list, and this runs per decision
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is dict:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise CanonicalError(f"object key {key!r} is not a string")
            out[key] = _plain(item, float_text)
        return out
    if kind is list or kind is tuple:
        return [_plain(item, float_text) for item in value]
    if isinstance(value, Enum):  # before str: a StrEnum member becomes its plain value
        return _plain(value.value, float_text)
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if float_text:
            return repr(value)
        raise CanonicalError(f"float {value!r} is not allowed in canonical JSON; use Decimal or a string")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise CanonicalError(f"Decimal {value} is not finite")
        return str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise CanonicalError(f"datetime {value.isoformat()} has no time zone")
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        mapped: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalError(f"object key {key!r} is not a string")
            mapped[key] = _plain(item, float_text)
        return mapped
    if isinstance(value, (list, tuple)):
        return [_plain(item, float_text) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name), float_text) for f in dataclasses.fields(value)}
    raise CanonicalError(f"{type(value).__name__} has no canonical JSON form")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
