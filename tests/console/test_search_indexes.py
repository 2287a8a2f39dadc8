"""The console's searches read through indexes (a page of 50 on 1M records must not scan them), and
a store made before those indexes gets them when a writer opens it, its records untouched."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from engine.audit.connect import open_store
from engine.audit.sqlite import BODY_OUTCOME_SQL, SqliteStore
from engine.audit.store import SCHEMA


def plan(db: Path, where: str) -> str:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "EXPLAIN QUERY PLAN SELECT body, hash FROM audit_records"
            f" WHERE {where} ORDER BY received_at DESC, decision_id DESC LIMIT 51"
        ).fetchall()
    return " | ".join(str(r[-1]) for r in rows)


def test_outcome_and_policy_searches_use_their_indexes(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    open_store(f"sqlite:///{db}").close()
    assert "audit_records_outcome" in plan(db, f"{SqliteStore.outcome_sql} = 'DECLINE'")
    assert "audit_records_policy" in plan(db, f"{SqliteStore.policy_sql} = 'consumer_loan'")
    assert "SCAN audit_records" not in plan(db, f"{SqliteStore.outcome_sql} = 'DECLINE'")


def test_a_store_made_before_the_indexes_gets_them_when_a_writer_opens_it(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(SCHEMA.format(blob="BLOB"))
        conn.execute(
            "INSERT INTO audit_records VALUES ('d1', 'c1', 1, 'r1', '2026-01-01T00:00:00.000000+00:00', 'h',"
            ' \'{"outcome":"REFER","policy":{"name":"p"}}\')'
        )
    assert "audit_records_outcome" not in plan(db, f"{BODY_OUTCOME_SQL} = 'REFER'")
    store = open_store(f"sqlite:///{db}")
    assert "audit_records_outcome" in plan(db, f"{SqliteStore.outcome_sql} = 'REFER'")
    assert store.count() == 1
    store.close()
    with sqlite3.connect(db) as conn:
        found = conn.execute(
            f"SELECT decision_id FROM audit_records WHERE {SqliteStore.outcome_sql} = 'REFER'"
        )
        assert found.fetchall() == [("d1",)]
