"""The audit store interface and the SQL shared by its SQLite and PostgreSQL implementations
(engine.audit.connect.open_store picks one by URL).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.audit.record import DecisionRecord, utc_text
from engine.errors import RETENTION, CredoError, StoreUnavailable

__all__ = [
    "AuditStore",
    "Blob",
    "ChainHead",
    "StoredRow",
]


@dataclass(frozen=True)
class Blob:
    """An archived file (policy text, model file), addressed by the sha256 of `data`."""

    sha256: str
    kind: str  # "policy" | "model" | ...
    name: str
    data: bytes


@dataclass(frozen=True)
class ChainHead:
    """Last committed (seq, hash) of a chain; for a checkpoint, of the last *removed* record."""

    chain_id: str
    seq: int
    hash: str


@dataclass(frozen=True)
class StoredRow:
    """A record as stored, unparsed: what verify checks (columns and canonical body may disagree)."""

    decision_id: str
    chain_id: str
    seq: int
    hash: str
    body: str
    request_id: str = ""
    received_at: str = ""
    searched: dict[str, Any] = field(default_factory=dict)  # the store's search columns, as stored


class AuditStore(Protocol):
    url: str

    def append(self, records: Sequence[DecisionRecord], blobs: Sequence[Blob] = ()) -> None:
        """Store sealed records of one chain, new blobs and the chain head in one durable transaction.
        Raises RequestClash if a request_id is already stored, StoreUnavailable if it cannot write."""
        ...

    def get(self, decision_id: str) -> DecisionRecord | None: ...
    def get_by_request(self, request_id: str) -> DecisionRecord | None: ...
    def find_requests(self, request_ids: Sequence[str]) -> dict[str, DecisionRecord]: ...
    def iter_records(
        self, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> Iterator[DecisionRecord]: ...
    def iter_chain(self, chain_id: str) -> Iterator[StoredRow]: ...
    def chain_ids(self) -> list[str]: ...
    def chain_head(self, chain_id: str) -> ChainHead | None: ...
    def chain_heads(self) -> list[ChainHead]: ...
    def record_hash(self, chain_id: str, seq: int) -> str | None: ...
    def checkpoint(self, chain_id: str) -> ChainHead | None: ...
    def count(self) -> int: ...
    def count_between(self, since: dt.datetime | None = None, until: dt.datetime | None = None) -> int:
        """Records received in [since, until) (the window `iter_records` reads)."""
        ...

    def missing_blobs(self, shas: Sequence[str]) -> set[str]: ...
    def get_blob(self, sha256: str) -> Blob | None: ...
    def iter_blobs(self) -> Iterator[Blob]: ...
    def policy_texts(self) -> list[bytes]:
        """Every archived policy text (policies/<name>/policy.yaml blobs), for the version guard."""
        ...

    def remove_through(self, chain_id: str, seq: int, removed: int) -> None:
        """Delete records of chain_id with seq <= `seq` and save their last hash as the checkpoint."""
        ...

    def probe(self) -> None:
        """Commit one write (raises StoreUnavailable if it cannot): is the store writable again?"""
        ...

    def close(self) -> None: ...


SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_records (
    decision_id TEXT PRIMARY KEY,
    chain_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    request_id TEXT NOT NULL UNIQUE,
    received_at TEXT NOT NULL,
    hash TEXT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (chain_id, seq)
);
CREATE INDEX IF NOT EXISTS audit_records_received ON audit_records (received_at);
CREATE TABLE IF NOT EXISTS audit_chains (
    chain_id TEXT PRIMARY KEY,
    head_seq BIGINT NOT NULL,
    head_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    chain_id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    removed BIGINT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_blobs (
    sha256 TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    data {blob} NOT NULL,
    created_at TEXT NOT NULL
);
"""

_EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
_RECORD_COLUMNS = ("decision_id", "chain_id", "seq", "request_id", "received_at", "hash", "body")


def parse_record(body: str, hash: str) -> DecisionRecord:
    """A record from its stored columns: the canonical body (everything but the hash) and the hash."""
    return DecisionRecord.from_dict({**json.loads(body), "hash": hash})


