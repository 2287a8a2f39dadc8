"""Decision tables as a policy author and an auditor see them: hit policies, chained tables, phases
around the score stage, the trace of matched rows, and every row of the shipped policy's tables."""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from engine.errors import PolicyRuntimeError
from engine.policy import check_paths, load_policy, load_policy_text
from engine.rules.reference import ReferenceEvaluator

SHIPPED = Path(__file__).resolve().parents[2] / "policies" / "consumer_loan" / "policy.yaml"


@cache
def shipped() -> Any:
    return load_policy(SHIPPED)


HEADER = """\
policy: t
version: "1"
currency: CNY
languages: [en]
inputs:
  applicant.income: {type: decimal, min: 0}
  applicant.kind: {type: enum, values: [salaried, self_employed, retired]}
  bureau.score: {type: integer, min: 300, max: 900}
  bureau.flags: {type: integer, min: 0, max: 10}
"""
RULE = """\
stages:
  - name: eligibility
    rules:
      - {id: r, when: "%s", refer: {code: R, text: {en: r}}}
"""


def policy(tables: str, uses: str, derived: str = "") -> Any:
    return load_policy_text(HEADER + derived + "decision_tables:\n" + tables + RULE % uses)


def app(score: int = 700, kind: str = "salaried", income: str = "5000", flags: int = 0) -> dict[str, Any]:
    return {"applicant": {"income": income, "kind": kind}, "bureau": {"score": score, "flags": flags}}


def derived(p: Any, **kw: Any) -> tuple[dict[str, Any], list[str]]:
    fact = p.validate(app(**kw))
    return fact, p.derive(fact)


BANDS = """\
  BAND:
    hit: %s
    inputs: {points: bureau.score}
    outputs: %s
    rows:
      - [">= 750", A]
      - ["[700..749]", B]
      - ["[600..700)", C]
      - ["< 600", D]
      - ["-", Z]
"""


def test_first_hit_takes_the_first_matching_row_and_the_trace_names_it() -> None:
    p = policy(BANDS % ("first", "[band]"), "band == 'Z'")
    fact, lines = derived(p, score=720)
    assert fact["band"] == "B"
    assert lines == ["BAND row 2: points in [700..749] -> B"]
    assert derived(p, score=599) == (
        {**p.validate(app(score=599)), "band": "D"},
        ["BAND row 4: points < 600 -> D"],
    )


def test_priority_hit_takes_the_row_whose_output_ranks_highest() -> None:
    p = policy(BANDS % ("priority", "{band: {values: [Z, D, C, B, A]}}"), "band == 'Z'")
    fact, lines = derived(p, score=760)
    assert fact["band"] == "Z" and lines == ["BAND row 5: any -> Z"]


def test_collect_gathers_rows_in_order_and_aggregates() -> None:
    table = """\
  RISK:
    hit: collect
    aggregate: %s
    inputs: {flags: bureau.flags, kind: applicant.kind}
    outputs: [points]
    rows:
      - [">= 1", "-", 10]
      - [">= 3", "-", 20]
      - ["-", "not(salaried)", 5]
"""
    for aggregate, want in (("sum", 35), ("min", 5), ("max", 20), ("count", 3)):
        p = policy(table % aggregate, "points > 0")
        fact, lines = derived(p, flags=3, kind="retired")
        assert fact["points"] == want, aggregate
        assert lines[:3] == [
            "RISK row 1: flags >= 1 -> 10",
            "RISK row 2: flags >= 3 -> 20",
            "RISK row 3: kind not in (salaried) -> 5",
        ]
        assert lines[3].startswith(f"RISK {aggregate} of 3 row(s)")
    p = policy(table % "sum", "points > 0")
    assert derived(p, flags=0, kind="salaried")[0]["points"] == 0


LEVELS = """\
  LEVEL:
    inputs: {income: applicant.income}
    outputs: [level]
    rows:
      - ["applicant.income > 1000", high]
      - ["applicant.income > 3000", very_high]
      - ["<= 1000", low]
"""


def test_unique_table_refuses_two_matches_at_decision_time() -> None:
    p = policy(LEVELS, "level == 'low'")
    assert derived(p, income="2000")[0]["level"] == "high"
    with pytest.raises(PolicyRuntimeError, match="rows 1 and 2 both match"):
        derived(p, income="5000")


