"""The batch section's hand-written floor decides what the shipped consumer_loan decides (2.0.0:
lifetime affordability, NPV-ranked offers, the credit line), or its ratio would time different work."""

from __future__ import annotations

from pathlib import Path

from engine.bench.batch import FloorDecider, bench_batch
from engine.bench.data import applications
from engine.models.store import ModelStore
from engine.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "policies" / "consumer_loan" / "policy.yaml"
MODELS = ROOT / "models"


def test_the_batch_floor_decides_what_consumer_loan_2_0_0_decides() -> None:
    """bench_batch raises EquivalenceError when the floor and the batch decider disagree on any
    outcome, grade, points, PD, limit, rate or offer of the checked rows."""
    out = bench_batch(POLICY, MODELS, count=300, batch=100, check=300)
    assert out["checked"] == 300
    assert {"APPROVE", "REFER", "DECLINE"} <= set(out["sample_outcomes"])


def test_the_floor_declines_when_no_offer_is_affordable_over_the_loans_life() -> None:
    """What broke: the floor mirrored 1.0.0 (first instalment only) and approved applicants whose
    interest-only balloon or later months 2.0.0 finds unaffordable; now every approval has offers,
    and no interest-only offer survives (its balloon is budgeted in full)."""
    policy = load_policy(POLICY)
    assert policy.score is not None
    package = ModelStore(MODELS).load(policy.score.model_name, policy.score.model_version)
    decided = FloorDecider(package).decide(applications(300, seed=61))
    made = [d for d in decided if d["outcome"] != "DECLINE"]
    assert made and all(d["offers"] for d in made)
    assert all(offer[3] != "interest_only" for d in made for offer in d["offers"])
