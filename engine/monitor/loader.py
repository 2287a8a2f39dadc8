"""Load a monitoring policy (YAML beside the decision policy it watches) with the decision policies'
located loader: every problem is a Diagnostic at file:line:col, all of them collected; expressions
are checked by engine.expr and lowered to the rule IR."""

from __future__ import annotations

import difflib
import hashlib
import itertools
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine.errors import Diagnostic, DiagnosticSink, PolicyError
from engine.expr import BOOLEAN, DATE, DECIMAL, INTEGER, STRING, Scope, Type, check, enum_type
from engine.expr import types as t
from engine.expr.closure import compile_condition, compile_value
from engine.expr.lower import Lowered, lower_condition
from engine.monitor.events import BUILTIN_EVENTS, MISSED
from engine.monitor.model import (
    CATEGORIES,
    SEVERITIES,
    EventType,
    Measure,
    MeasureKind,
    MonitoringPolicy,
    MonitorRule,
    MonitorTest,
)
from engine.policy.source import PathKey, Source, load_source, parse_source
from engine.rules import ir

__all__ = [
    "check_monitoring",
    "is_monitoring_file",
    "load_monitoring",
    "load_monitoring_text",
    "monitoring_files",
]

_HEAD = re.compile(r"^monitoring\s*:\s*[\w\"']", re.MULTILINE)
_TOP = ("monitoring", "version", "watches", "events", "measures", "rules", "classification", "tests")
_TYPES: dict[str, Type] = {
    "integer": INTEGER,
    "decimal": DECIMAL,
    "string": STRING,
    "boolean": BOOLEAN,
    "date": DATE,
}
_KINDS: tuple[MeasureKind, ...] = ("count", "sum", "streak", "first", "last")
_BUILTIN_MEASURES = {"dpd": INTEGER, "days_on_book": INTEGER}
_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
LANGUAGES = ("en", "zh")


def load_monitoring(path: Path | str) -> MonitoringPolicy:
    """Load, type-check and compile the monitoring policy at `path`; PolicyError lists every error."""
    sink = DiagnosticSink()
    src = load_source(path, sink)
    return _finish(_Builder(src, sink).build() if src is not None else None, sink)


def load_monitoring_text(text: str, name: str = "<monitoring>") -> MonitoringPolicy:
    sink = DiagnosticSink()
    src = parse_source(name, text, sink)
    return _finish(_Builder(src, sink).build() if src is not None else None, sink)


def check_monitoring(path: Path | str) -> list[Diagnostic]:
    """Every diagnostic for one monitoring file; never raises on bad input."""
    sink = DiagnosticSink()
    src = load_source(path, sink)
    if src is not None:
        _Builder(src, sink).build()
    return sink.sorted()


