"""Floor section: the fixed cost of one decision. decide() of a policy with one input and no rules,
model or offers (validation, ids, timestamps, the stage table, the Decision and its trace) against
ZenEngine.evaluate of a graph holding only an input and an output node, in the same loop."""

from __future__ import annotations

import itertools
import json
import resource
import tempfile
from typing import Any

from engine.bench.stats import per_item_us
from engine.policy import load_policy_text
from engine.service import DecisionService

__all__ = ["ONE_INPUT_POLICY", "bench_floor"]

ONE_INPUT_POLICY = """\
policy: floor
version: "1"
currency: CNY
inputs:
  applicant.age: {type: integer, min: 18, max: 100}
"""
EMPTY_GRAPH = {
    "contentType": "application/vnd.gorules.decision",
    "nodes": [
        {
            "id": "request",
            "type": "inputNode",
            "name": "request",
            "position": {"x": 0, "y": 0},
            "content": {},
        },
        {
            "id": "response",
            "type": "outputNode",
            "name": "response",
            "position": {"x": 200, "y": 0},
            "content": {},
        },
    ],
    "edges": [{"id": "e0", "sourceId": "request", "targetId": "response", "type": "edge"}],
}
_EMPTY_KEY = "empty.json"


def bench_floor(repeats: int, calls: int = 2000) -> dict[str, Any]:
    """decide() floor and ZEN floor, per call in µs (median of `repeats` passes over `calls` calls)."""
    import zen

    policy = load_policy_text(ONE_INPUT_POLICY)
    applications = [{"applicant": {"age": 18 + i % 80}} for i in range(calls)]
    contexts = [{"applicant": {"age": 18 + i % 80}} for i in range(calls)]
    engine = zen.ZenEngine(
        {"loader": {"type": "static", "content": {_EMPTY_KEY: json.loads(json.dumps(EMPTY_GRAPH))}}}
    )
    with tempfile.TemporaryDirectory() as empty:
        service = DecisionService(empty, empty)
        decision = service.decide(policy, applications[0], "floor")
        assert decision.outcome.value == "APPROVE", decision
        # a fresh request_id per call: a reused one with another application is an idempotency conflict
        ids = (f"floor-{n}" for n in itertools.count())
        faults = _minor_faults()
        decide_us = per_item_us(lambda app: service.decide(policy, app, next(ids)), applications, repeats)
        faults = _minor_faults() - faults
        decided = min(len(applications), 50) + repeats * len(applications)  # per_item_us's calls
    zen_us = per_item_us(lambda ctx: engine.evaluate(_EMPTY_KEY, ctx), contexts, repeats)
    return {
        "decide_us": decide_us,
        "zen_us": zen_us,
        "calls": calls,
        # fresh memory the kept answers (the storeless service's recent answers) first touch: each
        # fault costs 0.5-5 µs depending on the machine, so this explains much of a spread in decide_us
        "decide_minor_faults_per_call": faults / decided,
    }


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
