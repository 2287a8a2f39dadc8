"""Rules section: consumer_loan's eligibility stage on the compiled evaluator (Credo's default), on
durable_rules and on the pure-Python reference evaluator, vs hand-written Python doing the same checks
(the floor), after checking all agree."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.bench.facts import ScoredFact
from engine.bench.handwritten import consumer_loan_eligibility
from engine.bench.peer import check_equivalence
from engine.bench.stats import per_item_us
from engine.rules import Evaluator
from engine.rules import evaluator as rule_engine

__all__ = ["bench_rules", "eligibility_codes"]


def eligibility_codes(policy: Any, evaluator: Evaluator, fact: dict[str, Any]) -> list[str]:
    """What Credo's eligibility stage decides on one fact: the codes of the fired rules, in policy order."""
    stage = policy.stage("eligibility")
    return [stage.effects[r].code for r in stage.fire(evaluator, fact)]


def bench_rules(
    policy: Any, compiled: Evaluator, inputs: Sequence[ScoredFact], repeats: int
) -> dict[str, Any]:
    durable, reference = rule_engine("durable"), rule_engine("reference")
    check_equivalence(
        {
            "compiled": lambda i: {"eligibility": eligibility_codes(policy, compiled, i.fact)},
            "durable_rules": lambda i: {"eligibility": eligibility_codes(policy, durable, i.fact)},
            "reference": lambda i: {"eligibility": eligibility_codes(policy, reference, i.fact)},
            "handwritten": lambda i: {"eligibility": consumer_loan_eligibility(i.fact)},
        },
        inputs,
    )
    facts = [item.fact for item in inputs]
    return {
        "inputs": len(facts),
        "rules": len(policy.stage("eligibility").ruleset.rules),
        "engine": compiled.name,
        "compiled_us": per_item_us(lambda f: eligibility_codes(policy, compiled, f), facts, repeats),
        "durable_us": per_item_us(lambda f: eligibility_codes(policy, durable, f), facts, repeats),
        "reference_us": per_item_us(lambda f: eligibility_codes(policy, reference, f), facts, repeats),
        "handwritten_us": per_item_us(consumer_loan_eligibility, facts, repeats),
    }