def is_monitoring_file(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(65536).decode("utf-8", errors="replace")
    except OSError:
        return False
    return bool(_HEAD.search(head))


def monitoring_files(paths: Iterable[Path | str]) -> list[Path]:
    """Monitoring policy files named by `paths` (a file as is if it is one; folders searched)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        candidates = sorted([*path.rglob("*.yaml"), *path.rglob("*.yml")]) if path.is_dir() else [path]
        found.extend(f for f in candidates if f.is_file() and is_monitoring_file(f))
    return list(dict.fromkeys(found))


def _finish(policy: MonitoringPolicy | None, sink: DiagnosticSink) -> MonitoringPolicy:
    if policy is None or sink.has_errors:
        raise PolicyError(sink.items)
    policy.diagnostics = sink.sorted()
    return policy


class _Builder:
    def __init__(self, src: Source, sink: DiagnosticSink):
        self.src = src
        self.sink = sink
        self.events: dict[str, EventType] = dict(BUILTIN_EVENTS)
        self.used: set[str] = set()

    def error(self, code: str, message: str, path: PathKey, key: bool = False) -> None:
        self.sink.error(code, message, self.src.key_at(path) if key else self.src.at(path))

    def mapping(self, path: PathKey, value: Any, what: str) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        self.error("WRONG_TYPE", f"{what} must be a mapping", path)
        return {}

    def unknown_keys(self, path: PathKey, value: dict[str, Any], allowed: Iterable[str]) -> None:
        allowed = tuple(allowed)
        for key in value:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), allowed, 1)
                more = f"; did you mean {hint[0]!r}?" if hint else f"; expected one of {', '.join(allowed)}"
                self.error("UNKNOWN_KEY", f"unknown key {key!r}{more}", (*path, key), key=True)

    def build(self) -> MonitoringPolicy | None:
        data = self.src.data
        if not isinstance(data, dict):
            self.error("WRONG_TYPE", "a monitoring policy must be a mapping", ())
            return None
        self.unknown_keys((), data, _TOP)
        name = data.get("monitoring")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            self.error(
                "BAD_VALUE",
                "monitoring: must name the policy watched (lowercase identifier)",
                ("monitoring",),
            )
            name = "monitoring"
        version = str(data.get("version", "1"))
        self.declare_events(data.get("events", {}))
        measures = self.measures(data.get("measures", {}))
        rules, ruleset, hoisted = self.rules(
            data.get("rules"), measures, f"{name}@{self.sha256()[:12]}/monitor"
        )
        thresholds = self.classification(data.get("classification"))
        tests = self.tests(data.get("tests", []))
        for measure in measures.values():
            if measure.name not in self.used:
                self.sink.warning(
                    "UNUSED_MEASURE",
                    f"measure {measure.name!r} is read by no rule",
                    self.src.key_at(("measures", measure.name)),
                )
        if len(tests) == 0:
            self.sink.warning("NO_TESTS", "the monitoring policy has no tests", self.src.at(()))
        return MonitoringPolicy(
            name,
            version,
            self.src.file,
            self.sha256(),
            self.events,
            measures,
            rules,
            ruleset,
            hoisted,
            thresholds,
            tests,
        )

    def sha256(self) -> str:
        return hashlib.sha256(self.src.raw).hexdigest()

    # ---- events --------------------------------------------------------------------------------
    def declare_events(self, raw: Any) -> None:
        for kind, spec in self.mapping(("events",), raw, "events").items():
            path: PathKey = ("events", kind)
            if kind == MISSED:
                self.error(
                    "RESERVED_EVENT",
                    f"{MISSED} is generated by the engine and cannot be declared",
                    path,
                    True,
                )
                continue
            if not re.fullmatch(r"[a-z][a-z_]*\.[a-z][a-z_]*", str(kind)):
                self.error(
                    "BAD_VALUE",
                    f"event type {kind!r} must look like noun.verb (e.g. bureau.refresh)",
                    path,
                    True,
                )
                continue
            spec = self.mapping(path, spec if spec is not None else {}, f"event {kind}")
            base = self.events.get(kind, EventType(kind, {}))
            fields, optional = dict(base.fields), set(base.optional)
            for field_name, field_spec in spec.items():
                fpath = (*path, field_name)
                if field_name in fields or field_name in ("type", "loan_id", "date"):
                    self.error("DUPLICATE_FIELD", f"{kind} already has a field {field_name!r}", fpath, True)
                    continue
                if not _NAME.fullmatch(str(field_name)):
                    self.error(
                        "BAD_VALUE", f"field name {field_name!r} must be a lowercase identifier", fpath, True
                    )
                    continue
                field_type, is_optional = self.field_type(fpath, field_spec)
                if field_type is not None:
                    fields[field_name] = field_type
                    if is_optional:
                        optional.add(field_name)
            self.events[kind] = EventType(kind, fields, frozenset(optional))

    def field_type(self, path: PathKey, spec: Any) -> tuple[Type | None, bool]:
        if isinstance(spec, str):
            if spec in _TYPES:
                return _TYPES[spec], False
            hint = difflib.get_close_matches(spec, list(_TYPES), 1)
            self.error(
                "UNKNOWN_TYPE",
                f"unknown type {spec!r}" + (f"; did you mean {hint[0]!r}?" if hint else ""),
                path,
            )
            return None, False
        if isinstance(spec, dict):
            self.unknown_keys(path, spec, ("type", "enum", "optional"))
            optional = spec.get("optional", False)
            if not isinstance(optional, bool):
                self.error("WRONG_TYPE", "optional must be true or false", (*path, "optional"))
            if "enum" in spec:
                values = spec["enum"]
                if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
                    self.error("WRONG_TYPE", "enum must be a non-empty list of strings", (*path, "enum"))
                    return None, False
                return enum_type(tuple(values)), optional is True
            inner, _ = self.field_type((*path, "type"), spec.get("type"))
            return inner, optional is True
        self.error("WRONG_TYPE", "a field type is a type name or a mapping {type|enum, optional}", path)
        return None, False

    def event_ref(self, path: PathKey, text: Any, with_field: bool) -> tuple[str, str | None] | None:
        if not isinstance(text, str):
            self.error("WRONG_TYPE", "expected an event type" + (".field" if with_field else ""), path)
            return None
        kind, field_name = text, None
        if with_field:
            kind, _, field_name = text.rpartition(".")
        if kind not in self.events:
            hint = difflib.get_close_matches(kind, list(self.events), 1)
            self.error(
                "UNKNOWN_EVENT",
                f"unknown event type {kind!r}" + (f"; did you mean {hint[0]!r}?" if hint else ""),
                path,
            )
            return None
        if with_field:
            fields = self.events[kind].fields
            if field_name not in fields:
                hint = difflib.get_close_matches(str(field_name), list(fields), 1)
                self.error(
                    "UNKNOWN_FIELD",
                    f"{kind} has no field {field_name!r}" + (f"; did you mean {hint[0]!r}?" if hint else ""),
                    path,
                )
                return None
        return kind, field_name

    # ---- measures ------------------------------------------------------------------------------
    def measures(self, raw: Any) -> dict[str, Measure]:
        out: dict[str, Measure] = {}
        for name, spec in self.mapping(("measures",), raw, "measures").items():
            path: PathKey = ("measures", name)
            if not _NAME.fullmatch(str(name)) or name in _BUILTIN_MEASURES:
                self.error(
                    "BAD_VALUE",
                    f"measure name {name!r} must be a lowercase identifier, not dpd/days_on_book",
                    path,
                    True,
                )
                continue
            spec = self.mapping(path, spec, f"measure {name}")
            kinds: list[MeasureKind] = [k for k in _KINDS if k in spec]
            self.unknown_keys(path, spec, (*_KINDS, "where", "within_days", "first_days"))
            if len(kinds) != 1:
                self.error("BAD_MEASURE", f"measure {name!r} needs exactly one of {', '.join(_KINDS)}", path)
                continue
            kind: MeasureKind = kinds[0]
            ref = self.event_ref((*path, kind), spec[kind], with_field=kind in ("sum", "first", "last"))
            if ref is None:
                continue
            event, field_name = ref
            event_type = self.events[event]
            if field_name is None:
                value_type = INTEGER
            else:
                value_type = event_type.fields[field_name]
                if kind == "sum" and not value_type.numeric:
                    self.error(
                        "TYPE_MISMATCH",
                        f"sum needs a number field; {event}.{field_name} is {value_type}",
                        (*path, kind),
                    )
                    continue
            where = None
            if "where" in spec:
                if kind in ("first", "last"):
                    self.error("BAD_MEASURE", f"{kind} takes no where", (*path, "where"), True)
                    continue
                node = self.expr((*path, "where"), spec["where"], Scope(dict(event_type.fields)), BOOLEAN)
                if node is None:
                    continue
                where = compile_condition(
                    node, location=self.src.at((*path, "where")), source=str(spec["where"])
                )
            windows = {}
            for key in ("within_days", "first_days"):
                if key in spec:
                    days = spec[key]
                    if kind in ("streak", "first", "last"):
                        self.error("BAD_MEASURE", f"{kind} takes no {key}", (*path, key), True)
                    elif isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 36600:
                        self.error(
                            "BAD_VALUE", f"{key} must be a whole number of days from 1 to 36600", (*path, key)
                        )
                    else:
                        windows[key] = days
            if len(windows) > 1:
                self.error("BAD_MEASURE", "use within_days or first_days, not both", path)
                continue
            out[name] = Measure(
                name,
                kind,
                event,
                value_type,
                field_name,
                where,
                windows.get("within_days"),
                windows.get("first_days"),
            )
        return out

    def expr(self, path: PathKey, value: Any, scope: Scope, want: Type) -> t.Node | None:
        if isinstance(value, bool):
            return t.Lit(BOOLEAN, 1, 0, value)
        if not isinstance(value, str):
            self.error("WRONG_TYPE", "expected an expression", path)
            return None
        node, errors = check(value, scope, want)
        for e in errors:
            self.sink.error(e.code, e.message, self.src.expr_location(path, e.line, e.col))
        return node

    # ---- rules ---------------------------------------------------------------------------------
    def rules(
        self, raw: Any, measures: dict[str, Measure], ruleset_name: str
    ) -> tuple[dict[str, MonitorRule], ir.RuleSet, dict[str, Any]]:
        scope = Scope({**_BUILTIN_MEASURES, **{m.name: m.type for m in measures.values()}})
        lowered = Lowered(compile_value=lambda node: compile_value(node))
        rules: dict[str, MonitorRule] = {}
        conditions: list[ir.Rule] = []
        if not isinstance(raw, list) or not raw:
            self.error("WRONG_TYPE", "rules must be a non-empty list", ("rules",))
            raw = []
        for i, spec in enumerate(raw):
            path: PathKey = ("rules", i)
            spec = self.mapping(path, spec, "a rule")
            self.unknown_keys(path, spec, ("code", "when", "severity", "action", "reason"))
            code = spec.get("code")
            if not isinstance(code, str) or not _CODE.fullmatch(code):
                self.error("BAD_VALUE", "code must be an UPPER_SNAKE alert code", (*path, "code"))
                continue
            if code in rules:
                self.error(
                    "DUPLICATE_CODE", f"alert code {code!r} is used by an earlier rule", (*path, "code")
                )
                continue
            severity = spec.get("severity")
            if severity not in SEVERITIES:
                self.error(
                    "BAD_VALUE", f"severity must be one of {', '.join(SEVERITIES)}", (*path, "severity")
                )
                continue
            action = spec.get("action")
            if not isinstance(action, str) or not action.strip():
                self.error("BAD_VALUE", "action must name the recommended action", (*path, "action"))
                continue
            reasons = self.mapping((*path, "reason"), spec.get("reason"), "reason")
            if any(not isinstance(reasons.get(lang), str) or not reasons[lang].strip() for lang in LANGUAGES):
                self.error(
                    "MISSING_REASON",
                    f"reason needs a text in each of {', '.join(LANGUAGES)}",
                    (*path, "reason"),
                )
                continue
            node = self.expr((*path, "when"), spec.get("when"), scope, BOOLEAN)
            if node is None:
                continue
            self.used.update(n.name for n in t.walk(node) if isinstance(n, t.Name))
            condition = lower_condition(node, lowered)
            if isinstance(condition, ir.Truth):
                self.sink.warning(
                    "CONSTANT_RULE",
                    f"rule {code} is always {'true' if condition.value else 'false'}",
                    self.src.at((*path, "when")),
                )
            conditions.append(ir.Rule(code, condition))
            rules[code] = MonitorRule(
                code,
                severity,
                action.strip(),
                {k: reasons[k] for k in LANGUAGES},
                str(spec["when"]),
                self.src.at(path),
            )
        fields = tuple(sorted({*lowered.fields, *scope.names}))
        return rules, ir.RuleSet(ruleset_name, tuple(conditions), fields), dict(lowered.hoisted)

    # ---- classification and tests -------------------------------------------------------------
    def classification(self, raw: Any) -> tuple[tuple[str, int], ...]:
        path: PathKey = ("classification",)
        default = tuple(zip(CATEGORIES, (0, 1, 91, 181, 361), strict=True))
        if raw is None:  # the common thresholds: 1-90 days special mention, 91-180 substandard, ...
            return default
        spec = self.mapping(path, raw, "classification")
        if not spec:
            return default
        self.unknown_keys(path, spec, CATEGORIES)
        out: list[tuple[str, int]] = []
        for category in CATEGORIES:
            lowest = spec.get(category)
            if isinstance(lowest, bool) or not isinstance(lowest, int) or lowest < 0:
                self.error(
                    "BAD_CLASSIFICATION",
                    f"{category} needs the lowest days past due (a whole number >= 0)",
                    (*path, category) if category in spec else path,
                )
                return default
            out.append((category, lowest))
        if out[0][1] != 0:
            self.error("BAD_CLASSIFICATION", "normal must start at 0 days past due", (*path, "normal"))
        for (before, low), (after, high) in itertools.pairwise(out):
            if high <= low:
                self.error(
                    "BAD_CLASSIFICATION",
                    f"{after} must start after {before} ({high} <= {low})",
                    (*path, after),
                )
        return tuple(out)

    def tests(self, raw: Any) -> tuple[MonitorTest, ...]:
        if not isinstance(raw, list):
            self.error("WRONG_TYPE", "tests must be a list", ("tests",))
            return ()
        out: list[MonitorTest] = []
        for i, spec in enumerate(raw):
            path: PathKey = ("tests", i)
            spec = self.mapping(path, spec, "a test")
            self.unknown_keys(path, spec, ("name", "events", "expect"))
            events, expect = spec.get("events"), spec.get("expect")
            if not isinstance(events, list) or not all(isinstance(e, dict) for e in events) or not events:
                self.error("WRONG_TYPE", "events must be a non-empty list of events", (*path, "events"))
                continue
            expect = self.mapping((*path, "expect"), expect, "expect")
            self.unknown_keys((*path, "expect"), expect, ("alerts", "dpd", "classification", "error"))
            out.append(
                MonitorTest(str(spec.get("name", f"test {i + 1}")), self.src.at(path), tuple(events), expect)
            )
        return tuple(out)
