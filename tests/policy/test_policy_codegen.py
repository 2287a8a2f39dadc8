"""The generated module of a policy (engine.policy.codegen): `credo compile` prints it, it is the
code that runs on the compiled evaluator, and each of its functions fires exactly what the
reference evaluator fires on the prepared fact, for random applications of every shipped policy."""

from __future__ import annotations

import ast
import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.cli import main
from engine.errors import PolicyRuntimeError
from engine.pipeline.table import stage_source, stage_table
from engine.policy import Policy, load_policy, load_policy_text
from engine.policy.codegen import policy_formulas, policy_stages
from engine.rules import CompiledEvaluator, ReferenceEvaluator

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "policies").glob("*/policy.yaml"))
REFERENCE, COMPILED = ReferenceEvaluator(), CompiledEvaluator()


def test_credo_compile_prints_the_module_that_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", "consumer_loan", "--policies", str(ROOT / "policies")]) == 0
    printed = capsys.readouterr().out
    policy = load_policy(ROOT / "policies" / "consumer_loan" / "policy.yaml")
    assert printed == policy.program.source
    defined = [node.name for node in ast.parse(printed).body if isinstance(node, ast.FunctionDef)]
    stages = [name for name, _ in policy_stages(policy)]
    assert [name for name in defined if name in stages] == stages
    assert {"eligibility", "post_score", "table_GRADE", "limit_adjustments", "product_eligibility"} <= set(
        defined
    )
    assert "fired.append('blacklisted')" in printed
    # derived values, formulas and the tables' hit policies are generated source too, not closures
    assert {
        "derived_dti",
        "limit_formula",
        "price_spread",
        "hit_GRADE",
        "derive_input",
        "derive_score",
    } <= set(defined)
    assert "CTX.divide(debt_monthly_payments, applicant_income_monthly)" in printed
    assert "'row1': (1, ('A', ), 'GRADE row 1: points >= 620 -> A')," in printed


def test_credo_compile_stages_prints_the_functions_that_run_the_stage_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["compile", "consumer_loan", "--policies", str(ROOT / "policies"), "--stages"]) == 0
    printed = capsys.readouterr().out
    policy = load_policy(ROOT / "policies" / "consumer_loan" / "policy.yaml")
    assert printed == stage_source(policy)
    functions = {node.name: node for node in ast.parse(printed).body if isinstance(node, ast.FunctionDef)}
    assert list(functions) == ["run_stages", "build", "decide"]

    def traced_in(function: str) -> list[str]:
        """The stage names `function` traces, in order (each stage's name once)."""
        calls = [
            node
            for node in ast.walk(functions[function])
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "TraceEntry"
        ]
        names = [call.args[0].value for call in sorted(calls, key=lambda call: call.lineno)]  # type: ignore[attr-defined]
        return list(dict.fromkeys(names))

    traced = traced_in("run_stages")
    assert traced == [stage.name for stage in stage_table(policy)]
    assert traced[-1] == "outcome" and "offers" in traced
    # the service's decide: the same table in its own body, then its Decision as build makes it
    assert traced_in("decide") == traced
    built = [node for node in ast.walk(functions["decide"]) if isinstance(node, ast.Call)]
    assert any(isinstance(node.func, ast.Name) and node.func.id == "Decision" for node in built)


def test_compiling_an_unknown_policy_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", "no_such_policy", "--policies", str(ROOT / "policies")]) == 2
    assert "no policy 'no_such_policy'" in capsys.readouterr().err


def _value(draw: Any, decl: Any) -> Any:
    kind = decl.type.kind
    if not decl.required and draw(st.booleans()):
        return None
    if kind == "integer":
        return draw(
            st.integers(decl.min if decl.min is not None else -5, decl.max if decl.max is not None else 400)
        )
    if kind == "decimal":
        low = Decimal(decl.min) if decl.min is not None else Decimal(-10)
        high = Decimal(decl.max) if decl.max is not None else Decimal(200000)
        return draw(st.decimals(low, high, places=2, allow_nan=False, allow_infinity=False))
    if kind == "boolean":
        return draw(st.booleans())
    if kind == "enum":
        return draw(st.sampled_from(decl.type.values))
    if kind == "date":
        return draw(st.dates(dt.date(1940, 1, 1), dt.date(2030, 12, 31)))
    if kind == "list":  # a few items, each drawn like an input (an object item field by field)
        return tuple(_value(draw, decl.items) for _ in range(draw(st.integers(0, min(decl.max_items, 4)))))
    if kind == "object":
        return {field.name: _value(draw, field) for field in decl.fields}
    return draw(st.text(max_size=8))


