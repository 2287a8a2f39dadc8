"""The reference monitor: the same policy evaluated the slow, obvious way, as the oracle the engine
is checked against. Each event re-derives the loan from its whole event list (instalments, payments,
missed payments, every measure by filtering history) and evaluates the rule IR in pure Python."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from engine.errors import DUPLICATE_LOAN, OUT_OF_ORDER, UNKNOWN_LOAN, BadEvent
from engine.monitor.engine import Accepted, Alert
from engine.monitor.events import MISSED, Event, parse_event
from engine.monitor.model import MonitoringPolicy
from engine.rules.reference import evaluate

__all__ = ["ReferenceMonitor"]


@dataclass
class _Loan:
    events: list[Event] = field(default_factory=list)
    ticks: list[int] = field(default_factory=list)  # days of portfolio-wide ticks that reached it
    active: set[str] = field(default_factory=set)


class ReferenceMonitor:
    def __init__(self, policy: MonitoringPolicy):
        self.policy = policy
        self.loans: dict[str, _Loan] = {}
        self.closed: set[str] = set()

    def ingest(self, raw: Any) -> Accepted:
        event = parse_event(raw, self.policy.events)
        if event.loan_id == "":
            alerts: list[Alert] = []
            for loan_id, loan in list(self.loans.items()):
                if self._today(loan) < event.day:
                    loan.ticks.append(event.day)
                    alerts.extend(self._evaluate(loan_id, loan, event.day, event.date))
            return Accepted(event, tuple(alerts))
        known = self.loans.get(event.loan_id)
        if event.type == "loan.disbursed":
            if known is not None or event.loan_id in self.closed:
                raise BadEvent("loan_id", "already disbursed", code=DUPLICATE_LOAN)
            known = self.loans[event.loan_id] = _Loan()
        elif known is None:
            raise BadEvent("loan_id", "unknown or closed", code=UNKNOWN_LOAN)
        elif event.day < self._today(known):
            raise BadEvent("date", "out of order", code=OUT_OF_ORDER)
        known.events.append(event)
        alerts = self._evaluate(event.loan_id, known, event.day, event.date)
        if event.type == "loan.closed":
            del self.loans[event.loan_id]
            self.closed.add(event.loan_id)
        return Accepted(event, tuple(alerts))

    @staticmethod
    def _today(loan: _Loan) -> int:
        return max([loan.events[-1].day, *loan.ticks])

    def _evaluate(self, loan_id: str, loan: _Loan, today: int, date: str) -> list[Alert]:
        measures = self.measures(loan, today)
        fact = self.policy.fact(measures)
        holding = {rule.id for rule in self.policy.ruleset.rules if evaluate(rule.condition, fact)}
        order = [rule.id for rule in self.policy.ruleset.rules]
        raised = [code for code in order if code in holding and code not in loan.active]
        loan.active = holding
        category = self.policy.classify(measures["dpd"])
        out = []
        for code in raised:
            rule = self.policy.rules[code]
            out.append(
                Alert(
                    loan_id, code, rule.severity, rule.action, rule.reasons, date, measures["dpd"], category
                )
            )
        return out

    def history(self, loan: _Loan, today: int) -> tuple[list[tuple[str, int, dict[str, Any]]], int]:
        """Every event of the loan up to `today` with the generated payment.missed ones, in time
        order, and the days past due on `today`."""
        dues: list[list[Any]] = []  # [number, due_day, amount, paid]
        paid_total = sum(
            (e.fields["amount"] for e in loan.events if e.type == "payment.received"), Decimal(0)
        )
        out: list[tuple[str, int, dict[str, Any]]] = []
        for position, event in enumerate(loan.events):
            out.append((event.type, event.day, dict(event.fields)))
            if event.type == "instalment.due":
                dues.append([event.fields["number"], event.day, event.fields["amount"], position])
        # an instalment is missed if, at the end of its due day, the payments made so far do not
        # cover it and every earlier one (payments pay the oldest first)
        owed = Decimal(0)
        oldest_unpaid = None
        for number, due_day, amount, _ in dues:
            owed += amount
            paid_by_due = sum(
                (
                    e.fields["amount"]
                    for e in loan.events
                    if e.type == "payment.received" and e.day <= due_day
                ),
                Decimal(0),
            )
            if paid_by_due < owed and due_day < today:
                out.append(
                    (MISSED, due_day + 1, {"number": number, "amount": min(amount, owed - paid_by_due)})
                )
            if oldest_unpaid is None and paid_total < owed and due_day < today:
                oldest_unpaid = due_day
        out.sort(key=lambda item: item[1])
        dpd = today - oldest_unpaid if oldest_unpaid is not None else 0
        return out, dpd

    def measures(self, loan: _Loan, today: int) -> dict[str, Any]:
        history, dpd = self.history(loan, today)
        opened = loan.events[0].day
        values: dict[str, Any] = {"dpd": dpd, "days_on_book": today - opened}
        for measure in self.policy.measures.values():
            name = measure.field or ""
            chosen = [(day, fields) for kind, day, fields in history if kind == measure.event]
            if measure.kind == "first":
                present = [f[name] for _, f in chosen if f.get(name) is not None]
                values[measure.name] = present[0] if present else None
            elif measure.kind == "last":
                present = [f[name] for _, f in chosen if f.get(name) is not None]
                values[measure.name] = present[-1] if present else None
            elif measure.kind == "streak":
                run = 0
                for _, fields in chosen:
                    run = run + 1 if measure.counts(fields) else 0
                values[measure.name] = run
            else:
                kept = [
                    fields
                    for day, fields in chosen
                    if measure.counts(fields)
                    and (measure.within_days is None or day > today - measure.within_days)
                    and (measure.first_days is None or day - opened < measure.first_days)
                ]
                if measure.kind == "count":
                    values[measure.name] = len(kept)
                else:
                    values[measure.name] = sum((f[name] for f in kept if f.get(name) is not None), 0)
        return values
