"""What a core banking system needs to book an offer: a stable id, a validity date and the due date
of every instalment. All dates derive from the recorded decision time (never the clock), so a replay
of the record dates every row exactly as the answer did."""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
from dataclasses import replace
from functools import lru_cache

from engine.decision import Instalment, Offer

__all__ = ["book_offers", "due_dates"]


def book_offers(
    offers: tuple[Offer, ...],
    decision_id: str,
    decided_at: str,
    validity_days: int,
    due_day: str | int,
    due_min_days: int,
) -> tuple[Offer, ...]:
    """`offers` with offer_id, valid_until and dated schedules, under the policy's conventions."""
    decided = _date(decided_at)
    valid_until = (decided + dt.timedelta(days=validity_days)).isoformat()
    booked = []
    for offer in offers:
        key = f"{decision_id}/{offer.product}/{offer.term_months}/{offer.repayment_method}"
        dates = due_dates(decided, offer.term_months, due_day, due_min_days)
        booked.append(
            replace(
                offer,
                offer_id="of_" + hashlib.sha256(key.encode()).hexdigest()[:20],
                valid_until=valid_until,
                schedule=tuple(
                    Instalment(row.period, row.payment, row.principal, row.interest, row.balance, day)
                    for row, day in zip(offer.schedule, dates, strict=True)
                ),
            )
        )
    return tuple(booked)


@lru_cache(maxsize=1024)
def due_dates(decided: dt.date, term_months: int, day: str | int, min_days: int) -> tuple[str, ...]:
    """Monthly due dates. `same`: the decision's day of month, a month later and every month after
    (the 31st falls on a shorter month's last day). A fixed day 1-28: that day of the next month, or
    of the month after when that is fewer than `min_days` away, then monthly."""
    if day == "same":
        return tuple(_add_months(decided, k).isoformat() for k in range(1, term_months + 1))
    first = _add_months(decided.replace(day=int(day)), 1)
    if (first - decided).days < min_days:
        first = _add_months(first, 1)
    return tuple(_add_months(first, k).isoformat() for k in range(term_months))


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _date(decided_at: str) -> dt.date:
    """The UTC calendar date of an ISO timestamp (`Z` or an offset)."""
    stamp = dt.datetime.fromisoformat(decided_at.replace("Z", "+00:00"))
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(dt.UTC)
    return stamp.date()
