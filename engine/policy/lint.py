"""Policy linter: protected attributes (error), unreachable and shadowed rules, unused inputs (warnings).
Runs on the compiled policy, after every expression is type-checked."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from engine.policy.builder import Builder
from engine.policy.contract import InputDecl
from engine.policy.model import RuleStage
from engine.rules import ir

Interval = tuple[Any, bool, Any, bool]  # lo, lo inclusive, hi, hi inclusive (None = unbounded)


def lint(b: Builder) -> None:
    policy = b.policy
    for name, loc in b.refs:
        decl = policy.inputs.get(name)
        if decl is not None and decl.protected:
            b.sink.error(
                "PROTECTED_ATTRIBUTE",
                f"'{name}' is a protected attribute: it must not be used in a rule, "
                "derived value, formula or model feature (fair lending)",
                loc,
            )
    used = {name for name, _ in b.refs}
    for name, decl in policy.inputs.items():
        if name not in used and not decl.pii and not decl.protected:
            b.sink.warning(
                "UNUSED_INPUT", f"input '{name}' is not used by any rule, formula or feature", decl.location
            )
    stages = list(policy.rule_stages)
    stages += [spec.stage for spec in (policy.segments, policy.products) if spec is not None]
    stages += [spec.adjustments for spec in (policy.limit, policy.price) if spec is not None]
    for stage in stages:
        lint_stage(stage, policy.inputs, b)


def lint_stage(stage: RuleStage, inputs: dict[str, InputDecl], b: Builder) -> None:
    seen: dict[ir.Condition, str] = {}
    for rule in stage.ruleset.rules:
        loc = stage.locations[rule.id]
        if not satisfiable(rule.condition, inputs):
            b.sink.warning(
                "UNREACHABLE_RULE",
                f"rule '{rule.id}' can never fire (its condition is always false "
                "for the declared input ranges)",
                loc,
            )
            continue
        earlier = seen.get(rule.condition)
        if earlier is not None and stage.effects[earlier].kind == stage.effects[rule.id].kind:
            b.sink.warning(
                "SHADOWED_RULE",
                f"rule '{rule.id}' has the same condition and effect kind as rule '{earlier}'",
                loc,
            )
        seen.setdefault(rule.condition, rule.id)


def satisfiable(cond: ir.Condition, inputs: dict[str, InputDecl]) -> bool:
    """False only when provably unsatisfiable: constant false, or numeric bounds that cannot all hold."""
    if isinstance(cond, ir.Truth):
        return cond.value
    if isinstance(cond, ir.Or):
        return any(satisfiable(c, inputs) for c in cond.items)
    parts = cond.items if isinstance(cond, ir.And) else (cond,)
    if any(isinstance(p, ir.Or) and not satisfiable(p, inputs) for p in parts):
        return False
    ranges: dict[str, Interval] = {}
    for p in parts:
        if not (isinstance(p, ir.Compare) and isinstance(p.left, ir.Field) and isinstance(p.right, ir.Const)):
            continue
        value = p.right.value
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
            continue
        name = p.left.name
        if name not in ranges:
            decl = inputs.get(name)
            ranges[name] = (decl.min if decl else None, True, decl.max if decl else None, True)
        lo, lo_in, hi, hi_in = ranges[name]
        if p.op in (">", ">=", "=="):
            incl = p.op != ">"
            if lo is None or value > lo or (value == lo and not incl):
                lo, lo_in = value, incl
        if p.op in ("<", "<=", "=="):
            incl = p.op != "<"
            if hi is None or value < hi or (value == hi and not incl):
                hi, hi_in = value, incl
        if lo is not None and hi is not None and (lo > hi or (lo == hi and not (lo_in and hi_in))):
            return False
        ranges[name] = (lo, lo_in, hi, hi_in)
    return True
