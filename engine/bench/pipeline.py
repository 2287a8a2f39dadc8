"""In-process section: decide() p50/p99 per shipped policy over the policy's own test inputs, each
stage's share, and the floor (the ONNX call plus the rule stages measured alone) it is compared to.
(Moved here from scripts/bench_pipeline.py, which is now a thin wrapper printing `describe`.)"""

from __future__ import annotations

import copy
import random
import statistics
import time
from collections import defaultdict
from decimal import Decimal
from typing import Any

from engine.bench.stats import percentile
from engine.errors import CredoError
from engine.pipeline.candidates import clear_caches
from engine.policy.model import TEST_DATE
from engine.service import DecisionService

__all__ = ["bench_policy", "bench_varied", "describe", "floor_millis", "varied_applications"]


def floor_millis(service: DecisionService, policy: Any, apps: list[dict[str, Any]], rounds: int) -> float:
    """Median of: one ONNX call + every rule stage's evaluator call, on already-validated facts."""
    facts = []
    for app in apps:
        fact = policy.validate(app, today=TEST_DATE)  # the date the policy's own tests decide on
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
                stage.fire(service.evaluator, fact)
            samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def bench_policy(service: DecisionService, policy: Any, rounds: int, cold: bool = False) -> dict[str, Any]:
    """decide() over the policy's own valid test inputs `rounds` times: p50/p99 overall and by
    outcome (ms), each stage's share of the time, and the floor. `cold` clears the schedule/APR
    caches before every decision (worst case)."""
    apps = [dict(t.input) for t in policy.tests if "error" not in t.expect]
    for n, app in enumerate(apps):  # warm up: sessions, rulesets, caches
        service.decide(policy, app, f"warmup-{policy.name}-{n}")
    totals: list[float] = []
    by_outcome: dict[str, list[float]] = defaultdict(list)
    stage_ms: dict[str, float] = defaultdict(float)
    for r in range(rounds):
        for n, app in enumerate(apps):
            if cold:
                clear_caches()
            start = time.perf_counter()
            try:
                decision = service.decide(policy, app, f"bench-{policy.name}-{r}-{n}")  # never a retry
            except CredoError:
                continue
            elapsed = (time.perf_counter() - start) * 1000
            totals.append(elapsed)
            by_outcome[decision.outcome.value].append(elapsed)
            for entry in decision.trace:
                stage_ms[entry.stage] += entry.millis
    floor = floor_millis(service, policy, apps, max(1, rounds // 5))
    spent = sum(stage_ms.values()) or 1.0
    return {
        "policy": policy.name,
        "version": policy.version,
        "decisions": len(totals),
        "p50_ms": percentile(totals, 0.5),
        "p99_ms": percentile(totals, 0.99),
        "by_outcome": {
            outcome: {"n": len(v), "p50_ms": percentile(v, 0.5), "p99_ms": percentile(v, 0.99)}
            for outcome, v in sorted(by_outcome.items())
        },
        "stage_share": {stage: ms / spent for stage, ms in sorted(stage_ms.items(), key=lambda kv: -kv[1])},
        "floor_ms": floor,
        "approve_p50_ms": percentile(by_outcome.get("APPROVE", totals), 0.5),
        "varied": bench_varied(service, policy, max(200, 30 * rounds)),
    }


def varied_applications(policy: Any, count: int, seed: int = 7) -> list[dict[str, Any]]:
    """`count` applications no two alike, as live traffic is: each is one of the policy's approved
    test inputs with the amount asked for and the income (the inputs its offers spec reads them
    from) scaled by a random factor, the amount to whole hundreds. Empty when the policy has no
    offers spec naming both as inputs. What bench_policy's repeated inputs never show: a decision
    whose amount, rate and PD the caches have not seen (new schedules, present values, dated rows)."""
    spec = getattr(policy, "offers", None)
    names = set(policy.input_names)
    requested = getattr(getattr(spec, "requested", None), "source", None)
    income = getattr(getattr(spec, "income", None), "source", None)
    if not isinstance(requested, str) or not isinstance(income, str) or not {requested, income} <= names:
        return []
    approved = [t.input for t in policy.tests if t.expect.get("outcome") == "APPROVE"]
    if not approved:
        return []
    rng = random.Random(seed)
    apps = []
    for n in range(count):
        app = copy.deepcopy(dict(approved[n % len(approved)]))
        for name, low, high, step in ((requested, 0.5, 1.0, 100), (income, 1.0, 1.6, 1)):
            *parents, leaf = name.split(".")
            node = app
            for part in parents:
                node = node[part]
            value = Decimal(str(node[leaf])) * Decimal(str(round(rng.uniform(low, high), 4)))
            node[leaf] = int(value / step) * step
        apps.append(app)
    return apps


def bench_varied(service: DecisionService, policy: Any, count: int) -> dict[str, Any] | None:
    """decide() p50 (ms) by outcome over varied_applications, each decided once after as many
    others have warmed the service; None when the policy has none."""
    apps = varied_applications(policy, 2 * count)
    if not apps:
        return None
    for n, app in enumerate(apps[:count]):
        service.decide(policy, app, f"varied-warmup-{policy.name}-{n}")
    by_outcome: dict[str, list[float]] = defaultdict(list)
    for n, app in enumerate(apps[count:]):
        start = time.perf_counter()
        try:
            decision = service.decide(policy, app, f"varied-{policy.name}-{n}")
        except CredoError:
            continue
        by_outcome[decision.outcome.value].append((time.perf_counter() - start) * 1000)
    return {
        "decisions": sum(map(len, by_outcome.values())),
        "by_outcome": {o: {"n": len(v), "p50_ms": percentile(v, 0.5)} for o, v in sorted(by_outcome.items())},
    }


def describe(result: dict[str, Any]) -> list[str]:
    """The human-readable lines of one policy's result."""
    lines = [
        f"{result['policy']} {result['version']}: {result['decisions']} decisions  "
        f"p50 {result['p50_ms']:.3f} ms  p99 {result['p99_ms']:.3f} ms"
    ]
    for outcome, r in result["by_outcome"].items():
        lines.append(f"  {outcome:8s} n={r['n']:5d}  p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms")
    shares = "  ".join(f"{stage} {100 * share:.1f}%" for stage, share in result["stage_share"].items())
    lines.append(f"  stage share: {shares}")
    varied = result.get("varied")
    if varied:
        shown = "  ".join(f"{o} n={r['n']} p50 {r['p50_ms']:.3f} ms" for o, r in varied["by_outcome"].items())
        lines.append(f"  varied applicants (amount and income no two alike): {shown}")
    lines.append(
        f"  floor (ONNX call + rule stages alone) p50 {result['floor_ms']:.3f} ms; APPROVE p50 / floor = "
        f"{result['approve_p50_ms'] / result['floor_ms']:.1f}x"
    )
    return lines
