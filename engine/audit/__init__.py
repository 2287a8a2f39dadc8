"""The tamper-evident decision log: canonical JSON, hash-chained records, SQLite/PostgreSQL stores,
group commit, verification, export and retention. Services use `DecisionLog` and `DecisionRecord`.
"""

from engine.audit.archive import Archive, archive_files, decision_archive, restore_archive
from engine.audit.canonical import canonical_json
from engine.audit.connect import open_store
from engine.audit.log import DecisionLog, blob
from engine.audit.record import (
    DecisionRecord,
    new_decision_id,
    request_fingerprint,
)
from engine.audit.store import AuditStore, Blob
from engine.audit.verify import verify_store

__all__ = [
    "Archive",
    "AuditStore",
    "Blob",
    "DecisionLog",
    "DecisionRecord",
    "archive_files",
    "blob",
    "canonical_json",
    "decision_archive",
    "new_decision_id",
    "open_store",
    "request_fingerprint",
    "restore_archive",
    "verify_store",
]
