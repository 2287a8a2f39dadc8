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
from engine.decision import Decision, Instalment, ModelRef, Offer, Outcome, PolicyRef, Score, TraceEntry

__all__ = ["BenchResult", "bench_group_commit", "sample_record"]


@dataclass(frozen=True)
class BenchResult:
    records: int
    seconds: float
    batches: int
    p50_ms: float
    p99_ms: float


def sample_record(n: int, run: str = "bench") -> DecisionRecord:
    """A record about the size of a consumer-loan decision with three offers (lean: schedules by hash)."""
    rows = tuple(
        Instalment(k, Decimal("3636.22"), Decimal("3069.55"), Decimal("566.67"), Decimal(80000 - 3069 * k))
        for k in range(1, 25)
    )
    offers = tuple(
        Offer(
            "personal_std", Decimal("80000"), term, "equal_instalment", Decimal("0.0850"), Decimal("0.0884"),
            Decimal("3636.22"), Decimal("7269.28"), Decimal("2310.55"), rows,
        )
        for term in (12, 24, 36)
    )  # fmt: skip
    decision = Decision(
        decision_id=new_decision_id(), request_id=f"{run}-{n}", outcome=Outcome.APPROVE, reasons=(),
        score=Score(Decimal("0.0312"), 702, "B"), segments=("prime",), limit=Decimal("150000"),
        annual_rate=Decimal("0.0850"), offers=offers,
        policy=PolicyRef("consumer_loan", "1.0.0", "a" * 64),
        models=(ModelRef("consumer_pd", "1.0.0", "b" * 64),),
        trace=tuple(TraceEntry(s, (), 0.05, {}) for s in ("eligibility", "score")),
        decided_at="2026-01-05T09:00:00+00:00",
    )  # fmt: skip
    fact = {"applicant.age": 30 + n % 40, "applicant.income_monthly": Decimal("15000.00")}
    return DecisionRecord.build(
        decision,
        request_fingerprint=request_fingerprint("consumer_loan", "en", fact),
        received_at=dt.datetime.now(dt.UTC),
        input=fact,
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
