"""Validated + derived consumer_loan facts with model points, the input every rule-level section
(rules, peer) hands to each implementation; scored once with native CatBoost, outside any timing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.bench.data import applications
from engine.models.scaling import points as scale_points

__all__ = ["ScoredFact", "scored_facts"]


@dataclass(frozen=True)
class ScoredFact:
    application: dict[str, Any]
    fact: dict[str, Any]  # validated input + derived values
    points: int


def scored_facts(
    policy: Any, models_dir: Path | str, count: int, seed: int = 11, extra: Sequence[Mapping[str, Any]] = ()
) -> list[ScoredFact]:
    """`extra` applications (e.g. the policy's own test inputs, which reach rules the generator
    rarely does) first, then `count` synthetic ones."""
    from engine.models.scoring import NativeScorer
    from engine.models.store import ModelStore

    assert policy.score is not None
    package = ModelStore(models_dir).load(policy.score.model_name, policy.score.model_version)
    scorer = NativeScorer(package, thread_count=1)
    apps = [dict(a) for a in extra] + applications(count, seed)
    facts = []
    for app in apps:
        fact = policy.validate(app)
        policy.derive(fact)
        facts.append(fact)
    pds = scorer.pd_batch([policy.score.features(f) for f in facts])
    sc = policy.score.scaling
    return [
        ScoredFact(app, fact, scale_points(pd, sc.base_points, sc.base_odds, sc.pdo))
        for app, fact, pd in zip(apps, facts, pds, strict=True)
    ]
