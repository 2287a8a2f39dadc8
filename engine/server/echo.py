"""A trivial echo service on the same server model as Decide: the latency floor for benchmarks.

Registered only with `credo serve --echo`; raw bytes in, the same bytes out (no proto needed).
"""

from __future__ import annotations

from typing import Any

import grpc

SERVICE = "credo.bench.Echo"
METHOD = f"/{SERVICE}/Echo"


def _identity(data: bytes) -> bytes:
    return data


def _echo(request: bytes, context: Any) -> bytes:
    return request


def echo_handler() -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {"Echo": grpc.unary_unary_rpc_method_handler(_echo, _identity, _identity)},
    )
