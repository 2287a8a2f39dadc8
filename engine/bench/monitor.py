"""Monitor section: loan-event throughput of Credo's monitoring engine (events checked against the
policy, per-loan state, rules in each loan's durable_rules session) against hand-written Python doing
the same correlation for the consumer_loan monitoring policy, both on the synthetic loan book and
checked to raise the same alerts; and RSS of a fresh process before and after N events with loans
opening and closing (`python -m engine.bench.monitor N POLICY`)."""

from __future__ import annotations

import datetime as dt
import gc
import json
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = ["HandwrittenMonitor", "bench_monitor"]

ROOT = Path(__file__).resolve().parents[2]
_D09 = Decimal("0.9")


class _Loan:
    __slots__ = ("active", "dues", "missed", "opened", "origin", "paid", "run", "score", "seeking", "today")

    def __init__(self, day: int, origin: int):
        self.opened = self.today = day
        self.origin = origin
        self.score: int | None = None
        self.dues: deque[list[Any]] = deque()  # [due_day, amount, missed] of unpaid instalments
        self.paid = Decimal(0)  # credit beyond what is due
        self.missed: deque[int] = deque()  # days of missed instalments
        self.run = 0
        self.seeking = 0
        self.active: set[str] = set()


class HandwrittenMonitor:
    """The consumer_loan monitoring policy's rules written directly in Python (no policy, no rule
    engine): the floor Credo's monitoring engine is compared to."""

    def __init__(self) -> None:
        self.loans: dict[str, _Loan] = {}

    def ingest(self, e: Mapping[str, Any]) -> list[str]:
        kind, loan_id = e["type"], e.get("loan_id", "")
        day = dt.date.fromisoformat(e["date"]).toordinal()
        if kind == "loan.disbursed":
            loan = self.loans[loan_id] = _Loan(day, int(e["bureau_score"]))
        else:
            loan = self.loans[loan_id]
        for due in loan.dues:  # instalments that passed their due day unpaid are missed
            if due[0] >= day:
                break
            if not due[2]:
                due[2] = True
                loan.missed.append(due[0] + 1)
        loan.today = day
        if kind == "instalment.due":
            amount = Decimal(e["amount"])
            used = min(loan.paid, amount)
            loan.paid -= used
            if used < amount:
                loan.dues.append([day, amount - used, False])
        elif kind == "payment.received":
            amount = Decimal(e["amount"])
            while amount > 0 and loan.dues:
                used = min(amount, loan.dues[0][1])
                loan.dues[0][1] -= used
                amount -= used
                if loan.dues[0][1] == 0:
                    loan.dues.popleft()
            loan.paid += amount
        elif kind == "bureau.refresh":
            loan.score = int(e["score"])
            loan.run = loan.run + 1 if Decimal(e["utilisation"]) > _D09 else 0
            if day - loan.opened < 30:
                loan.seeking += int(e["inquiries"])
        while loan.missed and loan.missed[0] <= day - 90:
            loan.missed.popleft()
        dpd = day - loan.dues[0][0] if loan.dues and loan.dues[0][0] < day else 0
        holding = set()
        if len(loan.missed) >= 2:
            holding.add("MISSED_PAYMENTS")
        if loan.score is not None and loan.origin - loan.score >= 60:
            holding.add("SCORE_DROP")
        if loan.run >= 3:
            holding.add("HIGH_UTILISATION")
        if loan.seeking >= 4:
            holding.add("CREDIT_SEEKING")
        for threshold in (30, 60, 90):
            if dpd >= threshold:
                holding.add(f"DPD_{threshold}")
        raised = sorted(holding - loan.active)
        loan.active = holding
        if kind == "loan.closed":
            del self.loans[loan_id]
        return raised


def _events(loans: int, first_seed: int, close_all: bool = True) -> Iterator[dict[str, Any]]:
    """Synthetic books of `loans` loans each, seed after seed, each ending with every loan closed."""
    from engine.monitor.synthetic import generate_book

    seed = first_seed
    while True:
        book = generate_book(loans, seed=seed)
        yield from book.events
        if close_all:
            closed = {e["loan_id"] for e in book.events if e["type"] == "loan.closed"}
            last = max(e["date"] for e in book.events)
            for loan_id in sorted(book.truth.keys() - closed):
                yield {"type": "loan.closed", "loan_id": loan_id, "date": last}
        seed += 1


def _throughput(policy_path: str, events: int, repeats: int) -> dict[str, Any]:
    from engine.monitor import Monitor, load_monitoring

    policy = load_monitoring(policy_path)
    stream = []
    for event in _events(200, 500):
        stream.append(event)
        if len(stream) >= events and event["type"] == "loan.closed":
            break
    # the same alerts both ways, or the timing means nothing
    monitor, hand = Monitor(policy), HandwrittenMonitor()
    try:
        for event in stream:
            got = sorted(a.code for a in monitor.ingest(event).alerts)
            want = hand.ingest(event)
            if got != want:
                raise AssertionError(
                    f"monitoring engine and hand-written disagree on {event}: {got} != {want}"
                )
    finally:
        monitor.close()
    credo, floor = [], []
    for _ in range(repeats):
        monitor = Monitor(policy)
        start = time.perf_counter()
        for event in stream:
            monitor.ingest(event)
        credo.append(time.perf_counter() - start)
        monitor.close()
        hand = HandwrittenMonitor()
        start = time.perf_counter()
        for event in stream:
            hand.ingest(event)
        floor.append(time.perf_counter() - start)
    return {"events": len(stream), "credo_events_per_s": len(stream) / min(credo),
            "handwritten_events_per_s": len(stream) / min(floor)}  # fmt: skip


def _rss_bytes() -> int:
    from engine.bench.memory import rss_bytes

    return rss_bytes()


def measure_rss(events: int, policy_path: str) -> dict[str, Any]:
    """In this process: RSS after a warm-up book and after `events` more, loans opening and closing."""
    from engine.monitor import Monitor, load_monitoring

    monitor = Monitor(load_monitoring(policy_path))
    stream = _events(200, 1000)
    for _, event in zip(range(30_000), stream, strict=False):
        monitor.ingest(event)
    gc.collect()
    before = _rss_bytes()
    samples, step = [], max(1, events // 10)
    start = time.perf_counter()
    for n, event in enumerate(stream, 1):
        monitor.ingest(event)
        if n % step == 0:
            samples.append([n, _rss_bytes(), len(monitor.loans)])
        if n >= events:
            break
    seconds = time.perf_counter() - start
    gc.collect()
    return {"events": events, "rss_before": before, "rss_after": _rss_bytes(), "seconds": seconds,
            "open_loans_end": len(monitor.loans), "rss_samples": samples}  # fmt: skip


def bench_monitor(mode: str, policies: str = "policies", repeats: int = 3) -> dict[str, Any]:
    policy = str(Path(policies) / "consumer_loan" / "monitoring.yaml")
    result = _throughput(policy, 20_000 if mode == "quick" else 100_000, repeats)
    rss_events = 100_000 if mode == "quick" else 1_000_000
    out = subprocess.run(
        [sys.executable, "-m", "engine.bench.monitor", str(rss_events), policy],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    result["memory"] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


if __name__ == "__main__":
    print(json.dumps(measure_rss(int(sys.argv[1]), sys.argv[2])))
