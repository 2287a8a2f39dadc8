"""The console's searches on both stores: newest first, by outcome, policy and time window, and a
page cursor that continues exactly where the page before ended (no record twice, none skipped)."""

from __future__ import annotations

import datetime as dt

from audit_helpers import START, RecordFactory

from engine.audit.connect import open_store
from engine.audit.record import GENESIS_HASH
from engine.audit.search import DecisionQuery, latest_scores, outcome_days, page
from engine.audit.store import SqlStore


def test_pages_filter_and_continue_on_both_stores(store_url: str, make_record: RecordFactory) -> None:
    store = open_store(store_url)
    assert isinstance(store, SqlStore)
    prev, records = GENESIS_HASH, []
    for n in range(25):
        record = make_record(outcome="DECLINE" if n % 3 == 0 else "APPROVE").seal("chain-a", n + 1, prev)
        prev = record.hash
        records.append(record)
    store.append(records)
    newest = [r.decision_id for r in reversed(records)]

    seen: list[str] = []
    query = DecisionQuery()
    while True:
        found = page(store, query, size=10)
        seen += [r.decision_id for r in found.records]
        if found.next_before is None:
            break
        query = DecisionQuery(before=found.next_before)
    assert seen == newest

    declined = page(store, DecisionQuery(outcome="DECLINE"), size=50).records
    assert [r.decision_id for r in declined] == [r.decision_id for r in reversed(records[::3])]
    assert page(store, DecisionQuery(policy="german_credit")).records == []
    assert len(page(store, DecisionQuery(policy="consumer_loan")).records) == 25
    window = DecisionQuery(since=START + dt.timedelta(seconds=5), until=START + dt.timedelta(seconds=8))
    assert [r.decision_id for r in page(store, window).records] == newest[-8:-5]
    day = START.date().isoformat()
    outcomes = ("APPROVE", "DECLINE", "REFER")
    assert outcome_days(store, None, None, outcomes) == {day: {"APPROVE": 16, "DECLINE": 9}}
    sample = latest_scores(store, None, None, 3)
    assert [s.points for s in sample] == [702, 702, 702]
    assert [bool(s.reasons) for s in sample] == [r.outcome == "DECLINE" for r in reversed(records[-3:])]
    assert sample[0].reasons == [] or sample[0].reasons[0]["code"] == "AGE_MIN"
    store.close()
