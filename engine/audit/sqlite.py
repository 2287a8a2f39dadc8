"""The embedded audit store: one SQLite file in WAL mode with synchronous=FULL, so a commit is on
disk before it returns. Errors of the file or disk (full, unreadable) become StoreUnavailable.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import urllib.parse
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.audit.store import SCHEMA, SqlStore
from engine.errors import BAD_URL, RequestClash, StoreUnavailable, UsageError

__all__ = ["SqliteStore", "sqlite_path"]

# The console's searches (engine.audit.search): newest first, by outcome or policy. Expression
# indexes, so the write path and the hashed body are unchanged; an existing store gets them the
# next time a writer opens it (CREATE INDEX reads every record once).
INDEXES = """
CREATE INDEX IF NOT EXISTS audit_records_outcome
    ON audit_records (json_extract(body, '$.outcome'), received_at, decision_id);
CREATE INDEX IF NOT EXISTS audit_records_policy
    ON audit_records (json_extract(body, '$.policy.name'), received_at, decision_id);
"""


def sqlite_path(url: str) -> Path:
    """sqlite:///rel/path.db -> rel/path.db; sqlite:////abs/path.db -> /abs/path.db."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise UsageError(f"bad SQLite URL {url!r}: use sqlite:///PATH", code=BAD_URL)
    return Path(url[len(prefix) :])


class SqliteStore(SqlStore):
    outcome_sql = "json_extract(body, '$.outcome')"
    policy_sql = "json_extract(body, '$.policy.name')"

    def __init__(self, url: str, *, create: bool = True, readonly: bool = False) -> None:
        super().__init__(url)
        self.path = sqlite_path(url)
        if not create and not self.path.exists():
            raise StoreUnavailable(f"no audit store at {self.path}")
        self._lock: int | None = None  # the lock file's descriptor: a writer's turn (see _writers_turn)
        if readonly:
            with self._errors():
                self._write = self._read = self._connect_readonly()
            return
        with self._errors():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Several worker processes open a new store at once: switching a fresh file to WAL and
            # creating the schema can then fail "database is locked" without waiting for the busy
            # timeout, so opening is serialised across processes by a lock file beside the store,
            # and so is every write transaction after it (see _writers_turn).
            lock_path = self.path.with_name(self.path.name + ".open-lock")
            self._lock = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
            # closed with the store, or when it is dropped unclosed (as its connections are)
            self._close_lock = weakref.finalize(self, os.close, self._lock)
            with self._writers_turn():
                self._write = self._connect()
                self._write.executescript(SCHEMA.format(blob="BLOB") + INDEXES)
                self._read = self._connect()

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN IMMEDIATE/COMMIT ourselves
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def _connect_readonly(self) -> sqlite3.Connection:
        """Opened with mode=ro: no lock file, no schema, no journal change. A store in WAL mode in a
        folder this process cannot write has no -shm to share: with no log pending beside it the
        file cannot change under us, so it is opened immutable; with one, it is refused (reading
        the file alone would miss committed records)."""
        path = urllib.parse.quote(str(self.path.resolve()))
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            conn.close()
            wal = self.path.with_name(self.path.name + "-wal")
            if wal.exists() and wal.stat().st_size > 0:
                raise
        conn = sqlite3.connect(
            f"file:{path}?immutable=1", uri=True, isolation_level=None, check_same_thread=False
        )
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn

    def _reader(self) -> Any:
        return self._read

    @contextmanager
    def _writers_turn(self) -> Iterator[None]:
        """This process's turn to write, among the store's writer processes (each worker one).
        SQLite alone makes a writer that finds the store locked poll it, sleeping 1, 2, 5, ... up to
        100 ms between polls: under load the other worker commits again and again meanwhile, and the
        waiting one starved for 100-500 ms (its callers with it). A lock on the lock file is waited
        for in the kernel and handed over the moment the holder lets go. The busy timeout stays as
        the fallback for a writer that takes no turn (the sqlite3 shell, an older credo)."""
        lock = self._lock
        if lock is None:  # read-only: SQLite refuses the write itself
            yield
            return
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._writers_turn():
            cur = self._write.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                # SQLite may already have rolled back (e.g. disk full); never mask the first error
                if self._write.in_transaction:
                    self._write.execute("ROLLBACK")
                raise

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.IntegrityError as exc:
            raise RequestClash(str(exc)) from exc
        except (sqlite3.OperationalError, sqlite3.DatabaseError, OSError) as exc:
            raise StoreUnavailable(f"audit store {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._read_lock:  # never under a lookup another thread is running: sqlite3 can crash
            self._write.close()
            if self._read is not self._write:
                self._read.close()
            if self._lock is not None:
                self._close_lock()
