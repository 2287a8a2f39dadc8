"""Export of audit records for auditors (JSON Lines of canonical records, or Parquet) and retention:
export then remove records older than a cutoff, leaving a checkpoint so the rest still verifies.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from engine.audit.record import DecisionRecord, utc_text
from engine.audit.store import AuditStore, parse_record
from engine.audit.verify import verify_chain
from engine.errors import RETENTION, CredoError, UsageError

__all__ = ["RetentionResult", "export_records", "remove_older_than", "write_jsonl", "write_parquet"]

PARQUET_COLUMNS = (
    "decision_id", "chain_id", "seq", "prev_hash", "hash", "request_id", "received_at",
    "policy_name", "policy_version", "policy_sha256", "outcome", "record",
)  # fmt: skip


def write_jsonl(records: Iterable[DecisionRecord], out: IO[bytes]) -> int:
    """One canonical record per line, hash and chain fields included: each line re-hashes alone."""
    count = 0
    for record in records:
        out.write(record.canonical() + b"\n")
        count += 1
    return count


def write_parquet(records: Iterable[DecisionRecord], path: Path | str, chunk: int = 10_000) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(name, pa.int64() if name == "seq" else pa.string()) for name in PARQUET_COLUMNS])
    count = 0
    with pq.ParquetWriter(str(path), schema) as writer:
        for rows in _chunks(records, chunk):
            columns: dict[str, list[object]] = {name: [] for name in PARQUET_COLUMNS}
            for r in rows:
                values = (
                    r.decision_id, r.chain_id, r.seq, r.prev_hash, r.hash, r.request_id, r.received_at,
                    r.policy.get("name"), r.policy.get("version"), r.policy.get("sha256"), r.outcome,
                    r.canonical().decode(),
                )  # fmt: skip
                for name, value in zip(PARQUET_COLUMNS, values, strict=True):
                    columns[name].append(value)
            writer.write_table(pa.table(columns, schema=schema))
            count += len(rows)
    return count


def export_records(
    store: AuditStore,
    since: dt.datetime | None,
    until: dt.datetime | None,
    fmt: str,
    out: Path | str | None,
    stdout: IO[bytes] | None = None,
    show: Callable[[DecisionRecord], DecisionRecord] | None = None,
) -> int:
    """Records received in [since, until) as JSON Lines or Parquet; `show` (e.g. a PiiVault's
    `masked`) turns each into what the reader may see: personal values opened or masked."""
    records: Iterable[DecisionRecord] = store.iter_records(since, until)
    if show is not None:
        records = map(show, records)
    if fmt == "parquet":
        if out is None:
            raise UsageError("parquet export needs --out FILE")
        return write_parquet(records, out)
    if fmt != "jsonl":
        raise UsageError(f"unknown export format {fmt!r}: use jsonl or parquet")
    if out is None:
        assert stdout is not None
        return write_jsonl(records, stdout)
    with open(out, "wb") as fh:
        count = write_jsonl(records, fh)
        fh.flush()
        os.fsync(fh.fileno())
    return count


@dataclass
class RetentionResult:
    removed: int
    chains: int
    export: Path


def remove_older_than(store: AuditStore, cutoff: dt.datetime, export: Path | str) -> RetentionResult:
    """Export (JSON Lines, fsynced) and remove, chain by chain, the leading records received before
    `cutoff`. Each chain keeps a checkpoint (seq, hash of its last removed record), so what remains
    verifies. A chain that does not verify is left untouched and reported as an error."""
    cutoff_text = utc_text(cutoff)
    plan: list[tuple[str, list[DecisionRecord]]] = []
    for chain_id in store.chain_ids():
        report = verify_chain(store, chain_id)
        if not report.ok:
            raise CredoError(
                f"chain {chain_id} does not verify, nothing removed: {report.problem}", code=RETENTION
            )
        old: list[DecisionRecord] = []
        for row in store.iter_chain(chain_id):
            record = parse_record(row.body, row.hash)
            if record.received_at >= cutoff_text:
                break
            old.append(record)
        if old:
            plan.append((chain_id, old))
    path = Path(export)
    with open(path, "ab") as fh:
        for _, old in plan:
            write_jsonl(old, fh)
        fh.flush()
        os.fsync(fh.fileno())
    for chain_id, old in plan:
        store.remove_through(chain_id, old[-1].seq, len(old))
    return RetentionResult(sum(len(o) for _, o in plan), len(plan), path)


def _chunks(items: Iterable[DecisionRecord], size: int) -> Iterator[list[DecisionRecord]]:
    chunk: list[DecisionRecord] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
