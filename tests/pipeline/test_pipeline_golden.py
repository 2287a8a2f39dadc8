"""Golden decisions: the full Decision JSON (frozen id, time and timings) for a fixed set of
applications is checked in, so any change to an output shows as a diff.
Every engine (compiled, durable, reference) must give the same bytes.
Regenerate after an intended change: CREDO_UPDATE_GOLDEN=1 pytest tests/pipeline/test_pipeline_golden.py"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pipeline_helpers import application

from engine.pipeline.render import decision_json
from engine.rules import ENGINES
from engine.service import DecisionService

GOLDEN = Path(__file__).resolve().parent / "golden"
CASES: dict[str, tuple[dict[str, Any], str]] = {
    "approve": (application(), "en"),
    "approve_civil_servant_zh": (application(**{"applicant.employment_type": "civil_servant"}), "zh"),
    "decline_eligibility": (application(**{"applicant.age": 19, "flags.blacklisted": True}), "en"),
    "refer_thin_file_zh": (application(**{"bureau.months_on_file": 3}), "zh"),
    "decline_limit_floor": (
        application(**{"applicant.income_monthly": "150", "bureau.months_on_file": 8}),
        "en",
    ),
    "decline_no_affordable_offer": (application(**{"debt.monthly_payments": "9990"}), "en"),
}


@pytest.mark.parametrize("rule_engine", ENGINES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_decision_matches_its_golden_file(
    case: str, rule_engine: str, make_service: Callable[..., DecisionService]
) -> None:
    app, language = CASES[case]
    service = make_service(rule_engine=rule_engine)
    got = decision_json(service.decide("consumer_mini", app, f"golden-{case}", language=language)) + "\n"
    path = GOLDEN / f"{case}.json"
    if os.environ.get("CREDO_UPDATE_GOLDEN") == "1":
        path.write_text(got, encoding="utf-8")
    assert path.is_file(), f"missing golden file {path}; run with CREDO_UPDATE_GOLDEN=1"
    assert got == path.read_text(encoding="utf-8")


def _shipped_cases() -> list[tuple[str, str, dict[str, Any]]]:
    """(policy, test name, application) for every test of every shipped policy that decides."""
    import re

    import yaml

    cases = []
    for path in sorted(SHIPPED.glob("*/policy.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for test in data.get("tests", []):
            if "error" not in test.get("expect", {}):
                slug = re.sub(r"[^a-z0-9]+", "_", test["name"].lower()).strip("_")
                cases.append((data["policy"], slug, test["input"]))
    return cases


SHIPPED = Path(__file__).resolve().parents[2] / "policies"
SHIPPED_CASES = _shipped_cases()
# consumer_loan 1.0.0 exactly as shipped before the lifetime objectives (2.0.0), with the golden
# files the engine of that time wrote for it: replay of a 1.0.0 record re-runs this text.
LEGACY = Path(__file__).resolve().parent / "legacy"
LEGACY_CASES = [case for case in SHIPPED_CASES if case[0] == "consumer_loan"]


@pytest.mark.parametrize("rule_engine", ENGINES)
@pytest.mark.parametrize(
    ("policy", "slug", "app"), SHIPPED_CASES, ids=[f"{p}/{s}" for p, s, _ in SHIPPED_CASES]
)
def test_shipped_policy_decision_matches_its_golden_file(
    policy: str,
    slug: str,
    app: dict[str, Any],
    rule_engine: str,
    make_service: Callable[..., DecisionService],
) -> None:
    """Every shipped policy test input, decided in full (zh, to cover the second language) on every
    rule engine: a change to any output of the shipped policies or models shows as a diff here."""
    service = make_service(policies_dir=SHIPPED, rule_engine=rule_engine)
    got = decision_json(service.decide(policy, app, f"golden-{slug}", language="zh")) + "\n"
    path = GOLDEN / policy / f"{slug}.json"
    if os.environ.get("CREDO_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(got, encoding="utf-8")
    assert path.is_file(), f"missing golden file {path}; run with CREDO_UPDATE_GOLDEN=1"
    assert got == path.read_text(encoding="utf-8")


@pytest.mark.parametrize(("policy", "slug", "app"), LEGACY_CASES, ids=[s for _, s, _ in LEGACY_CASES])
def test_consumer_loan_1_0_0_still_decides_byte_for_byte_as_before_lifetime_pricing(
    policy: str, slug: str, app: dict[str, Any], make_service: Callable[..., DecisionService]
) -> None:
    """The golden files under consumer_loan_1_0_0/ were written before the lifetime objectives
    existed and are never regenerated: an old policy text must keep computing what it did, or the
    replay of its records would stop matching."""
    service = make_service(policies_dir=LEGACY)
    got = decision_json(service.decide(policy, app, f"golden-{slug}", language="zh")) + "\n"
    assert got == (GOLDEN / "consumer_loan_1_0_0" / f"{slug}.json").read_text(encoding="utf-8")
