"""A DecisionServicer on the shipped consumer_loan policy, called as gRPC calls it, for unit tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# the keys of a decision's log line after ts, level, logger, pid and msg, in order: what log readers parse
DECISION_LINE_KEYS = ["request_id", "decision_id", "policy", "outcome", "reasons", "millis", "labels"]


class _Context:
    """The part of a grpc.ServicerContext that Decide uses, for a call without a deadline."""

    def time_remaining(self) -> None:
        return None

    def set_trailing_metadata(self, metadata: object) -> None:
        pass


@dataclass
class LoanServicer:
    """A DecisionServicer deciding consumer_loan's first approved test case, `labels.officer`
    declared pii; `decide(request_id, labels)` calls its Decide and returns the answer."""

    policy: str
    decide: Callable[[str, dict[str, str]], Any]


def consumer_loan_servicer() -> LoanServicer:
    from credo.v1 import decision_pb2 as pb
    from google.protobuf import struct_pb2

    from engine.bench.grpc import sample_application
    from engine.server.servicer import DecisionServicer
    from engine.service import DecisionService

    policy, application = sample_application(str(ROOT / "policies"), "consumer_loan")
    servicer = DecisionServicer(
        DecisionService(ROOT / "policies", ROOT / "models"),
        pii={policy: frozenset({"labels.officer"})},
    )
    struct = struct_pb2.Struct()
    struct.update(application)

    def decide(request_id: str, labels: dict[str, str]) -> Any:
        request = pb.DecideRequest(request_id=request_id, policy=policy, application=struct, labels=labels)
        return servicer.Decide(request, _Context())  # type: ignore[arg-type]

    return LoanServicer(policy, decide)
