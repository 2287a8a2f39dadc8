"""Compiler stage for `outputs:`: the author's own typed results, each an expression (or an object of
named expressions) over everything the decision knows, type-checked against its declared type."""

from __future__ import annotations

import re

from engine.expr import Type, enum_type
from engine.expr import types as t
from engine.policy import model as m
from engine.policy import schema as s
from engine.policy.builder import TYPES, Builder, PathKey

__all__ = ["outputs"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def outputs(b: Builder) -> None:
    scope = b.scope(True)
    for name, raw in b.entries("outputs").items():
        path: PathKey = ("outputs", name)
        if not isinstance(name, str) or not _NAME.match(name) or "__" in name:
            b.sink.error(
                "BAD_VALUE",
                f"bad output name {name!r}: use dotted identifiers like risk.category",
                b.src.key_at(path),
            )
            continue
        spec = s.validate_part(s.OutputSpec, raw, path, b.src, b.sink)
        if spec is None:
            continue
        if spec.type == "object":
            fields: dict[str, m.Formula] = {}
            for field_name, source in (spec.fields or {}).items():
                formula = b.formula((*path, "fields", field_name), source, scope, None)
                if formula is not None:
                    fields[field_name] = formula
            if len(fields) == len(spec.fields or {}):
                kind = t.object_of({n: f.type for n, f in fields.items()})
                b.policy.outputs[name] = m.Output(name, kind, b.src.key_at(path), None, fields)
            continue
        formula = b.formula((*path, "expr"), spec.expr, scope, None)
        if formula is None:
            continue
        declared = _declared(spec, formula.type)
        if declared is None:
            b.sink.error(
                "TYPE_MISMATCH",
                f"output '{name}' is declared {spec.type} but its expression computes {formula.type}",
                b.src.at((*path, "expr")),
            )
            continue
        b.policy.outputs[name] = m.Output(name, declared, b.src.key_at(path), formula)


def _declared(spec: s.OutputSpec, got: Type) -> Type | None:
    """The output's type when its expression's type `got` fits the declared one, else None."""
    if spec.type == "enum":
        return enum_type(spec.values or []) if got.textual else None
    if spec.type == "string":
        return t.STRING if got.textual else None
    if spec.type == "decimal":
        return t.DECIMAL if got.numeric else None
    if spec.type == "list":
        return got if got.kind == "list" else None
    return got if got == TYPES[spec.type] else None
