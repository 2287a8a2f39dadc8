"""A SQLite store's search columns (outcome, policy_name beside the body) and their indexes: the
writer's values are the body's own, a value it leaves out is read from the body, and a store made by
the code before them (its DDL and inserts, kept here as they were) reads and upgrades cleanly.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from audit_helpers import RecordFactory

from engine.audit.connect import open_store
from engine.audit.record import GENESIS_HASH, DecisionRecord
from engine.audit.search import DecisionQuery, outcome_days, page
from engine.audit.sqlite import SqliteStore
from engine.audit.store import SCHEMA
from engine.audit.verify import verify_store

# main d68a4aa's SQLite indexes and record insert, verbatim: what made the stores in use
OLD_INDEXES = """
CREATE INDEX IF NOT EXISTS audit_records_outcome
    ON audit_records (json_extract(body, '$.outcome'), received_at, decision_id);
CREATE INDEX IF NOT EXISTS audit_records_policy
    ON audit_records (json_extract(body, '$.policy.name'), received_at, decision_id);
"""
OLD_INSERT = (
    "INSERT INTO audit_records (decision_id, chain_id, seq, request_id, received_at, hash, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def chained(
    records: list[DecisionRecord], chain: str, after: DecisionRecord | None = None
) -> list[DecisionRecord]:
    seq, prev = (after.seq, after.hash) if after else (0, GENESIS_HASH)
    sealed = []
    for record in records:
        seq += 1
        record = record.seal(chain, seq, prev)
        prev = record.hash
        sealed.append(record)
    return sealed


def old_insert(db: Path, records: list[DecisionRecord]) -> None:
    """Records written as the old code wrote them (no search columns), chain head included."""
    with sqlite3.connect(db) as conn:
        conn.executemany(
            OLD_INSERT,
            [
                (
                    r.decision_id,
                    r.chain_id,
                    r.seq,
                    r.request_id,
                    r.received_at,
                    r.hash,
                    r.canonical_body().decode(),
                )
                for r in records
            ],
        )
        last = records[-1]
        conn.execute(
            "INSERT INTO audit_chains (chain_id, head_seq, head_hash) VALUES (?, ?, ?) ON CONFLICT (chain_id)"
            " DO UPDATE SET head_seq = excluded.head_seq, head_hash = excluded.head_hash",
            (last.chain_id, last.seq, last.hash),
        )


def old_columns(r: DecisionRecord) -> tuple[object, ...]:
    return (r.decision_id, r.chain_id, r.seq, r.request_id, r.received_at, r.hash)


def searched(store: SqliteStore) -> dict[str, list[str]]:
    """request_ids found by outcome and by policy."""
    out = {}
    for outcome in ("APPROVE", "DECLINE"):
        out[outcome] = sorted(r.request_id for r in page(store, DecisionQuery(outcome=outcome), 500).records)
    for policy in ("consumer_loan", "政策"):
        out[policy] = sorted(r.request_id for r in page(store, DecisionQuery(policy=policy), 500).records)
    return out


def plan(db: Path, where: str) -> str:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(f"EXPLAIN QUERY PLAN SELECT body FROM audit_records WHERE {where}").fetchall()
    return " | ".join(str(r[-1]) for r in rows)


def test_the_writers_columns_are_the_bodys_values_or_left_to_the_body(
    tmp_path: Path, make_record: RecordFactory
) -> None:
    db = tmp_path / "audit.db"
    store = open_store(f"sqlite:///{db}")
    assert isinstance(store, SqliteStore)
    odd = make_record(outcome="DECLINE").changed({"policy": {"name": "政策", "version": "1", "sha256": "a"}})
    quoted = make_record().changed({"policy": {"name": 'a "quoted"\\ name', "version": "1", "sha256": "a"}})
    records = chained([make_record(), make_record(outcome="DECLINE"), odd, quoted], "chain-a")
    store.append(records)
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT request_id, outcome, policy_name, json_extract(body, '$.outcome'),"
            " json_extract(body, '$.policy.name') FROM audit_records ORDER BY seq"
        ).fetchall()
    assert [row[1:3] for row in rows] == [
        ("APPROVE", "consumer_loan"),
        ("DECLINE", "consumer_loan"),
        ("DECLINE", None),  # not ASCII: the index reads the body's
        ("APPROVE", 'a "quoted"\\ name'),
    ]
    for _, outcome, policy, body_outcome, body_policy in rows:
        assert (outcome or body_outcome, policy or body_policy) == (body_outcome, body_policy)
    ids = [r.request_id for r in records]
    assert searched(store) == {
        "APPROVE": sorted([ids[0], ids[3]]),
        "DECLINE": sorted(ids[1:3]),
        "consumer_loan": ids[:2],
        "政策": [ids[2]],
    }
    assert "audit_records_outcome" in plan(db, f"{SqliteStore.outcome_sql} = 'DECLINE'")
    assert "audit_records_policy" in plan(db, f"{SqliteStore.policy_sql} = '政策'")
    store.close()


def test_a_store_made_by_the_old_code_reads_upgrades_and_keeps_its_chain(
    tmp_path: Path, make_record: RecordFactory
) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(SCHEMA.format(blob="BLOB") + OLD_INDEXES)
    old = chained([make_record(outcome="DECLINE" if n % 2 else "APPROVE") for n in range(6)], "chain-old")
    old_insert(db, old)
    expected = {
        "APPROVE": sorted(r.request_id for r in old[::2]),
        "DECLINE": sorted(r.request_id for r in old[1::2]),
        "consumer_loan": sorted(r.request_id for r in old),
        "政策": [],
    }

    reader = open_store(f"sqlite:///{db}", create=False, readonly=True)  # no upgrade: the old SQL
    assert isinstance(reader, SqliteStore)
    assert searched(reader) == expected
    reader.close()
    with sqlite3.connect(db) as conn:
        assert "outcome" not in {row[1] for row in conn.execute("PRAGMA table_info(audit_records)")}

    writer = open_store(f"sqlite:///{db}")  # a writer upgrades it
    assert isinstance(writer, SqliteStore)
    assert searched(writer) == expected
    new = chained([make_record(outcome="DECLINE")], "chain-old", after=old[-1])
    writer.append(new)
    expected["DECLINE"] = sorted([*expected["DECLINE"], new[0].request_id])
    expected["consumer_loan"] = sorted([*expected["consumer_loan"], new[0].request_id])
    assert searched(writer) == expected
    assert verify_store(writer).ok
    assert "audit_records_outcome" in plan(db, f"{SqliteStore.outcome_sql} = 'DECLINE'")
    assert outcome_days(writer, None, None, ("APPROVE", "DECLINE"))[old[0].received_at[:10]] == {
        "APPROVE": 3,
        "DECLINE": 4,
    }
    writer.close()

    # an older credo still writing to the upgraded store: its rows are found through their bodies
    with sqlite3.connect(db) as conn:
        conn.executescript(SCHEMA.format(blob="BLOB") + OLD_INDEXES)  # what it runs when it opens
    older = chained([make_record(outcome="DECLINE")], "chain-old", after=new[0])
    old_insert(db, older)
    again = open_store(f"sqlite:///{db}")
    assert isinstance(again, SqliteStore)
    assert older[0].request_id in searched(again)["DECLINE"]
    assert verify_store(again).ok
    with sqlite3.connect(db) as conn:  # opened again: nothing left to change
        made = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'").fetchall())
    assert "coalesce(outcome" in made["audit_records_outcome"]
    again.close()


def test_verify_names_a_search_column_that_disagrees_with_the_hashed_record(
    tmp_path: Path, make_record: RecordFactory
) -> None:
    """The columns are outside the hash: an edit that would hide a decline from the console's search
    fails verify; an emptied column (what an older writer leaves) passes, read through the body."""
    db = tmp_path / "audit.db"
    store = open_store(f"sqlite:///{db}")
    records = chained([make_record(outcome="DECLINE"), make_record()], "chain-a")
    store.append(records)
    assert verify_store(store).ok
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit_records SET outcome = NULL, policy_name = NULL WHERE seq = 2")
    assert verify_store(store).ok
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit_records SET outcome = 'APPROVE' WHERE seq = 1")
    report = verify_store(store)
    assert not report.ok
    assert "stored column(s) outcome disagree with the hashed record" in report.chains[0].problem
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit_records SET outcome = 'DECLINE', policy_name = 'other' WHERE seq = 1")
    assert "column(s) policy_name disagree" in verify_store(store).chains[0].problem
    store.close()
