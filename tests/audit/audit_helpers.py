"""Helpers for the audit tests: finding PostgreSQL binaries and running a throwaway server as an
unprivileged user, and building records shaped like the pipeline's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import urllib.parse
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.audit.record import DecisionRecord, new_decision_id, request_fingerprint
from engine.audit.sqlite import sqlite_path
from engine.pipeline.render import decision_from_dict

START = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


def find_pg_bindir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres: Debian's layout first, then PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        candidates.append(str(Path(pg_ctl).resolve().parent))
    for directory in candidates:
        if all((Path(directory) / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            return Path(directory)
    return None


def _version_key(path: str) -> tuple[int, ...]:
    part = Path(path).parent.name
    return tuple(int(p) for p in part.split(".") if p.isdigit())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """A throwaway PostgreSQL cluster in a temp dir, run as a non-root user (postgres refuses root)."""

    def __init__(self, bindir: Path, root: Path) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.port = _free_port()
        self.user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                try:
                    self.user = pwd.getpwnam(name)
                    break
                except KeyError:
                    continue
            if self.user is None:
                pytest.skip("running as root and no unprivileged user to run PostgreSQL")
            os.chown(root, self.user.pw_uid, self.user.pw_gid)
            os.chmod(root, 0o700)

    def _run(self, *args: str) -> None:
        kwargs: dict[str, Any] = {}
        if self.user is not None:
            kwargs = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "HOME": str(self.root)}
        proc = subprocess.run(args, cwd=self.root, env=env, capture_output=True, text=True, **kwargs)
        if proc.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {proc.stdout}\n{proc.stderr}\n{tail}")

    def start(self) -> str:
        if not (self.data / "PG_VERSION").exists():
            self._run(
                str(self.bindir / "initdb"), "-D", str(self.data), "-U", "credo", "--auth=trust",
                "--no-sync", "-E", "UTF8", "--no-locale",
            )  # fmt: skip
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=60"
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip
        return f"postgresql://credo@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")


RecordFactory = Callable[..., DecisionRecord]


def record_factory() -> RecordFactory:
    """Records shaped like the pipeline's: Decision.to_dict(), validated input, trace with timings;
    request ids req-0, req-1, ... and received one second apart from START."""
    counter = iter(range(1_000_000))

    def make(
        request_id: str | None = None,
        *,
        age: int = 35,
        received_at: dt.datetime | None = None,
        outcome: str = "APPROVE",
        archive: dict[str, str] | None = None,
    ) -> DecisionRecord:
        n = next(counter)
        request_id = request_id or f"req-{n}"
        received_at = received_at or START + dt.timedelta(seconds=n)
        decision = {
            "decision_id": new_decision_id(),
            "request_id": request_id,
            "outcome": outcome,
            "reasons": []
            if outcome == "APPROVE"
            else [{"code": "AGE_MIN", "text": "too young", "stage": "e"}],
            "score": {"pd": Decimal("0.0312"), "points": 702, "grade": "B"},
            "segments": ["prime"],
            "limit": Decimal("120000"),
            "annual_rate": Decimal("0.085"),
            "offers": [],
            "policy": {"name": "consumer_loan", "version": "1.0.0", "sha256": "a" * 64},
            "models": [{"name": "consumer_pd", "version": "1.0.0", "sha256": "b" * 64}],
            "trace": [{"stage": "eligibility", "fired": [], "millis": 0.125, "values": {}}],
            "decided_at": received_at.isoformat(),
            "currency": "CNY",
        }
        fact = {"applicant.age": age, "applicant.income_monthly": Decimal("12000.00"), "loan.term_months": 24}
        return DecisionRecord.build(
            decision_from_dict(decision),
            request_fingerprint=request_fingerprint("consumer_loan", "en", fact),
            received_at=received_at,
            input=fact,
            derived={"dti": Decimal("0.1")},
            model_outputs={"pd": 0.031234, "features": {"age": age}},
            archive=archive,
        )

    return make


def execute(url: str, statement: str, params: tuple[Any, ...] = ()) -> None:
    """Raw SQL on a store, the way someone tampering with the database would write it."""
    if url.startswith("sqlite"):
        with sqlite3.connect(sqlite_path(url)) as conn:
            conn.execute(statement, params)
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement.replace("?", "%s"), params)


def raw_bytes(url: str) -> bytes:
    """Everything the store holds on disk: the SQLite files (WAL included), or a pg_dump."""
    if url.startswith("sqlite:///"):
        db = Path(url[len("sqlite:///") :])
        return b"".join(
            p.read_bytes() for p in db.parent.glob(db.name + "*") if not p.name.endswith(".pii-key")
        )
    base, _, query = url.partition("?")
    schema = urllib.parse.unquote(query).split("search_path=")[1]
    bindir = find_pg_bindir()
    dump = shutil.which("pg_dump") or str(bindir / "pg_dump" if bindir else "pg_dump")
    return subprocess.run(
        [dump, f"--dbname={base}", f"--schema={schema}"], capture_output=True, check=True, timeout=120
    ).stdout
