"""Idempotency for a service that keeps no audit store: recent decisions by request_id, in memory,
bounded in bytes. With a store, the store's unique request_id index does this job instead.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from engine.decision import Decision
from engine.errors import IdempotencyConflict

__all__ = ["DEFAULT_MAX_BYTES", "RecentDecisions", "estimated_bytes"]

DEFAULT_MAX_BYTES = 64 * 1024 * 1024

# What one answered Decision costs in memory, measured with a recursive sys.getsizeof over real
# consumer_loan decisions (tests/pipeline/test_recent_decisions.py keeps the estimate an upper
# bound): the objects shared with caches (schedule rows) are counted as if they were not shared.
_BASE = 4096  # the Decision, its refs, score, a trace of ~10 stages with their values
_PER_REASON = 640
_PER_OFFER = 1536
_PER_ROW = 1024  # an Instalment and its four Decimals
_PER_KEY = 256  # the request_id, decision_id, fingerprint and the map's own entries


def estimated_bytes(decision: Decision) -> int:
    rows = sum(len(offer.schedule) for offer in decision.offers)
    return (
        _BASE
        + _PER_KEY
        + _PER_REASON * len(decision.reasons)
        + _PER_OFFER * len(decision.offers)
        + _PER_ROW * rows
    )


@dataclass(frozen=True)
class _Entry:
    fingerprint: str
    decision: Decision
    size: int


class RecentDecisions:
    """request_id -> (fingerprint, Decision) of this process's recent answers, the oldest forgotten
    first once their estimated size passes `max_bytes` (default 64 MiB: ~2,000 decisions with three
    full schedules, far more without offers). What is lost without a store: a retry that reaches
    another worker or process, or comes after its entry was forgotten or the process restarted, is
    decided again (possibly differently), and GetDecision finds only what this process remembers."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._by_request: OrderedDict[str, _Entry] = OrderedDict()
        self._by_decision: dict[str, str] = {}
        self._lock = threading.Lock()

    def remember(self, request_id: str, fingerprint: str, decision: Decision) -> Decision:
        """Keep `decision` as the answer to `request_id` and return it; if the request_id was seen
        before, return that earlier answer instead (never two decisions), or raise
        IdempotencyConflict when it came with another fingerprint."""
        with self._lock:
            earlier = self._by_request.get(request_id)
            if earlier is not None:
                if earlier.fingerprint != fingerprint:
                    raise IdempotencyConflict(
                        f"request_id {request_id!r} was already used for a different request;"
                        " use a new request_id"
                    )
                return earlier.decision
            entry = _Entry(fingerprint, decision, estimated_bytes(decision))
            self._by_request[request_id] = entry
            self._by_decision[decision.decision_id] = request_id
            self.bytes += entry.size
            while self.bytes > self.max_bytes and len(self._by_request) > 1:
                _, old = self._by_request.popitem(last=False)
                self._by_decision.pop(old.decision.decision_id, None)
                self.bytes -= old.size
        return decision

    def get(self, *, request_id: str = "", decision_id: str = "") -> Decision | None:
        with self._lock:
            if decision_id:
                request_id = self._by_decision.get(decision_id, "")
            entry = self._by_request.get(request_id) if request_id else None
        return entry.decision if entry is not None else None

    def __len__(self) -> int:
        return len(self._by_request)
