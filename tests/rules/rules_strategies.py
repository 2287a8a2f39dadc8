"""Hypothesis strategies for random IR rule sets and facts over a few typed fields, shared by the
rule evaluator tests (values drawn from small pools so equalities and boundaries are frequent)."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from engine.rules.ir import And, Compare, Condition, Const, Field, In, Operand, Or, Rule, RuleSet, Truth

# field name -> kind; dotted names on purpose (durable reads `a.b` as a nested path)
FIELDS: dict[str, str] = {
    "applicant.age": "number",
    "n": "number",
    "debt.ratio": "number",
    "amount": "number",
    "flags.blacklisted": "bool",
    "b": "bool",
    "applicant.employment": "string",
    "s": "string",
}
OPS = ("<", "<=", ">", ">=", "==", "!=")

_DECIMALS = [
    Decimal(x) for x in ("-1.5", "-0.10", "0", "0.00", "0.1", "0.10", "0.3", "1", "1.000", "2.5", "20.5")
]
_INTS = [-2, -1, 0, 1, 2, 20, 21, 2**63, 2**63 + 1, -(2**63)]
numbers = st.one_of(
    st.sampled_from(_INTS),
    st.sampled_from(_DECIMALS),
    st.integers(-50, 50),
    st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-100, max_value=100),
    st.decimals(allow_nan=False, allow_infinity=False).filter(lambda d: abs(d.adjusted()) < 1000),
)
strings = st.one_of(
    st.sampled_from(["", "a", "ab", "b", "salaried", "retired", "é", "中", '"', "\\", "a\x00b", "A", "aa"]),
    st.text(max_size=6),
)
booleans = st.booleans()
VALUES: dict[str, st.SearchStrategy[Any]] = {"number": numbers, "string": strings, "bool": booleans}


def _fields_of(kind: str) -> list[str]:
    return [name for name, field_kind in FIELDS.items() if field_kind == kind]


def operands(kind: str) -> st.SearchStrategy[Operand]:
    return st.one_of(
        st.sampled_from(_fields_of(kind)).map(Field),
        VALUES[kind].map(Const),
    )


@st.composite
def compares(draw: st.DrawFn) -> Condition:
    kind = draw(st.sampled_from(["number", "number", "string", "bool"]))
    return Compare(draw(st.sampled_from(OPS)), draw(operands(kind)), draw(operands(kind)))


@st.composite
def ins(draw: st.DrawFn) -> Condition:
    kind = draw(st.sampled_from(["number", "string", "bool"]))
    operand = draw(operands(kind))
    return In(operand, tuple(draw(st.lists(VALUES[kind], max_size=4))))


leaves = st.one_of(compares(), compares(), ins(), st.booleans().map(Truth))
conditions: st.SearchStrategy[Condition] = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3).map(lambda items: And(tuple(items))),
        st.lists(children, max_size=3).map(lambda items: Or(tuple(items))),
    ),
    max_leaves=10,
)

_names = itertools.count()


@st.composite
def rulesets(draw: st.DrawFn) -> RuleSet:
    """A RuleSet with a name never used before in this process (names are registered once)."""
    rules = draw(st.lists(conditions, min_size=1, max_size=8))
    name = f"hypothesis@{next(_names):06d}/random"
    return RuleSet(name, tuple(Rule(f"rule-{i}-ü", condition) for i, condition in enumerate(rules)))


@st.composite
def facts(draw: st.DrawFn) -> dict[str, Any]:
    """A flat fact: each field present with a value of its kind, present as None, or absent."""
    fact: dict[str, Any] = {}
    for name, kind in FIELDS.items():
        presence = draw(st.sampled_from(["value", "value", "value", "none", "absent"]))
        if presence == "value":
            fact[name] = draw(VALUES[kind])
        elif presence == "none":
            fact[name] = None
    return fact


@st.composite
def wide_rulesets(draw: st.DrawFn) -> RuleSet:
    """A RuleSet of 40-120 shallow rules: many activations per fact, so the adapter must chunk."""
    shallow = st.one_of(leaves, st.lists(leaves, max_size=4).map(lambda items: Or(tuple(items))))
    rules = draw(st.lists(shallow, min_size=40, max_size=120))
    name = f"hypothesis@{next(_names):06d}/wide"
    return RuleSet(name, tuple(Rule(f"rule-{i}", condition) for i, condition in enumerate(rules)))
