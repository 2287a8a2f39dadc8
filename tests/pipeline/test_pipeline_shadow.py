"""The shadow check: decisions re-run on durable_rules after they are answered agree with the
compiled evaluator on every shipped test input; a broken evaluator is caught and logged with its
decision_id; the sample rate is honoured."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import yaml
from pipeline_helpers import ROOT, application

from engine.errors import CredoError
from engine.pipeline.shadow import ShadowCheck
from engine.rules import evaluator
from engine.rules.ir import RuleSet
from engine.service import DecisionService

SHIPPED = ROOT / "policies"


def shipped_inputs() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(SHIPPED.glob("*/policy.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        out += [(doc["policy"], test["input"]) for test in doc.get("tests", [])]
    return out


class ForgetsTheLastRule:
    """A deliberately broken evaluator: the compiled one, dropping the last rule that fired."""

    name = "compiled"

    def fire(self, ruleset: RuleSet, fact: Mapping[str, Any]) -> list[str]:
        return evaluator("compiled").fire(ruleset, fact)[:-1]


def test_durable_agrees_with_compiled_on_every_shipped_test_input(
    make_service: Callable[..., DecisionService],
) -> None:
    results: list[str] = []
    shadow = ShadowCheck(1.0, evaluator("durable"), on_result=results.append)
    service = make_service(policies_dir=SHIPPED, shadow=shadow)
    decided = 0
    for policy, app in shipped_inputs():
        try:
            service.decide(policy, app, f"shadow-{decided}")
        except CredoError:
            continue  # refused before any rule ran: nothing to check
        decided += 1
    shadow.drain()
    shadow.close()
    assert decided >= 20
    assert results == ["agree"] * decided


def test_a_broken_evaluator_is_reported_with_its_decision_id(
    make_service: Callable[..., DecisionService], caplog: pytest.LogCaptureFixture
) -> None:
    results: list[str] = []
    shadow = ShadowCheck(1.0, evaluator("durable"), on_result=results.append)
    service = make_service(evaluator=ForgetsTheLastRule(), shadow=shadow)
    with caplog.at_level(logging.ERROR, logger="credo.shadow"):
        # by the loaded policy, not its name: the release guard would refuse a policy whose own tests
        # fail on the service's (here deliberately broken) evaluator
        policy = service.source.policy("consumer_mini")
        broken = service.decide(
            policy, application(**{"applicant.age": 19, "flags.blacklisted": True}), "broken"
        )
        shadow.drain()
    shadow.close()
    assert results == ["disagree"]
    (record,) = [r for r in caplog.records if r.getMessage() == "shadow disagreement"]
    assert record.__dict__["decision_id"] == broken.decision_id


def test_the_sample_rate_is_honoured(make_service: Callable[..., DecisionService]) -> None:
    draws = iter([0.5, 0.05, 0.2, 0.01])
    results: list[str] = []
    shadow = ShadowCheck(0.1, evaluator("durable"), on_result=results.append, sample=lambda: next(draws))
    service = make_service(shadow=shadow)
    for i in range(4):
        service.decide("consumer_mini", application(), f"s{i}")
    shadow.drain()
    shadow.close()
    assert results == ["agree", "agree"]  # the draws under 0.1


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_a_rate_outside_0_to_1_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        ShadowCheck(rate, evaluator("durable"))
