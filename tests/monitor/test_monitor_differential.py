"""The engine (incremental state, rules on durable_rules sessions) against the reference monitor
(everything re-derived from the whole history, rules in pure Python) on 500 random event streams:
the same alerts for every event, the same refusals, the same loan states at the end."""

from __future__ import annotations

import random
from typing import Any

import pytest
from monitor_streams import random_stream

from engine.monitor import BadEvent, Monitor, ReferenceMonitor, load_monitoring_text
from engine.monitor.engine import Accepted

POLICY = """\
monitoring: differential
events:
  loan.disbursed: {bureau_score: integer}
  bureau.refresh: {score: integer, utilisation: decimal, inquiries: integer}
  income.update: {monthly_income: decimal}
  contact.change: {kind: {enum: [phone, address, employer]}}
measures:
  missed_90d: {count: payment.missed, within_days: 90}
  missed_ever: {count: payment.missed}
  missed_amount_60d: {sum: payment.missed.amount, within_days: 60}
  origin_score: {first: loan.disbursed.bureau_score}
  bureau_score: {last: bureau.refresh.score}
  high_util_run: {streak: bureau.refresh, where: "utilisation > 0.9"}
  early_inquiries: {sum: bureau.refresh.inquiries, first_days: 30}
  paid_45d: {sum: payment.received.amount, within_days: 45}
  employer_changes: {count: contact.change, where: "kind == 'employer'", within_days: 120}
  income: {last: income.update.monthly_income}
  first_income: {first: income.update.monthly_income}
rules:
  - {code: MISSED, when: missed_90d >= 2, severity: warning, <<R>>}
  - {code: SCORE_DROP, when: origin_score - bureau_score >= 60, severity: warning, <<R>>}
  - {code: UTIL, when: high_util_run >= 3, severity: watch, <<R>>}
  - {code: SEEKING, when: early_inquiries >= 4, severity: watch, <<R>>}
  - {code: DPD_30, when: dpd >= 30, severity: warning, <<R>>}
  - {code: DPD_60, when: dpd >= 60 and days_on_book > 60, severity: action, <<R>>}
  - {code: ARREARS, when: missed_amount_60d > 800 or missed_ever >= 4, severity: action, <<R>>}
  - {code: PAYING, when: paid_45d >= 900 and dpd == 0, severity: watch, <<R>>}
  - {code: JOB, when: employer_changes >= 2 and not income >= first_income, severity: watch, <<R>>}
""".replace("<<R>>", "action: a, reason: {en: x, zh: x}")
STREAMS = 500


def outcome(monitor: Any, raw: dict[str, Any]) -> tuple[Any, ...]:
    try:
        accepted: Accepted = monitor.ingest(raw)
    except BadEvent as error:
        return ("refused", error.code, error.field)
    return ("ok", [(a.loan_id, a.code, a.date, a.dpd, a.classification) for a in accepted.alerts])


@pytest.fixture(scope="module")
def policy() -> Any:
    return load_monitoring_text(POLICY, "differential.yaml")


def test_engine_and_reference_agree_on_500_random_streams(policy: Any) -> None:
    raised = refused = 0
    for seed in range(STREAMS):
        stream = random_stream(random.Random(seed))
        engine, reference = Monitor(policy), ReferenceMonitor(policy)
        try:
            for i, raw in enumerate(stream):
                got, want = outcome(engine, raw), outcome(reference, raw)
                assert got == want, f"seed {seed}, event {i}: {raw}"
                if got[0] == "ok":
                    raised += len(got[1])
                else:
                    refused += 1
            assert set(engine.loans) == set(reference.loans), f"seed {seed}"
            for loan_id, state in engine.loans.items():
                loan = reference.loans[loan_id]
                today = reference._today(loan)
                assert state.today == today, f"seed {seed}, {loan_id}"
                assert state.measures() == reference.measures(loan, today), f"seed {seed}, {loan_id}"
                assert state.active == loan.active, f"seed {seed}, {loan_id}"
        finally:
            engine.close()
    # the streams exercise the rules, not only the refusals
    assert raised > STREAMS and refused > STREAMS
