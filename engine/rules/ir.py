"""Rule IR: the condition language both evaluators (durable_rules adapter, pure-Python reference)
run. The expression compiler (engine/expr) lowers a rule's `when` into this IR.

A rule's condition is evaluated against one *fact*: a flat dict from field name to value
(int, Decimal, bool, str; dates are passed as ISO-ordinal ints; a missing optional value is None).
Anything durable_rules cannot compute exactly (arithmetic on Decimals, function calls, conditional
expressions) is *hoisted* by the compiler: evaluated in Python into an extra fact field, and the IR
only compares fields and constants. That keeps Decimal semantics exact on both evaluators.

Semantics (both evaluators must agree):
- `Compare` with a None operand (missing field) is False, whatever the operator.
- `In` is True when the operand equals one of the values; False when the operand is None.
- There is no Not: the compiler pushes negation down to the comparisons (negation normal form),
  so "missing is False" is never flipped into True by a negation.
- `And([])` is True; `Or([])` is False; `TRUE`/`FALSE` are constant conditions.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, TypeAlias

Scalar: TypeAlias = int | Decimal | bool | str
CompareOp: TypeAlias = Literal["<", "<=", ">", ">=", "==", "!="]

NEGATED: dict[str, CompareOp] = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}
MIRRORED: dict[str, CompareOp] = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


@dataclass(frozen=True)
class Field:
    """A fact field by name (an input path like `applicant.age`, a derived name, or a hoisted `__h3`)."""

    name: str


@dataclass(frozen=True)
class Const:
    value: Scalar


Operand: TypeAlias = Field | Const


@dataclass(frozen=True)
class Compare:
    op: CompareOp
    left: Operand
    right: Operand


@dataclass(frozen=True)
class In:
    operand: Operand
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class And:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Truth:
    """A constant condition (a `when: true` rule, or a folded constant)."""

    value: bool


Condition: TypeAlias = Compare | In | And | Or | Truth


@dataclass(frozen=True)
class Rule:
    """One rule of a stage. `id` is unique within its ruleset; rules are kept in policy order."""

    id: str
    condition: Condition


@dataclass(frozen=True)
class RuleSet:
    """All rules of one stage of one policy. `name` is `<policy>@<sha256 prefix>/<stage>`; it is
    registered in durable_rules at most once per process."""

    name: str
    rules: tuple[Rule, ...]
    fields: tuple[str, ...] = ()
