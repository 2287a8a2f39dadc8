"""A policy version's validator as generated Python: the well-formed application (nested objects,
every field valid) becomes its typed fact in straight-line code; anything else returns None and
engine.policy.inputs.validate_application, the one source of every error, decides it again.

The fast path only ever accepts what validate_application accepts, with the same typed values: it
reads each declared field by name, checks exact types and bounds, and gives up (None) on an
unknown key, a dotted spelling, a wrong or out-of-range value, a missing required field or an
open input group. Names in the source come only from the validated policy, as string literals;
bounds, defaults and declarations are bound by name, so no text of a request is ever code.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from engine.policy.contract import Fact, InputDecl
from engine.policy.inputs import (
    DECIMAL_LIMIT,
    MAX_DECIMAL_PLACES,
    coerce_container,
    parse_decimal,
    to_date,
)

__all__ = ["FastValidator", "fast_validator", "validator_source"]

# application, today -> (the typed fact, the `default: today` inputs the application left out), or
# None: not the well-formed case, validate_application decides
FastValidator = Callable[[Any, "dt.date | None"], "tuple[Fact, tuple[str, ...]] | None"]

_SCALARS = {"integer", "decimal", "boolean", "string", "enum", "date"}
# Decimal text the fast path parses itself: no exponent and at most 29 characters, so never more
# than 28 decimal places (parse_decimal's limit); it matches only text parse_decimal accepts as is.
_SHORT_DECIMAL_TEXT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)", re.ASCII)
# unsigned digit text this long or shorter has at most as many integer digits: below DECIMAL_LIMIT
_LIMIT_DIGITS = len(str(DECIMAL_LIMIT)) - 1


def fast_validator(inputs: Mapping[str, InputDecl], open_groups: tuple[str, ...]) -> FastValidator | None:
    """The generated fast path for these inputs, or None when they have a shape it does not cover
    (open input groups, a name that is both a field and a group)."""
    generated = validator_source(inputs, open_groups)
    if generated is None:
        return None
    source, bindings = generated
    namespace: dict[str, Any] = dict(bindings)
    exec(compile(source, "<policy validator>", "exec"), namespace)
    validate: FastValidator = namespace["validate"]
    return validate


def validator_source(
    inputs: Mapping[str, InputDecl], open_groups: tuple[str, ...]
) -> tuple[str, dict[str, Any]] | None:
    """The source of `validate(application, today)` and the values its names are bound to."""
    if open_groups or not inputs:
        return None
    tree: dict[str, Any] = {}  # group key -> subtree; field key -> its declaration
    for name, decl in inputs.items():
        *groups, leaf = name.split(".")
        node = tree
        for key in groups:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                return None  # a field that is also a group
        if not all([*groups, leaf]) or leaf in node:
            return None
        if not decl.type.container and decl.type.kind not in _SCALARS:
            return None
        node[leaf] = decl
    writer = _Writer()
    writer.group(tree, "application", 1)
    fact = ", ".join(f"{name!r}: {writer.typed[name]}" for name in inputs)
    # the dated inputs in declaration order, as validate_stage lists them
    flags = "".join(f"({name!r}, {writer.dated[name]}), " for name in inputs if name in writer.dated)
    dated = f"tuple(name for name, left_out in ({flags}) if left_out)" if flags else "()"
    lines = [
        "def validate(application, today):",
        "    if type(application) is not dict:",
        "        return None",
        *writer.lines,
        f"    return {{{fact}}}, {dated}",
    ]
    return "\n".join(lines) + "\n", writer.bindings


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.bindings: dict[str, Any] = {
            "INTEGER_LIMIT": int(DECIMAL_LIMIT),
            "DECIMAL_LIMIT": DECIMAL_LIMIT,
            "SHORT_DECIMAL": MAX_DECIMAL_PLACES + 1,
            "LIMIT_DIGITS": _LIMIT_DIGITS,
            "SHORT_DECIMAL_TEXT": _SHORT_DECIMAL_TEXT.fullmatch,
            "Decimal": Decimal,
            "MISSING": _MISSING,
            "coerce_container": coerce_container,
            "parse_decimal": parse_decimal,
            "to_date": to_date,
        }
        self.typed: dict[str, str] = {}  # input name -> the local holding its typed value
        self.dated: dict[str, str] = {}  # `default: today` input -> its local: left out?
        self.count = 0

    def bind(self, value: Any) -> str:
        name = f"K{len(self.bindings)}"
        self.bindings[name] = value
        return name

    def local(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def emit(self, depth: int, *lines: str) -> None:
        self.lines += ["    " * depth + line for line in lines]

    def group(self, node: dict[str, Any], var: str, depth: int) -> None:
        """Read every child of the object in `var`; an unknown key (the count is off) gives up."""
        present = self.local("n")
        self.emit(depth, f"{present} = {len(node)}")
        for key, child in node.items():
            if isinstance(child, dict):
                sub = self.local("g")
                self.emit(
                    depth,
                    f"{sub} = {var}.get({key!r}, MISSING)",
                    f"if {sub} is MISSING or {sub} is None:",
                    f"    if {sub} is MISSING:",
                    f"        {present} -= 1",
                    f"    {sub} = {{}}  # a group sent as null is the group absent",
                    f"elif type({sub}) is not dict:",
                    "    return None",
                )
                self.group(child, sub, depth)
            else:
                self.field(child, key, var, present, depth)
        self.emit(depth, f"if len({var}) != {present}:", "    return None")

    def field(self, decl: InputDecl, key: str, var: str, present: str, depth: int) -> None:
        typed = self.typed[decl.name] = self.local("t")  # the value as sent, then as typed
        self.emit(depth, f"{typed} = {var}.get({key!r}, MISSING)")
        if decl.required and decl.default is None and not decl.default_today:
            self.check(decl, typed, depth)  # it must be sent: every check refuses MISSING and None
            return
        self.emit(depth, f"if {typed} is MISSING or {typed} is None:")
        self.emit(depth + 1, f"if {typed} is MISSING:", f"    {present} -= 1")
        left_out = self.local("d")
        if decl.default_today:
            self.dated[decl.name] = left_out
            self.emit(depth + 1, f"{left_out} = True")
            self.emit(depth + 1, "if today is not None:", f"    {typed} = today", "else:")
            self.missing(decl, typed, depth + 2)
        else:
            self.missing(decl, typed, depth + 1)
        self.emit(depth, "else:")
        if decl.default_today:
            self.emit(depth + 1, f"{left_out} = False")
        self.check(decl, typed, depth + 1)

    def missing(self, decl: InputDecl, typed: str, depth: int) -> None:
        if decl.default is not None:
            self.emit(depth, f"{typed} = {self.bind(decl.default)}")
        elif decl.required:
            self.emit(depth, "return None")
        else:
            self.emit(depth, f"{typed} = None")

    def check(self, decl: InputDecl, typed: str, depth: int) -> None:
        """`typed` as engine.policy.inputs.coerce makes it from the value sent, or give up."""
        kind = decl.type.kind
        if decl.type.container:
            problems = self.local("p")
            self.emit(
                depth,
                f"{typed}, {problems} = coerce_container({self.bind(decl)}, {typed}, {decl.name!r})",
                f"if {problems}:",
                "    return None",
            )
            return
        bounds = self.bounds(decl, typed)
        if kind == "integer":
            limit = f" or not -INTEGER_LIMIT < {typed} < INTEGER_LIMIT"
            if (
                decl.min is not None
                and decl.max is not None
                and -DECIMAL_LIMIT < decl.min <= decl.max < DECIMAL_LIMIT
            ):
                limit = ""  # the declared bounds are inside the limit
            self.emit(depth, f"if type({typed}) is not int{limit}{bounds}:", "    return None")
        elif kind == "decimal":  # decimal text or an exact integer as sent (parse_decimal for the rest)
            problem = self.local("p")
            # declared bounds inside the limit make its own check redundant (as for integers)
            inside = (
                decl.min is not None
                and decl.max is not None
                and -DECIMAL_LIMIT < decl.min <= decl.max < DECIMAL_LIMIT
            )
            text = f"type({typed}) is str and len({typed}) <= "
            self.emit(
                depth,
                # unsigned ASCII digits with at most one point, checked by str methods (half the
                # regular expression's cost); at most 18 characters of them are below 10^18, so
                # such a text skips the limit's two Decimal comparisons
                f"if {text}LIMIT_DIGITS and {typed}.isascii() and {typed}.replace('.', '', 1).isdigit():",
                f"    {typed} = Decimal({typed})",
                # else the expression: a sign, a longer text, or not decimal text
                f"elif {text}SHORT_DECIMAL and SHORT_DECIMAL_TEXT({typed}):",
                f"    {typed} = Decimal({typed})",
                *(
                    ()
                    if inside
                    else (f"    if not -DECIMAL_LIMIT < {typed} < DECIMAL_LIMIT:", "        return None")
                ),
                f"elif type({typed}) is int and -INTEGER_LIMIT < {typed} < INTEGER_LIMIT:",
                f"    {typed} = Decimal({typed})",
                "else:",
                f"    {typed}, {problem} = parse_decimal({typed})",
                f"    if {problem} is not None:",
                "        return None",
            )
            if bounds:
                self.emit(depth, f"if {bounds[4:]}:", "    return None")
        elif kind == "boolean":
            self.emit(depth, f"if type({typed}) is not bool{bounds}:", "    return None")
        elif kind in ("string", "enum"):
            member = f" or {typed} not in {self.bind(frozenset(decl.type.values))}" if kind == "enum" else ""
            self.emit(depth, f"if type({typed}) is not str{member}{bounds}:", "    return None")
        else:  # date
            self.emit(depth, f"{typed} = to_date({typed})", f"if {typed} is None{bounds}:", "    return None")

    def bounds(self, decl: InputDecl, typed: str) -> str:
        """` or <out of the declared bounds>`, or "" when none are declared."""
        low, high = self.bound(decl, decl.min), self.bound(decl, decl.max)
        if low is not None and high is not None:
            return f" or not {low} <= {typed} <= {high}"
        if low is not None:
            return f" or {typed} < {low}"
        if high is not None:
            return f" or {typed} > {high}"
        return ""

    def bound(self, decl: InputDecl, value: Any) -> str | None:
        """The name bound to a declared bound. A decimal input's whole-number bound is bound as its
        Decimal: the same comparison, without the int made a Decimal on every compare."""
        if value is None:
            return None
        if decl.type.kind == "decimal" and type(value) is int:
            value = Decimal(value)
        return self.bind(value)


_MISSING = object()
