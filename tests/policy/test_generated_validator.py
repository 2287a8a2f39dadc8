"""The generated validator (engine.policy.validator) is a fast path only: on any application it
either gives up or yields exactly what validate_application yields (same values, same types, same
`default: today` inputs), so every error still comes from the one validator."""

from __future__ import annotations

import copy
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.cli import main
from engine.errors import InvalidInput
from engine.policy import Policy, load_policy, load_policy_text
from engine.policy.inputs import flatten, validate_application
from engine.policy.validator import validator_source

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "policies").glob("*/policy.yaml"))

SHAPES = """
policy: shapes
version: "1"
currency: CNY
inputs:
  applicant.age: {type: integer, min: 18, max: 100}
  applicant.income: {type: decimal, min: 0, max: 1000000}
  applicant.kind: {type: enum, values: [salaried, retired]}
  applicant.name: {type: string, required: false, pii: true}
  applicant.born: {type: date, required: false, min: "1900-01-01"}
  decided_on: {type: date, default: today}
  flags.vip: {type: boolean, required: false, default: false}
  flags.channel: {type: enum, values: [web, branch], required: false, default: web}
  bureau.tradelines:
    type: list
    max_items: 3
    required: false
    items:
      type: object
      fields:
        balance: {type: decimal, min: 0}
        open: {type: boolean, required: false}
"""


def _policies() -> list[Policy]:
    return [load_policy_text(SHAPES), *(load_policy(path) for path in SHIPPED)]


POLICIES = _policies()
SHAPES_INPUT = {
    "applicant": {"age": 30, "income": "1234.50", "kind": "salaried", "born": "1990-02-03", "name": "Li"},
    "flags": {"vip": True},
    "bureau": {"tradelines": [{"balance": "10.5", "open": True}, {"balance": 3}]},
}
ODD_VALUES = [
    None,
    "",
    "x",
    "salaried",
    "web",
    0,
    -1,
    17,
    40,
    10**18,
    10**18 - 1,
    -(10**18),
    True,
    False,
    "1.5",
    " 1.5",
    "1e3",
    "1.00000000000000000000000000001",
    "999999999999999999",  # 18 digits: below the 10^18 limit without comparing
    "1000000000000000000",  # 19: the limit itself, refused
    "999999999999999999.9",
    "-999999999999999999.9",
    "１２",
    "-0",
    ".5",
    "5.",
    ".",
    "1.2.3",
    "+1.5",
    "١٢",
    1.5,
    Decimal("2.50"),
    [],
    {},
    {"a": 1},
    [{"balance": "10"}],
    [{"balance": "x"}],
    "2020-01-02",
    "1800-01-01",
    dt.date(2024, 5, 6),
]


