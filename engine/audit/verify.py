"""Chain verification: recompute every chain of a store and name the first altered, missing or
reordered record of each (from genesis or its retention checkpoint), re-hash every archived file the
records reference, and check heads saved elsewhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from engine.audit.canonical import canonical_json, sha256_hex
from engine.audit.monitor_log import MONITOR_CHAIN, verify_monitor_chain
from engine.audit.record import GENESIS_HASH, DecisionRecord, chain_hash
from engine.audit.store import AuditStore, ChainHead, StoredRow
from engine.errors import CanonicalError

__all__ = ["ChainReport", "VerifyReport", "check_anchors", "verify_store"]


@dataclass
class ChainReport:
    chain_id: str
    records: int = 0
    first_seq: int = 0
    last_seq: int = 0
    checkpoint_seq: int = 0
    problem: str = ""  # "" when the chain verifies
    archived: dict[str, str] = field(default_factory=dict)  # sha256 -> "decision X's path" referencing it

    @property
    def ok(self) -> bool:
        return not self.problem


@dataclass
class VerifyReport:
    chains: list[ChainReport] = field(default_factory=list)
    files: int = 0  # archived files re-hashed
    file_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.chains) and not self.file_problems

    @property
    def records(self) -> int:
        return sum(c.records for c in self.chains)


def verify_store(store: AuditStore) -> VerifyReport:
    report = VerifyReport()
    for chain_id in store.chain_ids():
        report.chains.append(verify_chain(store, chain_id))
    monitor = verify_monitor_chain(store)  # loan events and alerts (engine/audit/monitor_log.py)
    if monitor is not None:
        records, last, problem = monitor
        report.chains.append(ChainReport(MONITOR_CHAIN, records, 1 if records else 0, last, 0, problem))
    referenced: dict[str, str] = {}
    for chain in report.chains:
        referenced.update(chain.archived)
    report.file_problems = verify_archive(store, referenced)
    report.files = len(referenced)
    return report


def verify_archive(store: AuditStore, referenced: dict[str, str]) -> list[str]:
    """Re-hash every archived file: one whose bytes no longer hash to its address is altered, one a
    record references but the store lacks is missing (replay of that record would be refused)."""
    problems: list[str] = []
    present: set[str] = set()
    for blob in store.iter_blobs():
        present.add(blob.sha256)
        if sha256_hex(blob.data) != blob.sha256:
            problems.append(
                f"altered archived file {blob.name} (sha256 {blob.sha256}): its bytes hash otherwise"
            )
    for sha, user in sorted(referenced.items(), key=lambda item: item[1]):
        if sha not in present:
            problems.append(f"missing archived file {user} (sha256 {sha})")
    return problems


def verify_chain(store: AuditStore, chain_id: str) -> ChainReport:
    report = ChainReport(chain_id)
    checkpoint = store.checkpoint(chain_id)
    seq, prev = (checkpoint.seq, checkpoint.hash) if checkpoint else (0, GENESIS_HASH)
    report.checkpoint_seq = seq
    for row in store.iter_chain(chain_id):
        report.records += 1
        problem, record = _check_row(row, chain_id, seq + 1, prev)
        if problem or record is None:
            report.problem = problem
            return report
        if report.records == 1:
            report.first_seq = row.seq
        for path, sha in record.archive.items():
            report.archived.setdefault(str(sha), f"{path} of decision {row.decision_id}")
        seq, prev = row.seq, row.hash
        report.last_seq = seq
    head = store.chain_head(chain_id)
    if head is None:
        if report.records:
            report.problem = f"chain head missing: the chain table has no row for this chain (last seq {seq})"
    elif head.seq != seq or head.hash != prev:
        if head.seq > seq:
            report.problem = (
                f"missing records seq {seq + 1}..{head.seq} at the end of the chain (head is seq {head.seq})"
            )
        else:
            report.problem = f"chain head (seq {head.seq}) does not match the last record (seq {seq})"
    return report


def _check_row(
    row: StoredRow, chain_id: str, want_seq: int, want_prev: str
) -> tuple[str, DecisionRecord | None]:
    """("", the record) when `row` holds the record expected at `want_seq`, else (the problem, None)."""
    where = f"seq {row.seq} (decision {row.decision_id})"
    try:
        record = DecisionRecord.from_dict({**json.loads(row.body), "hash": row.hash})
        canonical = canonical_json(record.body()).decode()
    except (ValueError, TypeError, CanonicalError) as exc:
        return f"altered record at {where}: body is not a valid record ({exc})", None
    problem = _row_problem(row, record, canonical, chain_id, want_seq, want_prev)
    return problem, None if problem else record


def _row_problem(
    row: StoredRow, record: DecisionRecord, canonical: str, chain_id: str, want_seq: int, want_prev: str
) -> str:
    where = f"seq {row.seq} (decision {row.decision_id})"
    if canonical != row.body:
        return f"altered record at {where}: body is not in canonical form"
    if chain_hash(record.prev_hash, record.body()) != row.hash:
        return f"altered record at {where}: hash does not match its content"
    if record.seq != row.seq:
        return (
            f"reordered record at position seq {row.seq}: it holds seq {record.seq}"
            f" (decision {record.decision_id})"
        )
    # every column a lookup, an export or this walk relies on must say what the hashed record says
    columns = {
        "decision_id": (row.decision_id, record.decision_id),
        "chain_id": (row.chain_id, record.chain_id),
        "request_id": (row.request_id, record.request_id),
        "received_at": (row.received_at, record.received_at),
    }
    changed = [name for name, (stored, hashed) in columns.items() if stored != hashed]
    # a search column (SQLite's outcome, policy_name) is empty or the hashed record's value
    policy = record.policy.get("name") if isinstance(record.policy, dict) else None
    searched = {"outcome": record.outcome, "policy_name": policy}
    changed += [
        name for name, stored in row.searched.items() if stored is not None and stored != searched.get(name)
    ]
    if record.chain_id != chain_id and "chain_id" not in changed:
        changed.append("chain_id")
    if changed:
        names = ", ".join(changed)
        return f"altered record at {where}: stored column(s) {names} disagree with the hashed record"
    if row.seq > want_seq:
        missing = f"seq {want_seq}" if row.seq == want_seq + 1 else f"seq {want_seq}..{row.seq - 1}"
        return f"missing record(s) {missing} before {where}"
    if record.prev_hash != want_prev:
        return f"reordered or replaced record at {where}: prev_hash does not match the record before it"
    return ""


def check_anchors(store: AuditStore, anchors: list[ChainHead]) -> list[str]:
    """Compare chain heads saved outside the store (`credo audit anchor`) with the store. A chain can
    be rewritten consistently by someone with write access to the database; it cannot then keep the
    hash an anchor saved earlier. Returns one problem per anchor that does not hold."""
    problems = []
    for anchor in anchors:
        where = f"chain {anchor.chain_id} seq {anchor.seq}"
        found = store.record_hash(anchor.chain_id, anchor.seq)
        if found is None:
            checkpoint = store.checkpoint(anchor.chain_id)
            if checkpoint is not None and checkpoint.seq == anchor.seq:
                found = checkpoint.hash
            elif checkpoint is not None and checkpoint.seq > anchor.seq:
                continue  # removed by retention; its export file holds it
            else:
                problems.append(f"anchor {where}: the record is missing from the store")
                continue
        if found != anchor.hash:
            problems.append(
                f"anchor {where}: the stored hash differs from the anchored one (chain rewritten)"
            )
    return problems
