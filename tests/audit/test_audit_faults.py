"""Faults the log must survive: store down or disk full (UNAVAILABLE, then recovery with an intact
chain), kill -9 of a writer (every acknowledged record is stored), missing archived files."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from audit_helpers import PostgresServer, RecordFactory, find_pg_bindir

from engine.audit import (
    DecisionLog,
    archive_files,
    decision_archive,
    open_store,
    restore_archive,
    verify_store,
)
from engine.errors import ArchiveMissing, StoreUnavailable


def verified_count(url: str) -> int:
    store = open_store(url)
    try:
        report = verify_store(store)
        assert report.ok, [c.problem for c in report.chains]
        return report.records
    finally:
        store.close()


def test_disk_full_is_unavailable_and_the_log_recovers(sqlite_url: str, make_record: RecordFactory) -> None:
    log = DecisionLog(sqlite_url)
    try:
        acked = [log.append(make_record())]
        conn = log.store._write  # type: ignore[attr-defined]  # the file cannot grow: SQLITE_FULL
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 1}")
        with pytest.raises(StoreUnavailable) as info:
            for _ in range(50):
                acked.append(log.append(make_record()))
        assert info.value.grpc_status == "UNAVAILABLE"
        assert "full" in str(info.value)
        conn.execute("PRAGMA max_page_count = 1073741823")
        acked.append(log.append(make_record()))
        assert [r.seq for r in acked] == list(range(1, len(acked) + 1))
    finally:
        log.close()
    assert verified_count(sqlite_url) == len(acked)


def test_a_failed_flush_is_never_acknowledged(
    sqlite_url: str, make_record: RecordFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's write-ahead log is flushed (fdatasync) after each commit, outside the store's write
    lock. A flush that fails fails its callers (UNAVAILABLE) instead of acknowledging what a crash
    could take back; the caller's retry gets the very record, once it is on disk."""
    flushed: list[str] = []
    disk_fails = False
    fdatasync = os.fdatasync

    def flush(fd: int) -> None:
        flushed.append(os.readlink(f"/proc/self/fd/{fd}"))
        if disk_fails:
            raise OSError(errno.EIO, "Input/output error")
        fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", flush)
    with DecisionLog(sqlite_url) as log:
        log.append(make_record())
        assert flushed[-1].endswith("audit.db-wal")  # the commit waited for its log on disk
        assert log.store._write.execute("PRAGMA synchronous").fetchone()[0] == 1  # type: ignore[attr-defined]
        disk_fails = True
        record = make_record()
        with pytest.raises(StoreUnavailable):
            log.append(record)
        disk_fails = False
        assert log.append(record).seq == 2  # committed, then flushed for the retry: the same record
        assert log.append(make_record()).seq == 3
    assert verified_count(sqlite_url) == 3


def test_postgres_down_is_unavailable_and_the_log_recovers(make_record: RecordFactory) -> None:
    bindir = find_pg_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries")
    root = Path(tempfile.mkdtemp(prefix="credo-pg-down-"))
    server = PostgresServer(bindir, root)
    try:
        url = server.start()
        with DecisionLog(url) as log:
            log.append(make_record())
            server.stop()
            with pytest.raises(StoreUnavailable) as info:
                log.append(make_record())
            assert info.value.grpc_status == "UNAVAILABLE"
            with pytest.raises(StoreUnavailable):
                log.lookup("req-x", "0" * 64)
            server.start()
            assert log.append(make_record()).seq == 2
        assert verified_count(url) == 2
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


WRITER = """
import sys, threading
sys.path.insert(0, sys.argv[2])
from audit_helpers import START
from engine.audit import DecisionLog
from engine.audit.record import DecisionRecord, new_decision_id
from engine.decision import Decision, Outcome, PolicyRef

log = DecisionLog(sys.argv[1])
out = threading.Lock()

def record(name):
    decision = Decision(new_decision_id(), name, Outcome.APPROVE, (), None, (), None, None, (),
                        PolicyRef("p", "1", "a" * 64), (), (), START.isoformat())
    return DecisionRecord.build(decision, request_fingerprint=name, received_at=START, input={})

def work(t):
    for i in range(10**6):
        stored = log.append(record(f"{t}-{i}"))
        with out:
            sys.stdout.write(stored.decision_id + "\\n")
            sys.stdout.flush()

for t in range(8):
    threading.Thread(target=work, args=(t,), daemon=True).start()
threading.Event().wait()
"""


def test_kill_9_loses_no_acknowledged_record(store_url: str) -> None:
    here = str(Path(__file__).parent)
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, store_url, here], stdout=subprocess.PIPE, text=True, cwd=Path.cwd()
    )
    assert child.stdout is not None
    acked: list[str] = []
    try:
        for line in child.stdout:
            acked.append(line.strip())
            if len(acked) >= 300:
                child.send_signal(signal.SIGKILL)
                break
        acked.extend(line.strip() for line in child.stdout)  # acknowledged before the kill
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    store = open_store(store_url)
    try:
        assert all(store.get(decision_id) is not None for decision_id in acked)
        assert store.count() >= len(acked)
    finally:
        store.close()
    assert verified_count(store_url) >= len(acked)


def test_archived_files_are_restored_byte_for_byte(
    store_url: str, make_record: RecordFactory, tmp_path: Path
) -> None:
    archive = archive_files(
        {"policy.yaml": b"policy: consumer_loan\n", "models/consumer_pd/1.0.0/model.onnx": b"\x00onnx\xff"}
    )
    with DecisionLog(store_url) as log:
        first = log.append(make_record(), archive.blobs)
        log.append(make_record(), archive.blobs)  # already archived: not written again
        restored = restore_archive(log.store, archive.index, tmp_path / "replay")
        assert (restored / "models/consumer_pd/1.0.0/model.onnx").read_bytes() == b"\x00onnx\xff"
        assert (restored / "policy.yaml").read_text() == "policy: consumer_loan\n"
        with pytest.raises(ArchiveMissing, match=r"policy-2\.yaml \(sha256 f{64}\) is not in the archive"):
            restore_archive(log.store, {**archive.index, "policy-2.yaml": "f" * 64}, tmp_path / "other")
    assert first.seq == 1


def test_a_policy_and_its_model_packages_are_archived_for_replay(
    sqlite_url: str, make_record: RecordFactory, tmp_path: Path
) -> None:
    policy = tmp_path / "policies" / "consumer_loan"
    package = tmp_path / "models" / "consumer_pd" / "1.0.0"
    for folder, files in (
        (policy, ("policy.yaml", "tables/grades.yaml")),
        (package, ("model.onnx", "card.json")),
    ):
        for name in files:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(f"content of {name}".encode())
    archive = decision_archive(policy, [("consumer_pd", "1.0.0", package)])
    assert sorted(archive.index) == [
        "models/consumer_pd/1.0.0/card.json",
        "models/consumer_pd/1.0.0/model.onnx",
        "policies/consumer_loan/policy.yaml",
        "policies/consumer_loan/tables/grades.yaml",
    ]
    with DecisionLog(sqlite_url) as log:
        stored = log.append(make_record(archive=archive.index), archive.blobs)
        root = restore_archive(log.store, stored.archive, tmp_path / "replay")
    assert (root / "policies/consumer_loan/tables/grades.yaml").read_text() == "content of tables/grades.yaml"
    assert (root / "models/consumer_pd/1.0.0/model.onnx").read_text() == "content of model.onnx"
