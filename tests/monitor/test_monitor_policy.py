"""The monitoring policy language: the shipped consumer_loan monitoring file validates and its own
tests pass through `credo validate` / `credo test`; mistakes are reported at file:line:col, all of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main
from engine.errors import PolicyError
from engine.monitor import check_monitoring, load_monitoring, load_monitoring_text, run_monitor_tests

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "policies" / "consumer_loan" / "monitoring.yaml"

GOOD = """\
monitoring: demo
events:
  bureau.refresh:
    score: integer
measures:
  last_score: {last: bureau.refresh.score}
rules:
  - code: LOW_SCORE
    when: last_score < 500
    severity: watch
    action: review
    reason: {en: Low score, zh: 评分过低}
tests:
  - name: low score
    events:
      - {type: loan.disbursed, date: "2026-01-01", amount: "100", term: 6}
      - {type: bureau.refresh, date: "2026-01-02", score: 400}
    expect: {alerts: [LOW_SCORE]}
"""


def test_shipped_monitoring_policy_validates_and_its_tests_pass() -> None:
    policy = load_monitoring(SHIPPED)
    assert [d for d in policy.diagnostics if d.is_error] == []
    assert len(policy.tests) >= 8
    assert [(r.name, r.failures) for r in run_monitor_tests(policy) if r.failures] == []


def test_credo_validate_and_test_take_monitoring_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(SHIPPED)]) == 0
    assert "1 file(s) checked: 0 error(s)" in capsys.readouterr().err
    assert main(["test", str(SHIPPED)]) == 0
    assert (
        capsys.readouterr().out.strip().splitlines()[-1]
        == f"{len(load_monitoring(SHIPPED).tests)} passed, 0 failed"
    )


def test_credo_test_reports_a_failing_monitoring_test_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "monitoring.yaml"
    path.write_text(
        GOOD.replace("expect: {alerts: [LOW_SCORE]}", "expect: {alerts: [], classification: loss}")
    )
    assert main(["test", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:14:5: FAIL: low score: alerts: expected [], got ['LOW_SCORE']" in out
    assert "classification: expected 'loss', got 'normal'" in out
    assert out.strip().splitlines()[-1] == "0 passed, 1 failed"


def test_a_typo_in_a_rule_is_located_with_a_did_you_mean(tmp_path: Path) -> None:
    path = tmp_path / "monitoring.yaml"
    path.write_text(GOOD.replace("when: last_score < 500", "when: last_scor < 500"))
    found = [str(d) for d in check_monitoring(path)]
    assert any(s.startswith(f"{path}:9:11: UNKNOWN_NAME") and "last_score" in s for s in found), found


def test_every_error_in_a_file_is_reported_not_only_the_first() -> None:
    text = (
        GOOD.replace("{last: bureau.refresh.score}", "{last: bureau.refersh.score}")
        .replace("severity: watch", "severity: urgent")
        .replace("zh: 评分过低", "de: Niedrig")
        + "classification: {normal: 0, special_mention: 30, substandard: 20, doubtful: 181, loss: 361}\n"
    )
    with pytest.raises(PolicyError) as caught:
        load_monitoring_text(text, "m.yaml")
    codes = [(d.code, d.location.line) for d in caught.value.diagnostics if d.is_error]
    assert ("UNKNOWN_EVENT", 6) in codes
    assert ("BAD_VALUE", 10) in codes  # severity
    assert ("BAD_CLASSIFICATION", 19) in codes
    unknown = next(d for d in caught.value.diagnostics if d.code == "UNKNOWN_EVENT")
    assert "did you mean 'bureau.refresh'" in unknown.message


def test_a_missing_chinese_reason_is_an_error() -> None:
    with pytest.raises(PolicyError) as caught:
        load_monitoring_text(GOOD.replace("zh: 评分过低", "fr: Bas"), "m.yaml")
    assert [d.code for d in caught.value.diagnostics if d.is_error] == ["MISSING_REASON"]


def test_a_measure_no_rule_reads_is_a_warning() -> None:
    policy = load_monitoring_text(
        GOOD.replace("measures:\n", "measures:\n  spare: {count: clock.tick}\n"), "m.yaml"
    )
    assert [(d.code, d.is_error) for d in policy.diagnostics] == [("UNUSED_MEASURE", False)]


def test_payment_missed_is_generated_by_the_engine_and_cannot_be_declared() -> None:
    with pytest.raises(PolicyError) as caught:
        load_monitoring_text(GOOD.replace("events:\n", "events:\n  payment.missed: {}\n", 1), "m.yaml")
    assert [d.code for d in caught.value.diagnostics] == ["RESERVED_EVENT"]


def test_decision_policy_tools_ignore_monitoring_files_in_a_folder() -> None:
    from engine.policy import policy_files

    files, _ = policy_files([ROOT / "policies"])
    assert SHIPPED not in files
