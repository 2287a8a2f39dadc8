"""The monitoring engine on the shipped consumer_loan policy: bad events are refused with the field
named and change nothing while the stream goes on; loan sessions are freed on close and never run
out; time comes only from the events."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from engine.monitor import BadEvent, Monitor, load_monitoring
from engine.rules.sessions import SHARD_SESSIONS, DurableSessions

POLICY = Path(__file__).resolve().parents[2] / "policies" / "consumer_loan" / "monitoring.yaml"


@pytest.fixture(scope="module")
def policy() -> Any:
    return load_monitoring(POLICY)


@pytest.fixture
def monitor(policy: Any) -> Any:
    m = Monitor(policy)
    yield m
    m.close()


def disbursed(loan: str = "L1", date: str = "2026-01-05", **extra: Any) -> dict[str, Any]:
    return {
        "type": "loan.disbursed",
        "loan_id": loan,
        "date": date,
        "amount": "12000",
        "term": 12,
        "bureau_score": 700,
        **extra,
    }


BAD = [
    ({"type": "salary.paid", "loan_id": "L1", "date": "2026-02-01"}, "UNKNOWN_EVENT", "type"),
    (
        {"type": "payment.missed", "loan_id": "L1", "date": "2026-02-01", "number": 1, "amount": "1"},
        "UNKNOWN_EVENT",
        "type",
    ),
    (
        {"type": "payment.received", "loan_id": "L1", "date": "2026-02-01", "amount": 10.5},
        "BAD_EVENT",
        "amount",
    ),
    (
        {"type": "payment.received", "loan_id": "L1", "date": "2026-02-01", "amount": "ten"},
        "BAD_EVENT",
        "amount",
    ),
    (
        {"type": "payment.received", "loan_id": "L1", "date": "2026-02-01", "amount": "NaN"},
        "BAD_EVENT",
        "amount",
    ),
    (
        {
            "type": "bureau.refresh",
            "loan_id": "L1",
            "date": "2026-02-01",
            "score": "7x",
            "utilisation": "0.1",
            "inquiries": 0,
        },
        "BAD_EVENT",
        "score",
    ),
    (
        {"type": "bureau.refresh", "loan_id": "L1", "date": "2026-02-01", "score": 700, "inquiries": 0},
        "MISSING_FIELD",
        "utilisation",
    ),
    ({"type": "contact.change", "loan_id": "L1", "date": "2026-02-01", "kind": "email"}, "BAD_EVENT", "kind"),
    ({"type": "clock.tick", "loan_id": "L1", "date": "2026-02-01", "hour": 3}, "UNKNOWN_FIELD", "hour"),
    (
        {"type": "payment.received", "loan_id": "L9", "date": "2026-02-01", "amount": "1"},
        "UNKNOWN_LOAN",
        "loan_id",
    ),
    (
        {"type": "payment.received", "loan_id": "L1", "date": "2026-01-02", "amount": "1"},
        "OUT_OF_ORDER",
        "date",
    ),
    ({"type": "payment.received", "loan_id": "L1", "date": "2026-13-01", "amount": "1"}, "BAD_EVENT", "date"),
    (disbursed(), "DUPLICATE_LOAN", "loan_id"),
    (["not", "an", "object"], "BAD_EVENT", "event"),
]


@pytest.mark.parametrize(("raw", "code", "field"), BAD, ids=[f"{c}-{f}" for _, c, f in BAD])
def test_a_bad_event_names_its_field_and_changes_nothing(
    monitor: Any, raw: Any, code: str, field: str
) -> None:
    monitor.ingest(disbursed())
    monitor.ingest(
        {"type": "instalment.due", "loan_id": "L1", "date": "2026-01-10", "number": 1, "amount": "1000"}
    )
    before = copy.deepcopy(monitor.states())
    with pytest.raises(BadEvent) as caught:
        monitor.ingest(raw)
    assert (caught.value.code, caught.value.field) == (code, field)
    assert str(caught.value).startswith(f"{code}: {field}: ")
    assert monitor.states() == before


def test_the_rest_of_the_stream_continues_after_a_bad_event(monitor: Any) -> None:
    outcomes = monitor.ingest_all(
        [
            disbursed(),
            {
                "type": "bureau.refresh",
                "loan_id": "L1",
                "date": "2026-02-01",
                "score": "bad",
                "utilisation": "0.1",
                "inquiries": 0,
            },
            {
                "type": "bureau.refresh",
                "loan_id": "L1",
                "date": "2026-02-02",
                "score": 630,
                "utilisation": "0.1",
                "inquiries": 0,
            },
        ]
    )
    assert isinstance(outcomes[1], BadEvent)
    assert [a.code for a in outcomes[2].alerts] == ["SCORE_DROP"]
    assert monitor.loan("L1")["events"] == 2


def test_an_alert_is_raised_when_its_rule_turns_true_not_on_every_event(monitor: Any) -> None:
    monitor.ingest(disbursed())
    monitor.ingest(
        {"type": "instalment.due", "loan_id": "L1", "date": "2026-02-05", "number": 1, "amount": "900"}
    )
    ticks = [
        monitor.ingest({"type": "clock.tick", "loan_id": "L1", "date": f"2026-03-{d:02d}"})
        for d in (5, 6, 7, 8)
    ]
    assert [[a.code for a in t.alerts] for t in ticks] == [[], [], ["DPD_30"], []]
    alert = ticks[2].alerts[0]
    assert (alert.date, alert.dpd, alert.classification, alert.severity) == (
        "2026-03-07",
        30,
        "special_mention",
        "warning",
    )
    assert alert.reasons["zh"] == "逾期30天及以上"
    assert monitor.loan("L1")["open_alerts"] == ["DPD_30"]


def test_a_portfolio_tick_moves_every_open_loan_and_reports_their_alerts(monitor: Any) -> None:
    for loan in ("A", "B"):
        monitor.ingest(disbursed(loan))
        monitor.ingest(
            {"type": "instalment.due", "loan_id": loan, "date": "2026-02-05", "number": 1, "amount": "9"}
        )
    accepted = monitor.ingest({"type": "clock.tick", "date": "2026-05-06"})
    assert sorted((a.loan_id, a.code) for a in accepted.alerts) == [
        ("A", "DPD_30"),
        ("A", "DPD_60"),
        ("A", "DPD_90"),
        ("B", "DPD_30"),
        ("B", "DPD_60"),
        ("B", "DPD_90"),
    ]
    assert monitor.loan("A")["classification"] == "special_mention"  # 90 days: substandard starts at 91


def test_closing_a_loan_deletes_its_state_and_session(monitor: Any) -> None:
    monitor.ingest(disbursed())
    sessions = monitor.matcher
    assert isinstance(sessions, DurableSessions) and len(sessions) == 1
    monitor.ingest({"type": "loan.closed", "loan_id": "L1", "date": "2026-06-01"})
    assert len(sessions) == 0 and monitor.loan("L1") is None
    with pytest.raises(BadEvent) as caught:
        monitor.ingest({"type": "payment.received", "loan_id": "L1", "date": "2026-06-02", "amount": "1"})
    assert "closed" in str(caught.value)


def test_more_open_loans_than_one_durable_ruleset_holds_regression_1025th_session_memory_error(
    policy: Any,
) -> None:
    """durable_rules refuses the 1025th live session of a ruleset with MemoryError; shards take the rest."""
    monitor = Monitor(policy)
    try:
        count = SHARD_SESSIONS + 100
        for i in range(count):
            monitor.ingest(disbursed(f"L{i}", bureau_score=700))
        raised = monitor.ingest(
            {
                "type": "bureau.refresh",
                "loan_id": f"L{count - 1}",
                "date": "2026-02-01",
                "score": 600,
                "utilisation": "0.1",
                "inquiries": 0,
            }
        ).alerts
        assert [a.code for a in raised] == ["SCORE_DROP"]
        for i in range(count):
            monitor.ingest({"type": "loan.closed", "loan_id": f"L{i}", "date": "2026-03-01"})
        assert len(monitor.matcher) == 0
    finally:
        monitor.close()


def test_two_monitors_of_one_policy_keep_their_loans_apart(policy: Any) -> None:
    first, second = Monitor(policy), Monitor(policy)
    try:
        first.ingest(disbursed())
        second.ingest(disbursed())
        refresh = {
            "type": "bureau.refresh",
            "loan_id": "L1",
            "date": "2026-02-01",
            "score": 600,
            "utilisation": "0.1",
            "inquiries": 0,
        }
        assert [a.code for a in first.ingest(refresh).alerts] == ["SCORE_DROP"]
        assert [a.code for a in second.ingest(refresh).alerts] == ["SCORE_DROP"]
    finally:
        first.close()
        second.close()


def test_seventy_alert_rules_true_on_one_fact_regression_durable_crash_past_64_activations() -> None:
    """durable_rules crashes past 64 activations on one fact; a loan's rules are chunked like a
    decision's, each chunk its own session state, all deleted when the loan closes."""
    from engine.monitor import load_monitoring_text

    rules = "".join(
        f"  - {{code: R{i:02d}, when: dpd >= {i}, severity: watch, action: a, reason: {{en: x, zh: x}}}}\n"
        for i in range(70)
    )
    events = "events:\n  loan.disbursed: {bureau_score: integer}\n"
    policy = load_monitoring_text(f"monitoring: wide\n{events}rules:\n{rules}", "wide.yaml")
    monitor = Monitor(policy)
    try:
        assert [a.code for a in monitor.ingest(disbursed()).alerts] == ["R00"]  # dpd >= 0 from the start
        monitor.ingest(
            {"type": "instalment.due", "loan_id": "L1", "date": "2026-01-06", "number": 1, "amount": "9"}
        )
        raised = monitor.ingest({"type": "clock.tick", "loan_id": "L1", "date": "2026-04-06"}).alerts
        assert [a.code for a in raised] == [f"R{i:02d}" for i in range(1, 70)]
        assert len(monitor.loan("L1")["open_alerts"]) == 70
        monitor.ingest({"type": "loan.closed", "loan_id": "L1", "date": "2026-04-07"})
        assert len(monitor.matcher) == 0
    finally:
        monitor.close()
