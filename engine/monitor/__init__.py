"""Post-loan monitoring: loan events checked against a monitoring policy, per-loan state with its
alert rules on durable_rules (one session per loan), alerts and the five-category classification."""

from engine.errors import BadEvent
from engine.monitor.engine import Accepted, Alert, Monitor, ReferenceMatcher
from engine.monitor.events import Event, parse_event
from engine.monitor.loader import check_monitoring, load_monitoring, load_monitoring_text, monitoring_files
from engine.monitor.model import CATEGORIES, CATEGORY_ZH, MonitoringPolicy
from engine.monitor.reference import ReferenceMonitor
from engine.monitor.testing import run_monitor_tests

__all__ = [
    "CATEGORIES",
    "CATEGORY_ZH",
    "Accepted",
    "Alert",
    "BadEvent",
    "Event",
    "Monitor",
    "MonitoringPolicy",
    "ReferenceMatcher",
    "ReferenceMonitor",
    "check_monitoring",
    "load_monitoring",
    "load_monitoring_text",
    "monitoring_files",
    "parse_event",
    "run_monitor_tests",
]
