"""Pure-Python evaluator of the rule IR: the semantics every other evaluator is checked against,
and the escape hatch if the C engine ever fails us."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from engine.rules.ir import And, Compare, Condition, Field, In, Operand, Or, RuleSet, Truth

__all__ = ["ReferenceEvaluator", "compare", "equal", "evaluate", "kind_of"]


def kind_of(value: object) -> str:
    """The comparison kind of a fact value: values of different kinds are never equal and never ordered.
    bool is its own kind (True is not 1), int and Decimal are both numbers."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    raise TypeError(f"unsupported fact value {value!r} of type {type(value).__name__}")


def _value(operand: Operand, fact: Mapping[str, Any]) -> Any:
    if isinstance(operand, Field):
        return fact.get(operand.name)
    return operand.value


def equal(left: Any, right: Any) -> bool:
    """Equality of two non-missing fact values: same kind and equal."""
    return kind_of(left) == kind_of(right) and left == right


def compare(op: str, left: Any, right: Any) -> bool:
    """`left op right` on fact values: False if either is missing (None); ordering values of
    different kinds is a TypeError."""
    if left is None or right is None:
        return False
    if op == "==":
        return equal(left, right)
    if op == "!=":
        return not equal(left, right)
    if kind_of(left) != kind_of(right):
        raise TypeError(f"cannot order {left!r} against {right!r} ({op})")
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    if op == ">=":
        return bool(left >= right)
    raise ValueError(f"unknown operator {op!r}")


def evaluate(condition: Condition, fact: Mapping[str, Any]) -> bool:
    """The truth of one IR condition against one flat fact (see engine.rules.ir for the semantics)."""
    if isinstance(condition, Compare):
        return compare(condition.op, _value(condition.left, fact), _value(condition.right, fact))
    if isinstance(condition, In):
        operand = _value(condition.operand, fact)
        if operand is None:
            return False
        return any(equal(operand, value) for value in condition.values)
    if isinstance(condition, And):
        return all(evaluate(item, fact) for item in condition.items)
    if isinstance(condition, Or):
        return any(evaluate(item, fact) for item in condition.items)
    if isinstance(condition, Truth):
        return condition.value
    raise TypeError(f"not an IR condition: {condition!r}")


class ReferenceEvaluator:
    """Evaluates a RuleSet in pure Python; stateless and thread-safe."""

    name = "reference"

    def fire(self, ruleset: RuleSet, fact: Mapping[str, Any]) -> list[str]:
        """Ids of the rules whose condition holds for `fact`, in policy order."""
        return [rule.id for rule in ruleset.rules if evaluate(rule.condition, fact)]
