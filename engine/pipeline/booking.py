"""What a core banking system needs to book an offer: a stable id, a validity date and the due date
of every instalment. All dates derive from the recorded decision time (never the clock), so a replay
of the record dates every row exactly as the answer did."""

from __future__ import annotations

import datetime as dt
import threading
from functools import lru_cache
from hashlib import sha256
from typing import Final

from engine.decision import Instalment, Offer, maker
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
    for o in offers:
        key = f"{decision_id}/{o.product}/{o.term_months}/{o.repayment_method}"
        booked.append(
            _offer(  # positional, in Offer's field order: a copy without replaced()'s keywords
                o.product,
                o.amount,
                o.term_months,
                o.repayment_method,
                o.annual_rate,
                o.apr,
                o.instalment,
                o.total_interest,
                o.expected_profit,
                _dated(o.schedule, decided, o.term_months, due_day, due_min_days),
                o.expected_loss,
                "of_" + sha256(key.encode()).digest()[:10].hex(),  # hexdigest()[:20], without 44 digits
                valid_until,
                o.product_name,
                o.fees,
                o.revolving,
            )
        )
    return tuple(booked)


_offer: Final = maker(Offer)  # Offer's constructor without the class call: one per booked offer


@lru_cache(maxsize=64)
def _valid_until(decided: dt.date, validity_days: int) -> str:
    """The last day an offer made on `decided` can be accepted: the same for a day's decisions."""
    return (decided + dt.timedelta(days=validity_days)).isoformat()


def _dated(
    rows: tuple[Instalment, ...], decided: dt.date, term_months: int, due_day: str | int, min_days: int
) -> tuple[Instalment, ...]:
    """`rows` dated from `decided` (dated_schedule of due_dates), found with one lookup: offers
    share their rows with the offers stage's cached schedules, so every decision of the day at the
    same limit and rate books the same dated rows. Kept by the rows' identity (hashing 36 rows
    would cost most of what is saved); an entry holds the rows, so their id is not reused while it
    is kept."""
    key = (id(rows), decided, term_months, due_day, min_days)
    known = _booked.get(key)  # one C-level get: read without the lock
    if known is not None and known[0] is rows:
        return known[1]
    dated = dated_schedule(rows, due_dates(decided, term_months, due_day, min_days))
    with _booked_lock:
        while len(_booked) >= _BOOKED_KEPT:  # the oldest first
            del _booked[next(iter(_booked))]
        _booked[key] = (rows, dated)
    return dated


_BOOKED_KEPT: Final = 512  # as schedule.py's dated rows
_Rows = tuple[Instalment, ...]
_booked: dict[tuple[int, dt.date, int, str | int, int], tuple[_Rows, _Rows]] = {}  # -> (rows, dated)
_booked_lock = threading.Lock()
