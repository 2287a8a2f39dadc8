"""Operating `credo serve`: a restart on the same port succeeds at once, SIGTERM stops promptly and
answers what is in flight, a reload reaches every open connection within ~2 s and ListPolicies agrees
with Decide, a long DecideStream outlives connection ageing (these on the stand-in core); health
follows the audit store, callers never see where the store is, and the read-only audit commands work
on a read-only copy of a store (these on the real core); bad TLS files are a one-line error.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from credo.v1 import decision_pb2 as pb
from credo.v1 import decision_pb2_grpc as pb_grpc
from e2e_harness import FAKE, POLICIES, ROOT, CallLoop, Server, connections, request, serve, shipped_cases
from grpc_health.v1 import health_pb2, health_pb2_grpc

POLICY = 'policy: demo\nversion: "1.0.{patch}"\ninputs:\n  applicant.age: {{type: integer}}\n'
ADULT = {"applicant": {"age": 30}}


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    (tmp_path / "policies" / "demo").mkdir(parents=True)
    (tmp_path / "policies" / "demo" / "policy.yaml").write_text(POLICY.format(patch=0))
    return tmp_path / "policies"


def _port(server: Server) -> int:
    return int(server.target.rsplit(":", 1)[1])


def _calls_on_fresh_connections(server: Server, n: int = 4) -> list[grpc.Channel]:
    """n connections that each answered a call and stay open (the server closes them first when it
    stops, which leaves its side of each in TIME-WAIT)."""
    channels = connections(server, n)
    for i, channel in enumerate(channels):
        answer = pb_grpc.DecisionServiceStub(channel).Decide(request(f"c{i}", "demo", ADULT), timeout=30)
        assert answer.outcome == pb.APPROVE
    return channels


def test_restart_on_the_same_port_succeeds_at_once_after_stop_and_after_kill_9(
    tmp_path: Path, policies: Path
) -> None:
    with serve(tmp_path, policies=policies, workers=2, fake=True) as first:
        port = _port(first)
        open_channels = _calls_on_fresh_connections(first)
    for channel in open_channels:
        channel.close()
    # Regression: the port probe bound without SO_REUSEADDR, so TIME-WAIT refused this for ~60-100 s.
    with serve(tmp_path, policies=policies, workers=2, fake=True, extra=["--port", str(port)]) as second:
        assert _port(second) == port
        open_channels = _calls_on_fresh_connections(second)
        for pid in [second.proc.pid, *second.worker_pids()]:
            os.kill(pid, signal.SIGKILL)
        second.proc.wait(timeout=30)
    for channel in open_channels:
        channel.close()
    with serve(tmp_path, policies=policies, workers=2, fake=True, extra=["--port", str(port)]) as third:
        assert _port(third) == port
        assert third.stub.Decide(request("after-kill", "demo", ADULT), timeout=30).outcome == pb.APPROVE


def _stopped_within(server: Server, timeout: float) -> tuple[int, float]:
    """SIGTERM the server; its exit code and the seconds it took (fails if it outlives `timeout`)."""
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    try:
        code = server.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"credo serve still running {timeout} s after SIGTERM") from None
    return code, time.monotonic() - started


def test_idle_serve_exits_within_2_s_of_sigterm(tmp_path: Path, policies: Path) -> None:
    # Shipped timing (no test overrides). Regression: an idle server waited out a 37 s drain + grace.
    with serve(tmp_path, policies=policies, workers=2, fake=True, default_timing=True) as server:
        assert server.stub.Decide(request("idle", "demo", ADULT), timeout=30).outcome == pb.APPROVE
        code, seconds = _stopped_within(server, timeout=15)
    assert code == 0
    assert seconds < 2.0, f"an idle server took {seconds:.2f} s to stop"
    assert "worker stopped" in server.log()


def test_sigterm_answers_calls_in_flight_then_exits(tmp_path: Path, policies: Path) -> None:
    started = tmp_path / "started"
    started.mkdir()
    env = {"CREDO_FAKE_SLOW": "2", "CREDO_FAKE_STARTED": str(started)}
    with serve(tmp_path, policies=policies, workers=1, fake=True, default_timing=True, env=env) as server:
        in_flight = [
            server.stub.Decide.future(request(f"slow-{i}", "demo", ADULT), timeout=60) for i in (1, 2)
        ]
        deadline = time.monotonic() + 30
        while not (started / "slow-1").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (started / "slow-1").exists(), server.log()[-2000:]
        code, seconds = _stopped_within(server, timeout=19)
        answers = [call.result(timeout=1) for call in in_flight]
    assert code == 0
    assert [a.request_id for a in answers] == ["slow-1", "slow-2"]
    assert all(a.outcome == pb.APPROVE for a in answers)
    assert seconds < 19, seconds  # both calls (queued on one worker's lock) answered, within --grace 20


def test_long_decide_stream_survives_connection_ageing(tmp_path: Path, policies: Path) -> None:
    # A 0.5 s connection age and a 1 s grace: regression, the stream was cut at age + grace.
    with serve(tmp_path, policies=policies, workers=2, fake=True, extra=["--grace-seconds", "1"]) as server:
        (channel,) = connections(server, 1)

        def rows() -> Iterator[pb.DecideRequest]:
            for i in range(16):  # paced over ~4 s, eight connection ages
                yield request(f"row-{i}", "demo", ADULT)
                time.sleep(0.25)

        try:
            answers = list(pb_grpc.DecisionServiceStub(channel).DecideStream(rows(), timeout=60))
        finally:
            channel.close()
    assert [a.request_id for a in answers] == [f"row-{i}" for i in range(16)]
    assert all(not a.HasField("error") for a in answers)


class PinnedCallers(CallLoop):
    """One thread per open connection calling Decide pinned to `self.pin`; records (time, version)
    answers per connection and, by the pinned version, every status other than UNAVAILABLE
    (retryable by design). A pin on the version ListPolicies reported before a reload is refused
    FAILED_PRECONDITION by the new workers, as it should: the caller reads ListPolicies again."""

    def __init__(self, server: Server, n: int):
        super().__init__(server, n)
        self.pin = ""
        self.answers: list[list[tuple[float, str]]] = [[] for _ in range(n)]
        self.refused: list[tuple[str, str]] = []

    def one(self, stub: pb_grpc.DecisionServiceStub, index: int, n: int) -> None:
        pin = self.pin
        try:
            answer = stub.Decide(request(f"p{index}-{n}", "demo", ADULT, policy_version=pin), timeout=30)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNAVAILABLE:
                self.refused.append((pin, f"{err.code().name}: {err.details()}"))
            return
        self.answers[index].append((time.monotonic(), answer.policy.version))
        time.sleep(0.02)


def _listed_version(server: Server) -> str:
    """The version ListPolicies reports on a new connection (as a client starting now sees it); ""
    if the connection was refused. (A connection still in the accept queue of a worker that stops
    listening is reset by Linux unless net.ipv4.tcp_migrate_req=1: UNAVAILABLE, nothing was sent.)"""
    (channel,) = connections(server, 1)
    try:
        listed = pb_grpc.DecisionServiceStub(channel).ListPolicies(pb.ListPoliciesRequest(), timeout=10)
        return {p.name: p.version for p in listed.policies}["demo"]
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.UNAVAILABLE:
            raise
        return ""
    finally:
        channel.close()


def test_reload_reaches_every_open_connection_within_2_s_and_listed_pins_are_never_refused(
    tmp_path: Path, policies: Path
) -> None:
    # Shipped timing. Regression: open connections decided on the old version for up to their
    # connection age (~30 s), and a caller pinning the version ListPolicies reported got
    # FAILED_PRECONDITION from them.
    source = policies / "demo" / "policy.yaml"
    with serve(tmp_path, policies=policies, workers=2, fake=True, default_timing=True) as server:
        with PinnedCallers(server, 4) as callers:
            deadline = time.monotonic() + 30
            while not (pin := _listed_version(server)) and time.monotonic() < deadline:
                time.sleep(0.05)
            callers.pin = pin
            deadline = time.monotonic() + 30
            while not all(callers.answers) and time.monotonic() < deadline:
                time.sleep(0.05)
            tmp = source.with_suffix(".tmp")
            tmp.write_text(POLICY.format(patch=1))
            os.replace(tmp, source)
            deadline = time.monotonic() + 60
            while (listed := _listed_version(server)) != "1.0.1" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert listed == "1.0.1", server.log()[-2000:]
            listed_at = time.monotonic()
            callers.pin = listed
            time.sleep(4)  # let every connection make calls past the 2 s mark
        assert [why for pin, why in callers.refused if pin == "1.0.1"] == []
        for index, answers in enumerate(callers.answers):
            late = [version for at, version in answers if at > listed_at + 2.0]
            assert late, f"connection {index} made no call after the reload"
            assert set(late) == {"1.0.1"}, f"connection {index} still decided on {sorted(set(late))}"


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """A real-core server with one worker (so one connection's health is that worker's) on a store."""
    tmp = tmp_path_factory.mktemp("stored")
    path = tmp / "audit.db"
    with serve(tmp, policies=POLICIES, workers=1, extra=["--store", f"sqlite:///{path}"]) as server:
        yield server, path


def _decidable() -> tuple[str, dict[str, object]]:
    policy, _, application, _ = next(c for c in shipped_cases() if "error" not in c[3])
    return policy, application


def _health(server: Server) -> int:
    return (
        health_pb2_grpc.HealthStub(server.channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status
    )


def test_health_is_not_serving_while_the_store_cannot_commit_and_callers_never_see_where_it_is(
    stored: tuple[Server, Path],
) -> None:
    server, path = stored
    policy, application = _decidable()
    server.stub.Decide(request("healthy", policy, application), timeout=30)
    assert _health(server) == health_pb2.HealthCheckResponse.SERVING
    (worker,) = server.worker_pids()
    resource.prlimit(worker, resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))  # a full disk
    try:
        with pytest.raises(grpc.RpcError) as caught:
            server.stub.Decide(request("disk-full", policy, application), timeout=30)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        details = caught.value.details() or ""
        assert "audit store unavailable" in details
        assert (
            str(path.parent) not in details and "audit.db" not in details and "File too large" not in details
        )
        # Regression: health stayed SERVING while every decision failed.
        assert _health(server) == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        resource.prlimit(worker, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    # With no call to tell it, the worker's probe finds the store writable again.
    deadline = time.monotonic() + 30
    while _health(server) != health_pb2.HealthCheckResponse.SERVING and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _health(server) == health_pb2.HealthCheckResponse.SERVING
    assert server.stub.Decide(request("disk-full", policy, application), timeout=30).decision_id
    # (the limit stopped the worker's log file too: the failure's own lines could not be written)
    assert "audit store commits again: health SERVING" in server.log()


def _read_only(directory: Path, command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run `command` with `directory` read-only: a read-only bind mount in a private mount namespace
    (root ignores file modes), or file modes when not root."""
    if os.geteuid() != 0:
        for item in [*directory.iterdir(), directory]:
            item.chmod(0o555 if item.is_dir() else 0o444)
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to mount a read-only folder as root")
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", str(directory), *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_read_only_audit_commands_work_on_a_read_only_copy_of_a_store(
    stored: tuple[Server, Path], tmp_path: Path
) -> None:
    server, path = stored
    policy, application = _decidable()
    answer = server.stub.Decide(request("for-the-copy", policy, application), timeout=30)
    copy = tmp_path / "copy"
    copy.mkdir()
    with sqlite3.connect(path) as source, sqlite3.connect(copy / "audit.db") as target:
        source.backup(target)
    url = f"sqlite:///{copy / 'audit.db'}"
    probe = _read_only(copy, ["touch", str(copy / "x")])
    if probe.returncode == 0:
        pytest.skip("cannot make a read-only folder here")
    credo = [sys.executable, "-m", "engine"]
    for args in (["audit", "verify", "--store", url], ["audit", "export", "--store", url],
                 ["replay", answer.decision_id, "--store", url]):  # fmt: skip
        out = _read_only(copy, [*credo, *args])
        # Regression: each created a lock file beside the store and failed on a read-only copy.
        assert out.returncode == 0, f"credo {' '.join(args)}: {out.stdout}{out.stderr}"
    assert sorted(p.name for p in copy.iterdir()) == ["audit.db"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_bad_tls_files_are_a_one_line_error_not_a_worker_traceback(tmp_path: Path, policies: Path) -> None:
    for name in ("good", "other"):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.crt", "-days", "2", "-subj", "/CN=localhost"],
            cwd=tmp_path, check=True, capture_output=True,
        )  # fmt: skip
    (tmp_path / "garbage.key").write_text("not a key\n")
    cases = {
        "garbage.key": "not a PEM certificate and its private key",
        "other.key": "not a PEM certificate and its private key",  # the key of another certificate
        "missing.key": "no such file",
    }
    for key, expected in cases.items():
        out = subprocess.run(
            [sys.executable, "-m", "engine", "serve", "--port", "0", "--policies", str(policies),
             "--service-factory", FAKE,
             "--tls-cert", str(tmp_path / "good.crt"), "--tls-key", str(tmp_path / key)],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("credo serve: TLS: "), out.stderr
        assert expected in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_a_stream_on_a_superseded_worker_ends_unavailable_and_its_unanswered_rows_decide_anew(
    tmp_path: Path, policies: Path
) -> None:
    source = policies / "demo" / "policy.yaml"
    with serve(tmp_path, policies=policies, workers=1, fake=True) as server:
        (channel,) = connections(server, 1)
        reloaded = threading.Event()

        def rows() -> Iterator[pb.DecideRequest]:
            for i in range(40):
                if i == 4:  # a reload while the stream is open
                    tmp = source.with_suffix(".tmp")
                    tmp.write_text(POLICY.format(patch=1))
                    os.replace(tmp, source)
                    deadline = time.monotonic() + 60
                    while _listed_version(server) != "1.0.1" and time.monotonic() < deadline:
                        time.sleep(0.05)
                    reloaded.set()
                yield request(f"s-{i}", "demo", ADULT)
                time.sleep(0.1)

        answers: list[pb.Decision] = []
        try:
            with pytest.raises(grpc.RpcError) as caught:
                for answer in pb_grpc.DecisionServiceStub(channel).DecideStream(rows(), timeout=120):
                    answers.append(answer)
        finally:
            channel.close()
        assert reloaded.is_set()
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "reopen the stream" in (caught.value.details() or "")
        answered = [a.request_id for a in answers]
        assert answered == [f"s-{i}" for i in range(len(answered))] and len(answered) >= 4
        assert {a.policy.version for a in answers} == {"1.0.0"}
        # the rows it did not answer, sent again on a new stream, are decided on the new version;
        # until the client has the old worker's goaway, a new stream on the same channel can still
        # reach that worker, which hands it back the same way: the caller reopens, as told
        rest = [request(f"s-{i}", "demo", ADULT) for i in range(len(answered), 40)]
        again: list[pb.Decision] = []
        for _ in range(100):
            try:
                for answer in server.stub.DecideStream(iter(rest[len(again) :]), timeout=60):
                    again.append(answer)
                break
            except grpc.RpcError as handed_back:
                assert handed_back.code() == grpc.StatusCode.UNAVAILABLE
                assert "reopen the stream" in (handed_back.details() or "")
                time.sleep(0.1)
        assert [a.request_id for a in again] == [r.request_id for r in rest]
        assert {a.policy.version for a in again} == {"1.0.1"}
