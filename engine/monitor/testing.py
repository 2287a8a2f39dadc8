"""Run a monitoring policy's own tests: each test's events go through a fresh engine as loan `T1`
(unless an event names its loan), and the alerts raised, refused events and final state are compared."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.errors import Location
from engine.monitor.engine import Monitor
from engine.monitor.events import BadEvent
from engine.monitor.model import MonitoringPolicy, MonitorTest

__all__ = ["MonitorTestResult", "run_monitor_tests"]

TEST_LOAN = "T1"


@dataclass
class MonitorTestResult:
    name: str
    location: Location
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def run_monitor_tests(policy: MonitoringPolicy) -> list[MonitorTestResult]:
    return [_run(policy, test) for test in policy.tests]


def _run(policy: MonitoringPolicy, test: MonitorTest) -> MonitorTestResult:
    result = MonitorTestResult(test.name, test.location)
    monitor = Monitor(policy)
    raised: list[str] = []
    refused: list[BadEvent] = []
    try:
        for raw in test.events:
            event = {"loan_id": TEST_LOAN, **raw}
            try:
                raised.extend(alert.code for alert in monitor.ingest(event).alerts)
            except BadEvent as error:
                refused.append(error)
        state = monitor.loan(TEST_LOAN)
    finally:
        monitor.close()
    expect = test.expect
    want_error = expect.get("error")
    codes = [error.code for error in refused]
    if want_error is None and refused:
        result.failures.append(f"events were refused: {'; '.join(str(e) for e in refused)}")
    elif want_error is not None and want_error not in codes:
        result.failures.append(f"expected a refused event with {want_error}, got {codes or 'none'}")
    if "alerts" in expect and list(expect["alerts"] or []) != raised:
        result.failures.append(f"alerts: expected {list(expect['alerts'] or [])}, got {raised}")
    for key in ("dpd", "classification"):
        if key in expect:
            got = state[key] if state is not None else None
            if got != expect[key]:
                result.failures.append(f"{key}: expected {expect[key]!r}, got {got!r}")
    return result
