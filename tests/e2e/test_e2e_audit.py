"""The audit guarantees through the real gRPC server (`credo serve --store sqlite:///...`): every decision
is logged, verifies and replays; idempotency holds across workers; kill -9 mid-stream; store unavailable.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from credo.v1 import decision_pb2 as pb
from credo.v1 import decision_pb2_grpc as pb_grpc
from e2e_harness import (
    POLICIES,
    ROOT,
    CallLoop,
    Server,
    connections,
    kill_9_all,
    request,
    serve,
    shipped_cases,
)
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from engine.audit import open_store

CASES = shipped_cases()
DECIDABLE = [c for c in CASES if "error" not in c[3]]
REFUSED = [c for c in CASES if "error" in c[3]]


@dataclass
class Audited:
    """A running server on its own SQLite store; every decision it answered (decision_id -> request_id)."""

    server: Server
    url: str
    answered: dict[str, str] = field(default_factory=dict)

    def decide(self, stub: pb_grpc.DecisionServiceStub, req: pb.DecideRequest) -> pb.Decision:
        answer = stub.Decide(req, timeout=30)
        assert answer.decision_id and answer.request_id == req.request_id
        assert len(answer.record_hash) == 64, "a logged decision carries its audit record's hash"
        self.answered[answer.decision_id] = answer.request_id
        return answer


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Audited]:
    tmp = tmp_path_factory.mktemp("audited")
    url = f"sqlite:///{tmp / 'audit.db'}"
    with serve(tmp, policies=POLICIES, workers=2, extra=["--store", url]) as server:
        yield Audited(server, url)


def credo(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the `credo` CLI as a separate process."""
    return subprocess.run(
        [sys.executable, "-m", "engine", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def verify_ok(url: str, records: int) -> str:
    out = credo("audit", "verify", "--store", url)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{records} record(s) verified" in out.stdout, out.stdout
    assert out.stdout.startswith("OK"), out.stdout
    return out.stdout.strip()


def error_reason(err: grpc.RpcError) -> str:
    """The Credo error code packed as google.rpc.ErrorInfo.reason."""
    status = rpc_status.from_call(err)
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return ""


def test_every_shipped_case_is_logged_verifies_and_replays(audited: Audited) -> None:
    assert DECIDABLE, "no shipped policy test case to decide"
    stub = audited.server.stub
    decided: dict[str, pb.Decision] = {}
    for i, (policy, _, application, expect) in enumerate(DECIDABLE):
        full = {"include_schedules": True, "include_trace": True}  # to compare with GetDecision's
        answer = audited.decide(stub, request(f"audit-case-{i}", policy, application, **full))
        assert pb.Outcome.Name(answer.outcome) == expect["outcome"]
        decided[answer.decision_id] = answer
    for i, (policy, _, application, _) in enumerate(REFUSED):  # refused: nothing is recorded
        with pytest.raises(grpc.RpcError):
            stub.Decide(request(f"audit-refused-{i}", policy, application), timeout=30)

    # GetDecision from the store (with the record's hash), through connections spread over both workers
    store = open_store(audited.url, create=False)
    try:
        for decision_id, answer in decided.items():
            assert store.get(decision_id).hash == answer.record_hash  # type: ignore[union-attr]
    finally:
        store.close()
    conns = connections(audited.server, 4)
    try:
        for decision_id, answer in decided.items():
            for ch in conns:
                got = pb_grpc.DecisionServiceStub(ch).GetDecision(
                    pb.GetDecisionRequest(decision_id=decision_id), timeout=10
                )
                assert got == answer
    finally:
        for ch in conns:
            ch.close()

    verify_ok(audited.url, len(audited.answered))

    # every decision replays from the archive over gRPC (the Replay RPC: one process, fast) ...
    for decision_id in decided:
        replayed = stub.Replay(pb.ReplayRequest(decision_id=decision_id), timeout=60)
        assert replayed.match and not replayed.diffs, (decision_id, replayed.diffs)
        assert replayed.recorded.decision_id == decision_id
    # ... and `credo replay ID` (a process per call, ~1 s each) says MATCH for a sample of 10 over
    # every shipped policy
    by_policy: dict[str, list[str]] = {}
    for decision_id, answer in decided.items():
        by_policy.setdefault(answer.policy.name, []).append(decision_id)
    sample = [ids[i] for i in range(10) for ids in by_policy.values() if i < len(ids)][:10]
    with ThreadPoolExecutor(max_workers=2) as pool:
        outs = list(pool.map(lambda d: credo("replay", d, "--store", audited.url), sample))
    for decision_id, out in zip(sample, outs, strict=True):
        assert out.returncode == 0 and out.stdout.strip() == f"MATCH {decision_id}", out.stdout + out.stderr


def test_same_request_id_on_every_worker_is_one_decision(audited: Audited) -> None:
    policy, _, application, _ = DECIDABLE[0]
    pool = connections(audited.server, 6)
    try:
        stubs = [pb_grpc.DecisionServiceStub(ch) for ch in pool]
        # sequential retries over separate connections; regression (issue 12): a retry differing
        # only in an omitted vs explicit default (language "" vs "en") got ALREADY_EXISTS from the
        # worker that answered and the stored decision from the other
        first = [
            audited.decide(s, request("audit-idem", policy, application, language=language))
            for s in stubs * 2
            for language in ("", "en")
        ]
        ids = {a.decision_id for a in first}
        assert len(ids) == 1 and len({a.record_hash for a in first}) == 1
        # a burst of concurrent first calls with one request_id: still one decision
        answers: list[str] = []
        lock = threading.Lock()

        def call(stub: pb_grpc.DecisionServiceStub) -> None:
            got = audited.decide(stub, request("audit-idem-burst", policy, application))
            with lock:
                answers.append(got.decision_id)

        threads = [threading.Thread(target=call, args=(s,)) for s in stubs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert len(answers) == len(stubs) and len(set(answers)) == 1
        # the same request_id with another (valid) payload, or another language, is refused on
        # every worker
        applicant = application["applicant"]
        changed = request(
            "", policy, {**application, "applicant": {**applicant, "age": applicant["age"] + 1}}
        )
        for stub in stubs:
            for rid in ("audit-idem", "audit-idem-burst"):
                for other in (changed, request("", policy, application, language="zh")):
                    other.request_id = rid
                    with pytest.raises(grpc.RpcError) as caught:
                        stub.Decide(other, timeout=30)
                    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    finally:
        for ch in pool:
            ch.close()
    store = open_store(audited.url, create=False)
    try:
        assert store.get_by_request("audit-idem").decision_id == ids.pop()  # type: ignore[union-attr]
        assert store.get_by_request("audit-idem-burst").decision_id == answers[0]  # type: ignore[union-attr]
    finally:
        store.close()
    verify_ok(audited.url, len(audited.answered))


class Stream(CallLoop):
    """Continuous Decide calls from several threads, each on its own connection; keeps every answer."""

    def __init__(self, server: Server, policy: str, application: dict[str, Any], threads: int = 4):
        super().__init__(server, threads)
        self.policy, self.application = policy, application
        self.received: dict[str, tuple[str, str]] = {}  # decision_id -> (request_id, record_hash)
        self.errors: list[str] = []

    def count(self) -> int:
        with self._lock:
            return len(self.received)

    def one(self, stub: pb_grpc.DecisionServiceStub, index: int, n: int) -> None:
        rid = f"kill-{index}-{n}"
        try:
            answer = stub.Decide(request(rid, self.policy, self.application), timeout=10)
        except grpc.RpcError as err:
            with self._lock:
                self.errors.append(err.code().name)
            time.sleep(0.01)
            return
        with self._lock:
            self.received[answer.decision_id] = (answer.request_id, answer.record_hash)


def test_kill_9_during_a_stream_loses_no_acknowledged_decision(tmp_path: Path) -> None:
    policy, _, application, _ = DECIDABLE[0]
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    with serve(tmp_path, policies=POLICIES, workers=2, extra=["--store", url]) as server:
        with Stream(server, policy, application) as stream:
            deadline = time.monotonic() + 60
            while stream.count() < 60 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert stream.count() >= 60, f"too few decisions before the kill: {stream.errors[:5]}"
            kill_9_all(server)
            time.sleep(0.3)  # calls after the kill fail: the server is gone
        received = dict(stream.received)

    store = open_store(url, create=False)
    try:
        stored = store.count()
        for decision_id, (request_id, record_hash) in received.items():
            record = store.get(decision_id)
            assert record is not None, f"acknowledged decision {decision_id} is not in the log"
            assert record.request_id == request_id
            assert record.hash == record_hash
    finally:
        store.close()
    assert stored >= len(received)
    verify_ok(url, stored)

    # a fresh server on the crashed store: retries answer the logged decisions, new ones chain on
    with serve(tmp_path, policies=POLICIES, workers=2, extra=["--store", url]) as again:
        sample = list(received.items())[:5]
        for decision_id, (request_id, _) in sample:
            got = again.stub.GetDecision(pb.GetDecisionRequest(decision_id=decision_id), timeout=10)
            assert got.request_id == request_id
            retried = again.stub.Decide(request(request_id, policy, application), timeout=30)
            assert retried.decision_id == decision_id
        again.stub.Decide(request("after-restart", policy, application), timeout=30)
    verify_ok(url, stored + 1)


def _limit_file_writes(pids: list[int], limit: int) -> None:
    """RLIMIT_FSIZE on the running workers: with 0 every write to a regular file fails (EFBIG; Python
    ignores SIGXFSZ) — a full disk that binds root too, where chmod would not."""
    for pid in pids:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))


def test_store_unavailable_is_unavailable_never_unrecorded_and_recovers(audited: Audited) -> None:
    policy, _, application, _ = DECIDABLE[0]
    workers = audited.server.worker_pids()
    pool = connections(audited.server, 4)
    stubs = [pb_grpc.DecisionServiceStub(ch) for ch in pool]
    try:
        _limit_file_writes(workers, 0)
        try:
            for i, stub in enumerate(stubs):
                with pytest.raises(grpc.RpcError) as caught:
                    stub.Decide(request(f"audit-full-{i}", policy, application), timeout=30)
                assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
                assert error_reason(caught.value) == "AUDIT_STORE_UNAVAILABLE"
                # never answered, never recorded
                with pytest.raises(grpc.RpcError) as missing:
                    stub.GetDecision(pb.GetDecisionRequest(request_id=f"audit-full-{i}"), timeout=10)
                assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        finally:
            _limit_file_writes(workers, resource.RLIM_INFINITY)
        # the store is back: the same requests now succeed, and the chains still verify
        for i, stub in enumerate(stubs):
            audited.decide(stub, request(f"audit-full-{i}", policy, application))
    finally:
        for ch in pool:
            ch.close()
    verify_ok(audited.url, len(audited.answered))
