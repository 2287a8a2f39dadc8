"""Each stage of consumer_loan's stage table to the nanosecond: the median over N decisions of the
README applicant (APPROVE) and of a referred applicant, each stage called in decision order on a
fresh context, as the generated run_stages calls it (the Decision trace rounds to the µs).

    .venv/bin/python scripts/stage_times.py [N]

A stage is timed where a decision runs it: after the stages before it and the whole decision
before (the offers stage leaves the caches cold for the next score): a stage timed alone in a loop
costs about half as much."""

from __future__ import annotations

import datetime as dt
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from engine.pipeline.context import DecisionContext
from engine.pipeline.table import stage_table
from engine.service import DecisionService

ROOT = Path(__file__).resolve().parents[1]
REFER_TEST = "thin bureau file is referred"
WARM_UP = 300


def stage_ns(service: DecisionService, policy: Any, application: dict[str, Any], n: int) -> dict[str, float]:
    """Median ns per stage over `n` decisions (after a warm-up), each stage in decision order."""
    table = stage_table(policy)
    today = dt.date.today()
    clock = time.perf_counter_ns
    spent: dict[str, list[int]] = defaultdict(list)
    for i in range(WARM_UP + n):
        ctx = DecisionContext(policy, application, service.evaluator, service.models, "en", today)
        for stage in table:
            if ctx.declines and not stage.closing:
                continue
            start = clock()
            stage.run(ctx)
            took = clock() - start
            if i >= WARM_UP:
                spent[stage.name].append(took)
    return {name: statistics.median(samples) for name, samples in spent.items()}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    service = DecisionService(str(ROOT / "policies"), str(ROOT / "models"))
    policy = service.policy("consumer_loan")
    readme = json.loads((ROOT / "tests" / "pipeline" / "readme_applicant.json").read_text(encoding="utf-8"))
    thin = next(t for t in policy.tests if t.name == REFER_TEST)
    cases = [("APPROVE (README applicant)", readme), (f"REFER ({REFER_TEST})", dict(thin.input))]
    for title, application in cases:
        ns = stage_ns(service, policy, application, n)
        parts = " ".join(f"{name} {value / 1000:.2f}" for name, value in ns.items())
        rest = sum(value for name, value in ns.items() if name != "offers") / 1000
        print(f"{title}, µs (median of {n}): {parts} | all but offers {rest:.2f}")


if __name__ == "__main__":
    main()
