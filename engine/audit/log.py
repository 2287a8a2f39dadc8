"""The decision log a service writes to: group commit on one chain per process, idempotency by
request_id, archiving of policy and model files. `append` returns only once the record is durable.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from engine.audit.canonical import sha256_hex
from engine.audit.connect import open_store
from engine.audit.record import GENESIS_HASH, DecisionRecord, new_chain_id
from engine.audit.store import AuditStore, Blob
from engine.errors import IdempotencyConflict, RequestClash, StoreUnavailable

__all__ = ["DecisionLog", "LogStats"]

log = logging.getLogger(__name__)


@dataclass
class LogStats:
    batches: int = 0
    records: int = 0
    duplicates: int = 0
    failures: int = 0


@dataclass
class _Pending:
    record: DecisionRecord
    blobs: Sequence[Blob]
    future: Future[DecisionRecord]


_STOP = object()


class DecisionLog:
    """Appends decision records to one chain (a fresh chain_id per instance) with group commit.

    Callers on any thread call `append(record, blobs)` (blocking) or `submit(...)` (a Future, for
    asyncio: `await asyncio.wrap_future(log.submit(...))`). A single writer thread collects what
    arrives within `max_wait` seconds of the first (or `max_batch` records; no wait when the previous
    batch held a single record, so a lone caller pays only the commit), assigns seq and
    prev_hash, and commits them with their new blobs in one transaction; only then are the callers
    released. A failed commit fails every caller in the batch with StoreUnavailable and the chain
    head is re-read from the store, so the next batch continues the chain exactly.

    Create it in the process that writes (after any fork): it owns a thread and connections.
    One instance per chain: two writers on one chain_id would fork it.
    """

    def __init__(
        self,
        store: AuditStore | str,
        *,
        chain_id: str | None = None,
        max_wait: float = 0.0015,
        max_batch: int = 512,
    ) -> None:
        self.store = open_store(store) if isinstance(store, str) else store
        self.chain_id = chain_id or new_chain_id()
        self.max_wait = max_wait
        self.max_batch = max_batch
        self.stats = LogStats()
        self._queue: queue.SimpleQueue[_Pending | object] = queue.SimpleQueue()
        self._known_blobs: set[str] = set()
        self._seq = 0
        self._head = GENESIS_HASH
        self._stale = True  # chain head must be (re)read from the store before the next commit
        self._closed = False
        self._last_batch = 0
        # Told each commit's outcome (None: committed; else why not): the server's health check.
        self.on_commit: Callable[[BaseException | None], None] | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"audit-writer-{self.chain_id[:8]}", daemon=True
        )
        self._thread.start()

    # -- the service's API
    def append(self, record: DecisionRecord, blobs: Sequence[Blob] = ()) -> DecisionRecord:
        """Store `record` durably and return the stored record: the sealed one, or, if its request_id
        was decided before with the same fingerprint, the earlier record (never two decisions).
        Raises IdempotencyConflict (same request_id, other payload) or StoreUnavailable."""
        return self.submit(record, blobs).result()

    def submit(self, record: DecisionRecord, blobs: Sequence[Blob] = ()) -> Future[DecisionRecord]:
        future: Future[DecisionRecord] = Future()
        if self._closed:
            future.set_exception(StoreUnavailable("the decision log is closed"))
            return future
        self._queue.put(_Pending(record, tuple(blobs), future))
        return future

    def lookup(self, request_id: str, fingerprint: str) -> DecisionRecord | None:
        """The stored record of a retried request, None for a new one; IdempotencyConflict if the
        request_id was used with a different payload."""
        record = self.store.get_by_request(request_id)
        if record is not None and record.request_fingerprint != fingerprint:
            raise _conflict(request_id)
        return record

    def get(self, decision_id: str) -> DecisionRecord | None:
        return self.store.get(decision_id)

    def get_by_request(self, request_id: str) -> DecisionRecord | None:
        return self.store.get_by_request(request_id)

    def close(self) -> None:
        """Commit what is queued, stop the writer and close the store."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join()
        self.store.close()

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the writer thread
    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            batch = [first]
            # Wait for company only when the last batch had some: a lone caller is not delayed.
            window = self.max_wait if self._last_batch > 1 or not self._queue.empty() else 0.0
            deadline = time.monotonic() + window
            while len(batch) < self.max_batch:
                timeout = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            self._last_batch = len(batch)
            self._commit([p for p in batch if isinstance(p, _Pending)])
        # anything that slipped in behind the stop marker is refused, never left waiting
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Pending):
                item.future.set_exception(StoreUnavailable("the decision log is closed"))

    def _commit(self, batch: list[_Pending]) -> None:
        # A retry is safe: the chain head and the stored request_ids are re-read first, so records a
        # lost COMMIT did store come back as "already stored" instead of being written twice.
        for attempt in range(3):
            try:
                self._commit_once(batch)
                if self.on_commit is not None:
                    self.on_commit(None)
                return
            except RequestClash:
                # another writer stored one of these request_ids meanwhile: re-check and retry
                self._stale = True
                if attempt == 2:
                    self._fail(
                        batch, StoreUnavailable("audit store: request_id clash persisted after retries")
                    )
            except StoreUnavailable as exc:
                # one retry on a fresh connection (a stale one fails once after a server restart)
                self._stale = True
                if attempt >= 1:
                    self._fail(batch, exc)
                    return
            except Exception as exc:  # never leave a caller waiting forever
                log.exception("audit commit failed")
                self._stale = True
                self._fail(batch, exc)
                return

    def _fail(self, batch: list[_Pending], exc: BaseException) -> None:
        self.stats.failures += 1
        if self.on_commit is not None:
            self.on_commit(exc)
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(exc)

    def _commit_once(self, batch: list[_Pending]) -> None:
        if self._stale:
            head = self.store.chain_head(self.chain_id)
            self._seq, self._head = (head.seq, head.hash) if head else (0, GENESIS_HASH)
            self._stale = False
        stored = self.store.find_requests([p.record.request_id for p in batch])
        seq, prev = self._seq, self._head
        sealed: list[DecisionRecord] = []
        outcome: list[tuple[_Pending, DecisionRecord | Exception]] = []
        blobs: dict[str, Blob] = {}
        for pending in batch:
            record = pending.record
            earlier = stored.get(record.request_id)
            if earlier is not None:
                if earlier.request_fingerprint == record.request_fingerprint:
                    outcome.append((pending, earlier))
                else:
                    outcome.append((pending, _conflict(record.request_id)))
                continue
            seq += 1
            placed = record.seal(self.chain_id, seq, prev)
            prev = placed.hash
            stored[record.request_id] = placed
            sealed.append(placed)
            outcome.append((pending, placed))
            for blob in pending.blobs:
                if blob.sha256 not in self._known_blobs:
                    blobs[blob.sha256] = blob
        if blobs:
            missing = self.store.missing_blobs(list(blobs))
            new_blobs = [b for sha, b in blobs.items() if sha in missing]
        else:
            new_blobs = []
        self.store.append(sealed, new_blobs)
        self._seq, self._head = seq, prev
        self._known_blobs.update(blobs)
        self.stats.batches += 1
        self.stats.records += len(sealed)
        self.stats.duplicates += len(batch) - len(sealed)
        for pending, result in outcome:
            if isinstance(result, Exception):
                pending.future.set_exception(result)
            else:
                pending.future.set_result(result)


def blob(kind: str, name: str, data: bytes) -> Blob:
    """A file to archive beside the records (policy text, model.onnx), addressed by its sha256."""
    return Blob(sha256_hex(data), kind, name, data)


def _conflict(request_id: str) -> IdempotencyConflict:
    return IdempotencyConflict(
        f"request_id {request_id!r} was already used for a different request; use a new request_id"
    )
