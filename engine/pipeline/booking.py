"""What a core banking system needs to book an offer: a stable id, a validity date and the due date
of every instalment. All dates derive from the recorded decision time (never the clock), so a replay
of the record dates every row exactly as the answer did."""

from __future__ import annotations

import datetime as dt
import hashlib
from functools import lru_cache

from engine.decision import Offer, replaced
from engine.finance.dates import due_dates, utc_date
from engine.finance.schedule import dated_schedule

__all__ = ["book_offers"]


def book_offers(
    offers: tuple[Offer, ...],
    decision_id: str,
    decided_at: str,
    validity_days: int,
    due_day: str | int,
    due_min_days: int,
) -> tuple[Offer, ...]:
    """`offers` with offer_id, valid_until and dated schedules, under the policy's conventions."""
    decided = utc_date(decided_at)
    valid_until = _valid_until(decided, validity_days)
    booked = []
    for offer in offers:
        key = f"{decision_id}/{offer.product}/{offer.term_months}/{offer.repayment_method}"
        dates = due_dates(decided, offer.term_months, due_day, due_min_days)
        booked.append(
            replaced(
                offer,
                offer_id="of_" + hashlib.sha256(key.encode()).hexdigest()[:20],
                valid_until=valid_until,
                schedule=dated_schedule(offer.schedule, dates),
            )
        )
    return tuple(booked)


@lru_cache(maxsize=64)
def _valid_until(decided: dt.date, validity_days: int) -> str:
    """The last day an offer made on `decided` can be accepted: the same for a day's decisions."""
    return (decided + dt.timedelta(days=validity_days)).isoformat()
