"""Due dates of a repayment schedule, from the decision date and the policy's first-due convention,
and the two-word form a lean audit record keeps them in. Dates are ISO strings; no clock is read."""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Sequence
from functools import lru_cache

__all__ = ["SAME_DAY", "add_months", "dated_as", "dates_again", "due_dates", "utc_date"]

SAME_DAY = "same"


@lru_cache(maxsize=1024)
def due_dates(decided: dt.date, term_months: int, day: str | int, min_days: int) -> tuple[str, ...]:
    """Monthly due dates. `same`: the decision's day of month, a month later and every month after
    (the 31st falls on a shorter month's last day). A fixed day 1-28: that day of the next month, or
    of the month after when that is fewer than `min_days` away, then monthly."""
    if day == SAME_DAY:
        return _monthly(decided, range(1, term_months + 1))
    first = add_months(decided.replace(day=int(day)), 1)
    if (first - decided).days < min_days:
        first = add_months(first, 1)
    return _monthly(first, range(term_months))


def dated_as(decided_at: str, dates: Sequence[str]) -> str:
    """How a record keeps `dates`: "same" when they are the decision's own day month by month,
    else the first date (a fixed day of month, 1-28, never clamped), from which the rest follow."""
    if tuple(dates) == due_dates(utc_date(decided_at), len(dates), SAME_DAY, 0):
        return SAME_DAY
    rebuilt = _monthly(dt.date.fromisoformat(dates[0]), range(len(dates)))
    if rebuilt != tuple(dates):
        raise ValueError(f"due dates {dates[0]}... follow neither convention")
    return dates[0]


def dates_again(decided_at: str, dated: str, count: int) -> tuple[str, ...]:
    """The due dates `dated_as` described."""
    if dated == SAME_DAY:
        return due_dates(utc_date(decided_at), count, SAME_DAY, 0)
    return _monthly(dt.date.fromisoformat(dated), range(count))


def add_months(day: dt.date, months: int) -> dt.date:
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def utc_date(stamp: str) -> dt.date:
    """The UTC calendar date of an ISO timestamp (`Z` or an offset)."""
    when = dt.datetime.fromisoformat(stamp)  # Python 3.11 reads a `Z` itself
    if when.utcoffset():  # only an offset other than UTC's moves the date (a naive stamp is kept as is)
        when = when.astimezone(dt.UTC)
    return when.date()


def _monthly(start: dt.date, months: range) -> tuple[str, ...]:
    return tuple(add_months(start, k).isoformat() for k in months)
