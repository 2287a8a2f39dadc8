"""MonitorService through the real server (`credo serve --store sqlite:///...`): loan events streamed
over gRPC are acknowledged with their alerts; after kill -9 of every process mid-stream each
acknowledged event and alert is in the store, the restarted server rebuilds the loans from the log
and, once the client resends what was not acknowledged, equals an uninterrupted run; the chain verifies."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import grpc
from e2e_harness import POLICIES, ROOT, Server, kill_9_all, serve

from engine.audit import open_store
from engine.audit.monitor_log import MonitorLog
from engine.monitor import Monitor, load_monitoring
from engine.monitor.synthetic import generate_book

# isort: split
from credo.v1 import monitor_pb2 as mpb
from credo.v1 import monitor_pb2_grpc as mpb_grpc

POLICY = load_monitoring(POLICIES / "consumer_loan" / "monitoring.yaml")
ENVELOPE = ("type", "loan_id", "date", "event_id")


def to_pb(event: dict[str, Any]) -> mpb.LoanEvent:
    return mpb.LoanEvent(
        event_id=event.get("event_id", ""),
        type=event["type"],
        loan_id=event.get("loan_id", ""),
        date=event["date"],
        fields={k: str(v) for k, v in event.items() if k not in ENVELOPE},
    )


class Ingest:
    """One IngestEvents stream in a thread, keeping every ack it received."""

    def __init__(self, server: Server, events: list[dict[str, Any]]):
        self.stub = mpb_grpc.MonitorServiceStub(grpc.insecure_channel(server.target))
        self.events = events
        self.acks: list[mpb.EventAck] = []
        self.error: grpc.StatusCode | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for ack in self.stub.IngestEvents((to_pb(e) for e in self.events), timeout=300):
                self.acks.append(ack)
        except grpc.RpcError as err:
            self.error = err.code()

    def wait(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert predicate(), f"timed out waiting for {what}: {len(self.acks)} acks, error {self.error}"


def uninterrupted(events: list[dict[str, Any]]) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    monitor = Monitor(POLICY)
    try:
        alerts = []
        for event in events:
            try:
                alerts += [(a.loan_id, a.code, a.date) for a in monitor.ingest(event).alerts]
            except Exception:
                continue
        return monitor.states(), alerts
    finally:
        monitor.close()


def test_kill_9_mid_stream_loses_no_acknowledged_event_and_the_rebuilt_loans_equal_an_uninterrupted_run(
    tmp_path: Path,
) -> None:
    book = generate_book(10, seed=26)  # two of its loans default
    events = [{"event_id": f"ev-{i}", **event} for i, event in enumerate(book.events)]
    bad = {
        "event_id": "ev-bad",
        "type": "payment.received",
        "loan_id": events[0]["loan_id"],
        "date": events[0]["date"],
        "amount": "a lot",
    }
    events.insert(50, bad)
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    with serve(tmp_path, policies=POLICIES, workers=2, extra=["--store", url]) as server:
        first = Ingest(server, events)
        first.wait(lambda: len(first.acks) >= 300, 120, "acks before the kill")
        kill_9_all(server)
        first.thread.join(timeout=30)
    acks = list(first.acks)
    assert 300 <= len(acks) < len(events), "the kill must land mid-stream"
    assert [a.index for a in acks] == list(range(len(acks)))
    refused = acks[50]
    assert (refused.accepted, refused.rejection.code, refused.rejection.field) == (
        False,
        "BAD_EVENT",
        "amount",
    )
    assert all(a.accepted for i, a in enumerate(acks) if i != 50)

    store = open_store(url, create=False)
    try:
        log = MonitorLog(store)
        stored = {r.event_id: r for r in log.records(kind="event")}
        alerts = {(r.cause, r.data["code"]) for r in log.records(kind="alert")}
    finally:
        store.close()
    for index, ack in enumerate(acks):
        if ack.accepted:
            record = stored.get(events[index]["event_id"])
            assert record is not None and record.seq == ack.seq, f"acknowledged event {index} is not stored"
            for alert in ack.alerts:
                assert (ack.seq, alert.code) in alerts, (
                    f"acknowledged alert {alert.code} of event {index} lost"
                )
    assert "ev-bad" not in stored

    # restart on the crashed store; the client resends from its first unacknowledged event
    with serve(tmp_path, policies=POLICIES, workers=2, extra=["--store", url]) as again:
        rest = Ingest(again, events[len(acks) :])
        rest.thread.join(timeout=300)
        assert rest.error is None and len(rest.acks) == len(events) - len(acks)
        stub = mpb_grpc.MonitorServiceStub(again.channel)
        want_states, want_alerts = uninterrupted(events)
        for loan_id, want in want_states.items():
            got = stub.GetLoan(mpb.GetLoanRequest(loan_id=loan_id), timeout=30)
            assert (got.dpd, got.classification, list(got.open_alerts), got.events, got.today) == (
                want["dpd"],
                want["classification"],
                want["open_alerts"],
                want["events"],
                want["today"],
            ), loan_id
            assert dict(got.measures) == {k: "" if v is None else str(v) for k, v in want["measures"].items()}
        listed = stub.ListAlerts(mpb.ListAlertsRequest(limit=10000), timeout=30).alerts
        assert [(a.loan_id, a.code, a.date) for a in listed] == want_alerts
        assert any(a.code == "DPD_90" for a in listed)
    out = subprocess.run(
        [sys.executable, "-m", "engine", "audit", "verify", "--store", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and out.stdout.startswith("OK"), out.stdout + out.stderr
