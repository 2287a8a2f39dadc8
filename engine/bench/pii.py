"""In-process section: what sealing personal data costs on the decision path. Decide p50 with its
audit record (SQLite, personal data in plaintext) over the consumer_loan test inputs with a name and
an ID number added, beside the p50 of sealing those records (PiiVault.protect, data keys warm), and
what sealing costs for a subject seen for the first time (its data key written to the store)."""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
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
            vault.protect(records[0], policy)  # the key table, the store's lookup key, this subject's key
            new_subject_ms = []
            for n in range(rounds * 2):  # subjects seen for the first time: each writes its data key
                record = records[n % len(records)]
                other = replace(
                    record, input={**record.input, "applicant.id_number": f"11010519900101{n:04d}"}
                )
                start = time.perf_counter()
                vault.protect(other, policy)
                new_subject_ms.append((time.perf_counter() - start) * 1000)
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
        "new_subject_p50_ms": percentile(new_subject_ms, 0.5),
        "sealed_fields": len(sealed.extra["pii"]["sealed"]),
        "decisions": len(decide_ms),
    }
