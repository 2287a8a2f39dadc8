"""`credo bench`'s gRPC section against a real `credo serve --echo`: what each row reports."""

from __future__ import annotations

import asyncio

from e2e_harness import POLICIES, ROOT

from engine.bench.grpc import call_factories, measure, sample_application, serving


def test_each_grpc_row_reports_the_servers_cpu_time_per_call() -> None:
    """A Decide costs its worker far more CPU than an echo (a decision, not a copy of bytes), and
    both are read from the workers' own CPU time: a number in microseconds per call, not per row."""
    policy, application = sample_application(str(POLICIES), "consumer_loan")
    factories = call_factories(policy, application)
    with serving(1, str(POLICIES), str(ROOT / "models")) as target:
        echo = asyncio.run(measure(target, factories["echo"], 1, 1.0, 1))
        decide = asyncio.run(measure(target, factories["decide"], 1, 1.0, 1))
    assert 10 < echo["server_cpu_us"] < decide["server_cpu_us"] < 100_000, (echo, decide)
