"""In-process section: what sealing personal data costs on the decision path. Decide p50 with its
audit record (SQLite, personal data in plaintext) over the consumer_loan test inputs with a name and
an ID number added, beside the p50 of sealing those records (PiiVault.protect, data keys warm), and
the one-off cost of a new subject (its data key written to the store)."""

from __future__ import annotations

import tempfile
import time
from typing import Any

from engine.audit.connect import open_store
from engine.audit.log import DecisionLog
from engine.audit.pii import PiiVault
from engine.audit.pii_keys import MasterKey
from engine.audit.record import DecisionRecord
from engine.bench.stats import percentile
from engine.errors import CredoError
from engine.service import DecisionService

__all__ = ["bench_pii"]

PERSON = {"name": "李秀英", "id_number": "11010519491231002X"}


def bench_pii(policies: str, models: str, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        log = DecisionLog(open_store(f"sqlite:///{tmp}/plain.db"))
        plain = PiiVault(log.store, None, plaintext=True)  # records kept as built: what sealing starts from
        service = DecisionService(policies, models, store=log, pii=plain)
        policy = service.policy("consumer_loan")
        apps = []
        for test in policy.tests:
            if "error" not in test.expect:
                app = dict(test.input)
                app["applicant"] = {**app["applicant"], **PERSON}
                apps.append(app)
        decide_ms: list[float] = []
        for n in range(rounds):
            for i, app in enumerate(apps):
                start = time.perf_counter()
                try:
                    service.decide(policy, app, f"bench-{n}-{i}")
                except CredoError:
                    continue
                decide_ms.append((time.perf_counter() - start) * 1000)
        records: list[DecisionRecord] = list(log.store.iter_records())[: len(apps)]
        log.close()

        store = open_store(f"sqlite:///{tmp}/sealed.db")
        try:
            vault = PiiVault(store, MasterKey.create(f"{tmp}/master.key"))
            start = time.perf_counter()
            vault.protect(records[0], policy)  # the store's lookup key and this subject's data key
            first_ms = (time.perf_counter() - start) * 1000
            seal_ms = []
            for _ in range(rounds):
                for record in records:
                    start = time.perf_counter()
                    vault.protect(record, policy)
                    seal_ms.append((time.perf_counter() - start) * 1000)
            sealed = vault.protect(records[0], policy)
        finally:
            store.close()
    return {
        "decide_p50_ms": percentile(decide_ms, 0.5),
        "seal_p50_ms": percentile(seal_ms, 0.5),
        "first_subject_ms": first_ms,
        "sealed_fields": len(sealed.extra["pii"]["sealed"]),
        "decisions": len(decide_ms),
    }