def scored_facts(policy: Policy) -> st.SearchStrategy[dict[str, Any]]:
    return st.composite(lambda draw: _scored_fact(draw, policy))()


def _scored_fact(draw: Any, policy: Policy) -> dict[str, Any]:
    fact = {name: _value(draw, decl) for name, decl in policy.inputs.items()}
    try:
        policy.derive(fact, REFERENCE)
    except PolicyRuntimeError:
        assume(False)
    fact["score.points"] = draw(st.integers(300, 900))
    fact["score.pd"] = draw(st.decimals(Decimal("0.0001"), Decimal("0.9"), places=4))
    if policy.score is not None:
        fact["score.grade"] = policy.score.grade_for(fact["score.points"], REFERENCE)
    try:
        policy.derive_late(fact, REFERENCE)
    except PolicyRuntimeError:
        assume(False)
    return fact


def _outcome(fire: Any, *args: Any) -> Any:
    try:
        return fire(*args)
    except PolicyRuntimeError as exc:
        return ("error", exc.message)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.parent.name for p in SHIPPED])
def test_every_generated_function_fires_what_the_reference_fires(path: Path) -> None:
    policy = load_policy(path)

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(fact=scored_facts(policy))
    def agree(fact: dict[str, Any]) -> None:
        for _, stage in policy_stages(policy):
            assert stage.compiled is not None
            want = _outcome(stage.fire, REFERENCE, dict(fact))
            assert _outcome(stage.fire, COMPILED, dict(fact)) == want, stage.name

    agree()


def _plan_outcome(policy: Policy, fact: dict[str, Any], evaluator: Any) -> Any:
    try:
        lines = policy.derive(fact, evaluator)
        lines += policy.derive_late(fact, evaluator)
        formulas = [formula.run(fact, evaluator) for _, formula in policy_formulas(policy)]
        features = policy.score.features(fact, evaluator) if policy.score is not None else None
    except PolicyRuntimeError as exc:
        return ("error", exc.message, str(exc.location))
    return fact, lines, [(type(v).__name__, v) for v in formulas], features


@pytest.mark.parametrize("path", SHIPPED, ids=[p.parent.name for p in SHIPPED])
def test_generated_values_and_tables_equal_the_closures(path: Path) -> None:
    policy = load_policy(path)
    assert policy.program.derive_input is not None

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def agree(data: Any) -> None:
        fact = {name: _value(data.draw, decl) for name, decl in policy.inputs.items()}
        fact["score.points"] = data.draw(st.integers(300, 900))
        fact["score.pd"] = data.draw(st.decimals(Decimal("0.0001"), Decimal("0.9"), places=4))
        if policy.score is not None:
            fact["score.grade"] = policy.score.grade_for(fact["score.points"], COMPILED)
            assert fact["score.grade"] == policy.score.grade_for(fact["score.points"], REFERENCE)
        want = _plan_outcome(policy, dict(fact), REFERENCE)
        assert _plan_outcome(policy, dict(fact), COMPILED) == want

    agree()


@pytest.mark.parametrize("engine", ["compiled", "durable", "reference"])
def test_every_shipped_policy_test_passes_on_every_rule_engine(
    engine: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["test", str(ROOT / "policies"), "--rule-engine", engine]) == 0
    assert capsys.readouterr().out.strip().endswith("passed, 0 failed")


MULTILINE = """\
policy: multi
version: "1"
currency: CNY
inputs:
  applicant.income: {type: decimal, min: 0}
derived:
  doubled: |
    applicant.income
    * 2 # ) or __import__("os")
stages:
  - name: eligibility
    rules:
      - id: low
        when: doubled < 100
        decline: {code: LOW, text: Low}
"""


def test_a_multi_line_formula_stays_inside_its_comment() -> None:
    policy = load_policy_text(MULTILINE)
    tree = ast.parse(policy.program.source)
    outside_functions = [ast.unparse(node) for node in tree.body if not isinstance(node, ast.FunctionDef)]
    assert outside_functions == ["D0 = Decimal('2')"]  # the formula's constant, as the generator spells it
    assert "#   doubled = applicant.income * 2" in policy.program.source
    assert "__import__" not in "".join(line for line in policy.program.source.splitlines() if "#" not in line)
    eligibility = policy.rule_stages[0]
    assert eligibility.fire(COMPILED, policy.validate({"applicant": {"income": "40"}}) | {"doubled": 80}) == [
        "low"
    ]
