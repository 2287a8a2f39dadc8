"""The pipeline-facing sections of the shipped policy compile into usable specs: score features,
segments, limit and price formulas, products and offers."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from engine.policy import load_policy
from engine.rules.reference import ReferenceEvaluator

SHIPPED = Path(__file__).resolve().parents[2] / "policies" / "consumer_loan" / "policy.yaml"


def scored_fact() -> dict[str, object]:
    policy = load_policy(SHIPPED)
    fact = policy.validate(dict(policy.tests[0].input))
    policy.derive(fact)
    fact.update({"score.pd": Decimal("0.012"), "score.points": 612, "score.grade": "B"})
    return fact


def test_score_features_and_grades() -> None:
    policy = load_policy(SHIPPED)
    assert policy.score is not None
    features = policy.score.features(scored_fact())
    assert features["dti"] == Decimal("0.12") and features["employment_type"] == "salaried"
    assert [policy.score.grade_for(p) for p in (700, 610, 600, 580, 100)] == ["A", "B", "C", "D", "E"]


def test_limit_price_segments_products() -> None:
    policy = load_policy(SHIPPED)
    fact = scored_fact()
    evaluator = ReferenceEvaluator()
    assert policy.limit is not None and policy.price is not None
    assert policy.limit.formula(fact) == Decimal("250000")
    assert policy.limit.floor == Decimal(1000) and policy.limit.round_to == Decimal(100)
    assert policy.price.base_rate(fact) == Decimal("0.072")
    assert policy.price.spread is not None and policy.price.spread(fact) == Decimal("0.020")
    fired = evaluator.fire(policy.price.adjustments.ruleset, policy.price.adjustments.prepare(fact))
    assert fired == ["homeowner_discount"]
    assert policy.price.adjustments.effects["homeowner_discount"].add == Decimal("-0.003")
    assert policy.segments is not None
    assert evaluator.fire(policy.segments.stage.ruleset, policy.segments.stage.prepare(fact)) == ["prime"]
    assert policy.products is not None
    assert [p.id for p in policy.products.items] == ["personal_std", "personal_flex", "credit_line"]
    eligible = evaluator.fire(policy.products.stage.ruleset, policy.products.stage.prepare(fact))
    assert eligible == ["personal_std", "personal_flex", "credit_line"]
    assert policy.offers is not None and policy.offers.income(fact) == Decimal("25000")
