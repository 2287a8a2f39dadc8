"""The gRPC MonitorService servicer: decode, delegate to engine.monitor.service.MonitorService,
encode. Built by each worker next to the DecisionService when the policy folder holds a monitoring
policy and the server has an audit store (monitoring without a log could not rebuild its loans)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import grpc
from credo.v1 import monitor_pb2 as pb
from credo.v1 import monitor_pb2_grpc as pb_grpc

from engine.audit import open_store
from engine.errors import BadEvent, PolicySetInvalid
from engine.monitor import load_monitoring, monitoring_files
from engine.monitor.engine import Accepted, Alert
from engine.monitor.model import CATEGORY_ZH
from engine.monitor.service import AlertQuery, MonitorService
from engine.server import metrics
from engine.server.errors import abort, map_error

__all__ = ["SERVICE_NAME", "MonitorServicer", "build_monitor", "register_monitor"]

log = logging.getLogger("credo.monitor")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["MonitorService"].full_name
_ENVELOPE = ("type", "loan_id", "date", "event_id")
MAX_ALERTS = 10_000


def build_monitor(policies: str, store: str | None) -> MonitorService | None:
    """The monitoring core for the monitoring policy under `policies`, on `store`; None when the
    folder has none or the server has no store (monitoring must be able to rebuild its loans from
    the log). Raises PolicyError for a broken policy, PolicySetInvalid for two of them."""
    found = monitoring_files([policies])
    if not found:
        return None
    if len(found) > 1:
        names = ", ".join(str(f) for f in found)
        raise PolicySetInvalid([f"one monitoring policy per server, found {len(found)}: {names}"])
    if not store:
        log.warning(
            "monitoring policy found but no --store: MonitorService is not served",
            extra={"policy": str(found[0])},
        )
        return None
    policy = load_monitoring(found[0])
    audit = open_store(store)
    try:
        return MonitorService(policy, audit)
    except BaseException:
        audit.close()
        raise


def register_monitor(server: grpc.Server, monitor: MonitorService) -> MonitorServicer:
    servicer = MonitorServicer(monitor)
    pb_grpc.add_MonitorServiceServicer_to_server(servicer, server)
    return servicer


def event_from_pb(request: pb.LoanEvent) -> dict[str, Any]:
    raw: dict[str, Any] = {"type": request.type, "date": request.date}
    if request.loan_id:
        raw["loan_id"] = request.loan_id
    if request.event_id:
        raw["event_id"] = request.event_id
    for name in request.fields:
        if name in _ENVELOPE:
            raise BadEvent(name, f"{name} is an envelope field of LoanEvent, not an entry of fields")
    raw.update(request.fields)
    return raw


def alert_to_pb(alert: Alert | dict[str, Any], seq: int = 0) -> pb.Alert:
    data = alert.to_json() if isinstance(alert, Alert) else alert
    return pb.Alert(
        loan_id=data["loan_id"],
        code=data["code"],
        severity=data["severity"],
        action=data["action"],
        reasons=data["reasons"],
        date=data["date"],
        dpd=data["dpd"],
        classification=data["classification"],
        seq=seq,
    )


def ack_to_pb(index: int, outcome: Accepted | BadEvent) -> pb.EventAck:
    if isinstance(outcome, BadEvent):
        rejection = pb.Rejection(code=outcome.code, field=outcome.field, message=outcome.message[:1000])
        return pb.EventAck(index=index, accepted=False, rejection=rejection)
    return pb.EventAck(
        index=index,
        accepted=True,
        seq=outcome.seq,
        duplicate=outcome.duplicate,
        alerts=[alert_to_pb(a) for a in outcome.alerts],
    )


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | Decimal | str) else repr(value)


class MonitorServicer(pb_grpc.MonitorServiceServicer):
    def __init__(self, service: MonitorService):
        self.service = service

    def close(self) -> None:
        self.service.close()
        self.service.log.store.close()

    def IngestEvents(
        self, request_iterator: Iterator[pb.LoanEvent], context: grpc.ServicerContext
    ) -> Iterator[pb.EventAck]:
        for index, request in enumerate(request_iterator):
            try:
                outcome: Accepted | BadEvent = self.service.ingest([event_from_pb(request)])[0]
            except BadEvent as error:
                outcome = error
            except Exception as error:  # store down (UNAVAILABLE) or a bug (INTERNAL, logged)
                mapped = map_error(error, {"rpc": "IngestEvents", "index": index})
                metrics.REJECTED.labels(code=mapped.code.name).inc()
                abort(context, mapped)
            if isinstance(outcome, BadEvent):
                metrics.MONITOR_REFUSED.labels(code=outcome.code).inc()
            elif not outcome.duplicate:
                metrics.MONITOR_EVENTS.labels(type=outcome.event.type).inc()
                for alert in outcome.alerts:
                    metrics.MONITOR_ALERTS.labels(code=alert.code).inc()
            yield ack_to_pb(index, outcome)

    def GetLoan(self, request: pb.GetLoanRequest, context: grpc.ServicerContext) -> pb.LoanState:
        try:
            if not request.loan_id or len(request.loan_id) > 128:
                raise BadEvent("loan_id", "must be a loan id of 1 to 128 characters")
            state = self.service.loan(request.loan_id)
        except Exception as error:
            abort(context, map_error(error, {"rpc": "GetLoan"}))
        return pb.LoanState(
            loan_id=state["loan_id"],
            dpd=state["dpd"],
            classification=state["classification"],
            classification_zh=CATEGORY_ZH[state["classification"]],
            open_alerts=state["open_alerts"],
            measures={k: _text(v) for k, v in state["measures"].items()},
            opened=state["opened"],
            today=state["today"],
            events=state["events"],
        )

    def ListAlerts(
        self, request: pb.ListAlertsRequest, context: grpc.ServicerContext
    ) -> pb.ListAlertsResponse:
        try:
            if request.since:
                try:
                    dt.date.fromisoformat(request.since)
                except ValueError:
                    raise BadEvent("since", "must be a date YYYY-MM-DD") from None
            if request.limit < 0 or request.limit > MAX_ALERTS:
                raise BadEvent("limit", f"must be from 0 (default 1000) to {MAX_ALERTS}")
            query = AlertQuery(
                since=request.since or None,
                severity=request.severity or None,
                code=request.code or None,
                loan_id=request.loan_id or None,
                limit=request.limit or 1000,
            )
            alerts = [alert_to_pb(a, a["seq"]) for a in self.service.alerts(query)]
        except Exception as error:
            abort(context, map_error(error, {"rpc": "ListAlerts"}))
        return pb.ListAlertsResponse(alerts=alerts)
