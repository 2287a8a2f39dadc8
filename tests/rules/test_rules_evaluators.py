"""Behaviour both rule evaluators must share (missing fields, exact numbers, odd strings, order of
fired rules) and the durable_rules adapter's containment (conflicts, action errors, no timers)."""

from __future__ import annotations

import subprocess
import sys
import threading
from decimal import Decimal
from itertools import count
from pathlib import Path
from typing import Any

import pytest

import engine.rules.durable as durable_module
from engine.errors import RuleActionError, RuleEngineError, RulesetConflict, UnencodableValue
from engine.rules import CompiledEvaluator, DurableEvaluator, Evaluator, ReferenceEvaluator
from engine.rules.encoding import ALWAYS, CHUNK_ACTIVATIONS, activations, compile_ruleset
from engine.rules.ir import And, Compare, CompareOp, Condition, Const, Field, In, Or, Rule, RuleSet, Truth

ROOT = Path(__file__).resolve().parents[2]
EVALUATORS = [ReferenceEvaluator(), DurableEvaluator(), CompiledEvaluator()]
OPS: list[CompareOp] = ["<", "<=", ">", ">=", "==", "!="]
_names = count()


def ruleset(*conditions: Condition) -> RuleSet:
    """A RuleSet under a fresh name, rules named r0, r1, ... in order."""
    rules = tuple(Rule(f"r{i}", condition) for i, condition in enumerate(conditions))
    return RuleSet(f"unit@{next(_names):06d}/test", rules)


both = pytest.mark.parametrize("evaluator", EVALUATORS, ids=["reference", "durable", "compiled"])


@both
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize(
    "fact", [{}, {"x": None}, {"x": None, "y": None}], ids=["absent", "none", "both-none"]
)
def test_a_missing_field_makes_every_comparison_false(
    evaluator: Evaluator, op: CompareOp, fact: dict[str, Any]
) -> None:
    rules = ruleset(
        Compare(op, Field("x"), Const(1)),
        Compare(op, Const("a"), Field("x")),
        Compare(op, Field("x"), Field("y")),
        Compare(op, Field("y"), Field("x")),
        Compare(op, Field("x"), Field("x")),
        In(Field("x"), (1, "a", True)),
    )
    assert evaluator.fire(rules, fact | {"y": 1} if "y" not in fact else fact) == []


@both
def test_field_to_field_comparison_with_one_side_missing_is_false_after_any_history(
    evaluator: Evaluator,
) -> None:
    rules = ruleset(Compare("<", Field("x"), Field("y")), Compare("!=", Field("y"), Field("x")))
    assert evaluator.fire(rules, {"x": 1, "y": 2}) == ["r0", "r1"]
    for fact in ({"x": 1}, {"y": 2}, {"x": "a"}, {"x": Decimal("-2")}, {}):
        assert evaluator.fire(rules, fact) == []


@both
def test_no_rule_fired_is_an_empty_list(evaluator: Evaluator) -> None:
    rules = ruleset(Compare("<", Field("age"), Const(21)), Truth(False), Or(()))
    assert evaluator.fire(rules, {"age": 30}) == []


@both
def test_every_matching_rule_is_reported_once_in_policy_order(evaluator: Evaluator) -> None:
    rules = ruleset(
        Truth(True),
        Compare(">=", Field("age"), Const(18)),
        Or((Compare("==", Field("age"), Const(30)), Compare(">", Field("age"), Const(20)))),  # both branches
        In(Field("age"), (30, Decimal("30.0"), 31)),  # two equal values
        And(()),
        Compare("<", Field("age"), Const(18)),
        Compare("==", Const(1), Const(Decimal("1.00"))),
    )
    assert evaluator.fire(rules, {"age": 30}) == ["r0", "r1", "r2", "r3", "r4", "r6"]


@both
def test_more_than_64_rule_activations_on_one_fact(evaluator: Evaluator) -> None:
    # durable_rules 2.0.28 crashes beyond 64 activations per fact: the adapter chunks and splits.
    many = [Compare(">", Field("x"), Const(-i)) for i in range(150)]
    wide_or = Or(tuple(Compare("<", Field("x"), Const(i)) for i in range(2, 80)))
    product = And(tuple(Or(tuple(Compare("!=", Field("x"), Const(i)) for i in range(4))) for _ in range(4)))
    rules = ruleset(*many, wide_or, product, Compare("<", Field("x"), Const(0)))
    assert evaluator.fire(rules, {"x": 1}) == [f"r{i}" for i in range(152)]
    assert evaluator.fire(rules, {"x": -1000}) == ["r150", "r151", "r152"]


@both
def test_in_keeps_true_and_one_apart(evaluator: Evaluator) -> None:
    rules = ruleset(In(Field("b"), (1, True)), In(Field("b"), (1,)), In(Field("b"), (True,)))
    assert evaluator.fire(rules, {"b": True}) == ["r0", "r2"]
    assert evaluator.fire(rules, {"b": 1}) == ["r0", "r1"]


@both
def test_decimal_and_integer_comparisons_are_exact(evaluator: Evaluator) -> None:
    rules = ruleset(
        Compare(">", Field("dti"), Const(Decimal("0.3"))),
        Compare("==", Field("rate"), Const(Decimal("0.10"))),
        Compare("<", Field("big"), Const(2**63 + 1)),
        Compare(">", Field("big"), Const(Decimal("9223372036854775807.9999999999999999999999999"))),
        Compare("<", Field("long"), Field("longer")),
        Compare("==", Field("rate"), Field("dti")),
        Compare("<", Field("neg"), Const(Decimal("-1.2"))),
    )
    fact = {
        "dti": Decimal("0.3000000000000000000000000000000000001"),  # more digits than the context precision
        "rate": Decimal("0.1"),
        "big": 2**63,
        "long": Decimal("1234567890.12345678901234567890123456789"),
        "longer": Decimal("1234567890.123456789012345678901234567891"),
        "neg": Decimal("-1.23"),
    }
    assert evaluator.fire(rules, fact) == ["r0", "r1", "r2", "r3", "r4", "r6"]


