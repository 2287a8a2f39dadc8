"""The shared audit store: PostgreSQL, for several hosts writing one log (one chain per writer).
Connections are re-opened after a failure, so the log recovers when the server comes back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from engine.audit.store import SCHEMA, SqlStore
from engine.errors import RequestClash, StoreUnavailable

__all__ = ["PostgresStore"]

# The console's searches (engine.audit.search), as in engine.audit.sqlite.INDEXES.
INDEXES = """
CREATE INDEX IF NOT EXISTS audit_records_outcome
    ON audit_records (((body::jsonb) ->> 'outcome'), received_at, decision_id);
CREATE INDEX IF NOT EXISTS audit_records_policy
    ON audit_records (((body::jsonb) -> 'policy' ->> 'name'), received_at, decision_id);
"""


class PostgresStore(SqlStore):
    placeholder = "%s"
    outcome_sql = "((body::jsonb) ->> 'outcome')"
    policy_sql = "((body::jsonb) -> 'policy' ->> 'name')"

    def __init__(self, url: str, *, connect_timeout: int = 5, readonly: bool = False) -> None:
        super().__init__(url)
        self._timeout = connect_timeout
        self._write: psycopg.Connection[Any] | None = None
        self._read: psycopg.Connection[Any] | None = None
        self._readonly = readonly
        if readonly:  # a read-only user or replica: the schema is there, creating it would fail
            return
        with self._errors(), self._write_lock:
            conn = self._writer()
            with conn.transaction():
                # several writers may start at once: serialise schema creation
                conn.execute("SELECT pg_advisory_xact_lock(782001)")
                conn.execute(SCHEMA.format(blob="BYTEA"))
                conn.execute(INDEXES)

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.url, autocommit=True, connect_timeout=self._timeout)
        if self._readonly:
            conn.execute("SET default_transaction_read_only = on")
        return conn

    def _writer(self) -> psycopg.Connection[Any]:
        if self._write is None or self._write.closed or self._write.broken:
            self._write = self._connect()
        return self._write

    def _reader(self) -> Any:
        if self._read is None or self._read.closed or self._read.broken:
            self._read = self._connect()
        return self._read

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        conn = self._writer()
        with conn.transaction(), conn.cursor() as cur:
            yield cur

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except psycopg.IntegrityError as exc:
            raise RequestClash(str(exc)) from exc
        except psycopg.errors.ReadOnlySqlTransaction as exc:
            raise StoreUnavailable(f"audit store {_redact(self.url)}: opened read-only") from exc
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self._drop_connections()  # reconnect on next use: the server may be back by then
            raise StoreUnavailable(f"audit store {_redact(self.url)}: {exc}") from exc

    def _drop_connections(self) -> None:
        for conn in (self._write, self._read):
            if conn is not None and not conn.closed:
                with contextlib.suppress(psycopg.Error):
                    conn.close()

    def close(self) -> None:
        self._drop_connections()


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