def _leaves(node: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for key, value in node.items():
        path = (*prefix, key)
        out += _leaves(value, path) if isinstance(value, dict) and value else [path]
    return out


def _node(app: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for key in path[:-1]:
        app = app[key]
    return app


@st.composite
def applications(draw: st.DrawFn) -> tuple[Policy, dict[str, Any], dt.date | None]:
    policy = draw(st.sampled_from(POLICIES))
    inputs = [case.input for case in policy.tests] or [SHAPES_INPUT]
    app = copy.deepcopy(dict(draw(st.sampled_from(inputs))))
    for _ in range(draw(st.integers(0, 3))):
        leaves = _leaves(app)
        if not leaves:
            break
        path = draw(st.sampled_from(leaves))
        node = _node(app, path)
        how = draw(st.sampled_from(["set", "set", "set", "drop", "unknown", "dotted", "group"]))
        if how == "set":
            node[path[-1]] = copy.deepcopy(draw(st.sampled_from(ODD_VALUES)))
        elif how == "drop":
            del node[path[-1]]
        elif how == "unknown":
            node[draw(st.sampled_from(["extra", "", "age2"]))] = 1
        elif how == "dotted" and len(path) > 1:
            app[".".join(path)] = node.pop(path[-1])
        elif len(path) > 1:
            app[path[0]] = copy.deepcopy(draw(st.sampled_from([None, {}, "x", []])))
    today = draw(st.sampled_from([None, dt.date(2026, 3, 4)]))
    return policy, app, today


def _typed(fact: dict[str, Any]) -> list[tuple[str, type, Any]]:
    return [(name, type(value), value) for name, value in fact.items()]


@settings(max_examples=400, deadline=None)
@given(applications())
def test_generated_validator_agrees_with_validate_application(case: Any) -> None:
    policy, app, today = case
    fast = policy._fast_validator
    assert fast is not None
    found = fast(copy.deepcopy(app), today)
    try:
        want = validate_application(policy.inputs, app, policy.open_groups, today)
    except InvalidInput:
        assert found is None, "the fast path accepted an application the validator refuses"
        return
    if found is None:
        return
    sent, _ = flatten(app)
    dated = tuple(name for name in policy.dated_inputs if sent.get(name) is None)
    assert _typed(found[0]) == _typed(want)
    assert found[1] == dated


@pytest.mark.parametrize("policy", POLICIES[1:], ids=[p.name for p in POLICIES[1:]])
def test_well_formed_test_inputs_take_the_generated_validator(policy: Policy) -> None:
    """Every shipped policy's own valid test inputs validate on the generated fast path, to the
    same typed fact as validate_application."""
    taken = 0
    for case in policy.tests:
        try:
            want = validate_application(policy.inputs, case.input, policy.open_groups, dt.date(2026, 1, 1))
        except InvalidInput:
            continue
        found = policy._fast_validator(case.input, dt.date(2026, 1, 1))  # type: ignore[misc]
        assert found is not None, case.name
        assert _typed(found[0]) == _typed(want)
        taken += 1
    assert taken > 0


def test_readme_applicant_validates_on_the_generated_path() -> None:
    policy = load_policy(ROOT / "policies" / "consumer_loan" / "policy.yaml")
    readme = json.loads((ROOT / "tests" / "pipeline" / "readme_applicant.json").read_text("utf-8"))
    assert policy._fast_validator is not None
    found = policy._fast_validator(readme, None)
    assert found is not None
    assert found[0] == policy.validate(readme)
    assert found[0]["loan.purpose"] == "consumption"  # the declared default


def test_a_date_left_out_is_listed_as_dated_and_takes_today() -> None:
    policy = load_policy_text(SHAPES)
    app = {"applicant": {"age": 30, "income": "10", "kind": "retired"}}
    fact, dated = policy.validated(app, dt.date(2026, 3, 4))
    assert fact["decided_on"] == dt.date(2026, 3, 4) and dated == ("decided_on",)
    fact, dated = policy.validated({**app, "decided_on": "2026-01-01"}, dt.date(2026, 3, 4))
    assert fact["decided_on"] == dt.date(2026, 1, 1) and dated == ()
    with pytest.raises(InvalidInput) as refused:
        policy.validated(app, None)  # no decision date and none sent: required
    assert [v.field for v in refused.value.violations] == ["decided_on"]


def test_credo_compile_validator_prints_the_validator_that_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """An auditor reads the generated validation as it runs: field names only as string literals,
    every bound and default bound by name."""
    assert main(["compile", "consumer_loan", "--policies", str(ROOT / "policies"), "--validator"]) == 0
    printed = capsys.readouterr().out
    policy = load_policy(ROOT / "policies" / "consumer_loan" / "policy.yaml")
    assert printed == validator_source(policy.inputs, policy.open_groups)[0]  # type: ignore[index]
    assert printed.startswith("def validate(application, today):")
    assert "application.get('applicant', MISSING)" in printed


@pytest.mark.parametrize(
    "text",
    ["999999999999999999", "99999999999999999.9", "1000000000000000000", "999999999999999999.9",
     "1000000000000000000.0", "+999999999999999999", "-1", "0.5", "18000.00"],
)  # fmt: skip
def test_decimal_text_at_the_limit_is_taken_as_validate_application_takes_it(text: str) -> None:
    """Unsigned text of at most 18 characters skips the 10^18 limit's comparisons on the fast path
    (it cannot reach the limit); longer or signed text is compared. Either way the same answer."""
    policy = load_policy(ROOT / "policies" / "consumer_loan" / "policy.yaml")
    readme = json.loads((ROOT / "tests" / "pipeline" / "readme_applicant.json").read_text("utf-8"))
    readme["applicant"]["income_monthly"] = text
    found = policy._fast_validator(readme, None)  # type: ignore[misc]
    try:
        want = validate_application(policy.inputs, readme, policy.open_groups, None)
    except InvalidInput:
        assert found is None
        return
    assert found is not None and _typed(found[0]) == _typed(want)
