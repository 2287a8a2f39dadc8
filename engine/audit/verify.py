"""Chain verification: recompute every chain of a store and name the first altered, missing or
reordered record of each (from genesis or its retention checkpoint); check heads saved elsewhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from engine.audit.canonical import canonical_json
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

    @property
    def ok(self) -> bool:
        return not self.problem


@dataclass
class VerifyReport:
    chains: list[ChainReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.chains)

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
    return report


def verify_chain(store: AuditStore, chain_id: str) -> ChainReport:
    report = ChainReport(chain_id)
    checkpoint = store.checkpoint(chain_id)
    seq, prev = (checkpoint.seq, checkpoint.hash) if checkpoint else (0, GENESIS_HASH)
    report.checkpoint_seq = seq
    for row in store.iter_chain(chain_id):
        report.records += 1
        problem = _check_row(row, chain_id, seq + 1, prev)
        if problem:
            report.problem = problem
            return report
        if report.records == 1:
            report.first_seq = row.seq
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


def _check_row(row: StoredRow, chain_id: str, want_seq: int, want_prev: str) -> str:
    where = f"seq {row.seq} (decision {row.decision_id})"
    try:
        record = DecisionRecord.from_dict({**json.loads(row.body), "hash": row.hash})
        canonical = canonical_json(record.body()).decode()
    except (ValueError, TypeError, CanonicalError) as exc:
        return f"altered record at {where}: body is not a valid record ({exc})"
    if canonical != row.body:
        return f"altered record at {where}: body is not in canonical form"
    if chain_hash(record.prev_hash, record.body()) != row.hash:
        return f"altered record at {where}: hash does not match its content"
    if record.seq != row.seq:
        return (
            f"reordered record at position seq {row.seq}: it holds seq {record.seq}"
            f" (decision {record.decision_id})"
        )
    if record.decision_id != row.decision_id or record.chain_id != chain_id:
        return f"altered record at {where}: stored columns disagree with the hashed record"
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
