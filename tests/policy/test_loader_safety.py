"""Hostile or broken files are refused with a located diagnostic, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main
from engine.errors import PolicyError
from engine.policy import check_file, load_policy
from engine.policy.testing import NEEDS_PIPELINE, eligibility_decide, run_tests

MINI = """policy: p
version: "1"
currency: CNY
inputs:
  applicant.age: {type: integer}
stages:
  - name: eligibility
    rules:
      - {id: young, when: applicant.age < 21, decline: {code: AGE, text: young}}
tests:
  - name: young
    input: {applicant: {age: 19}}
    expect: {outcome: DECLINE, reasons: [AGE], grade: A, limit: 1000}
  - name: bad input is an error
    input: {applicant: {age: "x"}}
    expect: {error: INVALID_INPUT}
"""


def codes(path: Path) -> list[tuple[str, int, int]]:
    return [(d.code, d.location.line, d.location.col) for d in check_file(path) if d.is_error]


def test_file_over_one_mebibyte_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "policy.yaml"
    big.write_text(MINI + "#" + "x" * (1 << 20) + "\n")
    assert codes(big) == [("FILE_TOO_LARGE", 1, 1)]


def test_alias_bomb_is_refused_before_expansion(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    bomb = tmp_path / "policy.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    found = codes(bomb)
    assert found and {c for c, _, _ in found} == {"YAML_FORBIDDEN"}
    assert ("YAML_FORBIDDEN", 1, 5) in found


def test_not_utf8_empty_and_list_documents(tmp_path: Path) -> None:
    bad = tmp_path / "a.yaml"
    bad.write_bytes(b"policy: \xff\xfe\n")
    assert codes(bad)[0][0] == "YAML_SYNTAX"
    empty = tmp_path / "b.yaml"
    empty.write_text("")
    assert codes(empty) == [("WRONG_TYPE", 1, 1)]
    seq = tmp_path / "c.yaml"
    seq.write_text("- 1\n- 2\n")
    assert codes(seq)[0][0] == "WRONG_TYPE"


def test_load_policy_raises_policy_error_with_every_diagnostic(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(MINI.replace("applicant.age < 21", "aplicant.age < 21").replace("CNY", "cny"))
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert [d.code for d in info.value.diagnostics if d.is_error] == ["BAD_VALUE", "UNKNOWN_NAME"]


def test_missing_path_is_an_error_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 1
    assert "FILE_NOT_FOUND" in capsys.readouterr().out


def test_expectations_needing_the_pipeline_are_skipped_in_eligibility_mode(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(MINI)
    report = run_tests(load_policy(path), eligibility_decide)
    assert (report.passed, report.failed) == (2, 0)
    assert report.results[0].skipped == ["grade", "limit"]
    assert NEEDS_PIPELINE == "skipped (needs pipeline)"


def test_folder_walk_finds_policies_but_not_case_files() -> None:
    from engine.policy import policy_files

    root = Path(__file__).resolve().parents[2]
    files, missing = policy_files([root / "tests" / "cases", root / "policies"])
    shipped = sorted((root / "policies").glob("*/policy.yaml"))
    assert len(shipped) >= 2
    assert files == shipped and missing == []
