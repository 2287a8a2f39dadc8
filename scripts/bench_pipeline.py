"""In-process decide() latency per shipped policy: p50/p99 over the policy's own test inputs, each
stage's share, and the floor (the ONNX call plus the rule stages measured alone) it is compared to.

Usage: .venv/bin/python scripts/bench_pipeline.py [--rounds 50] [--policies policies] [--models models]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.errors import CredoError
from engine.pipeline import offers as offers_module
from engine.service import DecisionService


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def floor_millis(service: DecisionService, policy: Any, apps: list[dict[str, Any]], rounds: int) -> float:
    """Median of: one ONNX call + every rule stage's evaluator call, on already-validated facts."""
    facts = []
    for app in apps:
        fact = policy.validate(app)
        policy.derive(fact)
        facts.append(fact)
    scorer = None
    if policy.score is not None:
        _, scorer = service.models(
            policy.score.model_name, policy.score.model_version, policy.score.model_sha256
        )
    stages = [s for s in policy.rule_stages]
    for extra in ("segments", "products"):
        spec = getattr(policy, extra)
        if spec is not None:
            stages.append(spec.stage)
    for extra in ("limit", "price"):
        spec = getattr(policy, extra)
        if spec is not None and spec.adjustments.ruleset.rules:
            stages.append(spec.adjustments)
    samples = []
    for _ in range(rounds):
        for fact in facts:
            fact = dict(fact, **{"score.pd": 0, "score.points": 600, "score.grade": "B"})
            start = time.perf_counter()
            if scorer is not None:
                scorer.pd(policy.score.features(fact))
            for stage in stages:
                service.evaluator.fire(stage.ruleset, stage.prepare(fact))
            samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--policies", default="policies")
    parser.add_argument("--models", default="models")
    parser.add_argument(
        "--cold", action="store_true", help="clear the schedule/APR caches before every decision (worst case)"
    )
    args = parser.parse_args()
    service = DecisionService(args.policies, args.models)
    for path in sorted(Path(args.policies).glob("*/policy.yaml")):
        policy = service.policy(str(path))
        apps = [dict(t.input) for t in policy.tests if "error" not in t.expect]
        for app in apps:  # warm up: sessions, rulesets, caches
            service.decide(policy, app, "warmup")
        totals: list[float] = []
        by_outcome: dict[str, list[float]] = defaultdict(list)
        stage_ms: Counter[str] = Counter()
        for _ in range(args.rounds):
            for app in apps:
                if args.cold:
                    offers_module._schedule.cache_clear()
                    offers_module._disclosed_apr.cache_clear()
                start = time.perf_counter()
                try:
                    decision = service.decide(policy, app, "bench")
                except CredoError:
                    continue
                elapsed = (time.perf_counter() - start) * 1000
                totals.append(elapsed)
                by_outcome[decision.outcome.value].append(elapsed)
                for entry in decision.trace:
                    stage_ms[entry.stage] += entry.millis
        floor = floor_millis(service, policy, apps, max(1, args.rounds // 5))
        p50, p99 = percentile(totals, 0.5), percentile(totals, 0.99)
        print(f"{policy.name} {policy.version}: {len(totals)} decisions  p50 {p50:.3f} ms  p99 {p99:.3f} ms")
        for outcome, values in sorted(by_outcome.items()):
            print(
                f"  {outcome:8s} n={len(values):5d}  p50 {percentile(values, 0.5):.3f} ms  "
                f"p99 {percentile(values, 0.99):.3f} ms"
            )
        spent = sum(stage_ms.values()) or 1.0
        shares = "  ".join(f"{stage} {100 * ms / spent:.1f}%" for stage, ms in stage_ms.most_common())
        print(f"  stage share: {shares}")
        print(
            f"  floor (ONNX call + rule stages alone) p50 {floor:.3f} ms; APPROVE p50 / floor = "
            f"{percentile(by_outcome.get('APPROVE', totals), 0.5) / floor:.1f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
