"""The contract and limit surprises an author met porting other engines' decision graphs (issue 15):
each test decides real applications on a real policy through the full pipeline."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.cli import main
from engine.errors import InvalidInput, PolicyError
from engine.policy import load_policy_text
from engine.service import decide_for_tests

HEAD = """
policy: p
version: "1"
currency: CNY
inputs:
  applicant.income: {type: decimal, min: 0}
  bureau.score: {type: integer, required: false}
  bureau.enquiries: {type: integer, required: false}
"""


def _policy(body: str) -> Any:
    return load_policy_text(HEAD + body)


def _decide(policy: Any, application: dict[str, Any]) -> dict[str, Any]:
    return decide_for_tests(policy, application)


LIMIT = """
limit:
  formula: "applicant.income * 0.5"
  {extra}
"""


def test_floor_zero_admits_a_zero_limit() -> None:
    policy = _policy(LIMIT.format(extra="floor: 0"))
    decision = _decide(policy, {"applicant": {"income": "0"}})
    assert decision["outcome"] == "APPROVE" and Decimal(decision["limit"]) == 0


def test_without_a_floor_a_zero_limit_is_still_declined() -> None:
    decision = _decide(_policy(LIMIT.format(extra="")), {"applicant": {"income": "0"}})
    assert decision["outcome"] == "DECLINE"
    assert [r["code"] for r in decision["reasons"]] == ["LIMIT_BELOW_FLOOR"]


def test_limit_rounds_down_to_cents_by_default() -> None:
    decision = _decide(_policy(LIMIT.format(extra="")), {"applicant": {"income": "1001.239"}})
    assert Decimal(decision["limit"]) == Decimal("500.61")


@pytest.mark.parametrize(
    ("extra", "income", "limit"),
    [
        ('round_to: "100"', "1998", "900"),
        ("round_to: 100\n  rounding: half_up", "1900", "1000"),
        ("round_to: 100\n  rounding: up", "1802", "1000"),
        ("round_to: 50\n  rounding: up\n  cap: 920", "1802", "900"),  # never rounded above the cap
        ("round_down_to: 50", "1998", "950"),  # the 1.x spelling keeps its meaning
    ],
)
def test_limit_rounding_is_a_policy_set_step(extra: str, income: str, limit: str) -> None:
    decision = _decide(_policy(LIMIT.format(extra=extra)), {"applicant": {"income": income}})
    assert Decimal(decision["limit"]) == Decimal(limit), decision


@pytest.mark.parametrize(
    ("extra", "income", "limit"),
    [
        ('round_to: "0.10"', "1001.239", "500.60"),
        ("round_to: 1\n  rounding: half_even", "1001", "500.00"),
        ("round_to: 1\n  rounding: half_even", "1003", "502.00"),
        ("round_to: 1000\n  rounding: up\n  cap: 1500", "2002", "1000.00"),  # up past the cap: back down
        ("round_to: 1000\n  rounding: half_up\n  floor: 0", "999", "0.00"),
        ('round_to: "0.01"\n  rounding: up', "1001.231", "500.62"),
        ("round_to: 1E+2", "1998", "900.00"),
    ],
)
def test_a_limit_rounded_to_a_power_of_ten_reads_in_cents(extra: str, income: str, limit: str) -> None:
    """A step of 1Ek rounds by a quantize (limit_stage's fast path); the answer is the same number,
    written the same way, as the general divide-round-multiply gives."""
    decision = _decide(_policy(LIMIT.format(extra=extra)), {"applicant": {"income": income}})
    assert decision["limit"] == limit, decision


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        ("round_to: 100\n  round_down_to: 100", "give the step once"),
        ("round_down_to: 100\n  rounding: up", "always rounds down"),
        ("round_to: 0.005", "whole number of cents"),
    ],
)
def test_limit_rounding_step_mistakes_are_refused(limit: str, message: str) -> None:
    with pytest.raises(PolicyError) as exc:
        _policy(LIMIT.format(extra=limit))
    assert any(message in d.message for d in exc.value.diagnostics), exc.value.diagnostics


OPTIONAL_GROUP = """
limit: {formula: "coalesce(bureau.score, 0) + applicant.income"}
"""


@pytest.mark.parametrize("bureau", [None, {}], ids=["null", "empty_object"])
def test_empty_object_for_an_optional_group_equals_an_absent_group(bureau: Any) -> None:
    policy = _policy(OPTIONAL_GROUP)
    absent = _decide(policy, {"applicant": {"income": "2000"}})
    given = _decide(policy, {"applicant": {"income": "2000"}, "bureau": bureau})
    assert given["outcome"] == absent["outcome"] == "APPROVE"
    assert given["limit"] == absent["limit"]


def test_empty_object_for_a_group_with_required_fields_names_the_missing_fields() -> None:
    policy = _policy(OPTIONAL_GROUP)
    with pytest.raises(InvalidInput) as exc:
        policy.validate({"applicant": {}})
    assert [(v.field, v.description) for v in exc.value.violations] == [
        ("applicant.income", "required field is missing")
    ]


def test_unknown_fields_are_refused_by_default() -> None:
    policy = _policy(OPTIONAL_GROUP)
    with pytest.raises(InvalidInput) as exc:
        policy.validate({"applicant": {"income": "1"}, "bureau": {"score": 600, "tradelines": 3}})
    assert [v.field for v in exc.value.violations] == ["bureau.tradelines"]


def test_a_group_with_unknown_fields_ignore_drops_them_and_only_them() -> None:
    policy = _policy(OPTIONAL_GROUP + "input_groups:\n  bureau: {unknown_fields: ignore}\n")
    fact = policy.validate({"applicant": {"income": "1"}, "bureau": {"score": 600, "tradelines": 3}})
    assert fact["bureau.score"] == 600 and "bureau.tradelines" not in fact
    with pytest.raises(InvalidInput) as exc:  # another group stays strict
        policy.validate({"applicant": {"income": "1", "nickname": "x"}})
    assert [v.field for v in exc.value.violations] == ["applicant.nickname"]
    with pytest.raises(InvalidInput):  # a declared field of the open group is still type-checked
        policy.validate({"applicant": {"income": "1"}, "bureau": {"score": "high"}})


def test_round_takes_its_mode_and_defaults_to_the_policy_rounding() -> None:
    body = """
derived:
  even: "round(applicant.income, 0)"
  up: "round(applicant.income, 0, 'half_up')"
limit: {formula: "even * 1000 + up", floor: 0}
"""
    decision = _decide(_policy(body), {"applicant": {"income": "2.5"}})
    assert Decimal(decision["limit"]) == Decimal(2 * 1000 + 3)  # half_even 2, half_up 3


def test_dotted_derived_names_are_allowed() -> None:
    body = """
derived:
  risk.band: "applicant.income / 1000"
limit: {formula: "risk.band * 100"}
"""
    decision = _decide(_policy(body), {"applicant": {"income": "5000"}})
    assert Decimal(decision["limit"]) == Decimal(500)


def test_credo_test_shows_the_reasons_given_when_a_test_expects_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        HEAD
        + """
stages:
  - name: eligibility
    rules:
      - {id: poor, when: "applicant.income < 1000", decline: {code: LOW_INCOME, text: income too low}}
tests:
  - {name: a small income is referred, input: {applicant: {income: 500}}, expect: {outcome: REFER}}
  - {name: names the wrong reason, input: {applicant: {income: 500}}, expect: {reasons: [AGE]}}
""",
        encoding="utf-8",
    )
    assert main(["test", str(policy)]) == 1
    out = capsys.readouterr().out
    assert "outcome: want REFER, got DECLINE (the decision gave LOW_INCOME: income too low)" in out
    assert "reasons: want ['AGE'], got ['LOW_INCOME'] (the decision gave LOW_INCOME: income too low)" in out


def test_credo_validate_prints_each_authoring_trap_at_its_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = sorted((Path(__file__).parent.parent / "cases" / "authoring").glob("*.yaml"))
    assert len(cases) >= 10
    for case_file in cases:
        case = yaml.safe_load(case_file.read_text(encoding="utf-8"))
        policy = tmp_path / case_file.name
        policy.write_text(case["policy"], encoding="utf-8")
        main(["validate", str(policy)])
        printed = capsys.readouterr()
        for want in case["want"]:
            where = f"{policy}:{want['line']}:{want['col']}: {want['code']}"
            assert where in printed.out + printed.err, (case_file.name, printed)
