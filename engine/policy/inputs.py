"""Validate an application (nested JSON) against the policy's declared inputs: flatten to dotted
paths, coerce to typed values (Decimal never via binary float), and collect every violation."""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from engine.errors import FieldViolation, InvalidInput, shown
from engine.policy.contract import Fact, InputDecl

_MISSING = object()


def flatten(application: Mapping[str, Any], prefix: str = "") -> tuple[dict[str, Any], list[FieldViolation]]:
    """Dotted paths -> leaf values. One value per field: a path given twice (a dotted key beside its
    nested form, `{"applicant.age": 20, "applicant": {"age": 35}}`) is a violation naming both forms,
    never a silent pick (which one a map yields first is not stable across processes)."""
    flat: dict[str, Any] = {}
    spelled: dict[str, tuple[str, ...]] = {}  # path -> the keys the application spelled it with
    bad: list[FieldViolation] = []
    _flatten(application, prefix, (), flat, spelled, bad)
    return flat, bad


def _flatten(
    node: Mapping[str, Any],
    prefix: str,
    keys: tuple[str, ...],
    flat: dict[str, Any],
    spelled: dict[str, tuple[str, ...]],
    bad: list[FieldViolation],
) -> None:
    for key, value in node.items():
        if not isinstance(key, str) or not key:
            bad.append(FieldViolation(f"{prefix}{key}", "field names must be non-empty strings"))
            continue
        path = f"{prefix}{key}"
        form = (*keys, key)
        if isinstance(value, Mapping):
            if not value:
                _put(flat, spelled, bad, path, form, value)  # kept so a declared leaf reports the wrong type
            _flatten(value, path + ".", (*keys, key), flat, spelled, bad)
        else:
            _put(flat, spelled, bad, path, form, value)


def _put(
    flat: dict[str, Any],
    spelled: dict[str, tuple[str, ...]],
    bad: list[FieldViolation],
    path: str,
    form: tuple[str, ...],
    value: Any,
) -> None:
    if path in spelled:  # spelled out only here: the common case never builds the text
        twice = f"given twice: as {_spelling(spelled[path])} and as {_spelling(form)}; send it once"
        bad.append(FieldViolation(path, twice))
        return
    flat[path] = value
    spelled[path] = form


def _spelling(keys: tuple[str, ...]) -> str:
    """How a caller wrote a path: applicant -> age, or the single key "applicant.age"."""
    return " -> ".join(shown(k) for k in keys)


def coerce(decl: InputDecl, value: Any) -> tuple[Any, str | None]:
    """(typed value, None) or (None, what is wrong)."""
    kind = decl.type.kind
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return None, f"expected an integer, got {_json_type(value)}"
        if abs(value) >= DECIMAL_LIMIT:
            return None, f"must be below 10^18 in magnitude, got {shown(value)}"
        typed: Any = value
    elif kind == "decimal":
        typed, problem = parse_decimal(value)
        if problem is not None:
            return None, problem
    elif kind == "boolean":
        if not isinstance(value, bool):
            return None, f"expected true or false, got {_json_type(value)}"
        typed = value
    elif kind in ("string", "enum"):
        if not isinstance(value, str):
            return None, f"expected a string, got {_json_type(value)}"
        if kind == "enum" and value not in decl.type.values:
            close = difflib.get_close_matches(value, decl.type.values, n=1)
            hint = f"; did you mean {shown(close[0])}?" if close else ""
            return None, f"{shown(value)} is not one of {list(decl.type.values)}{hint}"
        typed = value
    else:  # date
        typed = to_date(value)
        if typed is None:
            return None, f"expected a date YYYY-MM-DD, got {_json_type(value)}"
    if decl.min is not None and typed < decl.min:
        return None, f"must be >= {decl.min}, got {typed}"
    if decl.max is not None and typed > decl.max:
        return None, f"must be <= {decl.max}, got {typed}"
    return typed, None


# Decimals a caller sends: ASCII digits only (no full-width or Arabic-Indic digits, which Decimal()
# would accept), short enough to parse cheaply, and within what the pipeline's arithmetic (28
# significant digits) handles exactly.
DECIMAL_TEXT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,4})?", re.ASCII)
MAX_DECIMAL_CHARS = 64
MAX_DECIMAL_PLACES = 28
DECIMAL_LIMIT = Decimal(10) ** 18


def parse_decimal(value: Any) -> tuple[Decimal | None, str | None]:
    """(Decimal, None) or (None, why not). Never via binary float; numbers beyond +-10^18 or with more
    than 28 decimal places are refused rather than overflowing later."""
    if isinstance(value, bool):
        return None, "expected a decimal number or decimal string, got boolean"
    if isinstance(value, Decimal):
        dec = value
    elif isinstance(value, int):
        if abs(value) >= DECIMAL_LIMIT:
            return None, f"must be below 10^18 in magnitude, got {shown(value)}"
        dec = Decimal(value)
    elif isinstance(value, float):
        dec = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_DECIMAL_CHARS:
            return (
                None,
                f"expected a decimal string of at most {MAX_DECIMAL_CHARS} characters, got {shown(value)}",
            )
        if not DECIMAL_TEXT.fullmatch(text):
            return None, f'expected a decimal string of ASCII digits like "1234.56", got {shown(value)}'
        dec = Decimal(text)
    else:
        return None, f"expected a decimal number or decimal string, got {_json_type(value)}"
    if not dec.is_finite():
        return None, f"must be a finite number, got {shown(value)}"
    if abs(dec) >= DECIMAL_LIMIT or int(dec.as_tuple().exponent) < -MAX_DECIMAL_PLACES:
        return (
            None,
            f"must be below 10^18 with at most {MAX_DECIMAL_PLACES} decimal places, got {shown(value)}",
        )
    return dec, None


