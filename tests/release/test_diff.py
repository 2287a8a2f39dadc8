"""`credo diff`: the changes a reviewer must see, in the policy's terms — a threshold moved
(old -> new), a rule removed or added, a table row changed, a limit cap, a product's terms — and
nothing for a text-only change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from release_helpers import POLICIES, bump_version

from engine.cli import main
from engine.policy import load_policy, load_policy_text
from engine.release.diff import diff_policies, diff_texts, moved_thresholds

SOURCE = POLICIES / "consumer_loan" / "policy.yaml"


def _edited() -> str:
    text = bump_version(SOURCE.read_text())
    text = text.replace("when: applicant.age < 22", "when: applicant.age < 18", 1)
    text = text.replace("      - [B, 10]\n", "      - [B, 9]\n", 1)
    text = text.replace("cap: 200000", "cap: 150000", 1)
    text = text.replace("terms: [12, 24, 36]", "terms: [12, 24, 36, 48]", 1)
    start = text.index("      - id: retired_refer")
    end = text.index("  - name: post_score")
    return text[:start] + text[end:]


def test_diff_names_moved_thresholds_removed_rules_rows_caps_and_products() -> None:
    old = load_policy(SOURCE)
    new = load_policy_text(_edited(), name="new.yaml")
    diff = diff_policies(old, new)
    by_path = {c.path: c for c in diff.changes}
    age = by_path["eligibility.rules.age_min.when"]
    assert (age.kind, age.old, age.new) == ("changed", "applicant.age < 22", "applicant.age < 18")
    assert [(t.where, t.old, t.new) for t in age.thresholds] == [("applicant.age <", 22, 18)]
    assert by_path["eligibility.rules.retired_refer"].kind == "removed"
    assert by_path["decision_tables.INCOME_MULTIPLE.rows.row 2"].new == ["B", 9]
    assert (by_path["limit.cap"].old, by_path["limit.cap"].new) == (200000, 150000)
    assert by_path["products.personal_std.terms"].new == [12, 24, 36, 48]
    assert (by_path["version"].old, by_path["version"].new) == ("2.0.0", "2.0.1")
    sections = {c.section for c in diff.changes}
    assert {"rules", "tables", "limit", "products"} <= sections


def test_texts_that_need_not_load_diff_as_their_loaded_policies_do() -> None:
    """The console compares versions archived in the store, which it does not load: same changes."""
    old, new = SOURCE.read_text(), _edited()
    loaded = diff_policies(load_policy(SOURCE), load_policy_text(new, name="new.yaml"))
    texts = diff_texts(old, new)
    assert texts.to_dict() == loaded.to_dict()
    assert diff_texts("policy: [unclosed", new).changes  # an unreadable side diffs as empty, never raises


def test_a_comment_only_edit_has_no_semantic_change() -> None:
    old = load_policy(SOURCE)
    new = load_policy_text(SOURCE.read_text() + "\n# reviewed\n", name="new.yaml")
    diff = diff_policies(old, new)
    assert diff.changes == []
    assert "no semantic change (text only)" in diff.text()


def test_a_changed_condition_is_not_reported_as_a_threshold() -> None:
    assert moved_thresholds("dti > 0.55", "dti >= 0.55") == ()
    assert moved_thresholds("a > 1 and b < 2", "a > 1 and b < 3")[0].where == "b <"


def test_credo_diff_prints_text_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new = tmp_path / "consumer_loan"
    new.mkdir()
    (new / "policy.yaml").write_text(_edited())
    assert main(["diff", str(SOURCE.parent), str(new)]) == 1
    text = capsys.readouterr().out
    assert "consumer_loan: 2.0.0" in text and "-> 2.0.1" in text
    assert "threshold applicant.age <: 22 -> 18" in text
    assert main(["diff", str(SOURCE), str(new), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["old"]["version"] == "2.0.0" and doc["new"]["version"] == "2.0.1"
    assert any(c["path"] == "limit.cap" and c["new"] == 150000 for c in doc["changes"])
    assert main(["diff", str(SOURCE), str(SOURCE)]) == 0
