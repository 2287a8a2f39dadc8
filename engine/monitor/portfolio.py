"""Portfolio views over a stream of loan events: the five-category classification of open loans,
and the roll-rate matrix (how loans move between categories from one month end to the next)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.monitor.engine import Monitor, ReferenceMatcher
from engine.monitor.events import BadEvent, Event
from engine.monitor.model import CATEGORIES, MonitoringPolicy

__all__ = ["Portfolio", "portfolio"]


@dataclass
class Portfolio:
    """`counts`: open loans per category at the end; `rolls[(from, to)]`: loans in `from` at one
    month end and `to` at the next; `months`: month ends observed."""

    counts: dict[str, int] = field(default_factory=dict)
    rolls: Counter[tuple[str, str]] = field(default_factory=Counter)
    months: int = 0

    def roll_rates(self) -> dict[str, dict[str, float]]:
        """Each row (category at a month end) as shares of where those loans stood a month later."""
        out: dict[str, dict[str, float]] = {}
        for before in CATEGORIES:
            total = sum(self.rolls[(before, after)] for after in CATEGORIES)
            if total:
                out[before] = {after: self.rolls[(before, after)] / total for after in CATEGORIES}
        return out


def _month_end(day: int) -> int:
    date = dt.date.fromordinal(day)
    return dt.date(date.year, date.month, 1).toordinal() - 1


def portfolio(policy: MonitoringPolicy, events: Iterable[Event | Mapping[str, Any]]) -> Portfolio:
    """Replay `events` (checked Events, or raw ones; refused ones are skipped) in order and measure."""
    monitor = Monitor(policy, ReferenceMatcher(policy))  # classification needs no alert rules
    result = Portfolio()
    previous: dict[str, str] = {}
    month_end: int | None = None
    for item in events:
        raw = item.json if isinstance(item, Event) else item
        try:
            event = monitor.check(raw)
        except BadEvent:
            continue
        boundary = _month_end(event.day)
        if month_end is None:
            month_end = boundary
        elif boundary > month_end:
            month_end = boundary
            now = {
                loan_id: policy.classify(state.dpd_on(max(state.today, month_end)))
                for loan_id, state in monitor.loans.items()
                if state.opened <= month_end
            }
            for loan_id, category in now.items():
                if loan_id in previous:
                    result.rolls[(previous[loan_id], category)] += 1
            previous = now
            result.months += 1
        monitor.apply(event)
    counts = Counter(policy.classify(state.dpd) for state in monitor.loans.values())
    result.counts = {category: counts.get(category, 0) for category in CATEGORIES}
    return result
