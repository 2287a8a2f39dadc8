"""Loan events and alerts on the audit store's monitor chain (SQLite and PostgreSQL): acknowledged
means stored, a restart rebuilds the same loan states from the chain, two writers of one store
stay level, `credo audit verify` covers the chain and names an altered record, replay re-derives."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from engine.audit import open_store
from engine.audit.verify import verify_store
from engine.cli import main
from engine.monitor import BadEvent, Monitor, load_monitoring, load_monitoring_text
from engine.monitor.service import AlertQuery, MonitorService
from engine.monitor.synthetic import generate_book

POLICY_PATH = Path(__file__).resolve().parents[2] / "policies" / "consumer_loan" / "monitoring.yaml"


@pytest.fixture(scope="module")
def policy() -> Any:
    return load_monitoring(POLICY_PATH)


def ingest(policy: Any, url: str, events: list[dict[str, Any]], batch: int = 40) -> dict[str, Any]:
    store = open_store(url)
    service = MonitorService(policy, store)
    try:
        for start in range(0, len(events), batch):
            service.ingest(events[start : start + batch])
        return service.states()
    finally:
        service.close()
        store.close()


def uninterrupted(policy: Any, events: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    monitor = Monitor(policy)
    try:
        alerts = [a.to_json() for e in events for a in monitor.ingest(e).alerts]
        return monitor.states(), alerts
    finally:
        monitor.close()


def test_a_restart_rebuilds_every_open_loan_from_the_chain(policy: Any, store_url: str) -> None:
    book = generate_book(25, seed=5)
    half = len(book.events) // 2
    ingest(policy, store_url, book.events[:half])
    states = ingest(policy, store_url, book.events[half:])  # a new service: rebuilt, then the rest
    want_states, want_alerts = uninterrupted(policy, book.events)
    assert states == want_states and len(states) > 5
    store = open_store(store_url)
    try:
        report = verify_store(store)
        assert report.ok, [c.problem for c in report.chains]
        chain = next(c for c in report.chains if c.chain_id == "monitor")
        service = MonitorService(policy, store)
        try:
            stored = [
                {k: v for k, v in a.items() if k not in ("seq", "cause")}
                for a in service.alerts(AlertQuery(limit=10**6))
            ]
        finally:
            service.close()
    finally:
        store.close()
    assert stored == want_alerts and len(stored) > 5
    assert chain.records == len(book.events) + len(stored)


def test_two_writers_of_one_store_apply_each_others_events(policy: Any, store_url: str) -> None:
    stores = [open_store(store_url), open_store(store_url)]
    first, second = (MonitorService(policy, s) for s in stores)
    try:
        first.ingest(
            [
                {
                    "type": "loan.disbursed",
                    "loan_id": "L1",
                    "date": "2026-01-05",
                    "amount": "900",
                    "term": 6,
                    "bureau_score": 700,
                }
            ]
        )
        [accepted] = second.ingest(
            [
                {
                    "type": "bureau.refresh",
                    "loan_id": "L1",
                    "date": "2026-02-01",
                    "score": 600,
                    "utilisation": "0.2",
                    "inquiries": 0,
                }
            ]
        )
        assert not isinstance(accepted, BadEvent)
        assert [a.code for a in accepted.alerts] == ["SCORE_DROP"]
        assert first.loan("L1")["open_alerts"] == ["SCORE_DROP"]  # caught up from the chain
        assert verify_store(stores[0]).ok
    finally:
        first.close()
        second.close()
        for s in stores:
            s.close()


def test_refused_events_are_not_logged(policy: Any, sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    service = MonitorService(policy, store)
    try:
        outcomes = service.ingest(
            [
                {"type": "payment.received", "loan_id": "L404", "date": "2026-01-05", "amount": "1"},
                {
                    "type": "loan.disbursed",
                    "loan_id": "L1",
                    "date": "2026-01-05",
                    "amount": "900",
                    "term": 6,
                    "bureau_score": "high",
                },
            ]
        )
        assert [o.code for o in outcomes if isinstance(o, BadEvent)] == ["UNKNOWN_LOAN", "BAD_EVENT"]
        assert list(service.log.records()) == []
    finally:
        service.close()
        store.close()


def test_credo_audit_verify_names_an_altered_monitor_record(
    policy: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    ingest(policy, url, generate_book(5, seed=2).events[:60])
    assert main(["audit", "verify", "--store", url]) == 0
    assert "OK: 1 chain(s), 60" in capsys.readouterr().out  # no decisions: the monitor chain alone
    with sqlite3.connect(tmp_path / "audit.db") as conn:
        conn.execute(
            "UPDATE monitor_records SET body = replace(body, '\"term\":', '\"term\": ') WHERE seq = 7"
        )
    assert main(["audit", "verify", "--store", url]) == 1
    assert "FAIL chain monitor: altered record at seq 7" in capsys.readouterr().out


def test_replay_rederives_a_loans_alerts_and_reports_a_changed_policy(policy: Any, sqlite_url: str) -> None:
    book = generate_book(40, seed=9)
    ingest(policy, sqlite_url, book.events)
    loan = next(loan for loan in book.defaults)
    store = open_store(sqlite_url)
    try:
        service = MonitorService(policy, store)
        report = service.replay(loan)
        service.close()
        assert report.match and len(report.stored) >= 4
        stricter = load_monitoring_text(
            POLICY_PATH.read_text().replace("when: dpd >= 30", "when: dpd >= 45"), "stricter.yaml"
        )
        other = MonitorService(stricter, store)
        changed = other.replay(loan)
        other.close()
        assert not changed.match
        # the same codes, DPD_30 later than stored
        assert sorted(c for _, c, _ in changed.derived) == sorted(c for _, c, _ in report.stored)
    finally:
        store.close()


def test_an_event_resent_with_its_event_id_is_applied_once(policy: Any, store_url: str) -> None:
    store = open_store(store_url)
    service = MonitorService(policy, store)
    try:
        disbursed = {
            "event_id": "e1",
            "type": "loan.disbursed",
            "loan_id": "L1",
            "date": "2026-01-05",
            "amount": "900",
            "term": 6,
            "bureau_score": 700,
        }
        refresh = {
            "event_id": "e2",
            "type": "bureau.refresh",
            "loan_id": "L1",
            "date": "2026-02-01",
            "score": 600,
            "utilisation": "0.2",
            "inquiries": 0,
        }
        first = service.ingest([disbursed, refresh, refresh])
        again = service.ingest([refresh])
        assert [(o.seq, o.duplicate, [a.code for a in o.alerts]) for o in [*first, *again]] == [
            (1, False, []),
            (2, False, ["SCORE_DROP"]),
            (2, True, ["SCORE_DROP"]),
            (2, True, ["SCORE_DROP"]),
        ]
        assert service.loan("L1")["events"] == 2
        assert [r.seq for r in service.log.records()] == [1, 2, 3]
        assert verify_store(store).ok
    finally:
        service.close()
        store.close()
