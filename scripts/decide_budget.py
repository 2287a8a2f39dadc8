"""Where one decide() goes: µs per component (median over N calls) for the README applicant on
consumer_loan and for the bench's one-input floor policy, on a storeless DecisionService.

    .venv/bin/python scripts/decide_budget.py [N]

Stages are the runner's own per-stage timings (the Decision trace); the service's parts around
the pipeline (ids and clock, the Decision, the idempotency fingerprint, the recent-answers map)
are timed alone on the same inputs; "the rest" is decide() minus all of them."""

from __future__ import annotations

import itertools
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.audit.record import request_fingerprint
from engine.bench.floor import ONE_INPUT_POLICY
from engine.pipeline import build_decision, run_pipeline
from engine.policy import load_policy_text
from engine.recent import RecentDecisions
from engine.service import DecisionService

ROOT = Path(__file__).resolve().parents[1]


def _median_us(fn: Callable[[], Any], n: int) -> float:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def budget(service: DecisionService, policy: Any, application: dict[str, Any], n: int) -> dict[str, float]:
    ids = (f"budget-{i}" for i in itertools.count())
    for _ in range(200):  # warm up: sessions, caches
        service.decide(policy, application, next(ids))
    stages: dict[str, list[float]] = defaultdict(list)
    totals = []
    for _ in range(n):
        start = time.perf_counter()
        decision = service.decide(policy, application, next(ids))
        totals.append(time.perf_counter() - start)
        for entry in decision.trace:
            stages[entry.stage].append(entry.millis * 1000)
    out = {f"stage {name}": statistics.median(v) for name, v in stages.items()}
    ctx = run_pipeline(policy, application, service.evaluator, service.models, "en")
    received = service.clock()
    out["ids and clock"] = _median_us(lambda: service.ids(service.clock()), n)
    out["build Decision"] = _median_us(lambda: build_decision(ctx, "d", "r", "2026-01-01T00:00:00Z"), n)
    out["fingerprint"] = _median_us(lambda: request_fingerprint(policy.name, "en", ctx.input), n)
    recent = RecentDecisions()
    made = build_decision(ctx, service.ids(received), "r", "2026-01-01T00:00:00Z")
    out["recent answers"] = _median_us(lambda: recent.remember(next(ids), "f", made, ctx.rounding), n)
    total = statistics.median(totals) * 1e6
    out["the rest"] = total - sum(out.values())
    out["decide() total"] = total
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    service = DecisionService(str(ROOT / "policies"), str(ROOT / "models"))
    readme = json.loads((ROOT / "tests" / "pipeline" / "readme_applicant.json").read_text(encoding="utf-8"))
    rows = {"README applicant, consumer_loan": budget(service, service.policy("consumer_loan"), readme, n)}
    with tempfile.TemporaryDirectory() as empty:
        floor = DecisionService(empty, empty)
        floor_policy = load_policy_text(ONE_INPUT_POLICY)
        rows["floor policy"] = budget(floor, floor_policy, {"applicant": {"age": 40}}, n)
    for title, parts in rows.items():
        print(f"{title} (µs, median of {n})")
        for name, us in parts.items():
            print(f"  {name:28s} {us:9.1f}")


if __name__ == "__main__":
    main()
