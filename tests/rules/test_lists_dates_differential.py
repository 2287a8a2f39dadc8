"""Differential test over lists and dates: every ruleset of the shipped credit_card policy (rules over
tradelines, ages and months since a delinquency, a collect table, segments, adjustments) fires the
same rules on the policy's generated module, the compiled evaluator, durable_rules and the
reference evaluator, for random applications validated as a caller would send them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.policy import load_policy
from engine.policy.codegen import policy_stages
from engine.rules import CompiledEvaluator, DurableEvaluator, ReferenceEvaluator

ROOT = Path(__file__).resolve().parents[2]
POLICY = load_policy(ROOT / "policies" / "credit_card" / "policy.yaml")
STAGES = policy_stages(POLICY)
COMPILED, DURABLE, REFERENCE = CompiledEvaluator(), DurableEvaluator(), ReferenceEvaluator()

days = st.dates(dt.date(1940, 1, 1), dt.date(2030, 12, 31)).map(dt.date.isoformat)
money = st.decimals(0, 50_000, places=2).map(str)
tradeline = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["card", "instalment", "mortgage"]),
        "lender": st.sampled_from(["ICBC", "BOC", "WeBank"]),
        "limit": money,
        "balance": money,
        "dpd": st.integers(0, 150),
        "opened": days,
    }
)
applications = st.fixed_dictionaries(
    {
        "applicant": st.fixed_dictionaries({"birth_date": days, "income_monthly": money}),
        "application": st.fixed_dictionaries(
            {"channel": st.sampled_from(["branch", "online", "partner"])},
            optional={"promo_code": st.sampled_from(["STAFF1", "staff", "spring", ""])},
        ),
        "bureau": st.fixed_dictionaries(
            {"tradelines": st.lists(tradeline, max_size=6)}, optional={"last_delinquency": days}
        ),
    },
    optional={"decision_date": days},
)


def test_credit_card_rulesets_fire_alike_on_every_engine() -> None:
    checked: list[int] = []

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(application=applications)
    def agree(application: dict[str, Any]) -> None:
        fact = POLICY.validate(application, dt.date(2026, 1, 1))
        POLICY.derive(fact, REFERENCE)
        for name, stage in STAGES:
            prepared = stage.prepare(fact)
            want = REFERENCE.fire(stage.ruleset, prepared)
            assert stage.fire(COMPILED, fact) == want, name  # the policy's generated function
            assert COMPILED.fire(stage.ruleset, prepared) == want, name
            assert DURABLE.fire(stage.ruleset, prepared) == want, name
            checked.append(len(want))

    agree()
    assert len(checked) >= 150 * len(STAGES)
    assert sum(checked) > 0  # the rules did fire, not only agree on nothing
