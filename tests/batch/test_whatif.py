"""`credo replay --since --until --policy NEW.yaml`: history re-decided on a new policy. The unchanged
policy reproduces history; a stricter one shows exactly the expected swaps in the matrix, the JSON
summary and a self-contained HTML report with its three plots."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from whatif_history import STRICT_AGE, build_history, stable_summary

from engine.audit.connect import open_store
from engine.batch.whatif import WhatIfOptions, count_window, run_whatif
from engine.cli import main

START = dt.datetime(2026, 2, 1, 9, 0, tzinfo=dt.UTC)
GOLDEN = Path(__file__).parent / "golden" / "whatif_before_move.json"


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """consumer_loan decisions one minute apart: the shipped test inputs and 60 synthetic applicants."""
    return build_history(tmp_path_factory.mktemp("whatif"))


def expected_matrix(decided: list[tuple[int, str]], strict_age: int | None) -> dict[str, dict[str, int]]:
    swaps = Counter()
    for age, outcome in decided:
        new = "DECLINE" if strict_age is not None and age < strict_age else outcome
        swaps[(outcome, new)] += 1
    names = ("APPROVE", "REFER", "DECLINE", "ERROR")
    return {a: {b: swaps[(a, b)] for b in names} for a in names}


def test_the_unchanged_policy_reproduces_history(history: dict[str, Any]) -> None:
    store = open_store(history["url"], create=False)
    try:
        result = run_whatif(store, WhatIfOptions(policy=history["policies"] / "consumer_loan/policy.yaml"))
    finally:
        store.close()
    summary = result.summary()
    overall = summary["overall"]
    assert summary["decisions"] == len(history["decided"])
    assert summary["swap_matrix"] == expected_matrix(history["decided"], None)
    for figure in ("approval_rate", "avg_limit", "avg_rate", "expected_loss"):
        assert overall[f"{figure}_old"] == overall[f"{figure}_new"], figure
    assert Counter(o for _, o in history["decided"])["APPROVE"] == overall["approved_new"] > 0


def test_a_stricter_age_limit_swaps_exactly_the_younger_applicants(
    history: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report"
    models = str(Path(__file__).resolve().parents[2] / "models")
    args = ["replay", "--policy", str(history["strict"]), "--store", history["url"], "--models", models]
    code = main([*args, "--report", str(report), "--json"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    want = expected_matrix(history["decided"], STRICT_AGE)
    assert printed["swap_matrix"] == written["swap_matrix"] == want
    young_approved = sum(1 for age, o in history["decided"] if age < STRICT_AGE and o == "APPROVE")
    assert young_approved > 0
    assert written["overall"]["swaps"].get("APPROVE->DECLINE") == young_approved
    assert written["overall"]["approved_new"] == written["overall"]["approved_old"] - young_approved
    assert set(written["by_grade"]) and set(written["by_segment"])
    assert written["method"]["evaluator"].startswith("compiled")  # serving's default evaluator


def test_the_html_report_is_self_contained_and_has_its_plots(
    history: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report"
    models = str(Path(__file__).resolve().parents[2] / "models")
    args = ["replay", "--policy", str(history["strict"]), "--store", history["url"], "--models", models]
    assert main([*args, "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert "swap matrix (rows: recorded, columns: new):" in out
    html = (report / "report.html").read_text(encoding="utf-8")
    for label in ("outcome swap matrix", "approval by grade", "score distribution"):
        assert f"aria-label='{label}'" in html
    assert html.count("<svg") == 3
    assert "<script" not in html and "<link" not in html and " src=" not in html
    assert "https://" not in html and html.count("http://") == html.count("http://www.w3.org/2000/svg")


def test_the_window_selects_history_and_workers_agree(history: dict[str, Any]) -> None:
    half = len(history["decided"]) // 2
    since, until = START, START + dt.timedelta(minutes=half)
    options = WhatIfOptions(policy=history["strict"], since=since, until=until, batch=16)
    store = open_store(history["url"], create=False)
    try:
        one = run_whatif(store, options).summary()
        two = run_whatif(store, WhatIfOptions(**{**options.__dict__, "workers": 2})).summary()
    finally:
        store.close()
    assert one["decisions"] == half
    for key in ("swap_matrix", "overall", "by_grade", "by_segment", "score_points"):
        assert one[key] == two[key], key


def test_a_policy_needing_inputs_history_lacks_shows_errors_not_a_crash(
    history: dict[str, Any], tmp_path: Path
) -> None:
    text = history["strict"].read_text(encoding="utf-8")
    text = text[: text.index("\ntests:")]  # its own tests would lack the new input too
    needy = tmp_path / "policy.yaml"
    needy.write_text(
        text.replace("inputs:\n", "inputs:\n  applicant.tax_id: {type: string}\n", 1), encoding="utf-8"
    )
    store = open_store(history["url"], create=False)
    try:
        summary = run_whatif(store, WhatIfOptions(policy=needy)).summary()
    finally:
        store.close()
    assert summary["errors"] == {"INVALID_INPUT": summary["decisions"]}
    assert all(
        summary["swap_matrix"][o]["ERROR"] == n for o, n in Counter(o for _, o in history["decided"]).items()
    )


def test_the_batch_engine_gives_the_numbers_what_if_gave_before_it_moved(history: dict[str, Any]) -> None:
    """The same history, the unchanged and the stricter policy: every figure of the summary equals the
    one the pre-move engine (engine.audit.whatif) wrote to the golden file; only the method's wording
    of the evaluator and scorer may differ. CREDO_UPDATE_GOLDEN=1 rewrites it (after a policy change)."""
    store = open_store(history["url"], create=False)
    try:
        got = {
            name: stable_summary(run_whatif(store, WhatIfOptions(policy=policy, batch=16)).summary())
            for name, policy in (("same", history["policies"] / "consumer_loan/policy.yaml"),
                                 ("strict", history["strict"]))
        }  # fmt: skip
        counted = count_window(store, None, None)
    finally:
        store.close()
    if os.environ.get("CREDO_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    want = json.loads(GOLDEN.read_text(encoding="utf-8"))
    for summary in (*got.values(), *want.values()):
        for wording in ("evaluator", "scorer"):
            summary["method"].pop(wording)
    assert got == want
    assert counted == got["same"]["decisions"] == len(history["decided"])


def test_count_window_counts_what_the_window_reads(history: dict[str, Any]) -> None:
    since, until = START + dt.timedelta(minutes=5), START + dt.timedelta(minutes=17)
    store = open_store(history["url"], create=False)
    try:
        assert count_window(store, since, until) == sum(1 for _ in store.iter_records(since, until)) == 12
    finally:
        store.close()


def test_errors_with_a_location_are_counted_by_code_not_by_file_name(
    history: dict[str, Any], tmp_path: Path
) -> None:
    """Regression: a located runtime error ("x/policy.yaml:38:11: POLICY_RUNTIME: ...") was counted
    under its file name once what-if moved onto the batch decider."""
    text = history["strict"].read_text(encoding="utf-8")
    text = text[: text.index("\ntests:")]
    divides = "debt.monthly_payments / applicant.income_monthly if applicant.income_monthly > 0 else 9.99"
    assert divides in text
    broken = tmp_path / "policy.yaml"
    broken.write_text(text.replace(divides, "debt.monthly_payments / (bureau.score - bureau.score)"), "utf-8")
    store = open_store(history["url"], create=False)
    try:
        summary = run_whatif(store, WhatIfOptions(policy=broken)).summary()
    finally:
        store.close()
    assert summary["errors"] == {"POLICY_RUNTIME": summary["decisions"]}
