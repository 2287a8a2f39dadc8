"""Validate an application (nested JSON) against the policy's declared inputs: flatten to dotted
paths, coerce to typed values (Decimal never via binary float), and collect every violation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.errors import FieldViolation, InvalidInput
from engine.policy.contract import Fact, InputDecl

_MISSING = object()


def flatten(application: Mapping[str, Any], prefix: str = "") -> tuple[dict[str, Any], list[FieldViolation]]:
    flat: dict[str, Any] = {}
    bad: list[FieldViolation] = []
    for key, value in application.items():
        if not isinstance(key, str) or not key:
            bad.append(FieldViolation(f"{prefix}{key}", "field names must be non-empty strings"))
            continue
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            inner, inner_bad = flatten(value, path + ".")
            if not inner:
                flat[path] = value  # an empty object: kept so a declared leaf reports the wrong type
            flat.update(inner)
            bad.extend(inner_bad)
        else:
            flat[path] = value
    return flat, bad


def coerce(decl: InputDecl, value: Any) -> tuple[Any, str | None]:
    """(typed value, None) or (None, what is wrong)."""
    kind = decl.type.kind
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return None, f"expected an integer, got {_json_type(value)}"
        typed: Any = value
    elif kind == "decimal":
        typed = to_decimal(value)
        if typed is None:
            return None, f"expected a decimal number or decimal string, got {_json_type(value)}"
    elif kind == "boolean":
        if not isinstance(value, bool):
            return None, f"expected true or false, got {_json_type(value)}"
        typed = value
    elif kind in ("string", "enum"):
        if not isinstance(value, str):
            return None, f"expected a string, got {_json_type(value)}"
        if kind == "enum" and value not in decl.type.values:
            return None, f"{value!r} is not one of {list(decl.type.values)}"
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


def to_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, Decimal):
            dec = value
        elif isinstance(value, int):
            dec = Decimal(value)
        elif isinstance(value, float):
            dec = Decimal(repr(value))
        elif isinstance(value, str) and value.strip() and "_" not in value:
            dec = Decimal(value.strip())
        else:
            return None
    except InvalidOperation:
        return None
    return dec if dec.is_finite() else None


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


def validate_application(inputs: Mapping[str, InputDecl], application: Any) -> Fact:
    if not isinstance(application, Mapping):
        raise InvalidInput([FieldViolation("", "the application must be a JSON object")])
    flat, violations = flatten(application)
    fact: Fact = {}
    prefixes = {".".join(name.split(".")[:i]) for name in inputs for i in range(1, name.count(".") + 1)}
    for path, value in flat.items():
        if path not in inputs and not (value is None and path in prefixes):
            violations.append(FieldViolation(path, "unknown field (not an input of this policy)"))
    for name, decl in inputs.items():
        value = flat.get(name, _MISSING)
        if value is _MISSING or value is None:
            if decl.default is not None:
                fact[name] = decl.default
            elif decl.required:
                violations.append(FieldViolation(name, "required field is missing"))
            else:
                fact[name] = None
            continue
        typed, problem = coerce(decl, value)
        if problem:
            violations.append(FieldViolation(name, problem))
        else:
            fact[name] = typed
    if violations:
        raise InvalidInput(sorted(violations, key=lambda v: v.field))
    return fact