def test_tables_chain_into_derived_values_and_other_tables() -> None:
    tables = (
        BANDS % ("first", "[band]")
        + """\
  MULT:
    inputs: {band: band, kind: applicant.kind}
    outputs: [multiplier]
    rows:
      - [A, "-", 12]
      - [B, "salaried, self_employed", 10]
      - [B, retired, 8]
      - ["C, D, Z", "-", "yearly / 10000"]
"""
    )
    p = policy(
        tables,
        "limit < 20000",
        derived='derived:\n  yearly: "applicant.income * 12"\n  limit: "applicant.income * multiplier"\n',
    )
    assert [(phase, name) for phase, _, name in p.plan] == [
        ("input", "yearly"),
        ("input", "BAND"),
        ("input", "MULT"),
        ("input", "limit"),
    ]
    fact, lines = derived(p, score=650, income="5000")
    assert fact["multiplier"] == Decimal("6") and fact["limit"] == Decimal("30000")
    assert lines[1] == "MULT row 4: band in (C, D, Z) -> yearly / 10000 = 6"


SCORED = """\
policy: s
version: "1"
currency: CNY
languages: [en]
inputs:
  applicant.income: {type: decimal, min: 0}
  loan.term: {type: integer, min: 1, max: 120}
score:
  model: {name: m, version: "1"}
  features: {income: applicant.income}
  scaling: {base_points: 600, base_odds: 50, pdo: 20}
  grades: GRADE
decision_tables:
  GRADE:
    complete: true
    inputs: {points: score.points}
    outputs: [grade]
    rows:
      - [">= 650", A]
      - ["< 650", B]
  SPREAD:
    complete: true
    inputs: {grade: score.grade, term: loan.term}
    outputs: [spread]
    rows:
      - [A, "-", 0.01]
      - [B, "<= 36", 0.03]
      - [B, "> 36", 0.04]
stages:
  - name: post_score
    rules:
      - {id: wide, when: "spread > 0.035", refer: {code: WIDE, text: {en: wide}}}
price:
  base_rate: 0.05
  spread: spread
"""


def test_a_table_reading_score_runs_after_the_score_stage() -> None:
    p = load_policy_text(SCORED)
    assert p.plan == [("score", "table", "SPREAD")]
    assert p.score is not None and p.score.grade_for(640) == "B" and p.score.grade_for(650) == "A"
    fact = p.validate({"applicant": {"income": 100}, "loan": {"term": 48}})
    assert p.derive(fact) == [] and "spread" not in fact
    fact.update({"score.pd": Decimal("0.02"), "score.points": 640, "score.grade": "B"})
    lines = p.derive_after_score(fact, ReferenceEvaluator())
    assert lines == ["GRADE row 2: points < 650 -> B", "SPREAD row 3: grade = B; term > 36 -> 0.04"]
    assert fact["spread"] == Decimal("0.04")


def test_post_score_outputs_are_computed_on_first_use_if_nobody_asked() -> None:
    p = load_policy_text(SCORED)
    fact = p.validate({"applicant": {"income": 100}, "loan": {"term": 12}})
    fact.update({"score.pd": Decimal("0.02"), "score.points": 700, "score.grade": "A"})
    assert p.price is not None and p.price.spread is not None
    assert p.price.spread(fact) == Decimal("0.01") and fact["spread"] == Decimal("0.01")


def test_using_a_post_score_output_before_the_score_is_a_located_error() -> None:
    text = SCORED.replace("features: {income: applicant.income}", "features: {income: spread}")
    diagnostics = [d for d in _check(text) if d.is_error]
    assert [(d.code, d.location.line) for d in diagnostics] == [("UNKNOWN_NAME", 10)]
    assert "computed after the score stage" in diagnostics[0].message


def _check(text: str) -> list[Any]:
    from engine.policy import check_text

    return check_text(text, "policy.yaml")


# ---- the shipped policy: every row of its tables ------------------------------------------------


def test_shipped_policy_validates_without_table_warnings() -> None:
    found = [
        d for d in check_paths([SHIPPED]) if d.code.startswith(("TABLE_", "SHADOWED_ROW", "UNUSED_OUTPUT"))
    ]
    assert found == []


@pytest.mark.parametrize(
    ("points", "grade", "row"),
    [
        (900, "A", 1),
        (620, "A", 1),
        (619, "B", 2),
        (605, "B", 2),
        (604, "C", 3),
        (590, "C", 3),
        (589, "D", 4),
        (570, "D", 4),
        (569, "E", 5),
        (-5, "E", 5),
    ],
)
def test_shipped_grade_table_rows(points: int, grade: str, row: int) -> None:
    p = shipped()
    assert p.score is not None and p.score.grade_for(points) == grade
    hit = p.decision_tables["GRADE"].evaluate({"score.points": points})
    assert hit.rows == (row,) and hit.lines[0].startswith(f"GRADE row {row}: points ")


SHIPPED_MULTIPLE = {"A": 12, "B": 10, "C": 8, "D": 5, "E": 3}
SHIPPED_SPREAD = {"A": "0.000", "B": "0.020", "C": "0.045", "D": "0.080", "E": "0.120"}


