"""The compiled evaluator's generated source: readable, and built only from the validated ruleset
(names and ids as string literals), never from a fact."""

from __future__ import annotations

import ast
from decimal import Decimal
from typing import Any

from engine.rules import CompiledEvaluator, ReferenceEvaluator
from engine.rules.compiled import ruleset_source
from engine.rules.ir import And, Compare, Const, Field, In, Or, Rule, RuleSet

HOSTILE = 'x"]) or __import__("os").system("false") or ("'


def _ruleset() -> RuleSet:
    return RuleSet(
        "p@0123456789ab/eligibility",
        (
            Rule("too_young", Compare("<", Field("applicant.age"), Const(22))),
            Rule(HOSTILE, Compare("==", Field(HOSTILE), Const(HOSTILE))),
            Rule(
                "thin_file",
                Or(
                    (
                        In(Field("bureau.grade"), ("D", "E")),
                        And((Compare(">=", Field("dti"), Const(Decimal("0.55"))),)),
                    )
                ),
            ),
        ),
    )


def test_hostile_rule_ids_and_field_names_stay_string_literals() -> None:
    source, _ = ruleset_source(_ruleset())
    calls = {ast.unparse(node.func) for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)}
    assert calls <= {"get", "fired.append", "_cmp", "_in"}, calls
    assert not any(isinstance(node, ast.Import | ast.ImportFrom) for node in ast.walk(ast.parse(source)))
    fact = {"applicant.age": 30, HOSTILE: HOSTILE, "bureau.grade": "A", "dti": Decimal("0.2")}
    assert CompiledEvaluator().fire(_ruleset(), fact) == [HOSTILE]


def test_fact_text_is_compared_never_run() -> None:
    fact = {"applicant.age": 20, "bureau.grade": '__import__("os").system("false")', "dti": None}
    assert CompiledEvaluator().fire(_ruleset(), fact) == ReferenceEvaluator().fire(_ruleset(), fact)


def test_source_reads_as_one_if_per_rule() -> None:
    source, _ = ruleset_source(_ruleset())
    assert source.startswith("def fire_eligibility(fact):")
    assert source.count("\n    if ") == 3
    assert "fired.append('too_young')" in source


def test_a_condition_nested_beyond_pythons_parser_is_still_decided() -> None:
    condition: Any = Compare("<", Field("x"), Const(1))
    for depth in range(300):  # deeper than Python's 200 nested parentheses
        condition = (And if depth % 2 else Or)((condition, Compare(">", Field("y"), Const(depth))))
    deep = RuleSet("deep@0123456789ab/eligibility", (Rule("deep", condition),))
    for fact in ({"x": 0, "y": 0}, {"x": 0, "y": 500}, {"x": 5, "y": 500}, {}):
        assert CompiledEvaluator().fire(deep, fact) == ReferenceEvaluator().fire(deep, fact)
