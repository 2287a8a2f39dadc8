"""Loan events and monitoring alerts on a hash chain of their own (table monitor_records), in the
same store as the decision log (SQLite or PostgreSQL) and verified by `credo audit verify`.

Monitoring state is one sequence per loan, and loans may be fed through any worker, so monitor
writes are serialised store-wide (SQLite's BEGIN IMMEDIATE; a PostgreSQL advisory lock) and form one
chain, `monitor`, whose seq is the global order. Inside the write transaction the writer first reads
what other writers appended since it last looked, so every writer applies every event in the same
order before deciding on its own. The record body is canonical JSON holding its chain position and
prev_hash; hash = sha256(prev_hash || canonical body), as for decisions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from engine.audit.canonical import canonical_json
from engine.audit.record import GENESIS_HASH, chain_hash
from engine.audit.store import AuditStore, SqlStore
from engine.errors import BAD_URL, CanonicalError, UsageError

__all__ = [
    "MONITOR_CHAIN",
    "MonitorLog",
    "MonitorRecord",
    "MonitorWriter",
    "has_monitor_chain",
    "verify_monitor_chain",
]

MONITOR_CHAIN = "monitor"
KINDS = ("event", "alert")
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS monitor_records (seq BIGINT PRIMARY KEY, kind TEXT NOT NULL,"
    " loan_id TEXT NOT NULL, date TEXT NOT NULL, event_id TEXT, cause BIGINT, hash TEXT NOT NULL,"
    " body TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS monitor_records_loan ON monitor_records (loan_id, seq)",
    "CREATE UNIQUE INDEX IF NOT EXISTS monitor_records_event ON monitor_records (event_id)",
    "CREATE INDEX IF NOT EXISTS monitor_records_cause ON monitor_records (cause)",
    "CREATE TABLE IF NOT EXISTS monitor_head (chain_id TEXT PRIMARY KEY, seq BIGINT NOT NULL,"
    " hash TEXT NOT NULL)",
)
_LOCK = 782013  # PostgreSQL advisory lock key of the monitor chain


@dataclass(frozen=True)
class MonitorRecord:
    """One record of the monitor chain: an accepted event, or an alert (`data`, JSON values).
    An alert's `cause` is the seq of the event that raised it; an event's `event_id` is the
    sender's id for it (unique on the chain), or ""."""

    seq: int
    kind: str
    loan_id: str
    date: str
    data: dict[str, Any]
    cause: int | None
    prev_hash: str
    hash: str

    @property
    def event_id(self) -> str:
        return str(self.data.get("event_id", "")) if self.kind == "event" else ""

    def body(self) -> dict[str, Any]:
        return {
            "chain_id": MONITOR_CHAIN,
            "seq": self.seq,
            "kind": self.kind,
            "loan_id": self.loan_id,
            "date": self.date,
            "data": self.data,
            "cause": self.cause,
            "prev_hash": self.prev_hash,
        }

    @classmethod
    def parse(cls, body: str, hash: str) -> MonitorRecord:
        d = json.loads(body)
        return cls(d["seq"], d["kind"], d["loan_id"], d["date"], d["data"], d["cause"], d["prev_hash"], hash)


