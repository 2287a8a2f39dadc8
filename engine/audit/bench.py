"""Group-commit benchmark behind `credo audit bench`: many threads appending records of a realistic
size to one DecisionLog, reporting throughput, transactions and append latency percentiles.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal

from engine.audit.log import DecisionLog
from engine.audit.record import DecisionRecord, new_decision_id, request_fingerprint

__all__ = ["BenchResult", "bench_group_commit", "sample_record"]


@dataclass(frozen=True)
class BenchResult:
    records: int
    seconds: float
    batches: int
    p50_ms: float
    p99_ms: float


def sample_record(n: int, run: str = "bench") -> DecisionRecord:
    """A record about the size of a consumer-loan decision with three offers (~4 KB canonical)."""
    application = {
        "applicant": {"age": 30 + n % 40, "income_monthly": "15000.00", "employment_type": "salaried"},
        "bureau": {"score": 700, "delinquencies_24m": 0, "utilisation": "0.35", "months_on_file": 48},
        "loan": {"amount": "80000", "term_months": 24, "purpose": "car"},
    }
    offer = {
        "product": "personal_std", "amount": "80000", "repayment_method": "equal_instalment",
        "annual_rate": "0.0850", "apr": "0.0884", "instalment": "3636.22", "total_interest": "7269.28",
        "expected_profit": "2310.55", "schedule": [],
    }  # fmt: skip
    offers = [{**offer, "term_months": t} for t in (12, 24, 36)]
    decision = {
        "decision_id": new_decision_id(), "request_id": f"{run}-{n}", "outcome": "APPROVE", "reasons": [],
        "score": {"pd": "0.0312", "points": 702, "grade": "B"}, "segments": ["prime"], "limit": "150000",
        "annual_rate": "0.0850", "offers": offers,
        "policy": {"name": "consumer_loan", "version": "1.0.0", "sha256": "a" * 64},
        "models": [{"name": "consumer_pd", "version": "1.0.0", "sha256": "b" * 64}],
        "trace": [{"stage": s, "fired": [], "millis": 0.05, "values": {}} for s in ("eligibility", "score")],
        "decided_at": "2026-01-05T09:00:00+00:00", "currency": "CNY",
    }  # fmt: skip
    return DecisionRecord.build(
        decision,
        request_fingerprint=request_fingerprint(application),
        received_at=dt.datetime.now(dt.UTC),
        application=application,
        input={"applicant.age": 30 + n % 40, "applicant.income_monthly": Decimal("15000.00")},
        derived={"dti": Decimal("0.12")},
        model_outputs={"pd": 0.0312},
    )


def bench_group_commit(url: str, threads: int, records: int) -> BenchResult:
    run = uuid.uuid4().hex[:12]  # fresh request_ids: a rerun on the same store must not be all retries
    prepared = [sample_record(n, run) for n in range(records)]
    latencies: list[float] = []
    lock = threading.Lock()
    with DecisionLog(url) as log:

        def work(k: int) -> None:
            mine: list[float] = []
            for record in prepared[k::threads]:
                start = time.perf_counter()
                log.append(record)
                mine.append(time.perf_counter() - start)
            with lock:
                latencies.extend(mine)

        workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
        start = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        seconds = time.perf_counter() - start
        batches = log.stats.batches
    latencies.sort()
    return BenchResult(
        records,
        seconds,
        batches,
        latencies[len(latencies) // 2] * 1000,
        latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    )
