"""Prometheus metrics of the server. Multiprocess mode: workers write to PROMETHEUS_MULTIPROC_DIR
(set by the supervisor before anything imports prometheus_client); the supervisor serves the sum.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
    values,
)
from prometheus_client.registry import Collector

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

DECISIONS = Counter("credo_decisions_total", "Decisions answered", ["policy", "outcome"])
DECISION_SECONDS = Histogram(
    "credo_decision_seconds",
    "Whole-decision latency of Decide calls (per-stage timings are in each decision's trace)",
    buckets=_BUCKETS,
)
IN_FLIGHT = Gauge("credo_in_flight", "Decisions in progress", multiprocess_mode="livesum")
WORKER_RESTARTS = Counter("credo_worker_restarts_total", "Workers replaced after dying")
RELOADS = Counter("credo_reloads_total", "Policy reloads", ["result"])
REJECTED = Counter("credo_rejected_total", "Requests answered with an error status", ["code"])
MONITOR_EVENTS = Counter("credo_monitor_events_total", "Loan events stored, by event type", ["type"])
MONITOR_REFUSED = Counter(
    "credo_monitor_events_refused_total", "Loan events refused, by error code", ["code"]
)
MONITOR_ALERTS = Counter("credo_monitor_alerts_total", "Monitoring alerts raised, by alert code", ["code"])
SHADOW_CHECKS = Counter(
    "credo_shadow_checks_total", "Decisions re-checked on the shadow rule engine", ["result"]
)
SHADOW_POLICY_DROPPED = Counter(
    "credo_shadow_policy_dropped_total", "Shadow policy decisions dropped because their queue was full"
)


def serve_metrics(port: int, host: str = "127.0.0.1", collectors: Sequence[Collector] = ()) -> None:
    """Expose the metrics of all processes (multiprocess collector) on host:port/metrics, and those
    of `collectors` living in this process (the supervisor's drift gauges)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    for collector in collectors:
        registry.register(collector)
    start_http_server(port, addr=host, registry=registry)


def write_supervisor_counters() -> None:
    """Rebuild the supervisor's own counters so they are written beside the workers' files.

    prometheus_client chooses where a metric keeps its value when the metric is built, from the
    environment it saw when first imported. The supervisor imports this module (through the worker's
    configuration) before it sets PROMETHEUS_MULTIPROC_DIR, so its counters lived in its memory only
    and /metrics, which sums the files, never showed a restart or a reload."""
    global WORKER_RESTARTS, RELOADS
    values.ValueClass = values.get_value_class()
    WORKER_RESTARTS = Counter(WORKER_RESTARTS._name, WORKER_RESTARTS._documentation, registry=None)
    RELOADS = Counter(RELOADS._name, RELOADS._documentation, ["result"], registry=None)


def mark_dead(pid: int) -> None:
    """Forget a dead worker's live gauges (its counters keep counting in the sum)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)