def to_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return None
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return None
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float, Decimal)):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {value!r}" if len(value) <= 40 else "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def _prefixes(inputs: Mapping[str, InputDecl]) -> set[str]:
    """The objects the inputs live in (`applicant` of `applicant.age`): a caller may send one as null."""
    return {".".join(name.split(".")[:i]) for name in inputs for i in range(1, name.count(".") + 1)}


def coerce_container(decl: InputDecl, value: Any, path: str) -> tuple[Any, list[FieldViolation]]:
    """A list (a tuple of typed items) or an object item (a dict of typed fields), every bad item
    or field its own violation, named by index and field (`bureau.tradelines[3].balance`)."""
    if decl.type.kind == "list":
        assert decl.items is not None
        if not isinstance(value, (list, tuple)):
            return None, [FieldViolation(path, f"expected a list, got {_json_type(value)}")]
        if len(value) > decl.max_items:
            return None, [FieldViolation(path, f"at most {decl.max_items} items, got {len(value)}")]
        items: list[Any] = []
        bad: list[FieldViolation] = []
        for i, item in enumerate(value):
            typed, problems = coerce_item(decl.items, item, f"{path}[{i}]")
            items.append(typed)
            bad += problems
        return (None, bad) if bad else (tuple(items), [])
    if not isinstance(value, Mapping):
        return None, [FieldViolation(path, f"expected an object, got {_json_type(value)}")]
    known = {field.name for field in decl.fields}
    bad = [
        FieldViolation(f"{path}.{key}", "unknown field (not a field of these items)")
        for key in value
        if key not in known
    ]
    typed_fields: dict[str, Any] = {}
    for field in decl.fields:
        got = value.get(field.name)
        if got is None:
            if field.required:
                bad.append(FieldViolation(f"{path}.{field.name}", "required field is missing"))
            typed_fields[field.name] = None
            continue
        typed, problems = coerce_item(field, got, f"{path}.{field.name}")
        typed_fields[field.name] = typed
        bad += problems
    return (None, bad) if bad else (typed_fields, [])


def coerce_item(decl: InputDecl, value: Any, path: str) -> tuple[Any, list[FieldViolation]]:
    if value is None:
        return None, [FieldViolation(path, "an item cannot be null")]
    if decl.type.container:
        return coerce_container(decl, value, path)
    typed, problem = coerce(decl, value)
    return typed, [] if problem is None else [FieldViolation(path, problem)]


def validate_application(
    inputs: Mapping[str, InputDecl],
    application: Any,
    open_groups: tuple[str, ...] = (),
    today: dt.date | None = None,
) -> Fact:
    """The typed fact; InvalidInput lists every violation. Fields no input declares are refused, except
    inside `open_groups` (input_groups with `unknown_fields: ignore`), where they are dropped. A group
    sent as null or as an empty object `{}` is the group absent. `today` is the decision date a
    `default: today` input takes when the caller leaves it out (None: such an input is then required)."""
    if not isinstance(application, Mapping):
        raise InvalidInput([FieldViolation("", "the application must be a JSON object")])
    flat, violations = flatten(application)
    fact: Fact = {}
    for path, value in flat.items():
        if path in inputs:
            continue
        absent = value is None or (isinstance(value, Mapping) and not value)
        if absent and path in _prefixes(inputs):
            continue
        if not any(path.startswith(group + ".") for group in open_groups):
            violations.append(FieldViolation(path, "unknown field (not an input of this policy)"))
    for name, decl in inputs.items():
        value = flat.get(name, _MISSING)
        if value is _MISSING or value is None:
            if decl.default_today and today is not None:
                fact[name] = today
            elif decl.default is not None:
                fact[name] = decl.default
            elif decl.required:
                violations.append(FieldViolation(name, "required field is missing"))
            else:
                fact[name] = None
            continue
        if decl.type.container:
            typed, problems = coerce_container(decl, value, name)
            if problems:
                violations += problems
            else:
                fact[name] = typed
            continue
        typed, problem = coerce(decl, value)
        if problem and decl.pii:  # an error message (and the log line quoting it) never echoes personal data
            problem = f"expected a valid {decl.type.kind}; the value of a personal field is not repeated"
        if problem:
            violations.append(FieldViolation(name, problem))
        else:
            fact[name] = typed
    if violations:
        raise InvalidInput(sorted(violations, key=lambda v: v.field))
    return fact
