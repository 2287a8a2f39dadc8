"""`open_store(url)`: the audit store a URL names, `sqlite:///path/audit.db` or
`postgresql://user@host:port/db`."""

from __future__ import annotations

from engine.audit.sqlite import SqliteStore
from engine.audit.store import AuditStore
from engine.errors import BAD_URL, UsageError

__all__ = ["open_store"]


def open_store(url: str, *, create: bool = True, readonly: bool = False) -> AuditStore:
    """The store at `url`: sqlite:///relative.db, sqlite:////abs/path.db, postgresql://...
    `readonly` opens an existing store without writing anything (no schema, no lock file), so a
    read-only copy, mount or database user serves verify, replay and export."""
    if url.startswith("sqlite://"):
        return SqliteStore(url, create=create and not readonly, readonly=readonly)
    if url.startswith(("postgresql://", "postgres://")):
        from engine.audit.postgres import PostgresStore  # lazily: psycopg is only needed for PostgreSQL

        return PostgresStore(url, readonly=readonly)
    raise UsageError(f"unknown audit store URL {url!r}: use sqlite:///PATH or postgresql://...", code=BAD_URL)