class MonitorWriter:
    """Appends to the monitor chain inside one write transaction (see MonitorLog.write)."""

    def __init__(self, log: MonitorLog, cur: Any, seq: int, hash: str):
        self._log, self._cur = log, cur
        self.seq, self.hash = seq, hash
        self.appended: list[MonitorRecord] = []

    def append(
        self, kind: str, loan_id: str, date: str, data: dict[str, Any], cause: int | None = None
    ) -> int:
        if kind not in KINDS:
            raise ValueError(f"unknown monitor record kind {kind!r}")
        seq = self.seq + 1
        unsealed = MonitorRecord(seq, kind, loan_id, date, data, cause, self.hash, "")
        body = canonical_json(unsealed.body())  # CanonicalError: a bug of ours, never the sender's
        record = MonitorRecord(
            seq, kind, loan_id, date, data, cause, self.hash, chain_hash(self.hash, unsealed.body())
        )
        self._cur.execute(
            self._log.sql(
                "INSERT INTO monitor_records (seq, kind, loan_id, date, event_id, cause, hash, body)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            (seq, kind, loan_id, date, record.event_id or None, cause, record.hash, body.decode()),
        )
        self.seq, self.hash = seq, record.hash
        self.appended.append(record)
        return seq

    def find_events(self, event_ids: list[str]) -> dict[str, int]:
        """Seq of each of `event_ids` already on the chain (this transaction's appends included)."""
        found: dict[str, int] = {}
        ids = list(dict.fromkeys(event_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            self._cur.execute(
                self._log.sql(f"SELECT event_id, seq FROM monitor_records WHERE event_id IN ({marks})"), chunk
            )
            found.update((str(event_id), int(seq)) for event_id, seq in self._cur.fetchall())
        return found

    def caused_by(self, seq: int) -> list[MonitorRecord]:
        """The alerts event `seq` raised."""
        self._cur.execute(
            self._log.sql("SELECT body, hash FROM monitor_records WHERE cause = ? ORDER BY seq"), (seq,)
        )
        return [MonitorRecord.parse(body, h) for body, h in self._cur.fetchall()]

    def get(self, seq: int) -> MonitorRecord:
        self._cur.execute(self._log.sql("SELECT body, hash FROM monitor_records WHERE seq = ?"), (seq,))
        body, h = self._cur.fetchone()
        return MonitorRecord.parse(body, h)


class MonitorLog:
    """The monitor chain of one audit store."""

    def __init__(self, store: AuditStore):
        if not isinstance(store, SqlStore):
            raise UsageError("monitoring needs an SQL audit store (sqlite:// or postgresql://)", code=BAD_URL)
        self.store = store
        with store._errors(), store._write_lock, store._transaction() as cur:
            if store.placeholder != "?":
                cur.execute(f"SELECT pg_advisory_xact_lock({_LOCK})")
            for statement in _SCHEMA:
                cur.execute(statement)

    def sql(self, statement: str) -> str:
        return self.store._sql(statement)

    @contextmanager
    def write(self, seen: int) -> Iterator[tuple[MonitorWriter, list[MonitorRecord]]]:
        """One store-wide serialised transaction: yields a writer and the records other writers
        appended after seq `seen`; everything appended commits together (durably) on exit."""
        store = self.store
        with store._errors(), store._write_lock, store._transaction() as cur:
            if store.placeholder != "?":
                cur.execute(f"SELECT pg_advisory_xact_lock({_LOCK})")
            cur.execute(self.sql("SELECT seq, hash FROM monitor_head WHERE chain_id = ?"), (MONITOR_CHAIN,))
            head = cur.fetchone()
            seq, hash = (int(head[0]), str(head[1])) if head else (0, GENESIS_HASH)
            cur.execute(
                self.sql("SELECT body, hash FROM monitor_records WHERE seq > ? ORDER BY seq"), (seen,)
            )
            newer = [MonitorRecord.parse(body, h) for body, h in cur.fetchall()]
            writer = MonitorWriter(self, cur, seq, hash)
            yield writer, newer
            if writer.appended:
                cur.execute(
                    self.sql(
                        "INSERT INTO monitor_head (chain_id, seq, hash) VALUES (?, ?, ?)"
                        " ON CONFLICT (chain_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash"
                    ),
                    (MONITOR_CHAIN, writer.seq, writer.hash),
                )

    def records(
        self, after: int = 0, loan_id: str | None = None, kind: str | None = None, batch: int = 2000
    ) -> Iterator[MonitorRecord]:
        """Records after seq `after`, in chain order, optionally of one loan and/or kind."""
        where, params = "seq > ?", []
        if loan_id is not None:
            where += " AND loan_id = ?"
            params.append(loan_id)
        if kind is not None:
            where += " AND kind = ?"
            params.append(kind)
        while True:
            rows = self.store._query(
                f"SELECT body, hash FROM monitor_records WHERE {where} ORDER BY seq LIMIT {int(batch)}",
                [after, *params],
            )
            for body, hash in rows:
                record = MonitorRecord.parse(body, hash)
                after = record.seq
                yield record
            if len(rows) < batch:
                return

    def head(self) -> tuple[int, str] | None:
        rows = self.store._query("SELECT seq, hash FROM monitor_head WHERE chain_id = ?", (MONITOR_CHAIN,))
        return (int(rows[0][0]), str(rows[0][1])) if rows else None


def has_monitor_chain(store: AuditStore) -> bool:
    """Whether the store has a monitor chain table (read-only: verify creates nothing)."""
    if not isinstance(store, SqlStore):
        return False
    if store.placeholder == "?":
        rows = store._query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'monitor_records'"
        )
    else:
        rows = store._query("SELECT 1 WHERE to_regclass('monitor_records') IS NOT NULL")
    return bool(rows)


def verify_monitor_chain(store: AuditStore) -> tuple[int, int, str] | None:
    """(records checked, last seq, problem) for the monitor chain, problem "" when it verifies;
    None when the store has no monitor chain."""
    if not has_monitor_chain(store):
        return None
    assert isinstance(store, SqlStore)
    seq, prev, count = 0, GENESIS_HASH, 0
    while True:
        rows = store._query(
            "SELECT seq, kind, loan_id, date, event_id, cause, hash, body FROM monitor_records"
            " WHERE seq > ? ORDER BY seq LIMIT 2000",
            (seq,),
        )
        for row_seq, kind, loan_id, date, event_id, cause, hash, body in rows:
            count += 1
            where = f"seq {row_seq}"
            try:
                record = MonitorRecord.parse(body, hash)
                canonical = canonical_json(record.body()).decode()
            except (ValueError, KeyError, TypeError, CanonicalError) as error:
                return count, seq, f"altered record at {where}: body is not a valid record ({error})"
            if canonical != body:
                return count, seq, f"altered record at {where}: body is not in canonical form"
            if chain_hash(record.prev_hash, record.body()) != hash:
                return count, seq, f"altered record at {where}: hash does not match its content"
            columns = (int(row_seq), kind, loan_id, date, event_id or "", cause)
            if (
                record.seq,
                record.kind,
                record.loan_id,
                record.date,
                record.event_id,
                record.cause,
            ) != columns:
                return (
                    count,
                    seq,
                    f"altered record at {where}: stored columns disagree with the hashed record",
                )
            if record.seq != seq + 1:
                return count, seq, f"missing record(s) seq {seq + 1}..{record.seq - 1} before {where}"
            if record.prev_hash != prev:
                return count, seq, f"reordered or replaced record at {where}: prev_hash does not match"
            seq, prev = record.seq, hash
        if len(rows) < 2000:
            break
    head_rows = store._query("SELECT seq, hash FROM monitor_head WHERE chain_id = ?", (MONITOR_CHAIN,))
    head = (int(head_rows[0][0]), str(head_rows[0][1])) if head_rows else None
    if head is None and count:
        return count, seq, "chain head missing"
    if head is not None and head != (seq, prev):
        if head[0] > seq:
            return count, seq, f"missing records seq {seq + 1}..{head[0]} at the end of the chain"
        return count, seq, f"chain head (seq {head[0]}) does not match the last record (seq {seq})"
    return count, seq, ""
