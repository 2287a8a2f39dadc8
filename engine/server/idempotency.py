"""Bounded in-process idempotency map: request_id -> (payload fingerprint, answered Decision).

Stands in until the audit store backs idempotency: it is per worker and forgets the oldest entries.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from credo.v1 import decision_pb2 as pb

from engine.errors import IdempotencyConflict


class IdempotencyMap:
    def __init__(self, capacity: int = 100_000):
        self.capacity = capacity
        self._items: OrderedDict[str, tuple[bytes, bytes]] = OrderedDict()
        self._by_decision: dict[str, str] = {}
        self._lock = threading.Lock()

    def lookup(self, request_id: str, fingerprint: bytes) -> pb.Decision | None:
        """The decision answered before for this request, or None; IdempotencyConflict when the same
        request_id came with a different payload."""
        with self._lock:
            found = self._items.get(request_id)
        if found is None:
            return None
        if found[0] != fingerprint:
            raise IdempotencyConflict(f"request_id {request_id!r} was already used with a different payload")
        return pb.Decision.FromString(found[1])

    def store(self, request_id: str, fingerprint: bytes, decision: pb.Decision) -> None:
        with self._lock:
            self._items[request_id] = (fingerprint, decision.SerializeToString())
            self._by_decision[decision.decision_id] = request_id
            while len(self._items) > self.capacity:
                _, (_, blob) = self._items.popitem(last=False)
                self._by_decision.pop(pb.Decision.FromString(blob).decision_id, None)

    def get(self, *, request_id: str = "", decision_id: str = "") -> pb.Decision | None:
        with self._lock:
            if decision_id:
                request_id = self._by_decision.get(decision_id, "")
            found = self._items.get(request_id) if request_id else None
        return pb.Decision.FromString(found[1]) if found else None
