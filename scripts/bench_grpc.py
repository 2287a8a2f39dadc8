"""Decide vs a trivial echo on the same server model, in one run: p50/p99 latency at 1 and 16 calls in
flight and throughput. Starts `credo serve --echo` itself; usage: .venv/bin/python scripts/bench_grpc.py
The measurement lives in engine/bench/grpc.py (shared with `credo bench`); `--server-models` compares
sync grpc.server with grpc.aio on a bare echo.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.bench.grpc import (  # noqa: E402
    call_factories,
    describe,
    measure,
    run_rows,
    sample_application,
    serving,
)
from engine.server.echo import METHOD as ECHO_METHOD  # noqa: E402


def _identity(data: bytes) -> bytes:
    return data


def _echo_server(model: str, port: int) -> None:
    """A bare echo server of the given model, for --server-models (runs in a child process)."""
    from concurrent import futures

    async def echo_aio(request: bytes, context: Any) -> bytes:
        return request

    def echo_sync(request: bytes, context: Any) -> bytes:
        return request

    def handler(fn: Any) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            "credo.bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(fn, _identity, _identity)}
        )

    if model == "sync":
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        server.add_generic_rpc_handlers([handler(echo_sync)])
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        server.wait_for_termination()
        return

    async def run() -> None:
        aio_server = grpc.aio.server()
        aio_server.add_generic_rpc_handlers([handler(echo_aio)])
        aio_server.add_insecure_port(f"127.0.0.1:{port}")
        await aio_server.start()
        await aio_server.wait_for_termination()

    asyncio.run(run())


def compare_server_models(seconds: float) -> int:
    """Echo on grpc.server (sync, thread pool) vs grpc.aio, one process each, same client: the
    measurement behind the worker's server model."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    payload = b"x" * 200

    def call(ch: grpc.aio.Channel) -> Any:
        rpc = ch.unary_unary(ECHO_METHOD, request_serializer=_identity, response_deserializer=_identity)
        return lambda: rpc(payload, timeout=10)

    print(f"{'model':6} {'in flight':>9} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for model in ("sync", "aio", "sync", "aio"):
        child = subprocess.Popen([sys.executable, __file__, "--echo-server", model, str(port)], cwd=ROOT)
        try:
            time.sleep(1.5)
            for inflight in (1, 16):
                r = asyncio.run(measure(f"127.0.0.1:{port}", call, inflight, seconds, 1))
                print(f"{model:6} {inflight:>9} {r['rps']:>9.0f} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f}")
        finally:
            child.terminate()
            child.wait()
    return 0


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--echo-server":
        _echo_server(sys.argv[2], int(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--server-models", action="store_true", help="only compare sync grpc.server vs grpc.aio on an echo"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--policies", default="policies")
    parser.add_argument("--models", default="models")
    parser.add_argument("--policy", default=None)
    parser.add_argument("--store", default=None, help="audit store URL for the server (default: no log)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    parser.add_argument(
        "--max-connection-age", default=None, help="the server's --max-connection-age (default: its own)"
    )
    args = parser.parse_args()
    if args.server_models:
        return compare_server_models(args.seconds)
    policy, application = sample_application(args.policies, args.policy)
    factories = call_factories(policy, application)
    rows = [("echo", 1), ("decide", 1), ("echo", 16), ("decide", 16)]
    extra = ("--max-connection-age", args.max_connection_age) if args.max_connection_age else ()
    with serving(args.workers, args.policies, args.models, args.store, extra) as target:
        results = run_rows(target, factories, rows, args.seconds, args.workers)
    print("\n".join(describe({"policy": policy, "workers": args.workers, "seconds": args.seconds,
                              "rows": results})))  # fmt: skip
    for inflight in ("1", "16"):
        e, d = results[f"echo@{inflight}"], results[f"decide@{inflight}"]
        print(
            f"in flight {inflight}: decide p50 = {d['p50_ms'] / e['p50_ms']:.2f}x echo; "
            f"throughput = {d['rps'] / e['rps']:.2f}x echo"
        )
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
