"""A seeded synthetic loan book: N loans over 24 months of events with planted deterioration
patterns whose alerts are known, and defaults that follow them. Used by tests (precision and
recall of the alerts), the bench and the README walk-through (`credo monitor book`).

Each loan is either clean (paid on time, score within 15 points of origination, utilisation below
0.8, at most one inquiry in its first 30 days) or carries planted patterns, each the cause of exactly
one alert of the consumer_loan monitoring policy: SCORE_DROP (score 60-120 below origination from a
month on), HIGH_UTILISATION (three refreshes in a row above 0.9), CREDIT_SEEKING (4-6 inquiries in
the first 30 days), MISSED_PAYMENTS (two instalments in a row paid 5-12 days late). A loan with a
pattern defaults with probability 0.6 some months after it (a clean one 0.02), when the 24 months
leave room to reach 90 days past due: from one instalment on nothing is paid, which must raise
MISSED_PAYMENTS, DPD_30, DPD_60 and DPD_90."""

from __future__ import annotations

import datetime as dt
import random
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

__all__ = ["DEFAULT_CODES", "Book", "Scores", "generate_book", "score_alerts"]

START = dt.date(2026, 1, 1).toordinal()
MONTH = 30
HORIZON = 24 * MONTH
DEFAULT_CODES = frozenset({"MISSED_PAYMENTS", "DPD_30", "DPD_60", "DPD_90"})
PATTERNS = {"SCORE_DROP": 0.12, "HIGH_UTILISATION": 0.12, "CREDIT_SEEKING": 0.10, "MISSED_PAYMENTS": 0.10}


@dataclass
class Book:
    """The events in time order, the alert codes each loan must raise, and each defaulted loan's
    default day (the day it reaches 90 days past due)."""

    events: list[dict[str, Any]]
    truth: dict[str, frozenset[str]]
    defaults: dict[str, int]


@dataclass
class Scores:
    precision: float
    recall: float
    false_alerts: list[tuple[str, str]] = field(default_factory=list)
    missed_alerts: list[tuple[str, str]] = field(default_factory=list)
    lead_days: list[int] = field(default_factory=list)  # per defaulted loan: default day - first alert

    @property
    def median_lead_days(self) -> float | None:
        return statistics.median(self.lead_days) if self.lead_days else None


def _date(day: int) -> str:
    return dt.date.fromordinal(day).isoformat()


