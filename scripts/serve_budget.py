"""Where a served Decide goes beyond decide(): µs per part of the gRPC handler (median over N calls)
for the README applicant on consumer_loan, in process (no network), set up as a worker is.

    .venv/bin/python scripts/serve_budget.py [N] [ROUNDS]

The servicer is DecisionServicer over a storeless DecisionService, with the worker's JSON log lines
(stderr sent to /dev/null), prometheus_client in multiprocess mode (a temporary directory) and the
collector frozen after the warm-up, as engine.server.worker leaves them. Each call decodes the
request's bytes as add_to_server's handler does. Rounds alternate three blocks of N calls: the
handler alone, decide() alone on the same application, and the handler with each part timed inside
it (each wrapped in this script only: the wrappers' own cost stays out of the totals, which come
from the first two blocks). "the rest" is the timed handler minus its parts (the deadline and lock,
the trailing metadata, calls between parts)."""

from __future__ import annotations

import gc
import itertools
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# before anything imports prometheus_client: a worker's metrics are written to files
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="serve-budget-"))

from google.protobuf import struct_pb2

import engine.server  # noqa: F401  (puts the generated credo.v1 package on the path)

# isort: split
from credo.v1 import decision_pb2 as pb
from decide_budget import charged  # this folder (scripts/), where the script runs from

from engine.bench.grpc import sample_application
from engine.server import convert, metrics, servicer
from engine.server.logs import setup_logging
from engine.service import DecisionService

ROOT = Path(__file__).resolve().parents[1]
_REQUESTS = itertools.count()


class Context:
    """What Decide uses of a grpc.ServicerContext: a deadline far away, the trailer dropped."""

    def set_trailing_metadata(self, metadata: Any) -> None:
        pass

    def time_remaining(self) -> float:
        return 9.0


class Timed:
    """A metric (or a metric's child) whose updates are charged to `part`."""

    def __init__(self, metric: Any, part: str, spent: dict[str, float]):
        for name in ("inc", "dec", "observe", "labels"):
            if hasattr(metric, name):
                setattr(self, name, charged(getattr(metric, name), part, spent))


@contextmanager
def timed_parts(answering: servicer.DecisionServicer, spent: dict[str, float]) -> Iterator[None]:
    """Charge each part the handler calls to `spent`, in seconds; the originals are put back on exit."""
    service = answering.service
    saved_modules = [
        (convert, "request_to_call"),
        (convert, "decision_to_pb"),
        (servicer, "_decision_line"),
        (metrics, "IN_FLIGHT"),
        (metrics, "DECISION_SECONDS"),
    ]
    kept = [(module, name, getattr(module, name)) for module, name in saved_modules]
    counted = dict(answering._counted)
    try:
        convert.request_to_call = charged(convert.request_to_call, "request_to_call", spent)
        convert.decision_to_pb = charged(convert.decision_to_pb, "decision_to_pb", spent)
        servicer._decision_line = charged(servicer._decision_line, "log line", spent)  # type: ignore[assignment]
        metrics.IN_FLIGHT = Timed(metrics.IN_FLIGHT, "metrics", spent)  # type: ignore[assignment]
        metrics.DECISION_SECONDS = Timed(metrics.DECISION_SECONDS, "metrics", spent)  # type: ignore[assignment]
        answering._counted = {key: Timed(child, "metrics", spent) for key, child in counted.items()}
        service.submit = charged(service.submit, "submit", spent)  # type: ignore[method-assign]
        service._decide_unstored = charged(  # type: ignore[method-assign]
            service._decide_unstored, "decision", spent
        )
        yield
    finally:
        for module, name, fn in kept:
            setattr(module, name, fn)
        answering._counted = counted
        del service.submit, service._decide_unstored


def budget(n: int, rounds: int) -> dict[str, float]:
    sys.stderr.flush()
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115  (the log lines' stream, as a worker's stderr)
    setup_logging()
    name, application = sample_application(str(ROOT / "policies"), "consumer_loan")
    service = DecisionService(ROOT / "policies", ROOT / "models")
    answering = servicer.DecisionServicer(service)
    struct = struct_pb2.Struct()
    struct.update(application)
    context = Context()

    def request() -> bytes:
        return pb.DecideRequest(
            request_id=f"budget-{next(_REQUESTS)}", policy=name, application=struct
        ).SerializeToString()

    for _ in range(300):  # warm up: sessions, caches, the metrics' children
        answering.Decide(convert.decode(request(), pb.DecideRequest), context)
        service.decide(name, application, f"budget-{next(_REQUESTS)}")
    gc.collect()
    gc.freeze()  # as a worker does once built
    parts: dict[str, list[float]] = defaultdict(list)
    for _ in range(rounds):
        for _ in range(n):
            data = request()
            start = time.perf_counter()
            decoded = convert.decode(data, pb.DecideRequest)
            decoded_at = time.perf_counter()
            answering.Decide(decoded, context)
            end = time.perf_counter()
            parts["decode"].append((decoded_at - start) * 1e6)
            parts["Decide handler"].append((end - decoded_at) * 1e6)
        for _ in range(n):
            request_id = f"budget-{next(_REQUESTS)}"
            start = time.perf_counter()
            service.decide(name, application, request_id)
            parts["decide() alone"].append((time.perf_counter() - start) * 1e6)
        with timed_parts(answering, spent := defaultdict(float)):
            for _ in range(n):
                decoded = convert.decode(request(), pb.DecideRequest)
                spent.clear()
                start = time.perf_counter()
                answering.Decide(decoded, context)
                total = time.perf_counter() - start
                spent["submit"] -= spent["decision"]  # submit's own part: routing, the pending answer
                for part, seconds in spent.items():
                    parts[part].append(seconds * 1e6)
                parts["the rest"].append((total - sum(spent.values())) * 1e6)
    medians = {part: statistics.median(samples) for part, samples in parts.items()}
    medians["handler - decide()"] = medians["Decide handler"] - medians["decide() alone"]
    return medians


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    out = sys.stdout
    medians = budget(n, rounds)
    out.write(f"served Decide, README applicant on consumer_loan (µs, median of {n * rounds})\n")
    for part in (
        "decode",
        "Decide handler",
        "request_to_call",
        "submit",
        "decision",
        "decision_to_pb",
        "metrics",
        "log line",
        "the rest",
        "decide() alone",
        "handler - decide()",
    ):
        if part in medians:
            out.write(f"  {part:28s} {medians[part]:9.1f}\n")


if __name__ == "__main__":
    main()
