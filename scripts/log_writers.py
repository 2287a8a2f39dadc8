"""Decision logs of several writer processes on one SQLite store, as `credo serve --workers N` runs
them: each process T threads, each thread spending C ms of CPU (its decision) then appending a
copy of one real record. Prints records/s and the append's p50/p99/max latency.

    .venv/bin/python scripts/log_writers.py [PROCESSES [THREADS [SECONDS [CPU_MS]]]]   (2 8 3 0.5)
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from engine.audit.connect import open_store
from engine.audit.log import DecisionLog
from engine.audit.record import DecisionRecord, new_decision_id
from engine.service import DecisionService

ROOT = Path(__file__).resolve().parents[1]


def sample_record() -> DecisionRecord:
    """The README applicant's record on consumer_loan, unsealed (no chain fields yet)."""
    application = json.loads(
        (ROOT / "tests" / "pipeline" / "readme_applicant.json").read_text(encoding="utf-8")
    )
    with tempfile.TemporaryDirectory() as tmp:
        service = DecisionService(str(ROOT / "policies"), str(ROOT / "models"), store=f"sqlite:///{tmp}/a.db")
        try:
            decided = service.decide(service.policy("consumer_loan"), application, "sample")
            assert service.log is not None
            stored = service.log.get(decided.decision_id)
        finally:
            service.close()
    assert stored is not None
    return DecisionRecord.from_dict(
        {**stored.to_dict(), "chain_id": "", "seq": 0, "prev_hash": "", "hash": ""}
    )


def writer(url: str, threads: int, seconds: float, cpu: float, record: DecisionRecord, out: Any) -> None:
    log = DecisionLog(url)
    latencies: list[float] = []
    end = time.perf_counter() + seconds

    def loop(thread: int) -> None:
        for i in range(10**9):
            if time.perf_counter() >= end:
                return
            mine = dataclasses.replace(
                record, decision_id=new_decision_id(), request_id=f"{os.getpid()}-{thread}-{i}"
            )
            busy_until = time.thread_time() + cpu
            while time.thread_time() < busy_until:  # the decision's own CPU, holding the GIL
                pass
            start = time.perf_counter()
            log.append(mine)
            latencies.append(time.perf_counter() - start)

    running = [threading.Thread(target=loop, args=(t,)) for t in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    out.put((latencies, log.stats.batches, log.stats.records))
    log.close()


def main() -> None:
    args = [float(a) for a in sys.argv[1:]]
    processes, threads, seconds, cpu_ms = (args + [2, 8, 3, 0.5][len(args) :])[:4]
    record = sample_record()
    fork = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/audit.db"
        open_store(url).close()
        out = fork.Queue()
        workers = [
            fork.Process(target=writer, args=(url, int(threads), seconds, cpu_ms / 1000, record, out))
            for _ in range(int(processes))
        ]
        for process in workers:
            process.start()
        results = [out.get() for _ in workers]
        for process in workers:
            process.join()
    latencies = sorted(x for r in results for x in r[0])
    batches, records = sum(r[1] for r in results), sum(r[2] for r in results)
    print(
        f"{int(processes)} processes x {int(threads)} threads, {cpu_ms} ms CPU per record:"
        f" {len(latencies) / seconds:.0f} records/s, append p50 {latencies[len(latencies) // 2] * 1e3:.2f} ms"
        f" p99 {latencies[int(len(latencies) * 0.99)] * 1e3:.2f} ms max {latencies[-1] * 1e3:.1f} ms,"
        f" {records / max(batches, 1):.1f} records per commit"
    )


if __name__ == "__main__":
    main()
