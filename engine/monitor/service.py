"""The monitoring core every interface calls (gRPC MonitorService, `credo monitor`): a Monitor whose
accepted events and raised alerts are on the audit store's monitor chain before they are returned,
rebuilt from that chain when it starts, and kept level with other writers of the same store."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from engine.audit.monitor_log import MonitorLog, MonitorRecord, MonitorWriter
from engine.audit.store import AuditStore
from engine.errors import BadEvent, MonitorLogMismatch, NotFound
from engine.monitor.engine import Accepted, Alert, Monitor
from engine.monitor.events import parse_event
from engine.monitor.model import SEVERITIES, MonitoringPolicy
from engine.monitor.portfolio import Portfolio, portfolio

__all__ = ["AlertQuery", "MonitorService", "ReplayReport"]


@dataclass(frozen=True)
class AlertQuery:
    """ListAlerts filters: alerts dated on or after `since`, of a severity, a code, a loan."""

    since: str | None = None
    severity: str | None = None
    code: str | None = None
    loan_id: str | None = None
    limit: int = 1000


@dataclass
class ReplayReport:
    loan_id: str
    events: int
    stored: list[tuple[int, str, str]]  # (cause seq, code, date)
    derived: list[tuple[int, str, str]]

    @property
    def match(self) -> bool:
        return self.stored == self.derived


class MonitorService:
    """Thread-safe: one lock serialises ingestion and catching up; reads of the chain need none."""

    def __init__(self, policy: MonitoringPolicy, store: AuditStore):
        self.policy = policy
        self.log = MonitorLog(store)
        self.lock = threading.Lock()
        self.events_by_type: Counter[str] = Counter()
        self.alerts_by_code: Counter[str] = Counter()
        self.monitor = Monitor(policy)
        self.seen = 0
        self._stale = True
        with self.lock:
            self._rebuild()

    def close(self) -> None:
        with self.lock:
            self.monitor.close()

    # ---- the log is the truth ------------------------------------------------------------------
    def _rebuild(self) -> None:
        """Drop the in-memory loans and re-apply every event on the chain, in chain order."""
        self.monitor.close()
        self.monitor = Monitor(self.policy)
        self.seen = 0
        self._catch_up(self.log.records(kind="event"))
        head = self.log.head()
        self.seen = max(self.seen, head[0] if head else 0)
        self._stale = False

    def _catch_up(self, records: Iterable[MonitorRecord]) -> None:
        for record in records:
            if record.kind == "event":
                try:
                    self.monitor.ingest(record.data)
                except BadEvent as error:
                    raise MonitorLogMismatch(
                        f"monitor chain seq {record.seq} is refused by policy "
                        f"{self.policy.name} {self.policy.version}: {error}"
                    ) from error
            self.seen = record.seq

    def refresh(self) -> None:
        """Apply what other writers committed since we last looked."""
        with self.lock:
            if self._stale:
                self._rebuild()
            else:
                self._catch_up(self.log.records(after=self.seen, kind=None))

    def ingest(self, raws: Iterable[Any]) -> list[Accepted | BadEvent]:
        """Check and apply each event; accepted ones and their alerts are committed to the chain
        (one durable transaction for the batch) before this returns. A refused event changes
        nothing and the rest of the batch goes on."""
        with self.lock:
            if self._stale:
                self._rebuild()
            outcomes: list[Accepted | BadEvent] = []
            try:
                raws = list(raws)
                with self.log.write(self.seen) as (writer, newer):
                    self._catch_up(newer)
                    ids = [
                        r["event_id"]
                        for r in raws
                        if isinstance(r, Mapping) and isinstance(r.get("event_id"), str)
                    ]
                    known = writer.find_events(ids) if ids else {}
                    for raw in raws:
                        event_id = raw.get("event_id") if isinstance(raw, Mapping) else None
                        if isinstance(event_id, str) and event_id in known:
                            outcomes.append(self._duplicate(writer, known[event_id]))
                            continue
                        try:
                            event = self.monitor.check(raw)
                        except BadEvent as error:
                            outcomes.append(error)
                            continue
                        accepted = self.monitor.apply(event)
                        cause = writer.append("event", event.loan_id, event.date, dict(event.json))
                        for alert in accepted.alerts:
                            writer.append("alert", alert.loan_id, alert.date, alert.to_json(), cause)
                        outcomes.append(replace(accepted, seq=cause))
                        if event.event_id:
                            known[event.event_id] = cause
                self.seen = writer.seq
            except BaseException:
                self._stale = True  # memory may hold events the store did not commit
                raise
            for outcome in outcomes:
                if isinstance(outcome, Accepted) and not outcome.duplicate:
                    self.events_by_type[outcome.event.type] += 1
                    self.alerts_by_code.update(alert.code for alert in outcome.alerts)
            return outcomes

    def _duplicate(self, writer: MonitorWriter, seq: int) -> Accepted:
        """The stored outcome of an event resent with an event_id already on the chain."""
        record = writer.get(seq)
        event = parse_event(record.data, self.policy.events)
        alerts = tuple(Alert(**r.data) for r in writer.caused_by(seq))
        return Accepted(event, alerts, seq, duplicate=True)

    # ---- reading -------------------------------------------------------------------------------
    def loan(self, loan_id: str) -> dict[str, Any]:
        """The loan's state: dpd, classification, open alerts, measures (last scores among them)."""
        self.refresh()
        with self.lock:
            state = self.monitor.loan(loan_id)
            closed = loan_id in self.monitor.closed
        if state is None:
            raise NotFound(f"loan {loan_id!r} is {'closed' if closed else 'not monitored'}")
        return state

    def alerts(self, query: AlertQuery) -> Iterator[dict[str, Any]]:
        if query.severity is not None and query.severity not in SEVERITIES:
            raise BadEvent("severity", f"must be one of {', '.join(SEVERITIES)}")
        sent = 0
        for record in self.log.records(loan_id=query.loan_id, kind="alert"):
            data = record.data
            if query.since is not None and record.date < query.since:
                continue
            if query.severity is not None and data["severity"] != query.severity:
                continue
            if query.code is not None and data["code"] != query.code:
                continue
            yield {**data, "seq": record.seq, "cause": record.cause}
            sent += 1
            if sent >= query.limit:
                return

    def states(self) -> dict[str, dict[str, Any]]:
        self.refresh()
        with self.lock:
            return self.monitor.states()

    def portfolio(self) -> Portfolio:
        return portfolio(self.policy, (r.data for r in self.log.records(kind="event")))

    def replay(self, loan_id: str) -> ReplayReport:
        """Re-derive a loan's alerts from its events on the chain (with the portfolio-wide ticks
        that reached it) on a fresh engine, and compare them with the alerts stored."""
        events = [r for r in self.log.records(loan_id=loan_id, kind="event")]
        if not events:
            raise NotFound(f"no events of loan {loan_id!r} on the monitor chain")
        first, last = events[0].seq, events[-1].seq
        closed = events[-1].data["type"] == "loan.closed"
        ticks = [
            r for r in self.log.records(after=first, loan_id="", kind="event") if not closed or r.seq < last
        ]
        stream = sorted([*events, *ticks], key=lambda r: r.seq)
        monitor = Monitor(self.policy)
        derived: list[tuple[int, str, str]] = []
        try:
            for record in stream:
                for alert in monitor.ingest(record.data).alerts:
                    derived.append((record.seq, alert.code, alert.date))
        finally:
            monitor.close()
        stored = [
            (r.cause or 0, r.data["code"], r.date) for r in self.log.records(loan_id=loan_id, kind="alert")
        ]
        return ReplayReport(loan_id, len(events), stored, derived)
