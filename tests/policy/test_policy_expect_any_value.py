"""A policy's own tests may assert any value a decision has: its outputs, derived values and the
rules each stage fired, beside outcome, grade and segments; a wrong expectation names what differs."""

from __future__ import annotations

from pathlib import Path

from engine.policy import load_policy_text
from engine.policy.testing import run_tests
from engine.service import decide_for_tests

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "policies" / "credit_card" / "policy.yaml").read_text(encoding="utf-8")
EXPECT = (
    'outputs: {risk.band: low, age: 40, utilisation: "0.1000", months_since_delinquency: null,'
    ' benefits: [paperless_statement, cashback], greeting: "Welcome, online customer",'
    ' review: {decided_for: "2026-01-01", lenders: 2, staff: false}}'
)


def failures(text: str) -> list[str]:
    report = run_tests(load_policy_text(text), decide_for_tests)
    return [f for result in report.results for f in result.failures]


def test_the_shipped_expectations_on_outputs_derived_and_fired_pass() -> None:
    assert EXPECT in TEXT
    assert failures(TEXT) == []


def test_a_wrong_output_a_missing_output_and_a_wrong_list_each_fail_by_name() -> None:
    changed = TEXT.replace(
        EXPECT,
        EXPECT.replace("risk.band: low", "risk.band: high")
        .replace("benefits: [paperless_statement, cashback]", "benefits: [cashback]")
        .replace("age: 40", "agee: 40"),
    )
    got = failures(changed)
    assert len(got) == 1
    assert 'outputs.risk.band: want "high", got "low"' in got[0]
    assert 'outputs.benefits: want ["cashback"], got ["paperless_statement", "cashback"]' in got[0]
    assert "outputs.agee: no such output value (has: age, benefits, greeting" in got[0]


def test_a_decimal_output_compares_by_value_when_written_as_a_number() -> None:
    assert failures(TEXT.replace('utilisation: "0.1000"', "utilisation: 0.1")) == []
    got = failures(TEXT.replace('utilisation: "0.1000"', 'utilisation: "0.1"'))  # text is exact
    assert got == ['outputs.utilisation: want "0.1", got "0.1000"']


def test_derived_values_and_fired_rules_are_checked() -> None:
    changed = TEXT.replace("history_months: 127", "history_months: 126").replace(
        "fired: {eligibility: []}", "fired: {eligibility: [thin_file], offers: []}"
    )
    assert failures(changed) == [
        "derived.history_months: want 126, got 127",
        "fired.eligibility: want ['thin_file'], got []; fired.offers: want [], but stage offers did not run",
    ]
