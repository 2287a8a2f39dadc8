"""Personal data through the real server: `credo serve` announces where the key is, seals what it
records, and neither its log, its errors nor its store hold a name or ID number in plaintext."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from e2e_harness import POLICIES, ROOT, pb, request, serve, shipped_cases

from engine.cli import main

NAME, ID_NUMBER = "欧阳秀兰", "51010719880214631X"
OFFICER = "Officer Wen Jiahui"  # a caller label the policy declares personal


def consumer_loan_application() -> dict[str, Any]:
    app = next(c[2] for c in shipped_cases() if c[0] == "consumer_loan" and "error" not in c[3])
    return {**app, "applicant": {**app["applicant"], "name": NAME, "id_number": ID_NUMBER}}


def test_serve_seals_personal_data_and_never_logs_or_echoes_it(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    with serve(tmp_path, policies=POLICIES, workers=1, extra=["--store", f"sqlite:///{db}"]) as server:
        answer = server.stub.Decide(
            request("pii-1", "consumer_loan", consumer_loan_application()), timeout=30
        )
        assert answer.decision_id
        bad = consumer_loan_application()
        bad["applicant"]["id_number"] = 51010719880214631  # a number where text is declared
        with pytest.raises(grpc.RpcError) as refused:
            server.stub.Decide(request("pii-2", "consumer_loan", bad), timeout=30)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "5101071988" not in (refused.value.details() or "")
        log = server.log()
    assert "personal data sealed under key k" in log and str(db) + ".pii-key" in log
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("audit.db*") if not p.name.endswith(".pii-key"))
    assert answer.decision_id.encode() in raw
    for secret in (NAME, ID_NUMBER, "5101071988"):
        assert secret not in log
        assert secret.encode() not in raw


def test_serve_refuses_a_postgresql_store_without_a_key(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine",
            "serve",
            "--port",
            "0",
            "--store",
            "postgresql://credo@127.0.0.1:1/x",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert run.returncode == 2
    assert "PostgreSQL audit store needs the personal-data key" in run.stderr


def test_grpc_replay_names_the_fields_erasure_left_unrestored(tmp_path: Path) -> None:
    """Replay over gRPC used to answer match=false with no diff after `credo audit forget`: the
    caller could not tell an erased field from a changed decision. It now lists what could not be
    restored (a pii input and a pii caller label) and says PARTIAL: everything else matched."""
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    with (policies / "consumer_loan" / "policy.yaml").open("a", encoding="utf-8") as fh:
        fh.write("\nlabels:\n  officer: {pii: true, description: the loan officer's name}\n")
    db = tmp_path / "audit.db"
    labels = {"officer": OFFICER, "channel": "branch"}
    with serve(tmp_path, policies=policies, workers=1, extra=["--store", f"sqlite:///{db}"]) as server:
        answer = server.stub.Decide(
            request("pii-r", "consumer_loan", consumer_loan_application(), labels=labels), timeout=30
        )
        whole = server.stub.Replay(pb.ReplayRequest(decision_id=answer.decision_id), timeout=60)
        assert (whole.match, whole.result, list(whole.unrestored)) == (True, "MATCH", [])

        assert main(["audit", "forget", "--store", f"sqlite:///{db}", "--subject", ID_NUMBER]) == 0
        erased = server.stub.Replay(pb.ReplayRequest(decision_id=answer.decision_id), timeout=60)
        log = server.log()
    assert not erased.match and erased.result == "PARTIAL" and list(erased.diffs) == []
    unrestored = {field.path: field.reason for field in erased.unrestored}
    assert unrestored["input.applicant.id_number"] == "erased"
    assert unrestored["extra.labels.officer"] == "erased"
    assert not any("channel" in path for path in unrestored)  # an undeclared label is kept as sent
    assert erased.recorded.outcome == erased.replayed.outcome == answer.outcome
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("audit.db*") if not p.name.endswith(".pii-key"))
    assert b"branch" in raw  # the scan sees the labels
    assert OFFICER.encode() not in raw
    assert '"channel": "branch"' in log and OFFICER not in log  # the server logs labels, that one masked
