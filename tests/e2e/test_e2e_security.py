"""Security and limits of `credo serve` (on the stand-in core): bearer tokens, TLS and mutual TLS,
the loopback rule, oversized messages, deadlines, and the Prometheus endpoint."""

from __future__ import annotations

import concurrent.futures
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from credo.v1 import decision_pb2 as pb
from credo.v1 import decision_pb2_grpc as pb_grpc
from e2e_harness import ROOT, request, serve
from grpc_health.v1 import health_pb2, health_pb2_grpc

POLICY = 'policy: demo\nversion: "1.0.0"\ninputs:\n  applicant.age: {type: integer}\n'
ADULT = {"applicant": {"age": 30}}


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    (tmp_path / "policies" / "demo").mkdir(parents=True)
    (tmp_path / "policies" / "demo" / "policy.yaml").write_text(POLICY)
    return tmp_path / "policies"


def test_bearer_token_required_except_for_health(tmp_path: Path, policies: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("s3cret-token\n")
    with serve(
        tmp_path, policies=policies, workers=1, fake=True, extra=["--token-file", str(tokens)]
    ) as server:
        health = health_pb2_grpc.HealthStub(server.channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        for metadata in [(), (("authorization", "Bearer wrong"),)]:
            with pytest.raises(grpc.RpcError) as caught:
                server.stub.Decide(request("t1", "demo", ADULT), timeout=5, metadata=metadata)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as caught:
            list(server.stub.DecideStream(iter([request("t2", "demo", ADULT)]), timeout=5))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        ok = server.stub.Decide(
            request("t3", "demo", ADULT), timeout=5, metadata=(("authorization", "Bearer s3cret-token"),)
        )
        assert ok.outcome == pb.APPROVE


def test_non_loopback_host_without_tls_is_refused(policies: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--policies",
            str(policies),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "without TLS" in out.stderr


def test_oversized_request_is_resource_exhausted(tmp_path: Path, policies: Path) -> None:
    with serve(
        tmp_path, policies=policies, workers=1, fake=True, extra=["--max-message-bytes", "65536"]
    ) as server:
        big = request("big", "demo", {"applicant": {"age": 30, "note": "x" * 100_000}})
        with pytest.raises(grpc.RpcError) as caught:
            server.stub.Decide(big, timeout=5)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert server.stub.Decide(request("ok", "demo", ADULT), timeout=5).outcome == pb.APPROVE


def test_server_never_starts_a_decision_whose_deadline_passed_while_queued(
    tmp_path: Path, policies: Path
) -> None:
    """The client gives up at its deadline whatever the server does; what the server does shows in
    its own counters: a queued call whose deadline passes is rejected there and never decided."""
    port = _free_port()
    with serve(
        tmp_path,
        policies=policies,
        workers=1,
        fake=True,
        extra=["--metrics-port", str(port)],
        env={"CREDO_FAKE_SLOW": "2.0"},  # each decision holds the worker's decision lock for 2 s
    ) as server:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            holder = pool.submit(server.stub.Decide, request("holder", "demo", ADULT), timeout=60)
            _wait_for_metric(port, lambda text: "credo_in_flight 1.0" in text, "the first call in flight")
            with pytest.raises(grpc.RpcError) as caught:
                server.stub.Decide(request("queued", "demo", ADULT), timeout=0.5)
            assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert holder.result().outcome == pb.APPROVE
        # A server ignoring deadlines would now decide "queued" (decisions -> 2) and reject nothing.
        text = _wait_for_metric(
            port,
            lambda text: (
                'credo_rejected_total{code="DEADLINE_EXCEEDED"}' in text
                or 'outcome="APPROVE",policy="demo"} 2.0' in text
            ),
            "the queued call to be rejected or decided",
        )
        assert 'credo_rejected_total{code="DEADLINE_EXCEEDED"} 1.0' in text
        assert 'credo_decisions_total{outcome="APPROVE",policy="demo"} 1.0' in text


def _wait_for_metric(port: int, ready: Callable[[str], bool], what: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        if ready(text):
            return text
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}:\n{text}")


def test_metrics_endpoint_sums_the_workers(tmp_path: Path, policies: Path) -> None:
    port = _free_port()
    with serve(
        tmp_path, policies=policies, workers=2, fake=True, extra=["--metrics-port", str(port)]
    ) as server:
        server.stub.Decide(request("m1", "demo", ADULT), timeout=5)
        server.stub.Decide(request("m2", "demo", {"applicant": {"age": 19}}), timeout=5)
        with pytest.raises(grpc.RpcError):
            server.stub.Decide(request("m3", "demo", {"applicant": {}}), timeout=5)
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'credo_decisions_total{outcome="APPROVE",policy="demo"} 1.0' in text
    assert 'credo_decisions_total{outcome="DECLINE",policy="demo"} 1.0' in text
    assert 'credo_rejected_total{code="INVALID_ARGUMENT"} 1.0' in text
    assert "credo_decision_seconds_count 2.0" in text  # one histogram: the whole decision
    assert "credo_in_flight" in text and "credo_worker_restarts_total" in text


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_mutual_tls(tmp_path: Path, policies: Path) -> None:
    pki = _make_pki(tmp_path)
    extra = ["--tls-cert", str(pki["server.crt"]), "--tls-key", str(pki["server.key"])]
    extra += ["--tls-client-ca", str(pki["ca.crt"])]
    with serve(tmp_path, policies=policies, workers=1, fake=True, extra=extra, plaintext=False) as server:
        ca = pki["ca.crt"].read_bytes()
        good = grpc.ssl_channel_credentials(
            ca, pki["client.key"].read_bytes(), pki["client.crt"].read_bytes()
        )
        with grpc.secure_channel(
            server.target, good, options=[("grpc.ssl_target_name_override", "localhost")]
        ) as ch:
            answer = pb_grpc.DecisionServiceStub(ch).Decide(request("tls", "demo", ADULT), timeout=10)
            assert answer.outcome == pb.APPROVE
        anonymous = grpc.ssl_channel_credentials(ca)
        with (
            grpc.secure_channel(
                server.target, anonymous, options=[("grpc.ssl_target_name_override", "localhost")]
            ) as ch,
            pytest.raises(grpc.RpcError) as caught,
        ):
            pb_grpc.DecisionServiceStub(ch).Decide(request("anon", "demo", ADULT), timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _make_pki(tmp_path: Path) -> dict[str, Path]:
    d = tmp_path / "pki"
    d.mkdir()

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=credo-test-ca",
    )
    for name in ("server", "client"):
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={'localhost' if name == 'server' else 'bank-core'}",
        )
        (d / f"{name}.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
        )
    return {p.name: p for p in d.iterdir()}
