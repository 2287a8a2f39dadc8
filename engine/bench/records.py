"""The size of the audit record a decision leaves: every shipped policy's own test inputs decided
once on a throwaway SQLite store, and the mean length of their canonical records (hash included)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

__all__ = ["bench_records"]


def bench_records(policies: str, models: str) -> dict[str, Any]:
    from engine.audit.connect import open_store
    from engine.audit.log import DecisionLog
    from engine.policy import load_policy
    from engine.service import DecisionService

    with tempfile.TemporaryDirectory(prefix="credo-bench-records-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'audit.db'}"
        log = DecisionLog(url)
        service = DecisionService(policies, models, store=log)
        try:
            for path in sorted(Path(policies).glob("*/policy.yaml")):
                policy = load_policy(path)
                for n, case in enumerate(policy.tests):
                    if "error" not in case.expect:
                        service.decide(policy.name, case.input, f"bench-record-{policy.name}-{n}")
        finally:
            log.close()
        store = open_store(url, create=False)
        try:
            sizes = [len(record.canonical()) for record in store.iter_records()]
        finally:
            store.close()
    return {"records": len(sizes), "record_bytes": sum(sizes) / len(sizes) if sizes else None}
