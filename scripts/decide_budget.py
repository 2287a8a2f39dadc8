"""Where one decide() goes: µs per component (median over N calls) for the README applicant and a
referred applicant on consumer_loan and for the bench's one-input floor policy, on a storeless
DecisionService.

    .venv/bin/python scripts/decide_budget.py [N]

Stages are the runner's own per-stage timings (the Decision trace). The service's parts around the
stages are timed inside those same decide() calls (each wrapped in this script only), on the
decision's own inputs: timed alone on one repeated input they look cheaper than they are in a
decision (warm caches, a decision date that never changes). "runner and build" is the policy's
generated decide (engine.pipeline.table: the stage table and the Decision in one function) minus its
stages, the id and the offers' booking: the DecisionContext, per-stage timing and trace entries, the
Decision; "the rest" is decide() minus everything above it (request checks, the clock, the garbage
collector, calls between parts)."""

from __future__ import annotations

import functools
import itertools
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import engine.service
from engine.bench.floor import ONE_INPUT_POLICY
from engine.pipeline.table import decider
from engine.policy import load_policy_text
from engine.service import DecisionService

ROOT = Path(__file__).resolve().parents[1]
REFER_TEST = "thin bureau file is referred"
_REQUESTS = itertools.count()

# (name in the policy's generated code, the part it is charged to): what its decide calls
GENERATED = [("book_offers", "book offers")]
GENERATED_DECIDE = "runner and build"  # the generated decide itself, less what it calls above
# (module, attribute, the part it is charged to): what decide() calls around them
PARTS = [
    (engine.service, "decision_id_at", "ids"),
    (engine.service, "request_fingerprint", "fingerprint"),
]


def charged(fn: Callable[..., Any], part: str, spent: dict[str, float]) -> Callable[..., Any]:
    """`fn`, charging the time of each of its calls to `spent[part]`, in seconds."""

    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[part] += time.perf_counter() - start

    return timed


@contextmanager
def timed_parts(service: DecisionService, policy: Any, spent: dict[str, float]) -> Iterator[None]:
    """Charge each call of PARTS, of the GENERATED functions of `policy` and of the service's recent
    answers to `spent`, in seconds; the originals are put back on exit."""

    def wrap(fn: Callable[..., Any], part: str) -> Callable[..., Any]:
        return charged(fn, part, spent)

    generated = decider(policy).__globals__  # the namespace the generated functions read
    saved = [(module, name, getattr(module, name)) for module, name, _ in PARTS]
    kept = {name: generated[name] for name, _ in GENERATED}
    recent = service.recent
    try:
        for module, name, part in PARTS:
            setattr(module, name, wrap(getattr(module, name), part))
        timed_decide = wrap(decider(policy), GENERATED_DECIDE)  # what the service's decider hands out
        engine.service.decider = lambda loaded: timed_decide if loaded is policy else decider(loaded)
        for name, part in GENERATED:
            generated[name] = wrap(generated[name], part)
        if recent is not None:
            recent.remember = wrap(recent.remember, "recent answers")  # type: ignore[method-assign]
        yield
    finally:
        for module, name, fn in saved:
            setattr(module, name, fn)
        engine.service.decider = decider
        generated.update(kept)
        if recent is not None:
            del recent.remember


def budget(service: DecisionService, policy: Any, application: dict[str, Any], n: int) -> dict[str, float]:
    ids = (f"budget-{i}" for i in _REQUESTS)  # one sequence: every row's requests are new ones
    for _ in range(200):  # warm up: sessions, caches
        service.decide(policy, application, next(ids))
    parts: dict[str, list[float]] = defaultdict(list)
    with timed_parts(service, policy, spent := defaultdict(float)):
        for _ in range(n):
            spent.clear()
            start = time.perf_counter()
            decision = service.decide(policy, application, next(ids))
            total = time.perf_counter() - start
            stages = 0.0
            for entry in decision.trace:
                parts[f"stage {entry.stage}"].append(entry.millis * 1000)
                stages += entry.millis / 1000
            spent[GENERATED_DECIDE] -= stages + spent["ids"] + spent.get("book offers", 0.0)
            for part, seconds in spent.items():
                parts[part].append(seconds * 1e6)
            parts["the rest"].append((total - stages - sum(spent.values())) * 1e6)
            parts["decide() total"].append(total * 1e6)
    return {name: statistics.median(samples) for name, samples in parts.items()}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    service = DecisionService(str(ROOT / "policies"), str(ROOT / "models"))
    readme = json.loads((ROOT / "tests" / "pipeline" / "readme_applicant.json").read_text(encoding="utf-8"))
    consumer = service.policy("consumer_loan")
    rows = {"README applicant, consumer_loan": budget(service, consumer, readme, n)}
    # a REFER explains its score (the SHAP tables) in the outcome stage; the README applicant is approved
    thin = next(t for t in consumer.tests if t.name == REFER_TEST)
    rows[f"REFER ({REFER_TEST}), consumer_loan"] = budget(service, consumer, dict(thin.input), n)
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
