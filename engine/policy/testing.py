"""Run a policy's own tests (`tests:` in the YAML) through a decide function and compare what the
author expected with what came back. The caller passes the decide function (`credo test` passes the
service's full pipeline); `eligibility_decide` checks the eligibility stage alone."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.errors import CredoError, Location
from engine.policy.model import TEST_DATE, Policy, PolicyTest
from engine.rules.reference import ReferenceEvaluator

Decide = Callable[[Policy, Mapping[str, Any]], dict[str, Any]]
NEEDS_PIPELINE = "skipped (needs pipeline)"


@dataclass
class TestResult:
    name: str
    location: Location
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # expectation keys the decide function could not check

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class TestReport:
    policy: str
    results: list[TestResult] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def failed(self) -> int:
        return sum(not r.passed for r in self.results)


def eligibility_decide(policy: Policy, application: Mapping[str, Any]) -> dict[str, Any]:
    """Validate, derive and run the eligibility stage only: {outcome, reasons}. DECLINE if any decline
    rule fired (its reasons), else REFER if any refer fired, else APPROVE."""
    fact = policy.validate(application, TEST_DATE)
    policy.derive(fact)
    stage = policy.stage("eligibility")
    fired = ReferenceEvaluator().fire(stage.ruleset, stage.prepare(fact)) if stage else []
    effects = [stage.effects[rule_id] for rule_id in fired] if stage else []
    declines = [e for e in effects if e.kind == "decline"]
    refers = [e for e in effects if e.kind == "refer"]
    chosen, outcome = (declines, "DECLINE") if declines else (refers, "REFER") if refers else ([], "APPROVE")
    language = policy.languages[0]
    reasons = [
        {"code": e.code, "text": e.text(language), "stage": "eligibility", "rule_id": e.rule_id}
        for e in chosen
    ]
    return {"outcome": outcome, "reasons": reasons}


def run_tests(policy: Policy, decide: Decide) -> TestReport:
    report = TestReport(policy.name)
    for test in policy.tests:
        report.results.append(run_test(policy, test, decide))
    return report


def run_test(policy: Policy, test: PolicyTest, decide: Decide) -> TestResult:
    result = TestResult(test.name, test.location)
    expect = dict(test.expect)
    want_error = expect.pop("error", None)
    try:
        actual = decide(policy, test.input)
    except CredoError as exc:
        if want_error is None:
            result.failures.append(f"decision failed: {exc.code}: {exc.message}")
        elif want_error != exc.code:
            result.failures.append(f"error: want {want_error}, got {exc.code}")
        return result
    except Exception as exc:  # a bug must show up as a failed test, not as a traceback
        result.failures.append(f"decision crashed: {type(exc).__name__}: {exc}")
        return result
    if want_error is not None:
        result.failures.append(f"error: want {want_error}, got outcome {actual.get('outcome')}")
        return result
    for key, want in expect.items():
        got = _actual(key, actual)
        if got is _ABSENT:
            result.skipped.append(key)
            continue
        if key == "reasons":
            # reasons the author did not list and no rule of the policy declares (model explanations,
            # pricing adjustments) are not compared; a listed one must be there
            got = [code for code in got if code in want or code in _rule_codes(policy)]
        problem = _compare(key, want, got)
        if problem and key in ("outcome", "reasons"):
            problem += f" ({_given_reasons(actual)})"
        if problem:
            result.failures.append(problem)
    return result


def _given_reasons(actual: Mapping[str, Any]) -> str:
    """The reasons the decision gave, code and text, so a failed expectation shows what happened."""
    reasons = [r for r in actual.get("reasons") or () if isinstance(r, Mapping)]
    if not reasons:
        return "the decision gave no reasons"
    return "the decision gave " + "; ".join(f"{r.get('code')}: {r.get('text')}" for r in reasons)


_ABSENT = object()


def _rule_codes(policy: Policy) -> set[str]:
    return {e.code for stage in policy.rule_stages for e in stage.effects.values() if e.kind != "adjust"}


def _actual(key: str, actual: Mapping[str, Any]) -> Any:
    if key in ("derived", "fired"):
        trace = actual.get("trace")
        if not isinstance(trace, list):
            return _ABSENT
        if key == "fired":
            return {str(t.get("stage")): list(t.get("fired", ())) for t in trace}
        derive = next((t for t in trace if t.get("stage") == "derive"), None)
        return {} if derive is None else dict(derive.get("values", {}))
    if key == "outputs":
        return dict(actual.get("outputs") or {})
    if key == "grade":
        score = actual.get("score", _ABSENT)
        return score.get("grade") if isinstance(score, Mapping) else (None if score is None else _ABSENT)
    if key not in actual:
        return _ABSENT
    value = actual[key]
    if key == "reasons":
        return [r.get("code") if isinstance(r, Mapping) else str(r) for r in value or ()]
    if key == "offers":
        return len(value or ())
    if key == "segments":
        return [s.get("id") if isinstance(s, Mapping) else str(s) for s in value or ()]
    return value


def _compare(key: str, want: Any, got: Any) -> str | None:
    if key in ("outputs", "derived", "fired"):
        problems = []
        for name, wanted in want.items():
            if key == "fired":
                value = got.get(name)
                if value is None:
                    problems.append(f"fired.{name}: want {sorted(set(wanted))}, but stage {name} did not run")
                elif sorted(set(wanted)) != sorted(set(value)):
                    problems.append(f"fired.{name}: want {sorted(set(wanted))}, got {sorted(set(value))}")
            elif name not in got:
                known = ", ".join(sorted(got)) or "none"
                problems.append(
                    f"{key}.{name}: no such {key[:-1] if key == 'outputs' else key} value (has: {known})"
                )
            elif not _same(wanted, got[name]):
                problems.append(f"{key}.{name}: want {_shown(wanted)}, got {_shown(got[name])}")
        return "; ".join(problems) or None
    if key in ("reasons", "segments"):
        if sorted(set(want)) != sorted(set(got)):
            return f"{key}: want {sorted(set(want))}, got {sorted(set(got))}"
        return None
    if key in ("limit", "annual_rate"):
        if _number(want) != _number(got):
            return f"{key}: want {want}, got {got}"
        return None
    if want != got:
        return f"{key}: want {want}, got {got}"
    return None


def _number(x: Any) -> Decimal | None:
    try:
        return None if x is None else Decimal(str(x))
    except InvalidOperation:
        return None


def _same(want: Any, got: Any) -> bool:
    """An expected value against a decided one (as JSON: decimals and dates as strings): a number
    the author wrote by value (0.1 equals "0.10"), a string exactly ("0.1" does not equal "0.10"),
    lists item by item, objects key by key, booleans and null as themselves."""
    if isinstance(want, Mapping) and isinstance(got, Mapping):
        return set(want) == set(got) and all(_same(want[k], got[k]) for k in want)
    if isinstance(want, list) and isinstance(got, list):
        return len(want) == len(got) and all(_same(w, g) for w, g in zip(want, got, strict=True))
    if isinstance(want, bool) or isinstance(got, bool) or want is None or got is None:
        return want is got or (want == got and type(want) is type(got))
    if isinstance(want, (int, Decimal)) or isinstance(got, (int, Decimal)):
        return _number(want) is not None and _number(want) == _number(got)
    return str(want) == str(got)


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