@both
def test_strings_compare_by_code_point_whatever_their_characters(evaluator: Evaluator) -> None:
    odd = ['"', "\\", "a\x00b", "a", "é", "中", "", "\n", "Z", "$m", "a.b"]
    rules = ruleset(*(Compare("<", Field("s"), Const(text)) for text in odd), In(Field("s"), tuple(odd)))
    for text in odd:
        expected = [f"r{i}" for i, other in enumerate(odd) if text < other] + [f"r{len(odd)}"]
        assert evaluator.fire(rules, {"s": text}) == expected, text


@both
def test_booleans_are_not_numbers(evaluator: Evaluator) -> None:
    rules = ruleset(
        Compare("==", Field("b"), Const(1)),
        Compare("!=", Field("b"), Const(1)),
        Compare("==", Field("b"), Const(True)),
        Compare("<", Field("b"), Const(True)),
        Compare(">=", Field("b"), Const(True)),  # durable's own bool >= is always true
        In(Field("b"), (1, 0)),
    )
    assert evaluator.fire(rules, {"b": True}) == ["r1", "r2", "r4"]
    assert evaluator.fire(rules, {"b": False}) == ["r1", "r3"]


@both
def test_dotted_field_names_are_plain_names(evaluator: Evaluator) -> None:
    rules = ruleset(Compare("==", Field("a.b"), Const(1)), Compare("==", Field("a"), Const(2)))
    assert evaluator.fire(rules, {"a.b": 1, "a": 2}) == ["r0", "r1"]
    assert evaluator.fire(rules, {"a": 2}) == ["r1"]


def test_a_name_registered_with_other_rules_is_refused() -> None:
    durable = DurableEvaluator()
    first = RuleSet("conflict@000000/eligibility", (Rule("a", Truth(True)),))
    assert durable.fire(first, {}) == ["a"]
    same = RuleSet("conflict@000000/eligibility", (Rule("a", Truth(True)),))
    assert durable.fire(same, {}) == ["a"]  # equal rules: the registration is reused
    other = RuleSet("conflict@000000/eligibility", (Rule("b", Truth(True)),))
    with pytest.raises(RulesetConflict):
        durable.fire(other, {})
    with pytest.raises(RulesetConflict):
        durable.register(other)


def test_an_exception_inside_an_action_is_surfaced(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_recorder(self: object, rule_name: str) -> Any:
        def record(c: Any) -> None:
            if rule_name == "r0":
                raise RuntimeError(f"action of {rule_name} failed")

        return record

    monkeypatch.setattr(durable_module._Engine, "_recorder", failing_recorder)
    broken = ruleset(Truth(True))
    durable = DurableEvaluator()
    with pytest.raises(RuleActionError, match="action of r0 failed"):
        durable.fire(broken, {})
    monkeypatch.undo()
    healthy = ruleset(Compare(">", Field("x"), Const(1)))
    assert durable.fire(healthy, {"x": 2}) == ["r0"]


def test_values_without_an_exact_encoding_are_refused() -> None:
    rules = ruleset(Compare(">", Field("x"), Const(1)))
    for value in (1.5, Decimal("NaN"), Decimal("Infinity"), Decimal("1e999999"), [1]):
        with pytest.raises(UnencodableValue):
            DurableEvaluator().fire(rules, {"x": value})


def test_durable_background_timers_are_off() -> None:
    DurableEvaluator().fire(ruleset(Truth(True)), {})
    assert not [thread for thread in threading.enumerate() if isinstance(thread, threading.Timer)]


def test_importing_engine_rules_does_not_load_the_c_engine() -> None:
    code = "import sys, engine.rules; assert not {'durable', 'durable_rules_engine'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_threads_share_the_engine_safely() -> None:
    rules = ruleset(Compare("<", Field("n"), Const(500)), Compare(">=", Field("n"), Const(500)))
    durable, errors = DurableEvaluator(), []

    def work(offset: int) -> None:
        for n in range(offset, 1000, 4):
            if durable.fire(rules, {"n": n}) != (["r0"] if n < 500 else ["r1"]):
                errors.append(n)

    threads = [threading.Thread(target=work, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_no_durable_ruleset_can_reach_64_activations() -> None:
    wide = Or(tuple(Compare("<", Field("x"), Const(i)) for i in range(100)))
    product = And(tuple(Or((Truth(True), Truth(True), Truth(True))) for _ in range(5)))  # 243 terms
    compiled = compile_ruleset(ruleset(*([Truth(True)] * 70), wide, product))
    assert len(compiled.chunks) > 1
    for chunk in compiled.chunks:
        assert sum(activations(rule.condition) for rule in _rules_of(chunk, compiled)) <= CHUNK_ACTIVATIONS


def _rules_of(chunk: dict[str, Any], compiled: Any) -> list[Rule]:
    # a split rule contributes one activation per durable rule (one DNF term each)
    by_id = {rule.id: rule for rule in compiled.ruleset.rules}
    return [
        Rule(name, Truth(True)) if "." in name else by_id[compiled.rule_ids[name]]
        for name in chunk
        if name != ALWAYS
    ]


def test_a_ruleset_name_durable_would_misread_is_refused() -> None:
    with pytest.raises(RuleEngineError):
        DurableEvaluator().fire(RuleSet("policy$state", (Rule("a", Truth(True)),)), {})
