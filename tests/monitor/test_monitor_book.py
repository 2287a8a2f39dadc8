"""The synthetic loan book: every planted deterioration pattern raises its alert and nothing else
does (precision and recall 1.0 over (loan, alert code) pairs), and alerts come before defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.monitor import Monitor, load_monitoring
from engine.monitor.synthetic import DEFAULT_CODES, PATTERNS, generate_book, score_alerts

POLICY = Path(__file__).resolve().parents[2] / "policies" / "consumer_loan" / "monitoring.yaml"


@pytest.mark.parametrize("seed", [7, 8])
def test_every_planted_pattern_raises_its_alert_and_nothing_else_does(seed: int) -> None:
    book = generate_book(400, seed=seed)
    monitor = Monitor(load_monitoring(POLICY))
    try:
        alerts = [alert.to_json() for event in book.events for alert in monitor.ingest(event).alerts]
    finally:
        monitor.close()
    scores = score_alerts(book, alerts)
    assert (scores.false_alerts, scores.missed_alerts) == ([], [])
    assert (scores.precision, scores.recall) == (1.0, 1.0)
    # the book is not trivially clean: every pattern is planted and loans default
    planted = {code for codes in book.truth.values() for code in codes}
    assert planted == set(PATTERNS) | DEFAULT_CODES
    assert len(book.defaults) >= 10
    # an alert precedes every default, by weeks at least (the first missed instalment is 90 days before)
    assert len(scores.lead_days) == len(book.defaults) and min(scores.lead_days) >= 60


def test_the_same_seed_gives_the_same_book_and_another_seed_another() -> None:
    assert generate_book(50, seed=3).events == generate_book(50, seed=3).events
    assert generate_book(50, seed=3).events != generate_book(50, seed=4).events


def test_defaults_follow_the_patterns() -> None:
    book = generate_book(2000, seed=11)
    risky = {loan for loan, codes in book.truth.items() if codes - DEFAULT_CODES}
    rate_risky = sum(loan in book.defaults for loan in risky) / len(risky)
    rate_clean = sum(loan in book.defaults for loan in book.truth if loan not in risky) / (
        len(book.truth) - len(risky)
    )
    assert rate_risky > 5 * rate_clean
