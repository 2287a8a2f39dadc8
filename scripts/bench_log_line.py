"""The gRPC server's per-decision log line alone: `log.info("decision", extra=...)` through the
logging module (LogRecord, handler chain, JsonFormatter) against the servicer's KeyedLine, both on
the handler `setup_logging` installs, writing to /dev/null (as `credo bench` runs the server) or
--to FILE. Checks first that both write the same line apart from the time.

    .venv/bin/python scripts/bench_log_line.py [--calls N] [--to FILE]

"between decisions": one line after each decide() of consumer_loan (caches as a server has them),
A and B on alternate decisions, µs per line (median, p90). "in a loop": lines back to back, blocks of
A and B alternated, µs per line (median of the blocks)."""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.bench.grpc import sample_application  # noqa: E402
from engine.server.logs import JsonLines, mask_labels, setup_logging  # noqa: E402
from engine.server.servicer import _decision_line, log  # noqa: E402
from engine.service import DecisionService  # noqa: E402

LABELS = {"channel": "branch", "officer": "Wang Wu"}
PII = frozenset({"labels.officer"})
TIME = re.compile(r'"ts": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00"')


def fields(decision: Any, millis: float) -> tuple[Any, ...]:
    """The decision line's values, as the servicer computes them (labels masked, one pii)."""
    return (
        "bench-request-0001",
        decision.decision_id,
        f"{decision.policy.name}@{decision.policy.version}",
        decision.outcome.value,
        [r.code for r in decision.reasons],
        millis,
        mask_labels(LABELS, PII),
    )


def via_logging(values: tuple[Any, ...]) -> None:
    log.info("decision", extra=dict(zip(_decision_line.keys, values, strict=True)))


def via_keyed_line(values: tuple[Any, ...]) -> None:
    _decision_line(*values)


SIDES: dict[str, Callable[[tuple[Any, ...]], None]] = {
    "A logging": via_logging,
    "B KeyedLine": via_keyed_line,
}


def same_line(values: tuple[Any, ...]) -> None:
    """Both sides' line, captured; equal once the time is set aside."""
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, JsonLines)
    kept = handler.stream
    lines = []
    try:
        for side in SIDES.values():
            handler.setStream(io.StringIO())
            side(values)
            lines.append(handler.stream.getvalue())
    finally:
        handler.setStream(kept)
    a, b = (TIME.sub('"ts": "-"', line, count=1) for line in lines)
    assert a == b and json.loads(a), lines
    print(f"same line apart from the time ({len(lines[0])} bytes): {lines[1].strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--to", default=os.devnull)
    args = parser.parse_args()

    service = DecisionService(ROOT / "policies", ROOT / "models")
    policy, application = sample_application(str(ROOT / "policies"), "consumer_loan")
    with open(args.to, "a", buffering=1, encoding="utf-8") as stream:  # line-buffered, as stderr
        run(service, policy, application, stream, args.calls)


def run(service: DecisionService, policy: str, application: Any, stream: Any, calls: int) -> None:
    setup_logging("INFO")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, JsonLines)
    handler.setStream(stream)

    decision = service.decide(policy, application, "bench")
    same_line(fields(decision, 0.823))

    spent: dict[str, list[float]] = {name: [] for name in SIDES}
    names = list(SIDES)
    for i in range(calls):
        decision = service.decide(policy, application, f"bench-{i}")
        name = names[i % 2]
        values = fields(decision, 0.823)
        start = time.perf_counter()
        SIDES[name](values)
        spent[name].append(time.perf_counter() - start)
    print(f"between decisions ({calls} decide() calls, one line after each, A/B alternated):")
    for name, times in spent.items():
        times.sort()
        print(
            f"  {name:<12} median {statistics.median(times) * 1e6:7.2f} µs"
            f"   p90 {times[len(times) * 9 // 10] * 1e6:7.2f} µs"
        )

    blocks: dict[str, list[float]] = {name: [] for name in SIDES}
    values = fields(decision, 0.823)
    for _ in range(7):
        for name, side in SIDES.items():
            start = time.perf_counter()
            for _ in range(2000):
                side(values)
            blocks[name].append((time.perf_counter() - start) / 2000)
    print("in a loop (7 blocks of 2000 lines each, A/B alternated):")
    for name, times in blocks.items():
        print(f"  {name:<12} median {statistics.median(times) * 1e6:7.2f} µs")


if __name__ == "__main__":
    main()
