"""What a batch run keeps per application (`Row`: outcome, grade, limit, rate and the offer taken)
and how rows add up into portfolio figures (`Tally`, `Portfolio`): approval, booked volume,
expected loss and expected profit, overall and by grade, segment and product.

Economics are read off the Decision's best offer, never re-derived: its expected profit, and the
expected loss the offers stage deducted from it (the lifetime NPV the offer carries, or PD x LGD x
amount under a 1.x 12-month objective). Economic shocks (LGD, cost of funds) reach these figures
through the policy the offers were priced on (engine.batch.scenario.stressed_policy). Every sum is
Decimal, so totals do not depend on the order rows arrive in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from engine.batch.decider import Undecided
from engine.decision import Decision

__all__ = ["NONE", "OUTCOMES", "Portfolio", "Row", "Tally", "row_of", "swap_matrix"]

OUTCOMES = ("APPROVE", "REFER", "DECLINE", "ERROR")
NONE = "(none)"
CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Row:
    """One application's result on one arm (a policy under a scenario)."""

    row: int
    outcome: str
    error: str = ""
    grade: str | None = None
    pd: Decimal | None = None
    points: int | None = None
    segments: tuple[str, ...] = ()
    limit: Decimal | None = None
    rate: Decimal | None = None
    offers: int = 0
    product: str | None = None
    amount: Decimal | None = None
    term_months: int | None = None
    repayment_method: str | None = None
    apr: Decimal | None = None
    instalment: Decimal | None = None
    expected_loss: Decimal | None = None
    expected_profit: Decimal | None = None


def row_of(index: int, decided: Decision | Undecided, lgd: Decimal | None) -> Row:
    if isinstance(decided, Undecided):
        return Row(index, "ERROR", error=decided.code)
    score = decided.score
    best = decided.offers[0] if decided.offers else None
    base = Row(
        index,
        decided.outcome.value,
        grade=score.grade if score else None,
        pd=score.pd if score else None,
        points=score.points if score else None,
        segments=tuple(decided.segments),
        limit=decided.limit,
        rate=decided.annual_rate,
        offers=len(decided.offers),
    )
    if best is None:
        return base
    loss = best.expected_loss
    if loss is None and score is not None and lgd is not None:
        loss = _money(score.pd * lgd * best.amount)
    return replace(
        base,
        product=best.product,
        amount=best.amount,
        term_months=best.term_months,
        repayment_method=best.repayment_method,
        apr=best.apr,
        instalment=best.instalment,
        expected_loss=loss,
        expected_profit=best.expected_profit,
    )


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


@dataclass
class Tally:
    """The figures of one group of rows."""

    count: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    booked: Decimal = Decimal(0)  # the best offer's amount, approvals only (assumed taken up)
    limit_sum: Decimal = Decimal(0)
    rate_sum: Decimal = Decimal(0)
    rated: int = 0
    pd_sum: Decimal = Decimal(0)
    scored: int = 0
    expected_loss: Decimal = Decimal(0)
    expected_profit: Decimal = Decimal(0)

    def add(self, row: Row) -> None:
        self.count += 1
        self.outcomes[row.outcome] += 1
        if row.pd is not None:
            self.pd_sum += row.pd
            self.scored += 1
        if row.outcome != "APPROVE":
            return
        if row.limit is not None:
            self.limit_sum += row.limit
        if row.rate is not None:
            self.rate_sum += row.rate
            self.rated += 1
        if row.amount is not None:
            self.booked += row.amount
        if row.expected_loss is not None:
            self.expected_loss += row.expected_loss
        if row.expected_profit is not None:
            self.expected_profit += row.expected_profit

    def to_dict(self) -> dict[str, Any]:
        approved = self.outcomes["APPROVE"]

        def avg(total: Decimal, n: int, places: str) -> str | None:
            return str((total / n).quantize(Decimal(places), rounding=ROUND_HALF_EVEN)) if n else None

        return {
            "count": self.count,
            "outcomes": {o: self.outcomes[o] for o in OUTCOMES},
            "approval_rate": round(approved / self.count, 6) if self.count else None,
            "booked_volume": str(self.booked.quantize(CENT)),
            "avg_limit": avg(self.limit_sum, approved, "0.01"),
            "avg_rate": avg(self.rate_sum, self.rated, "0.000001"),
            "avg_pd": avg(self.pd_sum, self.scored, "0.000001"),
            "expected_loss": str(self.expected_loss.quantize(CENT)),
            "expected_profit": str(self.expected_profit.quantize(CENT)),
            "loss_rate": str((self.expected_loss / self.booked).quantize(Decimal("0.000001")))
            if self.booked
            else None,
        }


@dataclass
class Portfolio:
    """The figures of one arm: overall and by grade, segment and product (the offer taken)."""

    overall: Tally = field(default_factory=Tally)
    by_grade: dict[str, Tally] = field(default_factory=dict)
    by_segment: dict[str, Tally] = field(default_factory=dict)
    by_product: dict[str, Tally] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)

    def add(self, row: Row) -> None:
        self.overall.add(row)
        _group(self.by_grade, row.grade or NONE).add(row)
        for segment in row.segments or (NONE,):
            _group(self.by_segment, segment).add(row)
        _group(self.by_product, row.product or NONE).add(row)
        if row.error:
            self.errors[row.error] += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "overall": self.overall.to_dict(),
            "by_grade": {k: t.to_dict() for k, t in sorted(self.by_grade.items())},
            "by_segment": {k: t.to_dict() for k, t in sorted(self.by_segment.items())},
            "by_product": {k: t.to_dict() for k, t in sorted(self.by_product.items())},
            "errors": dict(sorted(self.errors.items())),
        }


def _group(groups: dict[str, Tally], key: str) -> Tally:
    tally = groups.get(key)
    if tally is None:
        tally = groups[key] = Tally()
    return tally


def swap_matrix(counts: Mapping[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    """Rows: the reference outcome; columns: the other arm's outcome for the same application."""
    return {a: {b: counts.get((a, b), 0) for b in OUTCOMES} for a in OUTCOMES}