class SqlStore(ABC):
    """The SQL both stores share; subclasses provide connections, transactions and error mapping.
    Statements use `?` placeholders; a subclass rewrites them if its driver wants another style.
    One connection writes (under a lock), another reads, so lookups do not wait for a commit."""

    url: str
    placeholder = "?"
    # SQL of a record's outcome and policy name, indexed (each store's INDEXES) for the console's search
    outcome_sql: str
    policy_sql: str
    # what a record's row holds, in _row's order (a store may add columns of its own beside the body)
    record_columns: tuple[str, ...] = _RECORD_COLUMNS
    # columns outside the hash that searches read (engine.audit.sqlite): verify checks them too
    search_columns: tuple[str, ...] = ()

    def __init__(self, url: str) -> None:
        self.url = url
        columns, marks = ", ".join(self.record_columns), ", ".join("?" * len(self.record_columns))
        self._insert_sql = self._sql(f"INSERT INTO audit_records ({columns}) VALUES ({marks})")
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()

    # -- provided by subclasses
    @abstractmethod
    def _reader(self) -> Any:
        """The connection lookups run on."""

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Any]:
        """One write transaction on the writer connection (a context manager yielding a cursor)."""

    @abstractmethod
    def _errors(self) -> AbstractContextManager[None]:
        """Maps the driver's errors to StoreUnavailable (store down, disk full)."""

    @abstractmethod
    def close(self) -> None: ...

    # -- shared
    def _sql(self, statement: str) -> str:
        return statement if self.placeholder == "?" else statement.replace("?", self.placeholder)

    def _query(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._query_once(statement, params)
        except StoreUnavailable:
            # once more on a fresh connection: an idle one fails once after a server restart
            return self._query_once(statement, params)

    def _query_once(self, statement: str, params: Sequence[Any]) -> list[Any]:
        with self._errors(), self._read_lock:
            cursor = self._reader().execute(self._sql(statement), tuple(params))
            return list(cursor.fetchall())

    def append(self, records: Sequence[DecisionRecord], blobs: Sequence[Blob] = ()) -> None:
        if not records and not blobs:
            return
        rows = [self._row(r) for r in records]
        now = utc_text(dt.datetime.now(dt.UTC)) if blobs else ""  # when blobs are archived
        with self._errors(), self._write_lock, self._transaction() as cur:
            for blob in blobs:
                cur.execute(
                    self._sql(
                        "INSERT INTO audit_blobs (sha256, kind, name, data, created_at)"
                        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING"
                    ),
                    (blob.sha256, blob.kind, blob.name, blob.data, now),
                )
            if rows:
                self._insert_records(cur, rows)
                last = records[-1]
                cur.execute(
                    self._sql(
                        "INSERT INTO audit_chains (chain_id, head_seq, head_hash) VALUES (?, ?, ?)"
                        " ON CONFLICT (chain_id) DO UPDATE SET head_seq = excluded.head_seq,"
                        " head_hash = excluded.head_hash"
                    ),
                    (last.chain_id, last.seq, last.hash),
                )

    def _row(self, r: DecisionRecord) -> tuple[Any, ...]:
        """A sealed record's row, values in record_columns' order."""
        body = r.canonical_body().decode()
        return (r.decision_id, r.chain_id, r.seq, r.request_id, r.received_at, r.hash, body)

    def _insert_records(self, cur: Any, rows: list[tuple[Any, ...]]) -> None:
        cur.executemany(self._insert_sql, rows)

    def _durable(self) -> None:  # noqa: B027  (a hook: most stores have nothing to do)
        """Make what was read durable before it is handed out (a store whose commit is durable
        before it is visible does nothing)."""

    def get(self, decision_id: str) -> DecisionRecord | None:
        rows = self._query("SELECT body, hash FROM audit_records WHERE decision_id = ?", (decision_id,))
        if not rows:
            return None
        self._durable()
        return parse_record(*rows[0])

    def get_by_request(self, request_id: str) -> DecisionRecord | None:
        rows = self._query("SELECT body, hash FROM audit_records WHERE request_id = ?", (request_id,))
        if not rows:
            return None
        self._durable()
        return parse_record(*rows[0])

    def find_requests(self, request_ids: Sequence[str]) -> dict[str, DecisionRecord]:
        found: dict[str, DecisionRecord] = {}
        ids = list(dict.fromkeys(request_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            for body, hash in self._query(
                f"SELECT body, hash FROM audit_records WHERE request_id IN ({marks})", chunk
            ):
                record = parse_record(body, hash)
                found[record.request_id] = record
        if found:
            self._durable()
        return found

    def iter_records(
        self, since: dt.datetime | None = None, until: dt.datetime | None = None, batch: int = 1000
    ) -> Iterator[DecisionRecord]:
        """Records received in [since, until), oldest first, read in pages (keyset pagination)."""
        low = utc_text(since) if since else ""
        high = utc_text(until) if until else "9999"
        last_id = ""
        while True:
            rows = self._query(
                "SELECT received_at, decision_id, body, hash FROM audit_records"
                " WHERE ((received_at = ? AND decision_id > ?) OR received_at > ?) AND received_at < ?"
                f" ORDER BY received_at, decision_id LIMIT {int(batch)}",
                (low, last_id, low, high),
            )
            for received_at, decision_id, body, hash in rows:
                yield parse_record(body, hash)
                low, last_id = received_at, decision_id
            if len(rows) < batch:
                return

    def iter_chain(self, chain_id: str, batch: int = 1000) -> Iterator[StoredRow]:
        after = -(2**62)
        searched = self.search_columns
        columns = ", ".join(("decision_id, chain_id, seq, hash, body, request_id, received_at", *searched))
        while True:
            rows = self._query(
                f"SELECT {columns} FROM audit_records"
                f" WHERE chain_id = ? AND seq > ? ORDER BY seq LIMIT {int(batch)}",
                (chain_id, after),
            )
            for row in rows:
                yield StoredRow(
                    str(row[0]), str(row[1]), int(row[2]), str(row[3]), str(row[4]), str(row[5]), str(row[6]),
                    dict(zip(searched, row[7:], strict=True)),
                )  # fmt: skip
                after = int(row[2])
            if len(rows) < batch:
                return

    def chain_ids(self) -> list[str]:
        rows = self._query(
            "SELECT chain_id FROM audit_records UNION SELECT chain_id FROM audit_chains"
            " UNION SELECT chain_id FROM audit_checkpoints ORDER BY 1"
        )
        return [str(r[0]) for r in rows]

    def chain_head(self, chain_id: str) -> ChainHead | None:
        rows = self._query("SELECT head_seq, head_hash FROM audit_chains WHERE chain_id = ?", (chain_id,))
        return ChainHead(chain_id, int(rows[0][0]), str(rows[0][1])) if rows else None

    def chain_heads(self) -> list[ChainHead]:
        rows = self._query("SELECT chain_id, head_seq, head_hash FROM audit_chains ORDER BY chain_id")
        return [ChainHead(str(r[0]), int(r[1]), str(r[2])) for r in rows]

    def record_hash(self, chain_id: str, seq: int) -> str | None:
        rows = self._query("SELECT hash FROM audit_records WHERE chain_id = ? AND seq = ?", (chain_id, seq))
        return str(rows[0][0]) if rows else None

    def checkpoint(self, chain_id: str) -> ChainHead | None:
        rows = self._query("SELECT seq, hash FROM audit_checkpoints WHERE chain_id = ?", (chain_id,))
        return ChainHead(chain_id, int(rows[0][0]), str(rows[0][1])) if rows else None

    def count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM audit_records")[0][0])

    def count_between(self, since: dt.datetime | None = None, until: dt.datetime | None = None) -> int:
        low = utc_text(since) if since else ""
        high = utc_text(until) if until else "9999"
        statement = "SELECT COUNT(*) FROM audit_records WHERE received_at >= ? AND received_at < ?"
        return int(self._query(statement, (low, high))[0][0])

    def missing_blobs(self, shas: Sequence[str]) -> set[str]:
        wanted = list(dict.fromkeys(shas))
        if not wanted:
            return set()
        marks = ", ".join("?" for _ in wanted)
        have = {
            str(r[0])
            for r in self._query(f"SELECT sha256 FROM audit_blobs WHERE sha256 IN ({marks})", wanted)
        }
        return set(wanted) - have

    def get_blob(self, sha256: str) -> Blob | None:
        rows = self._query("SELECT sha256, kind, name, data FROM audit_blobs WHERE sha256 = ?", (sha256,))
        if not rows:
            return None
        sha, kind, name, data = rows[0]
        return Blob(str(sha), str(kind), str(name), bytes(data))

    def probe(self) -> None:
        # Re-dates the archived empty file: a real committed write (a read, or a rollback, would
        # pass on a full disk) that changes nothing a record or verify depends on.
        now = utc_text(dt.datetime.now(dt.UTC))
        with self._errors(), self._write_lock, self._transaction() as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO audit_blobs (sha256, kind, name, data, created_at) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (sha256) DO UPDATE SET created_at = excluded.created_at"
                ),
                (_EMPTY_SHA256, "probe", "empty file (store write probe)", b"", now),
            )

    def iter_blobs(self, batch: int = 64) -> Iterator[Blob]:
        """Every archived file, in sha256 order, read a few at a time (model files are large)."""
        after = ""
        while True:
            rows = self._query(
                "SELECT sha256, kind, name, data FROM audit_blobs WHERE sha256 > ?"
                f" ORDER BY sha256 LIMIT {int(batch)}",
                (after,),
            )
            for sha, kind, name, data in rows:
                yield Blob(str(sha), str(kind), str(name), bytes(data))
                after = str(sha)
            if len(rows) < batch:
                return

    def policy_texts(self) -> list[bytes]:
        rows = self._query(  # the pattern is a parameter: a literal % is a placeholder to psycopg
            "SELECT data FROM audit_blobs WHERE kind = ? AND name LIKE ?",
            ("policy", "policies/%/policy.yaml"),
        )
        return [bytes(r[0]) for r in rows]

    def remove_through(self, chain_id: str, seq: int, removed: int) -> None:
        now = utc_text(dt.datetime.now(dt.UTC))
        with self._errors(), self._write_lock, self._transaction() as cur:
            cur.execute(
                self._sql("SELECT hash FROM audit_records WHERE chain_id = ? AND seq = ?"), (chain_id, seq)
            )
            row = cur.fetchone()
            if row is None:
                raise CredoError(f"chain {chain_id} has no record seq {seq} to checkpoint", code=RETENTION)
            cur.execute(
                self._sql(
                    "INSERT INTO audit_checkpoints (chain_id, seq, hash, removed, created_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (chain_id) DO UPDATE SET seq = excluded.seq,"
                    " hash = excluded.hash, removed = audit_checkpoints.removed + excluded.removed,"
                    " created_at = excluded.created_at"
                ),
                (chain_id, seq, str(row[0]), removed, now),
            )
            cur.execute(
                self._sql("DELETE FROM audit_records WHERE chain_id = ? AND seq <= ?"), (chain_id, seq)
            )
