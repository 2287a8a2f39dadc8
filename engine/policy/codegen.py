"""Whole-policy code generation: every ruleset of a policy version (rule stages, decision-table
rows, segments, limit and price adjustments, product eligibility) becomes one function of ONE
generated Python module, compiled once when the policy loads; `credo compile` prints that module.

Each function takes the decision's fact as it is and does in one call what `RuleStage.prepare`
followed by an evaluator's `fire` does: read the compared fields (dates as ISO ordinals), compute
the hoisted values (the policy's own compiled expressions, bound by name), fire the rules as plain
`if` chains. Names in the source come only from the validated policy, and only as string
literals; constants and expressions are bound by name, so no text of a request is ever code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.policy.model import Policy, RuleStage
from engine.rules.compiled import FireFn, RuleWriter, compile_module
from engine.rules.ir import And, Compare, Field, In, Or

__all__ = ["PolicyProgram", "compile_policy", "policy_stages"]

_NOT_DATES = {"integer", "decimal", "boolean", "string", "enum"}
_SCORE_NAMES = ("score.pd", "score.points", "score.grade")  # numbers and a string, never dates


@dataclass(frozen=True)
class PolicyProgram:
    """The generated module of one policy version: its text and its functions by ruleset name."""

    source: str
    functions: Mapping[str, FireFn]


def policy_stages(policy: Policy) -> list[tuple[str, RuleStage]]:
    """(function name, stage) for every ruleset of the policy, in decision order."""
    found: list[tuple[str, RuleStage]] = [(_name(s.name), s) for s in policy.rule_stages]
    found += [(_name(f"table_{name}"), table.stage) for name, table in policy.decision_tables.items()]
    if policy.segments is not None:
        found.append(("segments", policy.segments.stage))
    if policy.limit is not None:
        found.append(("limit_adjustments", policy.limit.adjustments))
    if policy.price is not None:
        found.append(("price_adjustments", policy.price.adjustments))
    if policy.products is not None:
        found.append(("product_eligibility", policy.products.stage))
    seen: dict[str, int] = {}
    out = []
    for name, stage in found:  # function names unique whatever the policy calls its stages
        seen[name] = seen.get(name, 0) + 1
        out.append((name if seen[name] == 1 else f"{name}_{seen[name]}", stage))
    return out


def generate(policy: Policy) -> tuple[str, dict[str, Any]]:
    """The module source of `policy` and the values its names are bound to."""
    bindings: dict[str, Any] = {}
    not_dates = _typed_not_dates(policy)
    functions = []
    notes: dict[str, str] = {}
    for name, stage in policy_stages(policy):
        hoisted = {field: _bind(bindings, fn, "H") for field, fn in stage.hoisted.items()}
        for field, bound in hoisted.items():
            notes[bound] = _hoisted_note(policy, name, stage, field)
        writer = RuleWriter(bindings, _loader(hoisted, not_dates))
        prologue: tuple[str, ...] = ()
        if stage.before is not None:
            prologue = (f"{_bind(bindings, stage.before, 'B')}(fact)  # score-phase values first",)
        functions.append(
            writer.function(name, stage.ruleset, preload=(*stage.reads, *stage.hoisted), prologue=prologue)
        )
    return "\n\n".join([_header(policy, bindings, notes), *functions]), bindings


def compile_policy(policy: Policy) -> PolicyProgram:
    """Generate and compile `policy`'s module once; each RuleStage gets its function (`compiled`)."""
    source, bindings = generate(policy)
    try:
        namespace = compile_module(
            source, {"date": dt.date, **bindings}, f"<policy {policy.name}@{policy.sha256[:12]}>"
        )
    except (SyntaxError, RecursionError):  # nesting beyond Python's parser: stages run ruleset by ruleset
        return PolicyProgram(source, {})
    functions: dict[str, FireFn] = {}
    for name, stage in policy_stages(policy):
        fire: FireFn = namespace[name]
        object.__setattr__(stage, "compiled", fire)  # frozen: set once, here, before any decision
        functions[stage.ruleset.name] = fire
    return PolicyProgram(source, functions)


def _name(stage: str) -> str:
    clean = "".join(ch if ch.isascii() and ch.isalnum() else "_" for ch in stage)
    return f"stage_{clean}" if not clean or clean[0].isdigit() else clean


