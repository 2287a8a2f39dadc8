"""The compiled form of a monitoring policy: event types and their fields, history measures, alert
rules in the rule IR, the five-category classification by days past due, and the policy's own tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.errors import Diagnostic, Location
from engine.expr.types import Type
from engine.rules.ir import RuleSet

Severity = Literal["watch", "warning", "action"]
SEVERITIES: tuple[Severity, ...] = ("watch", "warning", "action")
# the five regulatory loan categories, in order of deterioration (正常/关注/次级/可疑/损失)
CATEGORIES = ("normal", "special_mention", "substandard", "doubtful", "loss")
CATEGORY_ZH = {
    "normal": "正常",
    "special_mention": "关注",
    "substandard": "次级",
    "doubtful": "可疑",
    "loss": "损失",
}
MeasureKind = Literal["count", "sum", "streak", "first", "last"]
Fact = Mapping[str, Any]


@dataclass(frozen=True)
class EventType:
    """A declared event type: its fields (besides type, loan_id, date) and which may be left out."""

    name: str
    fields: Mapping[str, Type]
    optional: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Measure:
    """A named aggregate of one loan's history, read by rules as a fact field.

    count: events of `event` (matching `where`) in the window; sum: of `field` over them;
    streak: the latest run of consecutive `event`s all matching `where`; first/last: `field` of the
    first/last `event`. Window: `within_days` (the last N days up to now) or `first_days` (the first
    N days from disbursement); none means the loan's whole life."""

    name: str
    kind: MeasureKind
    event: str
    type: Type
    field: str | None = None
    where: Callable[[Fact], bool] | None = None
    within_days: int | None = None
    first_days: int | None = None

    def counts(self, fields: Fact) -> bool:
        return self.where is None or self.where(fields)


@dataclass(frozen=True)
class MonitorRule:
    code: str
    severity: Severity
    action: str
    reasons: Mapping[str, str]
    when: str
    location: Location


@dataclass(frozen=True)
class MonitorTest:
    name: str
    location: Location
    events: tuple[Mapping[str, Any], ...]
    expect: Mapping[str, Any]


@dataclass
class MonitoringPolicy:
    """A loaded monitoring policy. `ruleset` holds one IR rule per alert rule (id = alert code);
    `hoisted` computes the fact fields the IR compares but cannot compute itself."""

    name: str
    version: str
    path: str
    sha256: str
    events: dict[str, EventType]
    measures: dict[str, Measure]
    rules: dict[str, MonitorRule]
    ruleset: RuleSet
    hoisted: dict[str, Callable[[Fact], Any]]
    thresholds: tuple[tuple[str, int], ...]  # (category, lowest dpd), ascending
    tests: tuple[MonitorTest, ...] = ()
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def classify(self, dpd: int) -> str:
        category = self.thresholds[0][0]
        for name, lowest in self.thresholds:
            if dpd >= lowest:
                category = name
        return category

    def fact(self, measures: dict[str, Any]) -> dict[str, Any]:
        """The rule fact: `measures` (a fresh dict, extended in place) plus every hoisted value."""
        for name, fn in self.hoisted.items():
            measures[name] = fn(measures)
        return measures
