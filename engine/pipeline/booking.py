"""What a core banking system needs to book an offer: a stable id, a validity date and the due date
of every instalment. All dates derive from the recorded decision time (never the clock), so a replay
of the record dates every row exactly as the answer did."""

from __future__ import annotations

import datetime as dt
import hashlib

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
    valid_until = (decided + dt.timedelta(days=validity_days)).isoformat()
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