class _Loan:
    def __init__(self, rng: random.Random, loan_id: str, index: int):
        self.rng = rng
        self.loan_id = loan_id
        self.index = index
        self.start = START + rng.randrange(0, 60)
        self.term = rng.choice((6, 12, 24, 36))
        self.amount = Decimal(rng.randrange(20, 200) * 100)
        self.instalment = (self.amount * Decimal("1.08") / self.term).quantize(Decimal("0.01"))
        self.origin = rng.randrange(620, 780)
        self.events: list[tuple[int, int, dict[str, Any]]] = []
        months = min(self.term, 24)
        self.patterns = {code for code, p in PATTERNS.items() if rng.random() < p}
        # MISSED_PAYMENTS needs two instalments plus room; keep it to terms long enough
        if months < 6:
            self.patterns.discard("MISSED_PAYMENTS")
        self.drop_month = rng.randrange(2, max(3, months - 1))
        self.util_month = rng.randrange(2, max(3, months - 3))
        self.late_month = rng.randrange(2, max(3, months - 3))
        risky = bool(self.patterns)
        latest = max([self.drop_month, self.util_month, self.late_month, 1] if risky else [1])
        self.default_from: int | None = None
        if rng.random() < (0.6 if risky else 0.02):
            first = latest + rng.randrange(2, 6) if risky else rng.randrange(2, months)
            # room to reach 90 days past due, and a tick to see it, while instalments still fall due
            if first + 3 <= months and self.start + first * MONTH + 97 <= START + HORIZON:
                self.default_from = first
        if self.default_from is not None and "MISSED_PAYMENTS" in self.patterns:
            self.late_month = min(self.late_month, self.default_from - 4)
            if self.late_month < 2:
                self.patterns.discard("MISSED_PAYMENTS")

    def add(self, day: int, event: dict[str, Any]) -> None:
        self.events.append((day, len(self.events), {"loan_id": self.loan_id, "date": _date(day), **event}))

    def build(self) -> None:
        rng, end = self.rng, START + HORIZON
        self.add(
            self.start,
            {
                "type": "loan.disbursed",
                "amount": str(self.amount),
                "term": self.term,
                "bureau_score": self.origin,
            },
        )
        inquiries = rng.randrange(4, 7) if "CREDIT_SEEKING" in self.patterns else rng.randrange(0, 2)
        self.add(self.start + 15, self._refresh(0, inquiries))
        closed = None
        for month in range(1, self.term + 1):
            due = self.start + month * MONTH
            if due > end:
                break
            self.add(due, {"type": "instalment.due", "number": month, "amount": str(self.instalment)})
            defaulted = self.default_from is not None and month >= self.default_from
            if not defaulted:
                late = "MISSED_PAYMENTS" in self.patterns and month in (self.late_month, self.late_month + 1)
                self.add(
                    due + (rng.randrange(5, 13) if late else 0),
                    {"type": "payment.received", "amount": str(self.instalment)},
                )
            if due + 10 <= end:
                self.add(due + 10, self._refresh(month, rng.randrange(0, 2)))
            if month == self.term and not defaulted:
                closed = due + 14
        if closed is not None and closed <= end:
            self.add(closed, {"type": "loan.closed"})
        last = closed if closed is not None and closed <= end else end
        for day in range(self.start + 7, last, 7):
            self.add(day, {"type": "clock.tick"})
        self.events.sort(key=lambda item: (item[0], item[1] if item[2]["type"] != "clock.tick" else -1))

    def _refresh(self, month: int, inquiries: int) -> dict[str, Any]:
        rng = self.rng
        score = self.origin + rng.randrange(-15, 16)
        if "SCORE_DROP" in self.patterns and month >= self.drop_month:
            score = self.origin - rng.randrange(60, 121)
        utilisation = Decimal(rng.randrange(20, 80)) / 100
        if "HIGH_UTILISATION" in self.patterns and self.util_month <= month < self.util_month + 3:
            utilisation = Decimal(rng.randrange(91, 100)) / 100
        return {
            "type": "bureau.refresh",
            "score": score,
            "utilisation": str(utilisation),
            "inquiries": inquiries,
        }

    @property
    def truth(self) -> frozenset[str]:
        return frozenset(self.patterns | (DEFAULT_CODES if self.default_from is not None else set()))

    @property
    def default_day(self) -> int | None:
        if self.default_from is None:
            return None
        return self.start + self.default_from * MONTH + 90


def generate_book(loans: int, seed: int = 0) -> Book:
    """A book of `loans` loans; the same seed always gives the same events."""
    rng = random.Random(seed)
    book: list[_Loan] = []
    for i in range(loans):
        loan = _Loan(rng, f"LN{seed:03d}-{i:06d}", i)
        loan.build()
        book.append(loan)
    merged = sorted(
        ((day, loan.index, seq, event) for loan in book for seq, (day, _, event) in enumerate(loan.events)),
        key=lambda item: item[:3],
    )
    defaults = {loan.loan_id: day for loan in book if (day := loan.default_day) is not None}
    return Book([event for *_, event in merged], {loan.loan_id: loan.truth for loan in book}, defaults)


def score_alerts(book: Book, alerts: Iterable[Mapping[str, Any]]) -> Scores:
    """Precision and recall of raised alerts over (loan, code) pairs against the planted truth, and
    each defaulted loan's lead time: its default day minus the day of its first alert."""
    raised: set[tuple[str, str]] = set()
    first: dict[str, int] = {}
    for alert in alerts:
        raised.add((alert["loan_id"], alert["code"]))
        day = dt.date.fromisoformat(alert["date"]).toordinal()
        first[alert["loan_id"]] = min(day, first.get(alert["loan_id"], day))
    truth = {(loan, code) for loan, codes in book.truth.items() for code in codes}
    hits = len(raised & truth)
    scores = Scores(
        precision=hits / len(raised) if raised else 1.0,
        recall=hits / len(truth) if truth else 1.0,
        false_alerts=sorted(raised - truth),
        missed_alerts=sorted(truth - raised),
    )
    scores.lead_days = sorted(day - first[loan] for loan, day in book.defaults.items() if loan in first)
    return scores
