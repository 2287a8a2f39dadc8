"""Peer section: Credo's consumer_loan rule stages (eligibility, grade, post_score, limit, price) against
the same logic as a GoRules ZEN decision on ZEN's fast path, after checking both give the same results.

Every implementation returns {eligibility, grade, post_score, limit_adjustments (codes), limit,
limit_below_floor, price_adjustments (codes), annual_rate}; limit and annual_rate as Decimal.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from engine.bench.facts import ScoredFact
from engine.bench.stats import per_item_us
from engine.bench.zen import CONSUMER_LOAN_JDM
from engine.pipeline.context import DecisionContext
from engine.pipeline.runner import StageResult
from engine.pipeline.stages import LIMIT_FLOOR_CODE, after_score, limit_stage, price_stage, rule_stage
from engine.rules import Evaluator

__all__ = [
    "EquivalenceError",
    "bench_peer",
    "check_equivalence",
    "credo_rule_stages",
    "zen_context",
    "zen_engine",
    "zen_rule_stages",
]

ZEN_KEY = "consumer_loan.json"
_eligibility, _post_score = rule_stage("eligibility"), rule_stage("post_score")


def _fired(result: Any) -> tuple[str, ...]:
    """The rule ids a stage fired: none when it answered its trace values alone."""
    return result.fired if isinstance(result, StageResult) else ()


_NO_PD = Decimal("0.02")


class EquivalenceError(AssertionError):
    """The peer decision and Credo disagree on some input: the timing would compare different work."""


def _no_models(name: str, version: str, sha256: str | None) -> tuple[Any, Any]:
    raise AssertionError("the rule stages score nothing")


def credo_rule_stages(
    policy: Any, evaluator: Evaluator, fact: Mapping[str, Any], points: int
) -> dict[str, Any]:
    """Credo's own stage functions on one validated fact, given the model's points (every stage runs,
    as in the ZEN graph, even after a decline)."""
    ctx = DecisionContext(policy, {}, evaluator, _no_models)
    ctx.fact = dict(fact)
    after_score(ctx, _NO_PD, points)  # grade and the tables that read the score, as the score stage
    grade = ctx.fact["score.grade"]
    eligibility = _eligibility(ctx)
    post_score = _post_score(ctx)
    limit = limit_stage(ctx)
    price = price_stage(ctx)
    effects = policy.stage("eligibility").effects
    post_effects = policy.stage("post_score").effects
    return {
        "eligibility": [effects[r].code for r in _fired(eligibility)],
        "grade": grade,
        "post_score": [post_effects[r].code for r in _fired(post_score)],
        "limit_adjustments": [policy.limit.adjustments.effects[r].code for r in limit.fired],
        "limit": ctx.limit,
        "limit_below_floor": any(r.code == LIMIT_FLOOR_CODE for r in ctx.declines),
        "price_adjustments": [policy.price.adjustments.effects[r].code for r in price.fired],
        "annual_rate": ctx.annual_rate,
    }


def zen_engine() -> Any:
    """A ZenEngine with the consumer_loan graph in a static loader (its fastest evaluate path)."""
    import zen

    content = json.loads(CONSUMER_LOAN_JDM.read_text(encoding="utf-8"))
    return zen.ZenEngine({"loader": {"type": "static", "content": {ZEN_KEY: content}}})


def _plain(value: Any) -> Any:
    # ZEN takes no Decimal; a float's repr keeps every digit of these short decimals
    return float(value) if isinstance(value, Decimal) else value


def zen_context(fact: Mapping[str, Any], points: int) -> dict[str, Any]:
    """The nested JSON context the ZEN graph reads: the validated fact, dti and score.points."""
    nested: dict[str, Any] = {}
    for path, value in fact.items():
        group, dot, name = path.partition(".")
        if dot:
            nested.setdefault(group, {})[name] = _plain(value)
        else:
            nested[path] = _plain(value)
    nested["score"] = {"points": points}
    return nested


def zen_rule_stages(engine: Any, context: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(engine.evaluate(ZEN_KEY, context)["result"])
    result.pop("limit_raw", None)
    result["limit"] = Decimal(repr(result["limit"]))
    result["annual_rate"] = Decimal(repr(result["annual_rate"]))
    return result


def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def check_equivalence(
    implementations: Mapping[str, Callable[[ScoredFact], Mapping[str, Any]]],
    inputs: Sequence[ScoredFact],
    show: int = 5,
) -> dict[str, int]:
    """Run every implementation on every input; EquivalenceError (listing the first `show`
    mismatches) unless all agree with the first. Returns how often each rule code fired."""
    (first_name, first), *others = implementations.items()
    mismatches: list[str] = []
    coverage: dict[str, int] = {}
    for item in inputs:
        want = first(item)
        grade = [f"grade {want['grade']}"] if "grade" in want else []
        for code in [*want.get("eligibility", []), *want.get("post_score", []), *grade]:
            coverage[code] = coverage.get(code, 0) + 1
        for name, fn in others:
            got = fn(item)
            fields = _same(want, got)
            if fields:
                detail = ", ".join(f"{k}: {want.get(k)!r} vs {got.get(k)!r}" for k in fields)
                mismatches.append(f"{first_name} vs {name} on {item.application}: {detail}")
    if mismatches:
        shown = "\n  ".join(mismatches[:show])
        raise EquivalenceError(f"{len(mismatches)} mismatches over {len(inputs)} inputs:\n  {shown}")
    return coverage


def bench_peer(
    policy: Any, evaluator: Evaluator, inputs: Sequence[ScoredFact], check: int, repeats: int
) -> dict[str, Any]:
    """Equivalence on the first `check` inputs (raises on any mismatch), then µs per decision of
    Credo's rule stages and of ZenEngine.evaluate over all inputs."""
    from engine.bench.handwritten import consumer_loan_rules

    engine = zen_engine()
    contexts = [zen_context(item.fact, item.points) for item in inputs]
    by_id = {id(item): ctx for item, ctx in zip(inputs, contexts, strict=True)}
    coverage = check_equivalence(
        {
            "credo": lambda i: credo_rule_stages(policy, evaluator, i.fact, i.points),
            "zen": lambda i: zen_rule_stages(engine, by_id[id(i)]),
            "handwritten": lambda i: consumer_loan_rules(i.fact, i.points),
        },
        inputs[:check],
    )
    pairs = [(item.fact, item.points) for item in inputs]
    credo_us = per_item_us(lambda p: credo_rule_stages(policy, evaluator, p[0], p[1]), pairs, repeats)
    zen_us = per_item_us(lambda c: engine.evaluate(ZEN_KEY, c), contexts, repeats)
    hand_us = per_item_us(lambda p: consumer_loan_rules(p[0], p[1]), pairs, repeats)
    return {
        "inputs": len(inputs),
        "checked": min(check, len(inputs)),
        "coverage": dict(sorted(coverage.items())),
        "credo_us": credo_us,
        "zen_us": zen_us,
        "handwritten_us": hand_us,
    }
