"""The monitoring engine: checks each event against the policy and the loan's history, updates the
loan's state, evaluates the alert rules in the loan's own durable_rules session (sid = loan id) and
returns the alerts the event raised. A loan's state and session are deleted when it closes.

One Monitor is used by one thread at a time (the caller serialises, as the gRPC servicer and the CLI
do); the rule engine underneath is entered under its process-wide lock regardless."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.errors import DUPLICATE_LOAN, OUT_OF_ORDER, UNKNOWN_LOAN, BadEvent
from engine.monitor.events import Event, parse_event
from engine.monitor.model import MonitoringPolicy
from engine.monitor.state import LoanState
from engine.rules.reference import evaluate
from engine.rules.sessions import DurableSessions

__all__ = ["Accepted", "Alert", "Matcher", "Monitor", "ReferenceMatcher"]


@dataclass(frozen=True)
class Alert:
    """An alert raised on a loan by one event: its rule turned true on `date`."""

    loan_id: str
    code: str
    severity: str
    action: str
    reasons: Mapping[str, str]
    date: str
    dpd: int
    classification: str

    def to_json(self) -> dict[str, Any]:
        return {
            "loan_id": self.loan_id,
            "code": self.code,
            "severity": self.severity,
            "action": self.action,
            "reasons": dict(self.reasons),
            "date": self.date,
            "dpd": self.dpd,
            "classification": self.classification,
        }


@dataclass(frozen=True)
class Accepted:
    """An accepted event and the alerts it raised; `seq` is its record on the monitor chain (0 when
    not logged), `duplicate` when its event_id was already there (then nothing was applied again)."""

    event: Event
    alerts: tuple[Alert, ...] = field(default_factory=tuple)
    seq: int = 0
    duplicate: bool = False


class Matcher(Protocol):
    """Decides which alert rules hold for a loan's fact; keeps per-loan state until close()."""

    def fire(self, loan_id: str, fact: Mapping[str, Any]) -> list[str]: ...
    def close(self, loan_id: str) -> None: ...


class ReferenceMatcher:
    """The rule IR evaluated in pure Python: stateless, used where durable_rules is not wanted."""

    def __init__(self, policy: MonitoringPolicy):
        self.rules = policy.ruleset.rules

    def fire(self, loan_id: str, fact: Mapping[str, Any]) -> list[str]:
        return [rule.id for rule in self.rules if evaluate(rule.condition, fact)]

    def close(self, loan_id: str) -> None:
        return None


class Monitor:
    """Loans under one monitoring policy. `ingest` takes a raw event and returns what it raised."""

    def __init__(self, policy: MonitoringPolicy, matcher: Matcher | None = None):
        self.policy = policy
        self.matcher: Matcher = matcher if matcher is not None else DurableSessions(policy.ruleset)
        self.loans: dict[str, LoanState] = {}
        self.closed: set[str] = set()

    def check(self, raw: Any) -> Event:
        """The event, checked against the policy and the loan's history; BadEvent changes nothing."""
        event = parse_event(raw, self.policy.events)
        if event.loan_id == "":  # a portfolio-wide clock.tick
            return event
        loan = self.loans.get(event.loan_id)
        if event.type == "loan.disbursed":
            if loan is not None or event.loan_id in self.closed:
                raise BadEvent(
                    "loan_id", f"loan {event.loan_id!r} was already disbursed", code=DUPLICATE_LOAN
                )
            return event
        if loan is None:
            state = "closed" if event.loan_id in self.closed else "unknown (no loan.disbursed yet)"
            raise BadEvent("loan_id", f"loan {event.loan_id!r} is {state}", code=UNKNOWN_LOAN)
        if event.day < loan.today:
            raise BadEvent(
                "date",
                f"{event.date} is before the last event of loan {event.loan_id!r} ({_iso(loan.today)})",
                code=OUT_OF_ORDER,
            )
        return event

    def ingest(self, raw: Any) -> Accepted:
        """Check and apply one event; BadEvent (naming the field) if it is refused."""
        return self.apply(self.check(raw))

    def apply(self, event: Event) -> Accepted:
        """Apply an event `check` accepted (or one read back from the log)."""
        if event.loan_id == "":
            alerts: list[Alert] = []
            for loan in list(self.loans.values()):
                if loan.today < event.day:
                    alerts.extend(self._step(loan, event))
            return Accepted(event, tuple(alerts))
        if event.type == "loan.disbursed":
            loan = self.loans[event.loan_id] = LoanState(self.policy, event.loan_id, event.day)
        else:
            loan = self.loans[event.loan_id]
        alerts = self._step(loan, event)
        if event.type == "loan.closed":
            del self.loans[event.loan_id]
            self.closed.add(event.loan_id)
            self.matcher.close(event.loan_id)
        return Accepted(event, tuple(alerts))

    def _step(self, loan: LoanState, event: Event) -> list[Alert]:
        loan.advance(event.day)
        if event.loan_id:
            loan.apply(event)
        measures = loan.measures()
        holding = self.matcher.fire(loan.loan_id, self.policy.fact(measures))
        if not holding and not loan.active:
            return []
        raised = [code for code in holding if code not in loan.active]
        loan.active = set(holding)
        if not raised:
            return []
        dpd = measures["dpd"]
        category = self.policy.classify(dpd)
        return [self._alert(loan.loan_id, code, event.date, dpd, category) for code in raised]

    def _alert(self, loan_id: str, code: str, date: str, dpd: int, category: str) -> Alert:
        rule = self.policy.rules[code]
        return Alert(loan_id, code, rule.severity, rule.action, rule.reasons, date, dpd, category)

    def ingest_all(self, raws: Iterable[Any]) -> list[Accepted | BadEvent]:
        """Each event's outcome in order; a bad one is reported and the rest continue."""
        out: list[Accepted | BadEvent] = []
        for raw in raws:
            try:
                out.append(self.ingest(raw))
            except BadEvent as error:
                out.append(error)
        return out

    def loan(self, loan_id: str) -> dict[str, Any] | None:
        state = self.loans.get(loan_id)
        return state.snapshot() if state is not None else None

    def states(self) -> dict[str, dict[str, Any]]:
        return {loan_id: state.snapshot() for loan_id, state in sorted(self.loans.items())}

    def close(self) -> None:
        """Free every open loan's session (the process goes on; the loans are not closed)."""
        for loan_id in list(self.loans):
            self.matcher.close(loan_id)
        self.loans.clear()


def _iso(day: int) -> str:
    return dt.date.fromordinal(day).isoformat()
