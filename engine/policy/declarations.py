"""Compiler stages for what a policy declares: header, inputs, tables and derived values
(in dependency order, cycles reported)."""

from __future__ import annotations

import difflib
import re
from dataclasses import replace
from typing import Any

from engine.expr import DATE, DECIMAL, INTEGER, STRING, Scope, Type, enum_type
from engine.expr.check import TableInfo
from engine.expr.types import list_of, object_of
from engine.policy import model as m
from engine.policy import schema as s
from engine.policy.builder import BROKEN, TYPES, Builder, PathKey
from engine.policy.contract import InputDecl
from engine.policy.inputs import coerce, coerce_container, to_date

_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


def header(b: Builder) -> None:
    if not isinstance(b.src.data, dict):
        b.sink.error("WRONG_TYPE", "a policy must be a YAML mapping", b.src.at(()))
        return
    known = s.HEADER_KEYS | set(s.SECTIONS)
    for key in b.data:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            b.sink.error("UNKNOWN_KEY", f"unknown key '{key}' in <document>{hint}", b.src.key_at((key,)))
    header = s.validate_part(
        s.Header, {k: v for k, v in b.data.items() if k in s.HEADER_KEYS}, (), b.src, b.sink
    )
    if header is not None:
        p = b.policy
        p.name, p.version, p.currency = header.policy, header.version, header.currency
        p.languages, p.rounding, p.description = (
            tuple(header.languages),
            header.rounding,
            header.description or "",
        )


def inputs(b: Builder) -> None:
    if "inputs" not in b.data and isinstance(b.src.data, dict):
        b.sink.error("MISSING_KEY", "missing required key 'inputs' in <document>", b.src.at(()))
    for name, raw in b.entries("inputs").items():
        path = ("inputs", name)
        if not isinstance(name, str) or not _PATH.match(name) or "__" in name or name.startswith("score."):
            b.sink.error(
                "BAD_VALUE",
                f"bad input name {name!r}: use dotted identifiers like applicant.age "
                "(not score.*, no dunders)",
                b.src.key_at(path),
            )
            continue
        spec = s.validate_part(s.InputSpec, raw, path, b.src, b.sink)
        if spec is None:
            b.unavailable[name] = BROKEN
            continue
        if spec.type == "object":  # a group of fields: each one an input of its own, `name.field`
            for field_name, field_spec in (spec.fields or {}).items():
                required = spec.required and field_spec.required
                field_spec = field_spec.model_copy(update={"required": required})
                _declare(b, f"{name}.{field_name}", field_spec, (*path, "fields", field_name))
            continue
        _declare(b, name, spec, path)


def _declare(b: Builder, name: str, spec: s.InputSpec, path: PathKey) -> None:
    if spec.type == "object" or not _PATH.match(name):
        b.sink.error(
            "BAD_VALUE", f"bad input name {name!r}: an object's fields are plain inputs", b.src.key_at(path)
        )
        return
    decl = _decl(b, name, spec, path)
    if spec.subject and not spec.pii:
        b.sink.error(
            "BAD_VALUE",
            f"{name} is the subject key, so it must be pii: true",
            b.src.at((*path, "subject")),
        )
    b.policy.inputs[name] = decl
    b.names[name] = decl.type


def _decl(b: Builder, name: str, spec: s.InputSpec, path: PathKey) -> InputDecl:
    """The declaration of one input, a list's items or an item's field (checked recursively)."""
    items: InputDecl | None = None
    fields: tuple[InputDecl, ...] = ()
    if spec.type == "list":
        assert spec.items is not None
        items = _decl(b, "", spec.items, (*path, "items"))
        kind = list_of(items.type)
    elif spec.type == "object":
        fields = tuple(
            _decl(b, field_name, field_spec, (*path, "fields", field_name))
            for field_name, field_spec in (spec.fields or {}).items()
        )
        for field_name in spec.fields or {}:
            if not _IDENT.match(field_name):
                b.sink.error(
                    "BAD_VALUE", f"bad field name {field_name!r}", b.src.key_at((*path, "fields", field_name))
                )
        kind = object_of({f.name: f.type for f in fields})
    else:
        kind = enum_type(spec.values or []) if spec.type == "enum" else TYPES[spec.type]
    decl = InputDecl(
        name,
        kind,
        b.src.key_at(path),
        spec.required,
        None,
        _bound(b, spec.min, kind, (*path, "min")),
        _bound(b, spec.max, kind, (*path, "max")),
        spec.pii,
        spec.protected,
        spec.subject,
        items,
        fields,
        spec.max_items or 0,
    )
    if spec.default == "today" and kind == DATE:
        return replace(decl, default_today=True)
    if spec.default is not None:
        if kind.container:
            typed, problems = coerce_container(decl, spec.default, name)
            problem = problems[0].description if problems else None
        else:
            typed, problem = coerce(decl, spec.default)
        if problem:
            b.sink.error("BAD_VALUE", f"bad default for {name}: {problem}", b.src.at((*path, "default")))
        decl = replace(decl, default=typed)
    return decl


