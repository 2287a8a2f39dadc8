"""The decision log on both stores (the same suite runs on SQLite and a real PostgreSQL): append and
lookup, idempotency, group commit from many threads, tamper detection by verify, and retention."""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from audit_helpers import START, RecordFactory, execute

from engine.audit import DecisionLog, blob, open_store, verify_store
from engine.audit.canonical import canonical_json
from engine.audit.export import remove_older_than
from engine.audit.record import DecisionRecord
from engine.audit.sqlite import sqlite_path
from engine.errors import IdempotencyConflict


def fill(url: str, make_record: RecordFactory, n: int = 8) -> list[DecisionRecord]:
    with DecisionLog(url) as log:
        return [log.append(make_record()) for _ in range(n)]


def problems(url: str) -> list[str]:
    store = open_store(url)
    try:
        return [c.problem for c in verify_store(store).chains if not c.ok]
    finally:
        store.close()


def test_appended_records_are_chained_and_found(store_url: str, make_record: RecordFactory) -> None:
    policy = blob("policy", "consumer_loan", b"policy: consumer_loan\n")
    with DecisionLog(store_url) as log:
        first = log.append(make_record("a"), [policy])
        second = log.append(make_record("b"), [policy])
        assert (first.seq, second.seq) == (1, 2)
        assert first.chain_id == second.chain_id == log.chain_id
        assert second.prev_hash == first.hash
        assert log.get(first.decision_id) == first
        assert log.store.get_by_request("b") == second
        assert log.store.get_blob(policy.sha256) == policy
        assert log.store.missing_blobs([policy.sha256, "f" * 64]) == {"f" * 64}
    assert problems(store_url) == []


def test_record_keeps_what_replay_needs(store_url: str, make_record: RecordFactory) -> None:
    with DecisionLog(store_url) as log:
        stored = log.append(make_record("a", age=41))
        again = log.store.get(stored.decision_id)
    assert again is not None
    assert again.input["applicant.age"] == 41
    assert again.input["applicant.income_monthly"] == "12000.00"
    assert again.model_outputs["pd"] == "0.031234"  # exact text, never a float
    assert again.stages[0]["millis"] == "0.125"  # the trace is the record's stages
    assert "trace" not in again.decision
    assert again.policy == {"name": "consumer_loan", "version": "1.0.0", "sha256": "a" * 64}
    assert again.engine_version


def test_same_request_twice_returns_the_stored_decision(store_url: str, make_record: RecordFactory) -> None:
    with DecisionLog(store_url) as log:
        first = log.append(make_record("same"))
        retry = make_record("same")
        assert log.lookup("same", retry.request_fingerprint) == first
        assert log.append(retry) == first  # a concurrent retry that raced past lookup
        assert log.store.count() == 1


def test_same_request_id_with_another_payload_is_a_conflict(
    store_url: str, make_record: RecordFactory
) -> None:
    with DecisionLog(store_url) as log:
        log.append(make_record("same", age=30))
        other = make_record("same", age=31)
        with pytest.raises(IdempotencyConflict) as info:
            log.lookup("same", other.request_fingerprint)
        assert info.value.grpc_status == "ALREADY_EXISTS"
        with pytest.raises(IdempotencyConflict):
            log.append(other)
        assert log.store.count() == 1
        assert log.append(make_record("next")).seq == 2  # the chain goes on without a gap
    assert problems(store_url) == []


