"""Lists, items, dates and strings in the expression language: what they compute, what they refuse
(located where the author wrote it), and that a rule reading them fires the same on the closure,
the reference evaluator and the compiled evaluator."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.expr import (
    BOOLEAN,
    DATE,
    DECIMAL,
    INTEGER,
    STRING,
    Scope,
    check,
    compile_condition,
    compile_value,
    enum_type,
    list_of,
    object_of,
)
from engine.expr.closure import months_between, years_between
from engine.expr.lower import Lowered, lower_condition
from engine.rules import CompiledEvaluator, ReferenceEvaluator, ir

TRADELINE = object_of(
    {"kind": enum_type(["card", "loan"]), "balance": DECIMAL, "dpd": INTEGER, "opened": DATE}
)
SCOPE = Scope(
    {
        "lines": list_of(TRADELINE),
        "flags": list_of(STRING),
        "amounts": list_of(DECIMAL),
        "born": DATE,
        "today": DATE,
        "name": STRING,
        "channel": enum_type(["online", "branch"]),
        "limit": DECIMAL,
    }
)


def line(kind: str, balance: str, dpd: int, opened: str = "2020-01-01") -> dict[str, Any]:
    return {"kind": kind, "balance": Decimal(balance), "dpd": dpd, "opened": dt.date.fromisoformat(opened)}


FACT: dict[str, Any] = {
    "lines": (line("card", "100.50", 40, "2019-05-01"), line("loan", "20", 0), line("card", "0.25", 5)),
    "flags": ("vip", "staff"),
    "amounts": (Decimal("1.5"), Decimal("2.25")),
    "born": dt.date(1990, 6, 15),
    "today": dt.date(2026, 6, 14),
    "name": "Li Wei",
    "channel": "online",
    "limit": Decimal("1000"),
}


def value(source: str, fact: dict[str, Any] | None = None) -> Any:
    node, errors = check(source, SCOPE)
    assert not errors, errors
    assert node is not None
    return compile_value(node)(FACT if fact is None else fact)


VALUES: list[tuple[str, Any]] = [
    ("len(lines)", 3),
    ("count(lines)", 3),
    ("count(lines, .dpd > 30)", 1),
    ("count(lines, .kind == 'card' and .balance < 1)", 1),
    ("sum(lines, .balance)", Decimal("120.75")),
    ("sum(lines, .dpd)", 45),
    ("sum(lines, .balance if .kind == 'card' else 0)", Decimal("100.75")),
    ("sum(amounts)", Decimal("3.75")),
    ("max(lines, .dpd)", 40),
    ("min(lines, .opened)", dt.date(2019, 5, 1)),
    ("max(amounts)", Decimal("2.25")),
    ("any(lines, .dpd > 30)", True),
    ("all(lines, .dpd > 30)", False),
    ("all(lines, .balance >= 0)", True),
    ("'vip' in flags", True),
    ("'gold' in flags", False),
    ("'gold' not in flags", True),
    ("count(lines, .balance > limit / 20)", 1),  # a predicate reads the fact around the item too
    ("years_between(born, today)", 35),  # the birthday is tomorrow
    ("months_between(born, today)", 431),
    ("days_between(today, born)", -13148),
    ("lower(name)", "li wei"),
    ("upper(channel)", "ONLINE"),
    ("startswith(name, 'Li')", True),
    ("endswith(name, 'Li')", False),
    ("contains(lower(name), 'wei')", True),
    ("name + ' (' + channel + ')'", "Li Wei (online)"),
]


@pytest.mark.parametrize(("source", "want"), VALUES)
def test_list_date_and_string_expressions_compute_what_an_author_expects(source: str, want: Any) -> None:
    got = value(source)
    assert got == want and type(got) is type(want)


def test_an_empty_list_counts_zero_sums_zero_and_has_no_maximum() -> None:
    empty = {**FACT, "lines": ()}
    assert value("count(lines, .dpd > 30)", empty) == 0
    assert value("sum(lines, .balance)", empty) == Decimal(0)
    assert value("max(lines, .dpd)", empty) is None
    assert value("any(lines, .dpd > 30)", empty) is False
    assert value("all(lines, .dpd > 30)", empty) is True


def test_a_missing_list_or_date_makes_the_value_missing_not_zero() -> None:
    missing = {**FACT, "lines": None, "born": None}
    assert value("len(lines)", missing) is None
    assert value("sum(lines, .balance)", missing) is None
    assert value("years_between(born, today)", missing) is None


@pytest.mark.parametrize(
    ("start", "end", "years", "months"),
    [
        ("2000-02-29", "2026-02-28", 25, 311),  # a leap-day birthday is not reached on Feb 28
        ("2000-02-29", "2026-03-01", 26, 312),
        ("2026-01-31", "2026-02-28", 0, 0),  # not a whole month yet
        ("2026-01-31", "2026-03-31", 0, 2),
        ("2026-06-30", "2025-06-30", -1, -12),  # earlier end: negative
    ],
)
def test_years_and_months_between_count_whole_calendar_periods(
    start: str, end: str, years: int, months: int
) -> None:
    a, b = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    assert (years_between(a, b), months_between(a, b)) == (years, months)


@pytest.mark.parametrize(
    ("source", "code", "col", "message"),
    [
        (".dpd > 30", "BAD_EXPRESSION", 0, "'.dpd' names a list item"),
        ("count(lines, .dp > 30)", "UNKNOWN_NAME", 13, "did you mean '.dpd'?"),
        ("count(flags, .kind == 'x')", "BAD_EXPRESSION", 13, "the items of this list are string"),
        ("sum(lines, .kind)", "TYPE_MISMATCH", 0, "sum() needs numbers"),
        ("any(lines, .dpd)", "TYPE_MISMATCH", 0, "any() needs a predicate"),
        ("count(lines, .dpd)", "TYPE_MISMATCH", 13, "predicate of count() must be boolean"),
        ("sum(limit)", "TYPE_MISMATCH", 0, "sum() needs a list first"),
        ("3 in lines", "TYPE_MISMATCH", 0, "cannot look for integer in a list of object"),
        ("'a' in name", "BAD_EXPRESSION", 7, "'in' needs a list"),
        ("years_between(born, 2026)", "TYPE_MISMATCH", 20, "needs two dates"),
        ("lower(limit)", "TYPE_MISMATCH", 6, "lower() needs strings"),
        ("name + 1", "TYPE_MISMATCH", 0, "'+' needs numbers, got string and integer"),
        ("lenght(lines)", "UNKNOWN_FUNCTION", 0, "did you mean 'len'?"),
    ],
)
def test_list_date_and_string_mistakes_are_refused_where_they_are_written(
    source: str, code: str, col: int, message: str
) -> None:
    node, errors = check(source, SCOPE)
    assert node is None
    assert [(e.code, e.col) for e in errors][:1] == [(code, col)], errors
    assert message in errors[0].message
    assert "\u019b" not in errors[0].message  # the item letter is an internal spelling of the dot


def test_a_dot_in_a_string_or_a_decimal_literal_is_not_an_item() -> None:
    assert value("contains('a .b', ' .')") is True
    assert value("count(amounts, . > .5 * 3)") == 1  # `.` the item, `.5` a number


@pytest.mark.parametrize("negated", [False, True])
def test_membership_in_a_missing_list_is_false_either_way_in_a_rule(negated: bool) -> None:
    source = "'vip' not in flags" if negated else "'vip' in flags"
    node, _ = check(source, SCOPE)
    assert node is not None
    assert compile_condition(node)({**FACT, "flags": None}) is False


_ITEMS = st.builds(
    line,
    st.sampled_from(["card", "loan"]),
    st.decimals(0, 1000, places=2).map(str),
    st.integers(0, 120),
    st.dates(dt.date(1990, 1, 1), dt.date(2026, 1, 1)).map(dt.date.isoformat),
)
CONDITIONS = [
    "count(lines, .dpd > 30) >= 2",
    "not any(lines, .kind == 'card' and .balance > 500)",
    "sum(lines, .balance) > 1000 or max(lines, .dpd) > 90",
    "months_between(min(lines, .opened), today) >= 60 and 'vip' not in flags",
    "years_between(born, today) < 25 or startswith(lower(name), 'li')",
]


@settings(max_examples=60, deadline=None)
@given(
    lines=st.one_of(st.none(), st.lists(_ITEMS, max_size=5).map(tuple)),
    flags=st.lists(st.sampled_from(["vip", "staff", "new"]), max_size=3).map(tuple),
    born=st.one_of(st.none(), st.dates(dt.date(1950, 1, 1), dt.date(2010, 12, 31))),
    name=st.sampled_from(["Li Wei", "li", "Ann"]),
)
def test_rules_over_lists_and_dates_fire_alike_on_the_closure_and_every_evaluator(
    lines: tuple[dict[str, Any], ...] | None, flags: tuple[str, ...], born: dt.date | None, name: str
) -> None:
    """Lists and dates reach the rule IR only as hoisted values: the closure (derived values), the
    reference evaluator and the compiled evaluator must agree on every rule, missing values included."""
    fact = {**FACT, "lines": lines, "flags": flags, "born": born, "name": name}
    lowered = Lowered(compile_value=compile_value)
    rules = []
    expected = []
    for i, source in enumerate(CONDITIONS):
        node, errors = check(source, SCOPE, BOOLEAN)
        assert not errors, errors
        assert node is not None
        rules.append(ir.Rule(f"r{i}", lower_condition(node, lowered)))
        if compile_condition(node)(fact):
            expected.append(f"r{i}")
    ruleset = ir.RuleSet("lists@test/eligibility", tuple(rules), tuple(sorted(lowered.fields)))
    prepared = {name: fact.get(name) for name in lowered.fields if name not in lowered.hoisted}
    prepared |= {name: fn(fact) for name, fn in lowered.hoisted.items()}
    prepared = {k: v.toordinal() if isinstance(v, dt.date) else v for k, v in prepared.items()}
    assert ReferenceEvaluator().fire(ruleset, prepared) == expected
    assert CompiledEvaluator().fire(ruleset, prepared) == expected


def test_a_list_function_types_its_result_from_the_items() -> None:
    for source, kind in [
        ("sum(lines, .dpd)", INTEGER),
        ("sum(lines, .balance)", DECIMAL),
        ("min(lines, .opened)", DATE),
        ("count(lines, .dpd > 0)", INTEGER),
        ("lower(channel)", STRING),
        ("any(lines, .dpd > 0)", BOOLEAN),
    ]:
        node, errors = check(source, SCOPE)
        assert node is not None and node.type == kind, (source, errors)
