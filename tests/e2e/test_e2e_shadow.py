"""`credo serve --shadow-rate 1.0`: every decision answered is re-checked on durable_rules after the
answer, and Prometheus counts the checks, with no disagreement on any shipped test input."""

from __future__ import annotations

import re
import socket
import time
import urllib.request
from pathlib import Path

import grpc
from e2e_harness import POLICIES, request, serve, shipped_cases


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _shadow_counts(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    found = re.findall(r'^credo_shadow_checks_total\{result="(\w+)"\} ([0-9.e+]+)$', text, re.MULTILINE)
    return {result: float(value) for result, value in found}


def test_every_shipped_decision_is_shadow_checked_with_no_disagreement(tmp_path: Path) -> None:
    port = _free_port()
    extra = ["--shadow-rate", "1.0", "--metrics-port", str(port)]
    with serve(tmp_path, policies=POLICIES, workers=2, extra=extra) as server:
        decided = 0
        for i, (policy, _, application, _) in enumerate(shipped_cases()):
            try:
                server.stub.Decide(request(f"shadow-{i}", policy, application), timeout=30)
            except grpc.RpcError:
                continue  # refused input: no rule ran, nothing to re-check
            decided += 1
        assert decided >= 20
        deadline = time.monotonic() + 60  # the checks run after the answers, on the workers' own thread
        counts = _shadow_counts(port)
        while sum(counts.values()) < decided and time.monotonic() < deadline:
            time.sleep(0.2)
            counts = _shadow_counts(port)
    assert counts == {"agree": decided}
