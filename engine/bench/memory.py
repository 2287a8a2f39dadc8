"""Memory section: resident set size of one decision process before and after N decisions (after a
warm-up), run in a fresh child process (`python -m engine.bench.memory N`) so nothing else skews it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["bench_memory", "rss_bytes"]

ROOT = Path(__file__).resolve().parents[2]
WARMUP = 1000
DISTINCT = 5000  # applications cycled through (distinct request ids every time)


def rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure_here(decisions: int, policies: str, models: str) -> dict[str, Any]:
    """In this process: a DecisionService (default rule engine, ONNX, no audit log) deciding consumer_loan
    applications; RSS after the warm-up and after `decisions` more."""
    import gc

    from engine.bench.data import applications
    from engine.recent import RecentDecisions
    from engine.service import DecisionService

    # Without a store the service remembers recent answers for idempotency, bounded in bytes
    # (engine.recent, 64 MiB by default): a cache filling, not a leak. It is kept to 1 MiB here so
    # that RSS growth shows what else grows.
    service = DecisionService(policies, models, recent=RecentDecisions(max_bytes=1 << 20))
    policy = service.policy("consumer_loan")
    apps = applications(DISTINCT, seed=31)
    for n in range(WARMUP):
        service.decide(policy, apps[n % DISTINCT], f"warm-{n}")
    gc.collect()
    before = rss_bytes()
    start = time.perf_counter()
    samples = []  # RSS every tenth of the run: a plateau is a cache filling, a slope is a leak
    step = max(1, decisions // 10)
    for n in range(decisions):
        service.decide(policy, apps[n % DISTINCT], f"mem-{n}")
        if (n + 1) % step == 0:
            samples.append([n + 1, rss_bytes()])
            # a long run (1M decisions) shows its slope as it goes, on stderr
            print(
                json.dumps({"decisions": n + 1, "rss": samples[-1][1], "rss_before": before}),
                file=sys.stderr,
                flush=True,
            )
    seconds = time.perf_counter() - start
    gc.collect()
    after = rss_bytes()
    return {"decisions": decisions, "warmup": WARMUP, "rss_before": before, "rss_after": after,
            "seconds": seconds, "rss_samples": samples}  # fmt: skip


def bench_memory(decisions: int, policies: str = "policies", models: str = "models") -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "engine.bench.memory", str(decisions), policies, models],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


if __name__ == "__main__":
    print(json.dumps(measure_here(int(sys.argv[1]), sys.argv[2], sys.argv[3])))
