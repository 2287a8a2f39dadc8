"""Personal data through the real server: `credo serve` announces where the key is, seals what it
records, and neither its log, its errors nor its store hold a name or ID number in plaintext."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from e2e_harness import POLICIES, ROOT, request, serve, shipped_cases

NAME, ID_NUMBER = "欧阳秀兰", "51010719880214631X"


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