@pytest.mark.parametrize("grade", sorted(SHIPPED_MULTIPLE))
@pytest.mark.parametrize(("term", "premium"), [(1, "0"), (36, "0"), (60, "0"), (61, "0.005"), (120, "0.005")])
def test_shipped_limit_multiple_and_rate_spread_rows(grade: str, term: int, premium: str) -> None:
    p = shipped()
    fact: dict[str, Any] = {"score.grade": grade, "loan.term_months": term}
    assert p.decision_tables["INCOME_MULTIPLE"].evaluate(fact).outputs == {
        "income_multiple": SHIPPED_MULTIPLE[grade]
    }
    spread = p.decision_tables["RATE_SPREAD"].evaluate(fact).outputs["grade_spread"]
    extra = Decimal(premium) * (2 if grade in ("D", "E") else 1)
    assert spread == Decimal(SHIPPED_SPREAD[grade]) + extra


KINDS = """\
  FLAGGED:
    hit: first
    inputs: {n: bureau.flags}
    outputs: [label]
    rows:
      - ["1", one]
      - ["-", other]
"""


def test_a_table_keeps_its_rows_per_value_and_kind_so_a_bool_never_reads_as_the_int_one() -> None:
    """The generated table keeps the rows it found per (class, value) of its inputs: True, 1 and
    Decimal 1 are equal and hash alike, yet bool is its own kind; each must find its own rows,
    whatever order they come in, as the reference evaluator finds them."""
    from engine.rules import CompiledEvaluator

    p = policy(KINDS, "label == 'one'")
    table = p.decision_tables["FLAGGED"]
    assert table.compiled is not None
    for value in [1, True, Decimal("1.0"), 1, False, 0, True, None, Decimal("1")]:
        fact = {"bureau.flags": value}
        want = table.evaluate(dict(fact), ReferenceEvaluator())
        got = table.evaluate(dict(fact), CompiledEvaluator())
        assert (got.rows, dict(got.outputs), got.lines) == (want.rows, dict(want.outputs), want.lines), value
    assert table.evaluate({"bureau.flags": True}, CompiledEvaluator()).outputs["label"] == "other"
    assert table.evaluate({"bureau.flags": 1}, CompiledEvaluator()).outputs["label"] == "one"


def test_a_grade_kept_per_points_is_the_tables_answer_and_a_gap_still_refuses_every_time() -> None:
    """The compiled evaluator keeps the grade per points (the grade table reads nothing else): asked
    twice it answers as the reference evaluator does, lines included; points no row covers are
    refused each time, never kept."""
    from engine.rules import CompiledEvaluator

    gap = SCORED.replace('      - ["< 650", B]', '      - ["< 600", B]').replace(
        "    complete: true\n", "", 1
    )
    p = load_policy_text(gap)
    assert p.score is not None
    compiled, reference = CompiledEvaluator(), ReferenceEvaluator()
    for points in [700, 650, 599, 700, 599, 0, 650]:
        want = p.score.graded(points, reference)
        assert p.score.graded(points, compiled) == want == p.score.graded(points, compiled)
    for _ in range(2):
        with pytest.raises(
            PolicyRuntimeError, match=r"no row of grade table GRADE matches score\.points = 620"
        ):
            p.score.graded(620, compiled)


@pytest.mark.parametrize(
    ("tables", "uses", "key", "values"),
    [
        (KINDS, "label == 'one'", "bureau.flags", [1, True, Decimal("1.0"), 1, False, 0, True, None, 1, 0]),
        (
            LEVELS,
            "level == 'low'",
            "applicant.income",
            [Decimal(v) for v in ("900", "2000", "900.0", "2000")],
        ),
    ],
    ids=["first", "unique"],
)
def test_a_planned_table_kept_per_value_answers_as_the_reference_every_time(
    tables: str, uses: str, key: str, values: list[Any]
) -> None:
    """The plan keeps a table's outputs and trace lines per (class, value) of what its rows read:
    asked again, the compiled plan answers what the reference evaluator answers, lines included,
    a bool never read as the int one; two rows of a unique table matching refuse every time."""
    from engine.rules import CompiledEvaluator

    p = policy(tables, uses)
    assert "def kept_" in p.program.source
    compiled, reference = CompiledEvaluator(), ReferenceEvaluator()
    for value in values:
        want, got = {key: value}, {key: value}
        assert (p.derive(got, compiled), got) == (p.derive(want, reference), want), value
    if tables is LEVELS:
        for _ in range(2):
            with pytest.raises(PolicyRuntimeError, match="rows 1 and 2 both match"):
                p.derive({key: Decimal("5000")}, compiled)
