"""`credo serve --drift-every`: the supervisor refreshes each served model's drift gauges from the
store on its own thread, and Prometheus shows the same PSI that `credo monitor drift` computes."""

from __future__ import annotations

import datetime as dt
import re
import socket
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from e2e_harness import POLICIES, request, serve, shipped_cases

from engine.audit import open_store
from engine.monitor.drift import drift_report

PSI = re.compile(r"^credo_model_psi\{(?P<labels>[^}]*)\} (?P<value>\S+)$", re.MULTILINE)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _gauges(port: int) -> dict[str, float]:
    """{feature: PSI} of consumer_pd 1.0.0 as the metrics endpoint shows them."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    found = {}
    for match in PSI.finditer(text):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        if labels.get("model") == "consumer_pd" and labels.get("version") == "1.0.0":
            found[labels["feature"]] = float(match["value"])
    return found


def test_served_model_psi_gauges_equal_the_drift_report_of_the_store(tmp_path: Path) -> None:
    port = _free_port()
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    extra = ["--store", url, "--metrics-port", str(port), "--drift-every", "0.5"]
    with serve(tmp_path, policies=POLICIES, workers=1, extra=extra) as server:
        decided = 0
        for i, (policy, _, application, _) in enumerate(shipped_cases()):
            if policy != "consumer_loan":
                continue
            try:
                server.stub.Decide(request(f"drift-{i}", policy, application), timeout=30)
            except grpc.RpcError:
                continue  # refused input: nothing recorded
            decided += 1
        assert decided >= 5
        store = open_store(url, create=False, readonly=True)
        try:  # every decision is committed before its answer: the report sees them all
            report = drift_report(store, since=dt.datetime.now(dt.UTC) - dt.timedelta(days=30))
        finally:
            store.close()
        (model,) = [m for m in report.models if m.model == "consumer_pd"]
        assert model.applicants == decided and model.score is not None and model.score.psi is not None
        deadline = time.monotonic() + 60  # the next refresh after the last decision
        gauges = _gauges(port)
        while abs(gauges.get("score", -1.0) - model.score.psi) > 1e-9 and time.monotonic() < deadline:
            time.sleep(0.3)
            gauges = _gauges(port)
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert gauges["score"] == pytest.approx(model.score.psi, abs=1e-9)
    assert set(gauges) >= {"score", "income_monthly", "bureau_score"}
    status = {"stable": 0.0, "watch": 1.0, "action": 2.0}[model.status]
    assert f'credo_model_drift_status{{model="consumer_pd",version="1.0.0"}} {status}' in text
