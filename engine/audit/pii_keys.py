"""Keys of the personal data in an audit store: the master key (a file or an environment variable,
never in the store), and the store's table of data keys wrapped under it, plus the erasure chain.

A data key per subject is wrapped (AES-GCM) under the master key and kept in `pii_keys`, labelled
with the master key's id so `rotate` can re-wrap them all under a new key. Forgetting a subject
deletes its row (securely: SQLite's secure_delete and a WAL checkpoint, PostgreSQL's VACUUM) and
appends an erasure record to the `pii_erasures` hash chain in the same transaction.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from engine.audit.canonical import canonical_json
from engine.audit.record import GENESIS_HASH, chain_hash, utc_text
from engine.audit.sqlite import SqliteStore
from engine.audit.store import AuditStore, SqlStore
from engine.errors import BAD_URL, PiiKeyError, UsageError

__all__ = ["ERASURE_CHAIN", "LOOKUP_SUBJECT", "KeyTable", "MasterKey", "replace_key_file", "verify_erasures"]

ERASURE_CHAIN = "pii-erasures"
LOOKUP_SUBJECT = "lookup"  # the row holding the HMAC key of subject lookups (subjects are hex)
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS pii_keys (subject TEXT PRIMARY KEY, key_id TEXT NOT NULL,"
    " wrapped TEXT NOT NULL, created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS pii_erasures (seq BIGINT PRIMARY KEY, subject TEXT NOT NULL,"
    " hash TEXT NOT NULL, body TEXT NOT NULL)",
    # the erasure chain's head, kept apart from its records (as audit_chains is for decisions), so
    # deleting the last erasure record leaves a head that no record matches
    "CREATE TABLE IF NOT EXISTS pii_erasure_head (chain_id TEXT PRIMARY KEY, seq BIGINT NOT NULL,"
    " hash TEXT NOT NULL)",
)
_LOCK = 782018  # PostgreSQL advisory lock key of the erasure chain


@dataclass(frozen=True)
class MasterKey:
    """A 256-bit AES key; its id (a hash of it, never the key) labels what it wrapped."""

    key: bytes

    def __post_init__(self) -> None:
        if len(self.key) != 32:
            raise PiiKeyError(f"a personal-data master key is 32 bytes, this one has {len(self.key)}")

    @property
    def key_id(self) -> str:
        return "k" + hashlib.sha256(b"credo-pii-key-id\0" + self.key).hexdigest()[:16]

    @classmethod
    def from_text(cls, text: str, where: str) -> MasterKey:
        """A key written as base64 (what `create` writes); `where` names its source in errors."""
        try:
            key = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise PiiKeyError(f"{where} does not hold a base64 personal-data key") from None
        if len(key) != 32:
            raise PiiKeyError(f"{where} holds a key of {len(key)} bytes; a personal-data key is 32")
        return cls(key)

    @classmethod
    def read(cls, path: Path | str) -> MasterKey:
        try:
            text = Path(path).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise PiiKeyError(
                f"cannot read the personal-data key file {path}: {exc.__class__.__name__}"
            ) from None
        return cls.from_text(text, f"key file {path}")

    @classmethod
    def create(cls, path: Path | str) -> MasterKey:
        """A new random key written to `path` (mode 0600; refused if the file exists)."""
        key = cls(os.urandom(32))
        key.write(path)
        return key

    def write(self, path: Path | str) -> None:
        """This key as base64 in a new file `path`, mode 0600 (FileExistsError if it exists)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(base64.b64encode(self.key).decode("ascii") + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def wrap(self, secret: bytes, label: str) -> str:
        nonce = os.urandom(12)
        sealed = AESGCM(self.key).encrypt(nonce, secret, f"{self.key_id}\0{label}".encode())
        return base64.b64encode(nonce + sealed).decode("ascii")

    def unwrap(self, wrapped: str, label: str) -> bytes:
        raw = base64.b64decode(wrapped)
        try:
            return AESGCM(self.key).decrypt(raw[:12], raw[12:], f"{self.key_id}\0{label}".encode())
        except InvalidTag:
            raise PiiKeyError(f"the master key {self.key_id} does not open the data key of {label}") from None


def replace_key_file(path: Path, key: MasterKey) -> None:
    """Atomically make `path` hold `key` (mode 0600)."""
    temporary = path.with_name(path.name + ".new")
    temporary.unlink(missing_ok=True)
    key.write(temporary)
    os.replace(temporary, path)


class KeyTable:
    """The wrapped data keys and the erasure chain of one SQL audit store."""

    def __init__(self, store: AuditStore):
        if not isinstance(store, SqlStore):
            raise UsageError("personal-data keys need an SQL audit store", code=BAD_URL)
        self.store = store
        self.sqlite = store.placeholder == "?"
        self._ready = _has_table(store, "pii_keys")  # created by the first write: readers never write
        self._current = self._ready and _has_table(store, "pii_erasure_head")

    def _ensure(self) -> None:
        if self._current:
            return
        store = self.store
        with store._errors(), store._write_lock, store._transaction() as cur:
            if not self.sqlite:
                cur.execute(f"SELECT pg_advisory_xact_lock({_LOCK})")
            for statement in _SCHEMA:
                cur.execute(statement)
        self._ready = self._current = True

    def get(self, subject: str) -> tuple[str, str] | None:
        """(key_id, wrapped) of `subject`'s data key, None if it has none (never had, or erased)."""
        if not self._ready:
            return None
        rows = self.store._query("SELECT key_id, wrapped FROM pii_keys WHERE subject = ?", (subject,))
        return (str(rows[0][0]), str(rows[0][1])) if rows else None

    def add(self, subject: str, key_id: str, wrapped: str) -> tuple[str, str]:
        """Store a new data key unless another writer stored one first; the one that is stored."""
        self._ensure()
        now = utc_text(dt.datetime.now(dt.UTC))
        store = self.store
        with store._errors(), store._write_lock, self._unsynced() as cur:
            cur.execute(
                store._sql(
                    "INSERT INTO pii_keys (subject, key_id, wrapped, created_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (subject) DO NOTHING"
                ),
                (subject, key_id, wrapped, now),
            )
        stored = self.get(subject)
        if stored is None:  # a forget raced the subject's first record: refuse it, never seal under no key
            raise PiiKeyError(f"the data key of subject {subject[:12]}... was erased while it was created")
        return stored

    @contextmanager
    def _unsynced(self) -> Iterator[Any]:
        """A write transaction whose commit does not wait for the disk. A new key needs no flush of
        its own: it is written to the store's log (SQLite's WAL, PostgreSQL's WAL) before the record
        sealed with it, and the record's synchronous commit flushes the log up to itself, key
        included; a key lost in a crash was used by no durable record. Saves a flush per new subject."""
        store = self.store
        if isinstance(store, SqliteStore):
            with store._transaction(flush=False) as cur:
                yield cur
            return
        with store._transaction() as cur:
            cur.execute("SET LOCAL synchronous_commit = off")
            yield cur

    def all(self) -> list[tuple[str, str, str]]:
        if not self._ready:
            return []
        return [
            (str(s), str(k), str(w))
            for s, k, w in self.store._query("SELECT subject, key_id, wrapped FROM pii_keys")
        ]

    def rewrap(self, rows: list[tuple[str, str, str]]) -> None:
        """Replace the wrapped form of each (subject, key_id, wrapped) in one transaction."""
        self._ensure()
        store = self.store
        with store._errors(), store._write_lock, store._transaction() as cur:
            for subject, key_id, wrapped in rows:
                cur.execute(
                    store._sql("UPDATE pii_keys SET key_id = ?, wrapped = ? WHERE subject = ?"),
                    (key_id, wrapped, subject),
                )
        self._scrub()

    def erase(self, subject: str, decisions: int) -> dict[str, Any]:
        """Delete `subject`'s data key and chain an erasure record, in one transaction; the record."""
        self._ensure()
        store = self.store
        now = utc_text(dt.datetime.now(dt.UTC))
        with store._errors(), store._write_lock, store._transaction() as cur:
            if self.sqlite:
                cur.execute("PRAGMA secure_delete = ON")
            else:
                cur.execute(f"SELECT pg_advisory_xact_lock({_LOCK})")
            cur.execute(store._sql("DELETE FROM pii_keys WHERE subject = ?"), (subject,))
            cur.execute("SELECT seq, hash FROM pii_erasures ORDER BY seq DESC LIMIT 1")
            head = cur.fetchone()
            seq, prev = (int(head[0]), str(head[1])) if head else (0, GENESIS_HASH)
            body = {
                "chain_id": ERASURE_CHAIN,
                "seq": seq + 1,
                "kind": "erasure",
                "subject": subject,
                "erased_at": now,
                "decisions": decisions,
                "prev_hash": prev,
            }
            digest = chain_hash(prev, body)
            cur.execute(
                store._sql("INSERT INTO pii_erasures (seq, subject, hash, body) VALUES (?, ?, ?, ?)"),
                (seq + 1, subject, digest, canonical_json(body).decode()),
            )
            cur.execute(
                store._sql(
                    "INSERT INTO pii_erasure_head (chain_id, seq, hash) VALUES (?, ?, ?)"
                    " ON CONFLICT (chain_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash"
                ),
                (ERASURE_CHAIN, seq + 1, digest),
            )
        self._scrub()
        return {**body, "hash": digest}

    def _scrub(self) -> None:
        """Leave no old copy of a deleted or re-wrapped key in the store's files."""
        store = self.store
        with store._errors(), store._write_lock:
            if self.sqlite:
                conn = store._write  # type: ignore[attr-defined]
                conn.execute("PRAGMA secure_delete = ON")
                conn.execute("VACUUM")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            else:
                store._writer().execute("VACUUM pii_keys")  # type: ignore[attr-defined]


def verify_erasures(store: AuditStore) -> tuple[int, str | None]:
    """(records, first problem or None) of the erasure chain, its kept head included; (0, None)
    when there is none."""
    if not isinstance(store, SqlStore) or not _has_table(store, "pii_erasures"):
        return 0, None
    prev = GENESIS_HASH
    count = 0
    for body_text, stored_hash in store._query("SELECT body, hash FROM pii_erasures ORDER BY seq"):
        body = json.loads(body_text)
        count += 1
        if body.get("seq") != count or body.get("prev_hash") != prev:
            return count, f"erasure record {count} is out of place (missing or reordered records)"
        if chain_hash(prev, body) != stored_hash:
            return count, f"erasure record {count} was altered: its hash does not match"
        prev = stored_hash
    rows = (
        store._query("SELECT seq, hash FROM pii_erasure_head WHERE chain_id = ?", (ERASURE_CHAIN,))
        if _has_table(store, "pii_erasure_head")
        else []
    )
    head = (int(rows[0][0]), str(rows[0][1])) if rows else None
    if head is None:
        return count, f"erasure chain head missing (last record {count})" if count else None
    if head[0] > count:
        return (
            count,
            f"missing erasure records {count + 1}..{head[0]} at the end of the chain (head is {head[0]})",
        )
    if head != (count, prev):
        return count, f"erasure chain head ({head[0]}) does not match the last record ({count})"
    return count, None


def _has_table(store: SqlStore, name: str) -> bool:
    if store.placeholder == "?":
        rows = store._query("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    else:
        rows = [r for r in store._query("SELECT to_regclass(?)", (name,)) if r[0] is not None]
    return bool(rows)
