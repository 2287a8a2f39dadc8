"""Bad-policy cases as data: every tests/cases/<topic>/*.yaml holds a policy snippet, the diagnostics
(code, line, col, message part, severity) it must produce, optionally those it must not (`absent`)
and whether the policy's own tests pass (`tests_pass`); one loop runs them all.
tests/cases/authoring holds the traps and messages of issue 15."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.policy import check_text, load_policy_text
from engine.policy.testing import run_tests
from engine.service import decide_for_tests

CASES = sorted((Path(__file__).parent.parent / "cases").glob("*/*.yaml"))


def _load(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_case(path: Path) -> None:
    case = _load(path)
    found = check_text(case["policy"], "policy.yaml")
    printed = "\n".join(str(d) for d in found)
    for want in case["want"]:
        severity = want.get("severity", "error")
        match = [
            d
            for d in found
            if d.code == want["code"]
            and d.location.line == want["line"]
            and d.location.col == want["col"]
            and d.severity.value == severity
            and want.get("message", "") in d.message
        ]
        assert match, f"{path.name}: want {want}, got:\n{printed}"
    wanted = {(w["code"], w["line"], w["col"]) for w in case["want"]}
    extra = [d for d in found if d.is_error and (d.code, d.location.line, d.location.col) not in wanted]
    assert not extra, f"{path.name}: unexpected errors:\n" + "\n".join(map(str, extra))
    if case.get("tests_pass"):  # the policy's own tests, decided on the full pipeline, all pass
        report = run_tests(load_policy_text(case["policy"], "policy.yaml"), decide_for_tests)
        assert report.results and [(r.name, r.failures) for r in report.results if r.failures] == []
    for absent in case.get("absent", []):  # a code (anywhere), or {code, line}: a diagnostic that must not be
        code, line = (absent, None) if isinstance(absent, str) else (absent["code"], absent["line"])
        wrong = [d for d in found if d.code == code and line in (None, d.location.line)]
        assert not wrong, f"{path.name}: want no {absent}, got:\n{printed}"


def test_there_are_cases_for_every_bad_input_class() -> None:
    codes = {w["code"] for p in CASES for w in _load(p)["want"]}
    assert {
        "YAML_SYNTAX",
        "YAML_FORBIDDEN",
        "UNKNOWN_KEY",
        "WRONG_TYPE",
        "BAD_EXPRESSION",
        "UNKNOWN_NAME",
        "TYPE_MISMATCH",
        "DUPLICATE_RULE_ID",
        "PROTECTED_ATTRIBUTE",
    } <= codes
