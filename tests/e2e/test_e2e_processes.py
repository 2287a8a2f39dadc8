"""The process model of `credo serve`: a worker killed with SIGKILL is replaced while the others keep
answering; a policy rewritten during a stream of calls is served in its new version with no failed call;
a broken policy file is refused and the old version keeps serving.

Each test runs on the real decision core ("real") and on a stand-in core ("fake", tests/e2e/fake_service.py)
so the server machinery is checked even where the pipeline is not the thing under test.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from credo.v1 import decision_pb2 as pb
from e2e_harness import POLICIES, CallLoop, Server, free_port, request, serve, shipped_cases

FAKE_POLICY = 'policy: demo\nversion: "1.0.0"\ninputs:\n  applicant.age: {type: integer}\n'


def _setup(kind: str, tmp_path: Path) -> tuple[Path, str, dict[str, Any], Path]:
    """A private policy directory, the policy to call, an application, the file to rewrite."""
    policies = tmp_path / "policies"
    if kind == "fake":
        (policies / "demo").mkdir(parents=True)
        (policies / "demo" / "policy.yaml").write_text(FAKE_POLICY)
        return policies, "demo", {"applicant": {"age": 30}}, policies / "demo" / "policy.yaml"
    cases = shipped_cases()
    assert cases, "no shipped policy test cases to call the real core with"
    policy, _, application, _ = cases[0]
    shutil.copytree(POLICIES, policies)
    source = next(p for p in policies.glob("*/policy.yaml") if f"policy: {policy}" in p.read_text())
    return policies, policy, application, source


def _bump_version(path: Path) -> str:
    """Rewrite the file with its patch version + 1 (atomically, as a deploy tool would); the new version."""
    text = path.read_text()
    match = re.search(r'^version:\s*"?(\d+)\.(\d+)\.(\d+)"?\s*$', text, re.M)
    assert match, f"{path}: no semver version line"
    new = f"{match.group(1)}.{match.group(2)}.{int(match.group(3)) + 1}"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text[: match.start()] + f'version: "{new}"' + text[match.end() :])
    os.replace(tmp, path)
    return new


class Caller(CallLoop):
    """Calls Decide in a loop from several threads until stopped; records every answer and failure."""

    def __init__(self, server: Server, policy: str, application: dict[str, Any], *, retry: bool):
        super().__init__(server, threads=4)
        self.policy, self.application, self.retry = policy, application, retry
        self.versions: list[str] = []
        self.failures: list[str] = []
        self.retried: list[str] = []
        self.done = 0

    def one(self, stub: Any, index: int, n: int) -> None:
        rid = f"t{index}-{n}"
        req = request(rid, self.policy, self.application)
        try:
            answer = stub.Decide(req, timeout=20)
        except grpc.RpcError as err:
            if not (self.retry and err.code() == grpc.StatusCode.UNAVAILABLE):
                with self._lock:
                    self.failures.append(f"{rid}: {err.code().name} {err.details()}")
                return
            with self._lock:
                self.retried.append(rid)
            answer = self._retry(stub, req)
            if answer is None:
                return
        with self._lock:
            if answer.request_id != rid or not answer.decision_id:
                self.failures.append(f"{rid}: answered for {answer.request_id!r}")
            self.versions.append(answer.policy.version)
            self.done += 1

    def _retry(self, stub: Any, req: pb.DecideRequest) -> pb.Decision | None:
        """The same request_id again until another worker (or the replacement) answers."""
        last = ""
        for _ in range(10):
            try:
                return stub.Decide(req, timeout=20, wait_for_ready=True)
            except grpc.RpcError as again:
                last = f"{again.code().name} {again.details()}"
                if again.code() != grpc.StatusCode.UNAVAILABLE:
                    break
                time.sleep(0.05)
        with self._lock:
            self.failures.append(f"{req.request_id} retry: {last}")
        return None

    def wait_for(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if predicate():
                    return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; failures: {self.failures[:5]}")


@pytest.fixture(params=["fake", "real"])
def kind(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.param


def test_kill_9_worker_during_calls_keeps_answering(kind: str, tmp_path: Path) -> None:
    policies, policy, application, _ = _setup(kind, tmp_path)
    with serve(tmp_path, policies=policies, workers=2, fake=kind == "fake") as server:
        before = server.worker_pids()
        assert len(before) == 2
        with Caller(server, policy, application, retry=True) as caller:
            caller.wait_for(lambda: caller.done >= 20, 60, "calls before the kill")
            os.kill(before[0], signal.SIGKILL)
            mark = caller.done
            caller.wait_for(lambda: caller.done >= mark + 40, 60, "calls after the kill")

            def replaced() -> bool:
                now = server.worker_pids()
                return len(now) == 2 and before[0] not in now

            deadline = time.monotonic() + 60
            while not replaced() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert replaced(), f"worker not replaced: {server.worker_pids()}"
            mark = caller.done
            caller.wait_for(lambda: caller.done >= mark + 10, 60, "calls after the replacement")
        assert caller.failures == []
        (replaced_entry,) = server.logged("worker_replaced")
        assert replaced_entry["worker_pid"] == before[0] and replaced_entry["level"] == "error"


def test_policy_rewrite_during_calls_serves_new_version_with_no_failed_call(
    kind: str, tmp_path: Path
) -> None:
    policies, policy, application, source = _setup(kind, tmp_path)
    with serve(tmp_path, policies=policies, workers=2, fake=kind == "fake") as server:
        with Caller(server, policy, application, retry=False) as caller:
            caller.wait_for(lambda: caller.done >= 20, 60, "calls before the rewrite")
            old = caller.versions[-1]
            new = _bump_version(source)
            # Old workers drain (connections move within the max connection age), then only `new`.
            caller.wait_for(lambda: set(caller.versions[-40:]) == {new}, 90, f"only version {new} served")
        assert caller.failures == [], sorted({f.split(": ", 1)[1] for f in caller.failures})
        assert old != new
        listed = {p.name: p for p in server.stub.ListPolicies(pb.ListPoliciesRequest(), timeout=5).policies}
        assert listed[policy].version == new


def test_broken_policy_file_is_refused_and_old_version_keeps_serving(kind: str, tmp_path: Path) -> None:
    policies, policy, application, source = _setup(kind, tmp_path)
    with serve(tmp_path, policies=policies, workers=1, fake=kind == "fake") as server:
        first = server.stub.Decide(request("before", policy, application), timeout=30)
        source.write_text(source.read_text().replace("version:", "versoin:", 1))
        deadline = time.monotonic() + 60
        listed: Any = None
        while time.monotonic() < deadline:
            answer = server.stub.ListPolicies(pb.ListPoliciesRequest(), timeout=5)
            listed = {p.name: p for p in answer.policies}
            if listed[policy].status == "RELOAD_FAILED":
                break
            time.sleep(0.2)
        assert listed[policy].status == "RELOAD_FAILED", server.log()[-2000:]
        assert listed[policy].errors
        after = server.stub.Decide(request("after", policy, application), timeout=30)
        assert after.policy.version == first.policy.version
        refused = server.logged("reload_refused")
        assert refused and refused[0]["errors"], server.log()[-2000:]


def test_sighup_starts_a_new_generation_and_drains_the_old(tmp_path: Path) -> None:
    policies, policy, application, _ = _setup("fake", tmp_path)
    with serve(tmp_path, policies=policies, workers=2, fake=True) as server:
        before = set(server.worker_pids())
        with Caller(server, policy, application, retry=False) as caller:
            caller.wait_for(lambda: caller.done >= 20, 60, "calls before SIGHUP")
            server.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and (set(server.worker_pids()) & before):
                time.sleep(0.1)
            mark = caller.done
            caller.wait_for(lambda: caller.done >= mark + 20, 60, "calls after the reload")
        after = set(server.worker_pids())
        assert len(after) == 2 and not (after & before)
        assert caller.failures == []
        assert [e["trigger"] for e in server.logged("reload_requested")] == ["SIGHUP"]


def _scrape(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def test_supervisor_counts_restarts_and_reloads_on_the_metrics_endpoint(tmp_path: Path) -> None:
    """The supervisor's own counters reach /metrics: they were kept in its memory, never written
    beside the workers' files, so `credo_worker_restarts_total` stayed 0 after a worker died."""
    policies, _, _, _ = _setup("fake", tmp_path)
    port = free_port()
    with serve(
        tmp_path, policies=policies, workers=2, fake=True, extra=["--metrics-port", str(port)]
    ) as server:
        before = server.worker_pids()
        os.kill(before[0], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "credo_worker_restarts_total 1.0" not in _scrape(port):
            time.sleep(0.1)
        assert "credo_worker_restarts_total 1.0" in _scrape(port)
        server.proc.send_signal(signal.SIGHUP)
        while time.monotonic() < deadline and 'credo_reloads_total{result="ok"} 1.0' not in _scrape(port):
            time.sleep(0.1)
        assert 'credo_reloads_total{result="ok"} 1.0' in _scrape(port)


def _cpus_of(pid: int) -> set[int]:
    """The CPUs any thread of process `pid` may run on."""
    cpus: set[int] = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        cpus |= os.sched_getaffinity(int(tid))
    return cpus


def _wait_for_workers(server: Server, count: int, gone: int | None = None) -> list[int]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pids = server.worker_pids()
        if len(pids) == count and gone not in pids:
            return pids
        time.sleep(0.1)
    raise AssertionError(f"workers: {server.worker_pids()}")


def test_workers_as_many_as_the_cpus_each_keep_one_cpu_and_a_replacement_takes_it_over(
    tmp_path: Path,
) -> None:
    """One worker per CPU, each with all its threads on its own CPU (a GIL hand-over between its
    threads stays on that CPU); a worker killed is replaced on the CPU it had. With more workers
    than CPUs none is pinned: the kernel balances them."""
    allowed = os.sched_getaffinity(0)
    policies, _, _, _ = _setup("fake", tmp_path)
    with serve(tmp_path, policies=policies, workers=len(allowed), fake=True) as server:
        pids = _wait_for_workers(server, len(allowed))
        placed = {pid: _cpus_of(pid) for pid in pids}
        assert all(len(cpus) == 1 for cpus in placed.values()), placed
        assert set().union(*placed.values()) == allowed
        os.kill(pids[0], signal.SIGKILL)
        now = _wait_for_workers(server, len(allowed), gone=pids[0])
        (fresh,) = set(now) - set(pids)
        deadline = time.monotonic() + 60  # it pins itself once started: wait until it is serving
        while time.monotonic() < deadline and not any(
            e.get("msg") == "worker serving" and e.get("pid") == fresh for e in server.events()
        ):
            time.sleep(0.1)
        assert _cpus_of(fresh) == placed[pids[0]]
    with serve(tmp_path, policies=policies, workers=len(allowed) + 1, fake=True) as server:
        pids = _wait_for_workers(server, len(allowed) + 1)
        assert all(_cpus_of(pid) == allowed for pid in pids)
