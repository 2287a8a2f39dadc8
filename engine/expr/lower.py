"""Lower a typed boolean expression to the rule IR (engine/rules/ir.py) in negation normal form.

Operands the IR cannot compute (arithmetic, calls, conditionals) are hoisted into `__h<n>` fact fields
whose closures the policy's RuleStage.prepare evaluates in Python."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.expr import types as t
from engine.expr.closure import _CMP, Closure
from engine.rules import ir

_NEGATED = ir.NEGATED


@dataclass
class Lowered:
    """Hoisted closures shared by every rule of one ruleset (numbered across the ruleset)."""

    compile_value: Callable[[t.Node], Closure]
    hoisted: dict[str, Closure] = field(default_factory=dict)
    fields: set[str] = field(default_factory=set)
    nodes: dict[str, t.Node] = field(default_factory=dict)  # the typed tree of each hoisted value

    def hoist(self, node: t.Node) -> ir.Field:
        name = f"__h{len(self.hoisted)}"
        self.hoisted[name] = self.compile_value(node)
        self.nodes[name] = node
        self.fields.add(name)
        return ir.Field(name)


def lower_condition(node: t.Node, into: Lowered, neg: bool = False) -> ir.Condition:
    """The IR condition of `node` (negated if `neg`), hoisting into `into`."""
    if isinstance(node, t.Lit):
        return ir.Truth(bool(node.value) != neg)
    if isinstance(node, t.Not):
        return lower_condition(node.operand, into, not neg)
    if isinstance(node, t.BoolOp):
        conj = (node.op == "and") != neg
        return _combine(conj, [lower_condition(i, into, neg) for i in node.items])
    if isinstance(node, t.Compare):
        parts: list[ir.Condition] = []
        for i, op in enumerate(node.ops):
            real: ir.CompareOp = _NEGATED[op] if neg else op  # type: ignore[assignment]
            parts.append(
                _compare(real, _operand(node.operands[i], into), _operand(node.operands[i + 1], into))
            )
        return _combine(not neg, parts)
    if isinstance(node, t.InList):
        operand = _operand(node.operand, into)
        inside = neg == node.negated
        if isinstance(operand, ir.Const):
            hit = operand.value in node.values
            return ir.Truth(hit if inside else not hit)
        if inside:
            return ir.In(operand, tuple(node.values))
        return _combine(True, [ir.Compare("!=", operand, ir.Const(v)) for v in node.values])
    operand = ir.Field(node.name) if isinstance(node, t.Name) else into.hoist(node)
    if isinstance(node, t.Name):
        into.fields.add(node.name)
    return ir.Compare("==", operand, ir.Const(not neg))


def _operand(node: t.Node, into: Lowered) -> ir.Operand:
    if isinstance(node, t.Lit):
        return ir.Const(node.value)
    if isinstance(node, t.Name):
        into.fields.add(node.name)
        return ir.Field(node.name)
    return into.hoist(node)


def _compare(op: ir.CompareOp, left: ir.Operand, right: ir.Operand) -> ir.Condition:
    if isinstance(left, ir.Const) and isinstance(right, ir.Const):
        return ir.Truth(bool(_CMP[op](left.value, right.value)))
    if isinstance(left, ir.Const):
        return ir.Compare(ir.MIRRORED[op], right, left)
    return ir.Compare(op, left, right)


def _combine(conj: bool, parts: list[ir.Condition]) -> ir.Condition:
    """And/Or with constants folded and nested same-kind nodes flattened."""
    kind: Any = ir.And if conj else ir.Or
    items: list[ir.Condition] = []
    for p in parts:
        if isinstance(p, ir.Truth):
            if p.value != conj:  # False in an And, True in an Or decides it
                return ir.Truth(not conj)
            continue
        items.extend(p.items if isinstance(p, kind) else [p])
    if not items:
        return ir.Truth(conj)
    return items[0] if len(items) == 1 else kind(tuple(items))
