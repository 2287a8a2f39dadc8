"""The decision log a service writes to: leader/follower group commit on one chain per process,
idempotency by the store's unique request_id, archiving of policy and model files. `append` (and a
ticket's `result()`) returns only once the record is durable.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.audit.canonical import sha256_hex
from engine.audit.connect import open_store
from engine.audit.record import GENESIS_HASH, DecisionRecord, new_chain_id
from engine.audit.store import AuditStore, Blob
from engine.errors import IdempotencyConflict, RequestClash, StoreUnavailable

__all__ = ["DecisionLog", "LogStats", "Ticket"]

log = logging.getLogger(__name__)


@dataclass
class LogStats:
    batches: int = 0
    records: int = 0
    duplicates: int = 0
    failures: int = 0


class Ticket:
    """One record handed to the log. `result()` returns it as stored, once durable: the waiting
    thread either leads the next group commit itself or is released by the thread that does."""

    __slots__ = ("_error", "_log", "_result", "blobs", "record")

    def __init__(self, log: DecisionLog, record: DecisionRecord, blobs: Sequence[Blob]) -> None:
        self._log = log
        self.record = record
        self.blobs = blobs
        self._result: DecisionRecord | None = None
        self._error: BaseException | None = None

    def done(self) -> bool:
        return self._result is not None or self._error is not None

    def result(self) -> DecisionRecord:
        self._log._wait(self)
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def _settle(self, result: DecisionRecord | BaseException) -> None:
        if isinstance(result, BaseException):
            self._error = result
        else:
            self._result = result


class DecisionLog:
    """Appends decision records to one chain (a fresh chain_id per instance) with group commit.

    `submit(record, blobs)` queues a record and returns a Ticket; `ticket.result()` (or `append`,
    which does both) blocks until the record is durable. There is no writer thread: the first waiting
    thread to find the log idle becomes the leader, takes every record queued so far (up to
    `max_batch`), assigns seq and prev_hash, and commits them with their new blobs in one
    transaction, then releases the followers; records queued meanwhile go to the next leader. A lone
    caller pays only its own commit, and callers that arrive during a commit share the next one.

    Idempotency is the store's unique index on request_id: the first sight of a request_id is its
    INSERT, with no lookup before it. Only when the insert clashes are the batch's request_ids read:
    the same fingerprint returns the stored record (never two decisions), another one fails that
    caller with IdempotencyConflict, and the rest of the batch is committed again. A failed commit
    fails every caller in the batch with StoreUnavailable and the chain head is re-read from the
    store, so the next batch continues the chain exactly.

    Create it in the process that writes (after any fork). One instance per chain: two writers on
    one chain_id would fork it.
    """

    def __init__(self, store: AuditStore | str, *, chain_id: str | None = None, max_batch: int = 512) -> None:
        self.store = open_store(store) if isinstance(store, str) else store
        self.chain_id = chain_id or new_chain_id()
        self.max_batch = max_batch
        self.stats = LogStats()
        self._queue: list[Ticket] = []
        self._cond = threading.Condition(threading.Lock())
        self._leading = False
        self._known_blobs: set[str] = set()
        self._seq = 0
        self._head = GENESIS_HASH
        self._stale = True  # chain head must be (re)read from the store before the next commit
        self._closed = False
        # Told each commit's outcome (None: committed; else why not): the server's health check.
        self.on_commit: Callable[[BaseException | None], None] | None = None

    # -- the service's API
    def append(self, record: DecisionRecord, blobs: Sequence[Blob] = ()) -> DecisionRecord:
        """Store `record` durably and return the stored record: the sealed one, or, if its request_id
        was decided before with the same fingerprint, the earlier record (never two decisions).
        Raises IdempotencyConflict (same request_id, other payload) or StoreUnavailable."""
        return self.submit(record, blobs).result()

    def submit(self, record: DecisionRecord, blobs: Sequence[Blob] = ()) -> Ticket:
        """Queue `record`; nothing is written until some caller waits on a ticket (`result()`)."""
        ticket = Ticket(self, record, tuple(blobs))
        with self._cond:
            if self._closed:
                ticket._settle(StoreUnavailable("the decision log is closed"))
            else:
                self._queue.append(ticket)
        return ticket

    def lookup(self, request_id: str, fingerprint: str) -> DecisionRecord | None:
        """The stored record of a retried request, None for a new one; IdempotencyConflict if the
        request_id was used with a different payload. (Deciding never calls this: see the class.)"""
        record = self.store.get_by_request(request_id)
        if record is not None and record.request_fingerprint != fingerprint:
            raise _conflict(request_id)
        return record

    def get(self, decision_id: str) -> DecisionRecord | None:
        return self.store.get(decision_id)

    def get_by_request(self, request_id: str) -> DecisionRecord | None:
        return self.store.get_by_request(request_id)

    def close(self) -> None:
        """Commit what is queued, refuse what comes after, and close the store."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
        while True:
            with self._cond:
                while self._leading:
                    self._cond.wait()
                if not self._queue:
                    break
            self._lead_once()
        self.store.close()

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- leader/follower group commit
    def _wait(self, ticket: Ticket) -> None:
        while True:
            with self._cond:
                while not ticket.done() and self._leading:
                    self._cond.wait()
                if ticket.done():
                    return
            self._lead_once()

    def _lead_once(self) -> None:
        """Become the leader if nobody is, commit what is queued, wake every waiter."""
        with self._cond:
            if self._leading or not self._queue:
                return
            self._leading = True
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
        try:
            self._commit(batch)
        finally:
            with self._cond:
                self._leading = False
                self._cond.notify_all()

    def _commit(self, batch: list[Ticket]) -> None:
        # A retry is safe: the chain head is re-read first, and a request_id a lost COMMIT did store
        # clashes on the next try and comes back as "already stored" instead of being written twice.
        pending = batch
        attempts = 0
        while pending:
            try:
                pending = self._commit_once(pending)
                if not pending and self.on_commit is not None:
                    self.on_commit(None)
            except StoreUnavailable as exc:
                # one retry on a fresh connection (a stale one fails once after a server restart)
                self._stale = True
                attempts += 1
                if attempts >= 2:
                    self._fail(pending, exc)
                    return
            except Exception as exc:  # never leave a caller waiting forever
                log.exception("audit commit failed")
                self._stale = True
                self._fail(pending, exc)
                return

    def _fail(self, batch: list[Ticket], exc: BaseException) -> None:
        self.stats.failures += 1
        if self.on_commit is not None:
            self.on_commit(exc)
        for ticket in batch:
            if not ticket.done():
                ticket._settle(exc)

    def _commit_once(self, batch: list[Ticket]) -> list[Ticket]:
        """Commit `batch`; the tickets still to commit (after a request_id clash), else []."""
        if self._stale:
            head = self.store.chain_head(self.chain_id)
            self._seq, self._head = (head.seq, head.hash) if head else (0, GENESIS_HASH)
            self._stale = False
        seq, prev = self._seq, self._head
        sealed: list[DecisionRecord] = []
        settled: list[tuple[Ticket, DecisionRecord | Exception]] = []
        first: dict[str, DecisionRecord] = {}  # request_id -> its record placed in this batch
        blobs: dict[str, Blob] = {}
        for ticket in batch:
            record = ticket.record
            earlier = first.get(record.request_id)
            if earlier is not None:  # the same request twice in one batch: a concurrent retry
                settled.append((ticket, _same_request(earlier, record)))
                continue
            seq += 1
            placed = record.seal(self.chain_id, seq, prev)
            prev = placed.hash
            first[record.request_id] = placed
            sealed.append(placed)
            settled.append((ticket, placed))
            for item in ticket.blobs:
                if item.sha256 not in self._known_blobs:
                    blobs[item.sha256] = item
        new_blobs = []
        if blobs:
            missing = self.store.missing_blobs(list(blobs))
            new_blobs = [b for sha, b in blobs.items() if sha in missing]
        try:
            self.store.append(sealed, new_blobs)
        except RequestClash:
            return self._resolve_clash(batch)
        self._seq, self._head = seq, prev
        self._known_blobs.update(blobs)
        self.stats.batches += 1
        self.stats.records += len(sealed)
        self.stats.duplicates += len(batch) - len(sealed)
        for ticket, result in settled:
            ticket._settle(result)
        return []

    def _resolve_clash(self, batch: list[Ticket]) -> list[Ticket]:
        """The slow path of a unique-index clash: read which request_ids are stored, answer those
        tickets from the store, and hand back the others to commit again."""
        self._stale = True  # nothing of the failed transaction was kept
        stored = self.store.find_requests([t.record.request_id for t in batch])
        if not stored:
            raise StoreUnavailable("audit store: a write clashed but no stored request_id explains it")
        rest: list[Ticket] = []
        for ticket in batch:
            earlier = stored.get(ticket.record.request_id)
            if earlier is None:
                rest.append(ticket)
            else:
                ticket._settle(_same_request(earlier, ticket.record))
                self.stats.duplicates += 1
        return rest


def _same_request(earlier: DecisionRecord, record: DecisionRecord) -> DecisionRecord | Exception:
    """What a second sight of a request_id gets: the earlier record, or a conflict."""
    if earlier.request_fingerprint == record.request_fingerprint:
        return earlier
    return _conflict(record.request_id)


def blob(kind: str, name: str, data: bytes) -> Blob:
    """A file to archive beside the records (policy text, model.onnx), addressed by its sha256."""
    return Blob(sha256_hex(data), kind, name, data)


def _conflict(request_id: str) -> IdempotencyConflict:
    return IdempotencyConflict(
        f"request_id {request_id!r} was already used for a different request; use a new request_id"
    )