def test_group_commit_from_16_threads_loses_nothing(store_url: str, make_record: RecordFactory) -> None:
    per_thread = 40
    records = [make_record(f"t{t}-{i}") for t in range(16) for i in range(per_thread)]
    acked: list[DecisionRecord] = []
    lock = threading.Lock()

    with DecisionLog(store_url) as log:

        def work(t: int) -> None:
            for record in records[t * per_thread : (t + 1) * per_thread]:
                stored = log.append(record)
                with lock:
                    acked.append(stored)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert log.stats.batches < len(records)  # records really shared transactions

    store = open_store(store_url)
    try:
        assert store.count() == len(records) == len(acked)
        assert sorted(r.seq for r in acked) == list(range(1, len(records) + 1))
        for record in acked[:: len(acked) // 20]:
            assert store.get(record.decision_id) == record
        assert verify_store(store).ok
    finally:
        store.close()


def test_two_writers_keep_two_verifiable_chains(store_url: str, make_record: RecordFactory) -> None:
    with DecisionLog(store_url) as one, DecisionLog(store_url) as two:
        for _ in range(3):
            one.append(make_record())
            two.append(make_record())
    store = open_store(store_url)
    try:
        report = verify_store(store)
        assert report.ok and len(report.chains) == 2 and report.records == 6
    finally:
        store.close()


def test_sqlite_writers_take_turns_on_the_lock_file(sqlite_url: str, make_record: RecordFactory) -> None:
    """Each worker process writes its own chain into one SQLite file. A writer that finds another
    mid-commit waits on the store's lock file, woken when the other is done, instead of polling
    SQLite with sleeps of up to 100 ms (which starved a worker for 100-500 ms under load)."""
    with DecisionLog(sqlite_url) as log:
        log.append(make_record())
        with open(sqlite_path(sqlite_url).with_name("audit.db.open-lock"), "a") as other:
            fcntl.flock(other, fcntl.LOCK_EX)  # another process's writer holds its turn
            ticket = log.submit(make_record())
            waiting = threading.Thread(target=ticket.result)
            waiting.start()
            waiting.join(0.5)
            assert waiting.is_alive() and not ticket.done()  # nothing written around the holder
            fcntl.flock(other, fcntl.LOCK_UN)
            waiting.join(30)
        assert ticket.done() and ticket.result().seq == 2
    assert problems(sqlite_url) == []


def test_one_changed_byte_is_named(store_url: str, make_record: RecordFactory) -> None:
    records = fill(store_url, make_record)
    target = records[2]
    row_body = target.canonical_body().decode().replace('"12000.00"', '"12000.01"', 1)
    execute(
        store_url, "UPDATE audit_records SET body = ? WHERE decision_id = ?", (row_body, target.decision_id)
    )
    assert problems(store_url) == [
        f"altered record at seq 3 (decision {target.decision_id}): hash does not match its content"
    ]


def test_a_deleted_record_is_named(store_url: str, make_record: RecordFactory) -> None:
    records = fill(store_url, make_record)
    execute(store_url, "DELETE FROM audit_records WHERE decision_id = ?", (records[3].decision_id,))
    assert problems(store_url) == [
        f"missing record(s) seq 4 before seq 5 (decision {records[4].decision_id})"
    ]


def test_a_deleted_last_record_is_named(store_url: str, make_record: RecordFactory) -> None:
    records = fill(store_url, make_record)
    execute(store_url, "DELETE FROM audit_records WHERE decision_id = ?", (records[-1].decision_id,))
    assert problems(store_url) == ["missing records seq 8..8 at the end of the chain (head is seq 8)"]


def test_two_swapped_records_are_named(store_url: str, make_record: RecordFactory) -> None:
    records = fill(store_url, make_record)
    a, b = records[4], records[5]
    execute(store_url, "UPDATE audit_records SET seq = -1 WHERE decision_id = ?", (a.decision_id,))
    execute(store_url, "UPDATE audit_records SET seq = 5 WHERE decision_id = ?", (b.decision_id,))
    execute(store_url, "UPDATE audit_records SET seq = 6 WHERE decision_id = ?", (a.decision_id,))
    assert problems(store_url) == [
        f"reordered record at position seq 5: it holds seq 6 (decision {b.decision_id})"
    ]


def test_swapped_bodies_are_named(store_url: str, make_record: RecordFactory) -> None:
    records = fill(store_url, make_record)
    a, b = records[1], records[2]
    for mine, theirs in ((a, b), (b, a)):
        execute(
            store_url,
            "UPDATE audit_records SET body = ?, hash = ? WHERE decision_id = ?",
            (theirs.canonical_body().decode(), theirs.hash, mine.decision_id),
        )
    assert problems(store_url)[0].startswith("reordered record at position seq 2: it holds seq 3")


def test_retention_removes_old_records_and_the_rest_verifies(
    store_url: str, make_record: RecordFactory, tmp_path: Path
) -> None:
    records = fill(store_url, make_record, n=10)
    cutoff = dt.datetime.fromisoformat(records[6].received_at)
    store = open_store(store_url)
    try:
        result = remove_older_than(store, cutoff, tmp_path / "removed.jsonl")
        assert result.removed == 6
        assert store.count() == 4
        assert store.get(records[0].decision_id) is None
        report = verify_store(store)
        assert report.ok and report.records == 4 and report.chains[0].checkpoint_seq == 6
        exported = [json.loads(line) for line in (tmp_path / "removed.jsonl").read_text().splitlines()]
        assert [e["seq"] for e in exported] == [1, 2, 3, 4, 5, 6]
        assert [DecisionRecord.from_dict(e).computed_hash() for e in exported] == [
            r.hash for r in records[:6]
        ]
    finally:
        store.close()
    # the log goes on after retention, and removing everything still verifies
    with DecisionLog(store_url, chain_id=records[0].chain_id) as log:
        assert log.append(make_record()).seq == 11
    store = open_store(store_url)
    try:
        remove_older_than(store, START + dt.timedelta(days=365), tmp_path / "removed.jsonl")
        report = verify_store(store)
        assert report.ok and report.records == 0
    finally:
        store.close()


def test_records_are_read_by_time_range(store_url: str, make_record: RecordFactory) -> None:
    records = fill(store_url, make_record, n=6)
    store = open_store(store_url)
    try:
        since = dt.datetime.fromisoformat(records[1].received_at)
        until = dt.datetime.fromisoformat(records[4].received_at)
        got = list(store.iter_records(since, until))
        assert [r.decision_id for r in got] == [r.decision_id for r in records[1:4]]
        assert len(list(store.iter_records(batch=2))) == 6  # type: ignore[call-arg]
    finally:
        store.close()


@pytest.mark.parametrize(
    ("column", "forged"),
    [
        ("request_id", "'forged'"),
        ("received_at", "'2020-01-01T00:00:00.000000+00:00'"),
        ("decision_id", "'00000000-0000-7000-8000-00000000f0f0'"),
    ],
)
def test_a_forged_identifying_column_fails_verify(
    store_url: str, make_record: RecordFactory, column: str, forged: str
) -> None:
    """Regression (issue 14.3): a forged request_id or received_at passed verify, after which a retry
    of the original request got a second decision and the record dropped out of export --since."""
    records = fill(store_url, make_record)
    target = records[3]
    execute(store_url, f"UPDATE audit_records SET {column} = {forged} WHERE seq = 4")
    found = problems(store_url)
    assert len(found) == 1
    assert found[0].startswith("altered record at seq 4")
    assert column in found[0]
    assert target.decision_id in found[0] or column == "decision_id"


def test_a_record_moved_to_another_chain_fails_verify(store_url: str, make_record: RecordFactory) -> None:
    records = fill(store_url, make_record)
    execute(store_url, "UPDATE audit_records SET chain_id = 'elsewhere' WHERE seq = 4")
    found = problems(store_url)
    assert f"missing record(s) seq 4 before seq 5 (decision {records[4].decision_id})" in found
    assert any("stored column(s) chain_id" in p for p in found)


def test_an_altered_archived_file_fails_verify(store_url: str, make_record: RecordFactory) -> None:
    """Regression (issue 14.3): verify did not look at the archived policy and model files at all."""
    policy = blob("policy", "policies/p/policy.yaml", b"name: p\n")
    model = blob("model", "models/m/1/model.onnx", b"\x08\x01onnx")
    index = {"policies/p/policy.yaml": policy.sha256, "models/m/1/model.onnx": model.sha256}
    with DecisionLog(store_url) as log:
        log.append(make_record(archive=index), [policy, model])
    store = open_store(store_url)
    try:
        report = verify_store(store)
        assert report.ok and report.files == 2
    finally:
        store.close()
    execute(store_url, "UPDATE audit_blobs SET data = ? WHERE sha256 = ?", (b"\x08\x02onnx", model.sha256))
    execute(store_url, "DELETE FROM audit_blobs WHERE sha256 = ?", (policy.sha256,))
    store = open_store(store_url)
    try:
        report = verify_store(store)
    finally:
        store.close()
    assert not report.ok
    assert report.file_problems == [
        f"altered archived file models/m/1/model.onnx (sha256 {model.sha256}): its bytes hash otherwise",
        f"missing archived file policies/p/policy.yaml of decision {report_decision(store_url)}"
        f" (sha256 {policy.sha256})",
    ]


def report_decision(url: str) -> str:
    store = open_store(url)
    try:
        return next(iter(store.iter_records())).decision_id
    finally:
        store.close()


def test_a_sealed_record_is_its_copy_with_chain_fields_and_the_hash_verify_recomputes(
    make_record: RecordFactory,
) -> None:
    """seal() copies the record without __init__: the copy must equal the dataclass it stands for,
    leave the record it came from unsealed, and store the very bytes its hash covers."""
    record = make_record()
    sealed = record.seal("chain-a", 7, "ab" * 32)
    expected = replace(record, chain_id="chain-a", seq=7, prev_hash="ab" * 32)
    assert sealed == replace(expected, hash=expected.computed_hash())
    assert sealed.hash == sealed.computed_hash()
    assert sealed.canonical_body() == canonical_json(sealed.body())
    assert (record.chain_id, record.seq, record.hash) == ("", 0, "")
    resealed = sealed.seal("chain-a", 8, sealed.hash)  # a sealed record's kept bytes are not reused
    assert resealed.canonical_body() == canonical_json(resealed.body()) != sealed.canonical_body()
