"""The expression language: what it refuses (located), how it types, and that closures and the rule
IR agree with each other and with Decimal arithmetic."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import PolicyRuntimeError
from engine.expr import (
    BOOLEAN,
    DECIMAL,
    INTEGER,
    STRING,
    Scope,
    check,
    compile_condition,
    compile_value,
    enum_type,
)
from engine.expr.check import TableInfo
from engine.expr.lower import Lowered, lower_condition
from engine.rules import ir
from engine.rules.reference import evaluate

SCOPE = Scope(
    {
        "a": DECIMAL,
        "b": DECIMAL,
        "c": DECIMAL,
        "n": INTEGER,
        "m": INTEGER,
        "flag": BOOLEAN,
        "s": STRING,
        "kind": enum_type(["x", "y", "z"]),
        "applicant.age": INTEGER,
    },
    {"spread": TableInfo(STRING, DECIMAL, frozenset({"A", "B"}))},
    {"score.pd": "is only available after the score stage"},
)
TABLES = {"spread": {"A": Decimal("0.01"), "B": Decimal("0.02")}}


def compiled(source: str) -> Any:
    node, errors = check(source, SCOPE)
    assert not errors, errors
    assert node is not None
    return compile_value(node, tables=TABLES, source=source)


@pytest.mark.parametrize(
    ("source", "code", "col"),
    [
        ("aplicant.age > 3", "UNKNOWN_NAME", 0),
        ("n + open('x')", "UNKNOWN_FUNCTION", 4),
        ("n.real > 1", "UNKNOWN_NAME", 0),
        ("s.upper() == 'A'", "BAD_EXPRESSION", 0),
        ("{'a': 1}", "BAD_EXPRESSION", 0),
        ("f'{n}'", "BAD_EXPRESSION", 0),
        ("n if flag else s", "TYPE_MISMATCH", 0),
        ("kind == 'w'", "BAD_ENUM_VALUE", 8),
        ("kind in ['x', 'w']", "BAD_ENUM_VALUE", 14),
        ("s < 'a'", "TYPE_MISMATCH", 0),
        ("n ** 2", "BAD_EXPRESSION", 0),
        ("lookup(spread, 'C')", "BAD_ARGUMENTS", 15),
        ("lookup(s, 'A')", "BAD_ARGUMENTS", 0),
        ("round(a, n)", "BAD_ARGUMENTS", 0),
        ("score.pd > 0", "UNKNOWN_NAME", 0),
        ("(n := 1)", "BAD_EXPRESSION", 1),
        ("n is None", "BAD_EXPRESSION", 0),
        ("'é' + n", "TYPE_MISMATCH", 0),
        ("s == 'é' and aplicant", "UNKNOWN_NAME", 13),
    ],
)
def test_refused_with_code_and_column(source: str, code: str, col: int) -> None:
    node, errors = check(source, SCOPE)
    assert node is None
    assert (errors[0].code, errors[0].col) == (code, col), errors


def test_did_you_mean() -> None:
    _, errors = check("aplicant.age > 3", SCOPE)
    assert errors[0].message == "unknown name 'aplicant.age'; did you mean 'applicant.age'?"


def test_types() -> None:
    for source, kind in [
        ("n + m", INTEGER),
        ("n / m", DECIMAL),
        ("n * a", DECIMAL),
        ("round(a)", INTEGER),
        ("round(a, 2)", DECIMAL),
        ("lookup(spread, s)", DECIMAL),
        ("coalesce(n, 0)", INTEGER),
        ("n < m <= 3", BOOLEAN),
        ("max(n, a)", DECIMAL),
        ("-n", INTEGER),
    ]:
        node, errors = check(source, SCOPE)
        assert node is not None and node.type == kind, (source, errors)


def test_integer_division_is_decimal_and_zero_division_is_located() -> None:
    assert compiled("n / m")({"n": 7, "m": 2}) == Decimal("3.5")
    with pytest.raises(PolicyRuntimeError, match="division by zero in 'n / m'"):
        compiled("n / m")({"n": 7, "m": 0})


def test_functions_and_missing_values() -> None:
    assert compiled("lookup(spread, s)")({"s": "B"}) == Decimal("0.02")
    assert compiled("coalesce(a, 1)")({"a": None}) == 1
    assert compiled("a + 1")({"a": None}) is None
    assert compiled("round(a, 1)")({"a": Decimal("2.25")}) == Decimal("2.2")
    assert compiled("max(n, a, 3)")({"n": 1, "a": Decimal("2.5")}) == 3
    assert compiled("abs(-a) if flag else 0")({"a": Decimal("2.5"), "flag": True}) == Decimal("2.5")


decimals = st.decimals(
    min_value=Decimal("-1e9"), max_value=Decimal("1e9"), places=4, allow_nan=False, allow_infinity=False
)


@settings(max_examples=200, deadline=None)
@given(a=decimals, b=decimals, c=decimals, n=st.integers(-(10**9), 10**9))
def test_closures_keep_decimal_semantics(a: Decimal, b: Decimal, c: Decimal, n: int) -> None:
    fact = {"a": a, "b": b, "c": c, "n": n}
    assert compiled("a + b * c")(fact) == a + b * c
    assert compiled("(a - n) * 3")(fact) == (a - n) * 3
    got = compiled("n * 2 + n")(fact)
    assert got == 3 * n and isinstance(got, int)
    if c != 0:
        assert compiled("a / c")(fact) == a / c


CONDITIONS = [
    "not (n < 3 and kind in ['x', 'y'])",
    "not (a + b > c) or flag",
    "kind not in ['x'] and not flag",
    "1 <= n < 5 or a * 2 >= b",
    "not (not flag or coalesce(a, 0) > 1)",
    "(n if flag else m) > 2 and s != 'q'",
]
values = st.one_of(st.none(), st.integers(-5, 5))
dec_values = st.one_of(st.none(), st.decimals(min_value=-5, max_value=5, places=1, allow_nan=False))


@settings(max_examples=300, deadline=None)
@given(
    source=st.sampled_from(CONDITIONS),
    n=values,
    m=values,
    a=dec_values,
    b=dec_values,
    c=dec_values,
    flag=st.one_of(st.none(), st.booleans()),
    kind=st.sampled_from([None, "x", "y", "z"]),
    s=st.sampled_from([None, "q", "r"]),
)
def test_lowered_ir_agrees_with_closure(source: str, **fact: Any) -> None:
    node, errors = check(source, SCOPE, BOOLEAN)
    assert node is not None, errors
    lowered = Lowered(compile_value=lambda nd: compile_value(nd))
    condition = lower_condition(node, lowered)
    prepared = dict(fact)
    prepared.update({name: fn(fact) for name, fn in lowered.hoisted.items()})
    assert evaluate(condition, prepared) == compile_condition(node)(fact)


def test_lowering_pushes_not_down_and_hoists_arithmetic() -> None:
    node, _ = check("not (n < 3 and kind in ['x'])", SCOPE, BOOLEAN)
    assert node is not None
    lowered = Lowered(compile_value=lambda nd: compile_value(nd))
    assert lower_condition(node, lowered) == ir.Or(
        (ir.Compare(">=", ir.Field("n"), ir.Const(3)), ir.Compare("!=", ir.Field("kind"), ir.Const("x")))
    )
    node, _ = check("3 < a + b", SCOPE, BOOLEAN)
    assert node is not None
    assert lower_condition(node, lowered) == ir.Compare(">", ir.Field("__h0"), ir.Const(3))
    assert lowered.hoisted["__h0"]({"a": Decimal(1), "b": Decimal(2)}) == Decimal(3)
    node, _ = check("n in [1, 2]", SCOPE, BOOLEAN)
    assert node is not None
    assert lower_condition(node, lowered) == ir.In(ir.Field("n"), (1, 2))
