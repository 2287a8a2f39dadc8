"""The shipped consumer_loan policy: it validates cleanly, its own tests pass, and a typo in a `when`
is reported by `credo validate` with file:line:col and a did-you-mean."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from engine.cli import main
from engine.policy import check_paths, load_policy
from engine.policy.testing import eligibility_decide, run_tests

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "policies" / "consumer_loan" / "policy.yaml"


def test_shipped_policy_validates_without_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert [d for d in check_paths([ROOT / "policies"]) if d.is_error] == []
    assert main(["validate", str(ROOT / "policies")]) == 0
    assert "0 error(s)" in capsys.readouterr().err


def test_shipped_policy_has_at_least_12_tests_and_they_pass_on_eligibility() -> None:
    policy = load_policy(SHIPPED)
    assert len(policy.tests) >= 12
    report = run_tests(policy, eligibility_decide)
    assert [(r.name, r.failures) for r in report.results if r.failures] == []


def test_credo_test_reports_all_passed(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["test", str(SHIPPED)])
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].endswith(" passed, 0 failed")
    assert code == 0


def test_shipped_rulesets_are_named_by_policy_hash_and_stage() -> None:
    policy = load_policy(SHIPPED)
    names = [s.ruleset.name for s in policy.rule_stages]
    prefix = f"consumer_loan@{policy.sha256[:12]}"
    assert names == [f"{prefix}/eligibility", f"{prefix}/post_score"]
    assert policy.score is not None and policy.score.model_sha256 is None
    assert policy.limit is not None and policy.price is not None and policy.offers is not None


def test_typo_in_when_fails_validate_with_location_and_suggestion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    target = "when: applicant.age < 22"
    line = text[: text.index(target)].count("\n") + 1
    col = len(text[: text.index(target)].rsplit("\n", 1)[-1]) + len("when: ") + 1
    copy = tmp_path / "consumer_loan" / "policy.yaml"
    copy.parent.mkdir()
    shutil.copy(SHIPPED, copy)
    copy.write_text(text.replace(target, "when: aplicant.age < 22"), encoding="utf-8")

    assert main(["validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    want = f"{copy}:{line}:{col}: UNKNOWN_NAME: unknown name 'aplicant.age'; did you mean 'applicant.age'?"
    assert want in out


def test_failing_policy_test_is_reported_with_its_location(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    broken = text.replace(
        "expect: {outcome: DECLINE, reasons: [AGE_MIN]}", "expect: {outcome: APPROVE, reasons: []}"
    )
    copy = tmp_path / "policy.yaml"
    copy.write_text(broken, encoding="utf-8")
    assert main(["test", str(copy)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    fails = [line for line in out if "FAIL" in line]
    assert fails and all(line.startswith(f"{copy}:") for line in fails)
    assert "applicant under 22 is declined: outcome: want APPROVE, got DECLINE" in fails[0]
    assert out[-1].endswith(" passed, 1 failed")


def _when_lines() -> list[int]:
    lines = SHIPPED.read_text(encoding="utf-8").split("\n")
    pattern = re.compile(r"when: \"?[^\"]*\b(applicant|bureau|loan|flags)\.")
    return [i for i, line in enumerate(lines) if pattern.search(line)]


@pytest.mark.parametrize("index", _when_lines())
def test_a_typo_in_any_when_is_located(
    index: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = SHIPPED.read_text(encoding="utf-8").split("\n")
    match = re.search(r"\b(applicant|bureau|loan|flags)\.", lines[index].split("when:", 1)[1])
    assert match is not None
    start = lines[index].index("when:") + len("when:") + match.start()
    name = re.match(r"[\w.]+", lines[index][start:])
    assert name is not None
    typo = name.group(0)[0] + name.group(0)[2:]  # drop the second letter
    lines[index] = lines[index][:start] + typo + lines[index][start + len(name.group(0)) :]
    copy = tmp_path / "policy.yaml"
    copy.write_text("\n".join(lines), encoding="utf-8")
    assert main(["validate", str(copy)]) == 1
    out = capsys.readouterr().out
    want = f"{copy}:{index + 1}:{start + 1}: UNKNOWN_NAME: unknown name '{typo}'"
    assert want in out, out
    assert f"did you mean '{name.group(0)}'?" in out
