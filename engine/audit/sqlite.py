"""The embedded audit store: one SQLite file in WAL mode, a commit on disk before it returns (its
log flushed by fdatasync). Errors of the file or disk (full, unreadable) become StoreUnavailable.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import urllib.parse
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.audit.record import DecisionRecord
from engine.audit.store import SCHEMA, SqlStore
from engine.errors import BAD_URL, RequestClash, StoreUnavailable, UsageError

__all__ = ["SqliteStore", "sqlite_path"]

# The console's searches (engine.audit.search): newest first, by outcome or policy. The writer
# puts a record's outcome and policy name beside its body (columns outside the hash: the body
# stays what is hashed), and each index reads the column, or the body when a row has none (written
# by an older credo, or a value the writer leaves to SQLite: _searched): json_extract parsing the
# whole ~7 KB body for both indexes was ~20 µs of a ~42 µs insert. A store made before the columns
# gets them, and these indexes in place of the json_extract ones, when a writer opens it (_upgrade:
# ADD COLUMN rewrites nothing; CREATE INDEX reads every record once). The index names are the old
# ones, so an older credo opening the store finds them and adds nothing.
OUTCOME_SQL = "coalesce(outcome, json_extract(body, '$.outcome'))"
POLICY_SQL = "coalesce(policy_name, json_extract(body, '$.policy.name'))"
INDEXES = {
    "audit_records_outcome": f"ON audit_records ({OUTCOME_SQL}, received_at, decision_id)",
    "audit_records_policy": f"ON audit_records ({POLICY_SQL}, received_at, decision_id)",
}
SEARCH_COLUMNS = ("outcome", "policy_name")
# a store without the columns (one an older credo made, opened read-only): the body's values
BODY_OUTCOME_SQL = "json_extract(body, '$.outcome')"
BODY_POLICY_SQL = "json_extract(body, '$.policy.name')"


def _upgrade(conn: sqlite3.Connection) -> None:
    """Give a store the search columns and INDEXES, in one transaction: a new store, or one made by
    an older credo (its json_extract indexes dropped; its rows keep NULL columns, which the new
    indexes read through to the body). Nothing is done when the store has them."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(audit_records)")}
    made = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'").fetchall())
    stale = [name for name, sql in INDEXES.items() if not str(made.get(name) or "").endswith(sql)]
    if columns.issuperset(SEARCH_COLUMNS) and not stale:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for column in SEARCH_COLUMNS:
            if column not in columns:
                conn.execute(f"ALTER TABLE audit_records ADD COLUMN {column} TEXT")
        for name in stale:
            conn.execute(f"DROP INDEX IF EXISTS {name}")
            conn.execute(f"CREATE INDEX {name} {INDEXES[name]}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _inode(path: Path | str) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def sqlite_path(url: str) -> Path:
    """sqlite:///rel/path.db -> rel/path.db; sqlite:////abs/path.db -> /abs/path.db."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise UsageError(f"bad SQLite URL {url!r}: use sqlite:///PATH", code=BAD_URL)
    return Path(url[len(prefix) :])


def _searched(value: Any) -> str | None:
    """A search column's value: the body's own text when it is plain printable ASCII (json_extract
    gives back exactly that str); else None, and the index reads the body itself."""
    return value if type(value) is str and value.isascii() and value.isprintable() else None


class SqliteStore(SqlStore):
    outcome_sql = OUTCOME_SQL
    policy_sql = POLICY_SQL
    record_columns = (*SqlStore.record_columns, *SEARCH_COLUMNS)
    search_columns: tuple[str, ...] = SEARCH_COLUMNS

    def __init__(self, url: str, *, create: bool = True, readonly: bool = False) -> None:
        super().__init__(url)
        self.path = sqlite_path(url)
        if not create and not self.path.exists():
            raise StoreUnavailable(f"no audit store at {self.path}")
        self._lock: int | None = None  # the lock file's descriptor: a writer's turn (see _writers_turn)
        self._wal: int | None = None  # the write-ahead log's descriptor, flushed after each commit
        self._wal_inode: int | None = None  # the file it was opened on
        self._wal_path = os.fspath(self.path) + "-wal"  # SQLite's name for it
        self._close_wal: Callable[[], None] = lambda: None
        self._wal_lock = threading.Lock()
        if readonly:
            with self._errors():
                self._write = self._read = self._connect_readonly()
                columns = {row[1] for row in self._read.execute("PRAGMA table_info(audit_records)")}
            if not columns.issuperset(SEARCH_COLUMNS):  # made by an older credo: no upgrade here
                self.outcome_sql, self.policy_sql = BODY_OUTCOME_SQL, BODY_POLICY_SQL
                self.search_columns = ()
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
                self._write.executescript(SCHEMA.format(blob="BLOB"))
                _upgrade(self._write)
                self._read = self._connect()

    def _row(self, record: DecisionRecord) -> tuple[Any, ...]:
        policy = record.policy
        name = policy.get("name") if type(policy) is dict else None
        return (*super()._row(record), _searched(record.outcome), _searched(name))

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN IMMEDIATE/COMMIT ourselves
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        # In WAL mode a commit is flushed by _transaction, after the writer's turn (see _flush_log);
        # a file that cannot be in WAL mode flushes inside each commit.
        conn.execute("PRAGMA synchronous=NORMAL" if str(mode).lower() == "wal" else "PRAGMA synchronous=FULL")
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
    def _transaction(self, *, flush: bool = True) -> Iterator[Any]:
        """One write transaction, on disk when this returns (`flush` False: only in the log, on disk
        with the next flushed commit; for what no caller is told is stored)."""
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
        if flush:
            self._flush_log()

    def _flush_log(self) -> None:
        """fdatasync the write-ahead log: every commit written to it so far is on disk (this
        writer's and any other's: the whole file is flushed). SQLite's synchronous=FULL would flush
        inside COMMIT, holding the store's one write lock through the disk's wait, so the workers'
        commits queued behind one another's flushes; flushed here, after the writer's turn, the
        next writer commits meanwhile and the flushes overlap. Nothing is lost that was
        acknowledged: the log's writer releases its callers only after this returns, and a record
        read back is flushed before it is handed out (_durable). A commit whose frames were
        checkpointed into the database file meanwhile was flushed there (in WAL mode
        synchronous=NORMAL flushes the log before a checkpoint and the file after it)."""
        if self._lock is None:  # read-only: this process wrote nothing
            return
        wal = self._wal_path
        with self._wal_lock:
            inode = _inode(wal)
            if self._wal is not None and self._wal_inode != inode:
                self._close_wal()  # the log was removed and made again: flush the one there is now
                self._wal = None
            if self._wal is None and inode is not None:
                self._wal = os.open(wal, os.O_RDONLY | os.O_CLOEXEC)
                self._wal_inode = os.fstat(self._wal).st_ino  # the file opened, were it replaced meanwhile
                self._close_wal = weakref.finalize(self, os.close, self._wal)
            fd = self._wal
        if fd is not None:
            os.fdatasync(fd)
            return
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)  # no log (not in WAL mode): the file
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)

    def _durable(self) -> None:
        # A commit is visible to readers before the writer's flush returns: what is read back and
        # handed out (a retried request's decision, GetDecision) is flushed first.
        with self._errors():
            self._flush_log()

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
            self._close_wal()