def _bind(bindings: dict[str, Any], value: Any, prefix: str) -> str:
    name = f"{prefix}{len(bindings)}"
    bindings[name] = value
    return name


def _hoisted_note(policy: Policy, function: str, stage: RuleStage, field: str) -> str:
    """Where a hoisted value comes from: the first rule comparing it, and that rule's source line."""
    for rule in stage.ruleset.rules:
        if field in _fields(rule.condition):
            where = stage.locations.get(rule.id)
            if where is None:
                break
            lines = policy.text.splitlines()
            text = lines[where.line - 1].strip() if 0 < where.line <= len(lines) else ""
            return f"a value rule {rule.id!r} of {function} compares ({where}: {text})"
    return f"a value {function} compares"


def _comment(text: str) -> str:
    """`text` made safe inside a one-line comment: no line break, nothing unprintable."""
    return "".join(ch if ch.isprintable() else "?" for ch in " ".join(text.split()))


def _show(value: Any) -> str:
    """A constant as Python text, the same on every run (a set's own repr follows string hashing)."""
    if isinstance(value, frozenset):
        return "frozenset({" + ", ".join(sorted(repr(v) for v in value)) + "})"
    return repr(value)


def _fields(node: Any) -> set[str]:
    if isinstance(node, Field):
        return {node.name}
    if isinstance(node, Compare):
        return _fields(node.left) | _fields(node.right)
    if isinstance(node, In):
        return _fields(node.operand)
    if isinstance(node, And | Or):
        return set().union(*(_fields(item) for item in node.items))
    return set()


def _typed_not_dates(policy: Policy) -> set[str]:
    """Fact names whose declared type is never a date (their loads skip the ordinal conversion)."""
    names = {name for name, decl in policy.inputs.items() if decl.type.kind in _NOT_DATES}
    names |= {name for name, formula in policy.derived.items() if formula.type.kind in _NOT_DATES}
    return names | set(_SCORE_NAMES)


def _loader(hoisted: Mapping[str, str], not_dates: set[str]) -> Callable[[str, str], list[str]]:
    def load(name: str, var: str) -> list[str]:
        read = f"{hoisted[name]}(fact)" if name in hoisted else f"get({name!r})"
        if name in not_dates:
            return [f"{var} = {read}"]
        return [f"{var} = {read}", f"if isinstance({var}, date):", f"    {var} = {var}.toordinal()"]

    return load


def _header(policy: Policy, bindings: Mapping[str, Any], notes: Mapping[str, str]) -> str:
    title = _comment(f"{policy.name} {policy.version}")
    lines = [
        f"# Generated from policy {title} (sha256 {policy.sha256})",
        "# by engine.policy.codegen: one function per ruleset, each returning the ids of the rules",
        "# that hold, in policy order. Comparisons take the fast path when the value has the",
        "# constant's exact type and otherwise the reference evaluator's own (_cmp, _in).",
        "# Names bound by the loader, not spelled out in this text:",
    ]
    for name, value in bindings.items():
        if name.startswith("H"):
            lines.append(
                f"#   {name}(fact): {_comment(notes.get(name, 'a compared value'))}, computed by engine.expr"
            )
        elif name.startswith("B"):
            lines.append(f"#   {name}: computes the score-phase derived values and tables if not yet done")
        else:
            lines.append(f"#   {name} = {_comment(_show(value))}")
    return "\n".join([*lines, *_plan(policy)]) + "\n"


def _plan(policy: Policy) -> list[str]:
    """The values computed before the rules read them, in order: derived values are engine.expr
    closures (exact Decimal arithmetic), decision tables fire their table_* function below and then
    apply their hit policy."""
    if not policy.plan and not policy.derived:
        return []
    lines = ["# Computed in this order before the rules that read them (engine.expr, Decimal):"]
    steps = policy.plan or [("input", "derived", name) for name in policy.derived]
    for phase, kind, name in steps:
        when = "after the score" if phase == "score" else "from the application"
        if kind == "derived":
            lines.append(f"#   {_comment(name)} = {_comment(policy.derived[name].source)}  ({when})")
        else:
            table = policy.decision_tables[name]
            outputs = _comment(", ".join(out.name for out in table.outputs))
            lines.append(f"#   {outputs} <- decision table {_comment(name)}, hit {table.hit}  ({when})")
    return lines
