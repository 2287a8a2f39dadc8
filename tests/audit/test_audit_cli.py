"""`credo audit verify` and `credo audit export` as an auditor runs them: output and exit codes."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from audit_helpers import RecordFactory

from engine.audit import DecisionLog
from engine.audit.sqlite import sqlite_path
from engine.cli import main


def test_verify_says_ok_with_counts(
    store_url: str, make_record: RecordFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    with DecisionLog(store_url) as one, DecisionLog(store_url) as two:
        for _ in range(3):
            one.append(make_record())
        two.append(make_record())
    assert main(["audit", "verify", "--store", store_url]) == 0
    assert capsys.readouterr().out == "OK: 2 chain(s), 4 record(s) verified\n"


def test_verify_names_the_altered_record_and_exits_1(
    sqlite_url: str, make_record: RecordFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    with DecisionLog(sqlite_url) as log:
        records = [log.append(make_record()) for _ in range(5)]
    with sqlite3.connect(sqlite_path(sqlite_url)) as conn:
        conn.execute("UPDATE audit_records SET body = replace(body, 'APPROVE', 'DECLINE') WHERE seq = 2")
    assert main(["audit", "verify", "--store", sqlite_url]) == 1
    out = capsys.readouterr().out
    assert (
        f"FAIL chain {records[0].chain_id}: altered record at seq 2 (decision {records[1].decision_id})"
        in out
    )
    assert out.endswith("1 of 1 chain(s) failed verification\n")


def test_verify_of_a_missing_store_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", "--store", f"sqlite:///{tmp_path / 'nope.db'}"]) == 1
    assert "no audit store" in capsys.readouterr().err
    assert not (tmp_path / "nope.db").exists()


def test_export_jsonl_and_parquet_by_time_range(
    sqlite_url: str, make_record: RecordFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with DecisionLog(sqlite_url) as log:
        records = [log.append(make_record()) for _ in range(5)]
    since, until = records[1].received_at, records[4].received_at
    out = tmp_path / "out.jsonl"
    args = ["audit", "export", "--store", sqlite_url, "--since", since, "--until", until]
    assert main([*args, "--out", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["decision_id"] for line in lines] == [r.decision_id for r in records[1:4]]
    assert {"chain_id", "seq", "prev_hash", "hash"} <= set(lines[0])
    assert "exported 3 record(s)" in capsys.readouterr().err

    parquet = tmp_path / "out.parquet"
    assert main([*args, "--format", "parquet", "--out", str(parquet)]) == 0
    table = pq.read_table(parquet)
    assert table.column("seq").to_pylist() == [2, 3, 4]
    assert table.column("hash").to_pylist() == [r.hash for r in records[1:4]]


def test_retain_then_verify(
    sqlite_url: str, make_record: RecordFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with DecisionLog(sqlite_url) as log:
        records = [log.append(make_record()) for _ in range(5)]
    args = ["--store", sqlite_url]
    assert (
        main(
            [
                "audit",
                "retain",
                *args,
                "--before",
                records[3].received_at,
                "--export",
                str(tmp_path / "old.jsonl"),
            ]
        )
        == 0
    )
    assert main(["audit", "verify", *args]) == 0
    out = capsys.readouterr().out
    assert "removed 3 record(s) from 1 chain(s)" in out
    assert "OK: 1 chain(s), 2 record(s) verified, 1 from a retention checkpoint" in out


def test_anchors_catch_a_consistently_rewritten_chain(
    sqlite_url: str, make_record: RecordFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with DecisionLog(sqlite_url) as log:
        records = [log.append(make_record()) for _ in range(4)]
    assert main(["audit", "anchor", "--store", sqlite_url]) == 0
    anchors = tmp_path / "anchors.jsonl"
    anchors.write_text(capsys.readouterr().out)
    # someone with write access rewrites the last record (its search column too) and recomputes its
    # hash and the head
    forged = replace(records[-1], outcome="DECLINE").seal(records[-1].chain_id, 4, records[-1].prev_hash)
    with sqlite3.connect(sqlite_path(sqlite_url)) as conn:
        conn.execute(
            "UPDATE audit_records SET body = ?, hash = ?, outcome = 'DECLINE' WHERE seq = 4",
            (forged.canonical_body().decode(), forged.hash),
        )
        conn.execute("UPDATE audit_chains SET head_hash = ?", (forged.hash,))
    assert main(["audit", "verify", "--store", sqlite_url]) == 0  # the chain alone looks fine
    capsys.readouterr()
    assert main(["audit", "verify", "--store", sqlite_url, "--anchors", str(anchors)]) == 1
    out = capsys.readouterr().out
    assert (
        f"FAIL anchor chain {records[0].chain_id} seq 4: the stored hash differs from the anchored one" in out
    )


def test_verify_fails_on_a_forged_request_id(
    sqlite_url: str, make_record: RecordFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression (issue 14.3): `UPDATE ... SET request_id='forged'` passed `credo audit verify`."""
    with DecisionLog(sqlite_url) as log:
        records = [log.append(make_record()) for _ in range(3)]
    with sqlite3.connect(sqlite_path(sqlite_url)) as conn:
        conn.execute("UPDATE audit_records SET request_id = 'forged' WHERE seq = 2")
    assert main(["audit", "verify", "--store", sqlite_url]) == 1
    out = capsys.readouterr().out
    assert f"altered record at seq 2 (decision {records[1].decision_id}): stored column(s) request_id" in out
