"""gRPC section: Decide vs a trivial echo on the same server model (`credo serve --echo`), p50/p99 and
throughput at 1 and 16 calls in flight, with and without the durable audit log (--store sqlite), and
the server's CPU time per call (its workers', from /proc: steadier than latency on a shared machine).
(The measurement moved here from scripts/bench_grpc.py, which keeps its CLI as a thin wrapper.)"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import yaml
from google.protobuf import struct_pb2

import engine.server  # noqa: F401  (puts the generated credo.v1 package on the path)

# isort: split
from credo.v1 import decision_pb2 as pb

from engine.server.echo import METHOD as ECHO_METHOD

__all__ = ["Served", "bench_grpc", "call_factories", "measure", "sample_application", "serving"]

ROOT = Path(__file__).resolve().parents[2]
Call = Callable[[], Any]


def _identity(data: bytes) -> bytes:
    return data


class Served(str):
    """A running server's target ("host:port"), which also knows its supervisor's pid."""

    pid: int

    def __new__(cls, target: str, pid: int) -> Served:
        served = super().__new__(cls, target)
        served.pid = pid
        return served

    def cpu_seconds(self) -> float | None:
        """CPU time its workers used so far (user + system; Linux /proc), None where unknown."""
        try:
            total = 0.0
            for task in Path(f"/proc/{self.pid}/task").iterdir():
                for worker in (task / "children").read_text().split():
                    fields = Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()
                    total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
            return total / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None


@contextmanager
def serving(
    workers: int, policies: str, models: str, store: str | None = None, extra: tuple[str, ...] = ()
) -> Iterator[Served]:
    """A real `credo serve --echo` on an ephemeral loopback port; yields its target, stops it after."""
    cmd = [sys.executable, "-m", "engine", "serve", "--echo", "--host", "127.0.0.1", "--port", "0",
           "--workers", str(workers), "--policies", policies, "--models", models,
           "--drain-seconds", "0.5", "--grace-seconds", "1", *extra]  # fmt: skip
    # short drain and grace: the bench's connections are closed before the stop
    if store:
        cmd += ["--store", store]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    try:
        target = None
        deadline = time.monotonic() + 120
        while target is None and time.monotonic() < deadline:
            if select.select([proc.stdout], [], [], 0.5)[0]:
                line = proc.stdout.readline()
                found = re.search(r"credo serving on (\S+)", line)
                if found:
                    target = found.group(1)
                elif not line:
                    break
        if target is None:
            raise RuntimeError(f"credo serve did not start: {' '.join(cmd)}")
        yield Served(target, proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def sample_application(policies: str, policy: str | None) -> tuple[str, dict[str, Any]]:
    """The first approved test case of the policy (the full pipeline runs: score, limit, offers)."""
    for path in sorted(Path(policies).glob("*/policy.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        if policy and doc.get("policy") != policy:
            continue
        for case in doc.get("tests") or []:
            if (case.get("expect") or {}).get("outcome") == "APPROVE":
                return str(doc["policy"]), json.loads(json.dumps(case["input"], default=str))
    raise LookupError("no approved test case found in the policies")


async def _answered_by(call: Any) -> str | None:
    """The worker that answered a call (Decide's `credo-worker` trailer; None for the echo)."""
    for key, value in await call.trailing_metadata() or ():
        if key == "credo-worker":
            return str(value)
    return None


async def measure(
    target: str,
    make_call: Callable[[grpc.aio.Channel], Call],
    inflight: int,
    seconds: float,
    channels: int,
    workers: int = 1,
) -> dict[str, Any]:
    """`inflight` concurrent callers for `seconds` over `channels` connections: calls, calls/s, p50, p99,
    for Decide each worker's share of the calls, and for a `Served` target the server's CPU time per
    call (`server_cpu_us`: its workers' user + system time while the calls were timed). SO_REUSEPORT
    places each connection on a worker by a hash: more connections are opened (up to 4 per worker)
    until the warm-up has met every one."""
    opened: list[grpc.aio.Channel] = []
    calls: list[Call] = []
    seen: set[str] = set()
    try:
        while len(opened) < channels or (seen and len(seen) < workers and len(opened) < 4 * workers):
            channel = grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
            opened.append(channel)
            calls.append(make_call(channel))
            for _ in range(20):  # warm up the connection (and its worker's first decision)
                pending = calls[-1]()
                await pending
                if (worker := await _answered_by(pending)) is not None:
                    seen.add(worker)
        latencies: list[float] = []
        answered: dict[str, int] = {}
        served = target if isinstance(target, Served) else None
        cpu_before = served.cpu_seconds() if served else None
        end = time.perf_counter() + seconds

        async def loop(call: Call) -> None:
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                pending = call()
                await pending
                latencies.append(time.perf_counter() - t0)
                if seen and (worker := await _answered_by(pending)) is not None:
                    answered[worker] = answered.get(worker, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(loop(calls[i % len(calls)]) for i in range(inflight)))
        elapsed = time.perf_counter() - t0
        cpu_after = served.cpu_seconds() if served else None
    finally:
        for ch in opened:
            await ch.close()
    latencies.sort()
    result: dict[str, Any] = {
        "calls": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "channels": len(opened),
    }
    if cpu_before is not None and cpu_after is not None:
        result["server_cpu_us"] = (cpu_after - cpu_before) / len(latencies) * 1e6
    if answered:
        total = sum(answered.values())
        shares = sorted((count / total for count in answered.values()), reverse=True)
        shares += [0.0] * (workers - len(shares))  # a worker that answered nothing has share 0
        result["worker_shares"] = shares
        result["worker_share_min"] = shares[-1]
    return result


def call_factories(policy: str, application: dict[str, Any]) -> dict[str, Callable[[grpc.aio.Channel], Call]]:
    """{"echo": ..., "decide": ...}: per channel, a zero-argument coroutine call. The echo sends the
    serialized DecideRequest bytes back and forth (same payload size, no decision)."""
    struct = struct_pb2.Struct()
    struct.update(application)
    ids = itertools.count()
    payload = pb.DecideRequest(request_id="echo", policy=policy, application=struct).SerializeToString()

    def echo_call(ch: grpc.aio.Channel) -> Call:
        rpc = ch.unary_unary(ECHO_METHOD, request_serializer=_identity, response_deserializer=_identity)
        return lambda: rpc(payload, timeout=10)

    def decide_call(ch: grpc.aio.Channel) -> Call:
        rpc = ch.unary_unary(
            "/credo.v1.DecisionService/Decide",
            request_serializer=pb.DecideRequest.SerializeToString,
            response_deserializer=pb.Decision.FromString,
        )
        # a fresh request_id per call: the idempotency map must not answer instead of the engine
        return lambda: rpc(
            pb.DecideRequest(request_id=f"bench-{next(ids)}", policy=policy, application=struct), timeout=10
        )

    return {"echo": echo_call, "decide": decide_call}


def run_rows(
    target: str, factories: dict[str, Callable[[grpc.aio.Channel], Call]], rows: list[tuple[str, int]],
    seconds: float, workers: int,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    results = {}
    for name, inflight in rows:
        # one caller uses one connection, so one worker; concurrent callers should reach them all
        channels, spread = (1, 1) if inflight == 1 else (2 * workers, workers)
        results[f"{name}@{inflight}"] = asyncio.run(
            measure(target, factories[name], inflight, seconds, channels, spread)
        )
    return results


def bench_grpc(
    seconds: float, workers: int = 2, policies: str = "policies", models: str = "models",
    policy: str | None = None, audit: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Echo and Decide at 1 and 16 in flight on one server; then, with `audit`, Decide at 1 and 16 on
    a second server writing every decision to a durable SQLite log in a temporary directory."""
    name, application = sample_application(policies, policy)
    factories = call_factories(name, application)
    rows = [("echo", 1), ("decide", 1), ("echo", 16), ("decide", 16)]
    with serving(workers, policies, models) as target:
        results = run_rows(target, factories, rows, seconds, workers)
    if audit:
        with tempfile.TemporaryDirectory(prefix="credo-bench-") as tmp:
            store = f"sqlite:///{Path(tmp) / 'audit.db'}"
            with serving(workers, policies, models, store) as target:
                logged = run_rows(target, factories, [("decide", 1), ("decide", 16)], seconds, workers)
        results.update({f"{key}+log": r for key, r in logged.items()})
    return {"policy": name, "workers": workers, "seconds": seconds, "rows": results}


def describe(result: dict[str, Any]) -> list[str]:
    lines = [
        f"credo serve, {result['workers']} worker(s), policy {result['policy']}, "
        f"{result['seconds']:.0f} s per row, client: one grpc.aio process on the same machine",
        f"{'service':12} {'in flight':>9} {'calls':>7} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'server CPU/call':>15}",
    ]
    for key, r in result["rows"].items():
        name, _, inflight = key.partition("@")
        inflight, _, log = inflight.partition("+")
        label = f"{name}+{log}" if log else name
        shares = " ".join(f"{s:.2f}" for s in r.get("worker_shares", ()))
        cpu = f"{r['server_cpu_us']:>12.0f} µs" if "server_cpu_us" in r else f"{'-':>15}"
        lines.append(
            f"{label:12} {inflight:>9} {r['calls']:>7.0f} {r['rps']:>9.0f} "
            f"{r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {cpu}" + (f"  worker shares {shares}" if shares else "")
        )
    return lines