def labels(b: Builder) -> None:
    """The caller labels the policy declares (only to say which hold personal data: a label it
    does not declare is kept as sent)."""
    personal = set()
    for key, raw in b.entries("labels").items():
        path = ("labels", key)
        if not isinstance(key, str) or not _LABEL.match(key):
            b.sink.error(
                "BAD_VALUE",
                f"bad label key {key!r}: use letters, digits, '_', '-' or '.', starting with a letter",
                b.src.key_at(path),
            )
            continue
        spec = s.validate_part(s.LabelSpec, raw, path, b.src, b.sink)
        if spec is not None and spec.pii:
            personal.add(key)
    b.policy.pii_labels = frozenset(personal)


def input_groups(b: Builder) -> None:
    """`input_groups:` names dotted prefixes of declared inputs; `unknown_fields: ignore` opens one."""
    prefixes = {".".join(n.split(".")[:i]) for n in b.policy.inputs for i in range(1, n.count(".") + 1)}
    open_groups: list[str] = []
    for name, raw in b.entries("input_groups").items():
        path = ("input_groups", name)
        if str(name) not in prefixes:
            close = difflib.get_close_matches(str(name), sorted(prefixes), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            b.sink.error(
                "UNKNOWN_NAME",
                f"no declared input is in group '{name}' (a group is the part before a dot, like "
                f"bureau for bureau.score){hint}",
                b.src.key_at(path),
            )
            continue
        spec = s.validate_part(s.InputGroupSpec, raw, path, b.src, b.sink)
        if spec is not None and spec.unknown_fields == "ignore":
            open_groups.append(str(name))
    b.policy.open_groups = tuple(open_groups)


def _bound(b: Builder, value: Any, kind: Type, path: PathKey) -> Any:
    if value is None:
        return None
    if kind == DATE:
        day = to_date(value)
        if day is None:
            b.sink.error("WRONG_TYPE", "a date bound must be a YYYY-MM-DD string", b.src.at(path))
        return day
    if isinstance(value, str):
        b.sink.error("WRONG_TYPE", f"a {kind} bound must be a number", b.src.at(path))
        return None
    return value


def tables(b: Builder) -> None:
    for name, raw in b.entries("tables").items():
        path = ("tables", name)
        if not isinstance(name, str) or not _IDENT.match(name) or name in b.names:
            b.sink.error("BAD_VALUE", f"bad or clashing table name {name!r}", b.src.key_at(path))
            continue
        table = s.validate_part(dict[str | int, s.Num | str], raw, path, b.src, b.sink)
        if table is None:
            continue
        if not table:
            b.sink.error("BAD_VALUE", f"table '{name}' is empty", b.src.at(path))
            continue
        values = list(table.values())
        if all(isinstance(v, str) for v in values):
            vtype = STRING
        elif all(not isinstance(v, str) for v in values):
            vtype = INTEGER if all(isinstance(v, int) for v in values) else DECIMAL
        else:
            b.sink.error("WRONG_TYPE", f"table '{name}' mixes numbers and strings", b.src.at(path))
            continue
        ktype = INTEGER if all(isinstance(k, int) for k in table) else STRING
        if ktype == STRING and any(isinstance(k, int) for k in table):
            table = {str(k): v for k, v in table.items()}
        b.tables[name] = TableInfo(ktype, vtype, frozenset(table))
        b.policy.tables[name] = table


def derived_specs(b: Builder) -> dict[str, tuple[PathKey, Any, Type | None]]:
    raw = b.entries("derived")
    specs: dict[str, tuple[PathKey, Any, Type | None]] = {}
    for name, value in raw.items():
        path = ("derived", name)
        if not isinstance(name, str) or not _PATH.match(name) or "__" in name or name.startswith("score."):
            b.sink.error(
                "BAD_VALUE",
                f"bad derived name {name!r}: use names like risk_band or risk.band (not score.*, no dunders)",
                b.src.key_at(path),
            )
            continue
        if name in b.names or name in b.tables:
            b.sink.error(
                "BAD_VALUE", f"derived name {name!r} clashes with an input or table", b.src.key_at(path)
            )
            continue
        spec = s.validate_part(s.ExprSrc | s.DerivedSpec, value, path, b.src, b.sink)
        if spec is None:
            continue
        if isinstance(spec, s.DerivedSpec):
            declared = None
            if spec.type:
                declared = STRING if spec.type == "enum" else TYPES.get(spec.type, Type(spec.type))
            specs[name] = ((*path, "expr"), spec.expr, declared)
        else:
            specs[name] = (path, spec, None)
    return specs


def compile_derived(
    b: Builder, name: str, spec: tuple[PathKey, Any, Type | None], scope: Scope
) -> m.Formula | None:
    path, value, declared = spec
    f = b.formula(path, value, scope, None)
    if f is None:
        return None
    fits = (
        declared is None
        or declared == f.type
        or (declared == DECIMAL and f.type == INTEGER)
        or (declared.container and declared.kind == f.type.kind)  # `type: list`: any list
    )
    if declared is not None and not fits:
        b.sink.error(
            "TYPE_MISMATCH",
            f"derived '{name}' is declared {declared} but computes {f.type}",
            b.src.at(path),
        )
        return None
    return f
