"""One loan's monitoring state, kept incrementally: its instalments and payments (hence days past
due and the generated payment.missed events), each measure's running value over its window, and
the alert rules currently true (an alert is raised when its rule turns true)."""

from __future__ import annotations

import datetime as dt
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from engine.monitor.events import MISSED, Event
from engine.monitor.model import Measure, MonitoringPolicy

__all__ = ["Instalment", "LoanState"]


@dataclass
class Instalment:
    number: int
    due_day: int
    amount: Decimal
    paid: Decimal = Decimal(0)
    missed: bool = False

    @property
    def open(self) -> bool:
        return self.paid < self.amount


@dataclass
class _Running:
    """A measure's running value: a total (count/sum), a window of (day, value), or a last value."""

    total: Any = None
    window: deque[tuple[int, Any]] = field(default_factory=deque)


class LoanState:
    """The incremental state of one open loan under one monitoring policy."""

    def __init__(self, policy: MonitoringPolicy, loan_id: str, opened: int):
        self.policy = policy
        self.loan_id = loan_id
        self.opened = opened
        self.today = opened
        self.events = 0  # accepted events of this loan
        self.instalments: deque[Instalment] = deque()  # open ones, oldest first
        self.credit = Decimal(0)  # paid beyond what is due, used by the next instalments
        self.active: set[str] = set()
        self._by_event: dict[str, list[Measure]] = {}
        self._running: dict[str, _Running] = {}
        for measure in policy.measures.values():
            self._by_event.setdefault(measure.event, []).append(measure)
            self._running[measure.name] = _Running(0 if measure.kind in ("count", "sum", "streak") else None)
        # (name, running value, window days or None) in policy order: measures() runs on every event
        self._plan = [(m.name, self._running[m.name], m.within_days) for m in policy.measures.values()]

    # ---- time and money ------------------------------------------------------------------------
    def advance(self, day: int) -> None:
        """Move the loan's clock to `day`: instalments left unpaid past their due day become missed
        (a payment.missed event dated the day after), and windows drop what fell out of them."""
        for instalment in self.instalments:
            if instalment.due_day >= day:
                break
            if not instalment.missed:
                instalment.missed = True
                unpaid = instalment.amount - instalment.paid
                self._observe(MISSED, instalment.due_day + 1, {"number": instalment.number, "amount": unpaid})
        self.today = day

    def apply(self, event: Event) -> None:
        """Take one checked event of this loan (already advanced to its day)."""
        self.events += 1
        if event.type == "instalment.due":
            instalment = Instalment(event.fields["number"], event.day, event.fields["amount"])
            used = min(self.credit, instalment.amount)
            instalment.paid, self.credit = used, self.credit - used
            if instalment.open:
                self.instalments.append(instalment)
        elif event.type == "payment.received":
            self._pay(event.fields["amount"])
        self._observe(event.type, event.day, event.fields)

    def _pay(self, amount: Decimal) -> None:
        while amount > 0 and self.instalments:
            oldest = self.instalments[0]
            used = min(amount, oldest.amount - oldest.paid)
            oldest.paid += used
            amount -= used
            if not oldest.open:
                self.instalments.popleft()
        self.credit += amount

    @property
    def dpd(self) -> int:
        """Days past due: since the day after the oldest unpaid instalment fell due (0 if none)."""
        return self.dpd_on(self.today)

    def dpd_on(self, day: int) -> int:
        """Days past due on `day` (not before today) if nothing is paid in between."""
        if self.instalments and self.instalments[0].due_day < day:
            return day - self.instalments[0].due_day
        return 0

    # ---- measures ------------------------------------------------------------------------------
    def _observe(self, kind: str, day: int, fields: Any) -> None:
        for measure in self._by_event.get(kind, ()):
            running = self._running[measure.name]
            if measure.kind == "first":
                if running.total is None:  # the first event that carries the field
                    running.total = fields.get(measure.field)
                continue
            if measure.kind == "last":
                running.total = fields.get(measure.field, running.total)
                continue
            if measure.kind == "streak":
                running.total = running.total + 1 if measure.counts(fields) else 0
                continue
            if not measure.counts(fields):
                continue
            value = 1 if measure.kind == "count" else fields.get(measure.field)
            if value is None:
                continue
            if measure.first_days is not None and day - self.opened >= measure.first_days:
                continue
            if measure.within_days is not None:
                running.window.append((day, value))
            running.total += value

    def measures(self) -> dict[str, Any]:
        """Every measure's value now, with dpd and days_on_book."""
        today = self.today
        values: dict[str, Any] = {"dpd": self.dpd_on(today), "days_on_book": today - self.opened}
        for name, running, within in self._plan:
            if within is not None and running.window:
                window, horizon = running.window, today - within
                while window and window[0][0] <= horizon:
                    running.total -= window.popleft()[1]
            values[name] = running.total
        return values

    def snapshot(self) -> dict[str, Any]:
        """What GetLoan shows and what a rebuilt state must equal."""
        measures = self.measures()
        return {
            "loan_id": self.loan_id,
            "opened": dt.date.fromordinal(self.opened).isoformat(),
            "today": dt.date.fromordinal(self.today).isoformat(),
            "events": self.events,
            "dpd": measures["dpd"],
            "classification": self.policy.classify(measures["dpd"]),
            "open_alerts": sorted(self.active),
            "measures": measures,
        }
