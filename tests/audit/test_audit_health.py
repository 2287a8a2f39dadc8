"""What operations rely on from a store: the server's health follows whether the log can commit (and a
probe write finds it back), and a store opened read-only is read without writing anything."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from audit_helpers import RecordFactory
from grpc_health.v1 import health, health_pb2

from engine.audit import DecisionLog, open_store
from engine.errors import StoreUnavailable
from engine.server.health import StoreHealth


def _status(servicer: health.HealthServicer) -> int:
    return servicer.Check(health_pb2.HealthCheckRequest(), None).status


def test_health_is_not_serving_while_the_log_cannot_commit_and_a_probe_finds_it_back(
    sqlite_url: str, make_record: RecordFactory
) -> None:
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    log = DecisionLog(sqlite_url)
    watch = StoreHealth(servicer, [""], log.store.probe, interval=0.05)
    log.on_commit = watch
    try:
        log.append(make_record())
        writer = log.store._write  # type: ignore[attr-defined]  # every write now fails
        writer.execute("PRAGMA query_only = 1")
        with pytest.raises(StoreUnavailable):
            log.append(make_record())
        assert _status(servicer) == health_pb2.HealthCheckResponse.NOT_SERVING
        time.sleep(0.3)  # probes fail meanwhile: still NOT_SERVING, nothing else changes
        assert _status(servicer) == health_pb2.HealthCheckResponse.NOT_SERVING
        writer.execute("PRAGMA query_only = 0")
        deadline = time.monotonic() + 30
        while _status(servicer) != health_pb2.HealthCheckResponse.SERVING and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _status(servicer) == health_pb2.HealthCheckResponse.SERVING  # with no record appended
    finally:
        watch.close()
        log.close()


def test_a_store_opened_read_only_reads_everything_and_writes_nothing(
    store_url: str, make_record: RecordFactory, tmp_path: Path
) -> None:
    with DecisionLog(store_url) as log:
        stored = [log.append(make_record()) for _ in range(3)]
    for lock in tmp_path.glob("*.open-lock"):
        lock.unlink()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    store = open_store(store_url, create=False, readonly=True)
    try:
        assert store.get(stored[1].decision_id) == stored[1]
        assert store.count() == 3
        with pytest.raises(StoreUnavailable):
            store.probe()
    finally:
        store.close()
    assert not list(tmp_path.glob("*.open-lock"))
    assert {name: (tmp_path / name).read_bytes() for name in before} == before  # the store file unchanged
