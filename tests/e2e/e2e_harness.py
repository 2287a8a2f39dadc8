"""Start `credo serve` as a real process on an ephemeral port and talk to it with the generated stubs.

The server's announce line on stdout ("credo serving on HOST:PORT ...") gives the port.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import grpc
from google.protobuf import struct_pb2

import engine.server  # noqa: F401

# isort: split
from credo.v1 import decision_pb2 as pb
from credo.v1 import decision_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[2]
FAKE = "tests.e2e.fake_service:FakeService"
ANNOUNCE = re.compile(r"credo serving on (\S+):(\d+)")
# The tests serve with a 0.5 s connection age (so reloads drain fast); a call that races the
# server's GOAWAY fails UNAVAILABLE before the server saw it. A real client retries UNAVAILABLE
# (Decide is idempotent by request_id), and so does the tests' main channel. Channels that count
# failures on purpose (kill -9, reload, store down) are made by `connections` without retries.
RETRYING = [
    ("grpc.enable_retries", 1),
    (
        "grpc.service_config",
        json.dumps(
            {
                "methodConfig": [
                    {
                        "name": [{}],
                        "retryPolicy": {
                            "maxAttempts": 4,
                            "initialBackoff": "0.05s",
                            "maxBackoff": "0.5s",
                            "backoffMultiplier": 2,
                            "retryableStatusCodes": ["UNAVAILABLE"],
                        },
                    }
                ]
            }
        ),
    ),
]


SHORT_TIMING = ["--max-connection-age", "0.5", "--drain-seconds", "1.5", "--grace-seconds", "5"]


@dataclass
class Server:
    proc: subprocess.Popen[str]
    target: str
    channel: grpc.Channel
    stderr_path: Path

    @property
    def stub(self) -> pb_grpc.DecisionServiceStub:
        return pb_grpc.DecisionServiceStub(self.channel)

    def worker_pids(self) -> list[int]:
        """Live worker processes (children of the supervisor)."""
        pids: list[int] = []
        task = Path(f"/proc/{self.proc.pid}/task")
        for t in task.iterdir():
            text = (t / "children").read_text().split()
            pids.extend(int(p) for p in text)
        return sorted(pids)

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        """The structured (JSON) log entries the server wrote so far; other stderr lines are skipped."""
        found = []
        for line in self.log().splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    found.append(entry)
        return found

    def logged(self, event: str) -> list[dict[str, Any]]:
        """Log entries whose `event` field is `event`."""
        return [e for e in self.events() if e.get("event") == event]


@contextmanager
def serve(
    tmp_path: Path,
    *,
    policies: Path | None,
    models: Path | None = None,
    workers: int = 2,
    fake: bool = False,
    extra: list[str] | None = None,
    env: dict[str, str] | None = None,
    startup: float = 90.0,
    plaintext: bool = True,
    default_timing: bool = False,
) -> Iterator[Server]:
    """`default_timing` serves with the shipped connection age, drain and grace (tests of exactly
    those); otherwise with short ones so reloads drain fast."""
    models = models or (ROOT / "models")
    timing = [] if default_timing else SHORT_TIMING
    args = [
        sys.executable,
        "-m",
        "engine",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--workers",
        str(workers),
        *(["--policies", str(policies)] if policies is not None else []),  # None: --releases in extra
        "--models",
        str(models),
        "--watch-interval",
        "0.3",
        *timing,
        *(extra or []),
    ]
    if fake:
        args += ["--service-factory", FAKE]
    stderr_path = tmp_path / f"serve-{time.monotonic_ns()}.log"
    with open(stderr_path, "w") as err:
        proc = subprocess.Popen(
            args, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True, env={**os.environ, **(env or {})}
        )
    channel = None
    try:
        target = _wait_announce(proc, stderr_path, startup)
        channel = grpc.insecure_channel(target, options=RETRYING)
        if plaintext:
            grpc.channel_ready_future(channel).result(timeout=10)
        yield Server(proc, target, channel, stderr_path)
    finally:
        if channel is not None:
            channel.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout:
            proc.stdout.close()


def _wait_announce(proc: subprocess.Popen[str], stderr_path: Path, timeout: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            match = ANNOUNCE.search(line)
            if match:
                return f"{match.group(1)}:{match.group(2)}"
            if not line and proc.poll() is not None:
                break
    raise AssertionError(
        f"credo serve did not start (exit {proc.poll()}):\n{stderr_path.read_text(errors='replace')[-4000:]}"
    )


def free_port() -> int:
    """A port nobody listens on now (for --metrics-port and the like)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request(request_id: str, policy: str, application: dict[str, Any], **kw: Any) -> pb.DecideRequest:
    struct = struct_pb2.Struct()
    struct.update(_jsonable(application))
    return pb.DecideRequest(request_id=request_id, policy=policy, application=struct, **kw)


def _jsonable(value: Any) -> Any:
    """Policy test inputs as Struct values: dates and Decimals as strings (how a client sends them)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


POLICIES = ROOT / "policies"


def shipped_policies() -> list[tuple[str, Path, dict[str, Any]]]:
    """(name, path, parsed YAML) of every policies/*/policy.yaml."""
    import yaml

    found = []
    for path in sorted(POLICIES.glob("*/policy.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        found.append((str(doc.get("policy", path.parent.name)), path, doc))
    return found


def shipped_cases() -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(policy, test name, input, expect) of every test embedded in a shipped policy."""
    return [
        (name, str(case.get("name", i)), case.get("input") or {}, case.get("expect") or {})
        for name, _, doc in shipped_policies()
        for i, case in enumerate(doc.get("tests") or [])
    ]


def connections(server: Server, n: int) -> list[grpc.Channel]:
    """n separate connections (a channel each), so calls spread over the SO_REUSEPORT workers."""
    return [
        grpc.insecure_channel(server.target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(n)
    ]


class CallLoop:
    """Calls from several threads, each on its own connection, until the `with` block ends:
    subclasses say what one call is (`one`), given a stub, the thread's index and a call count."""

    def __init__(self, server: Server, threads: int = 4):
        self.channels = connections(server, threads)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def __enter__(self) -> Self:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        for ch in self.channels:
            ch.close()

    def _run(self, index: int) -> None:
        stub = pb_grpc.DecisionServiceStub(self.channels[index])
        n = 0
        while not self._stop.is_set():
            n += 1
            self.one(stub, index, n)

    def one(self, stub: pb_grpc.DecisionServiceStub, index: int, n: int) -> None:
        raise NotImplementedError


def kill_9_all(server: Server) -> None:
    """SIGKILL the supervisor and every worker at one instant (as kill -9 of the process group would;
    the harness starts the server in the test's own group): freeze them all first, then kill."""
    pids = [server.proc.pid, *server.worker_pids()]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    server.proc.wait(timeout=10)
    for pid in pids[1:]:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
