"""Properties every decision keeps, on random valid applications: the outcome follows the reasons,
an APPROVE carries affordable offers within the limit, schedules add up, reasons are at most four."""

from __future__ import annotations

import dataclasses
import itertools
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pipeline_helpers import MINI, MODELS, FrozenClock

from engine.decision import Outcome
from engine.pipeline.render import decision_json, stable_view
from engine.service import DecisionService

D = Decimal
REQUESTS = itertools.count()
SERVICE = DecisionService(
    MINI.parent.parent, MODELS, clock=FrozenClock(), ids=lambda now: "id", timer=lambda: 0.0
)


def money(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(min_value=low * 100, max_value=high * 100).map(lambda cents: str(D(cents) / 100))


applications = st.fixed_dictionaries(
    {
        "applicant": st.fixed_dictionaries(
            {
                "age": st.integers(18, 100),
                "income_monthly": money(1_000, 80_000),  # dti stays within the model's range
                "employment_type": st.sampled_from(
                    ["salaried", "civil_servant", "self_employed", "unemployed", "retired"]
                ),
                "employment_months": st.integers(0, 400),
                "residence_type": st.sampled_from(["own", "mortgage", "rent", "family"]),
            }
        ),
        "debt": st.fixed_dictionaries({"monthly_payments": money(0, 20_000)}),
        "bureau": st.fixed_dictionaries(
            {
                "score": st.integers(300, 900),
                "delinquencies_24m": st.integers(0, 6),
                "inquiries_6m": st.integers(0, 8),
                "utilisation": st.integers(0, 200).map(lambda pct: str(D(pct) / 100)),
                "months_on_file": st.integers(0, 300),
                "bankruptcy": st.booleans(),
            }
        ),
        "loan": st.fixed_dictionaries({"amount": money(1_000, 200_000), "term_months": st.integers(6, 60)}),
        "flags": st.fixed_dictionaries({"blacklisted": st.booleans()}),
    }
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(applications)
def test_every_decision_keeps_its_invariants(app: dict[str, Any]) -> None:
    decision = SERVICE.decide("consumer_mini", app, f"p-{next(REQUESTS)}")
    assert len(decision.reasons) >= 1 or decision.outcome is Outcome.APPROVE
    assert len(decision.reasons) <= 4
    if decision.outcome is Outcome.DECLINE:
        assert decision.offers == () and decision.limit is None
    else:
        assert decision.offers, "an approval or referral always carries an offer"
        assert decision.limit is not None and decision.limit >= 1000
        assert decision.annual_rate is not None and D("0.04") <= decision.annual_rate <= D("0.24")
        income = D(app["applicant"]["income_monthly"])
        debt = D(app["debt"]["monthly_payments"])
        for offer in decision.offers:
            assert offer.amount <= decision.limit
            assert offer.apr <= D("0.24")
            assert offer.instalment + debt <= D("0.5") * income
            assert sum(row.principal for row in offer.schedule) == offer.amount
            assert all(row.balance >= 0 for row in offer.schedule)
    if decision.outcome is Outcome.REFER:
        assert decision.reasons[0].stage in {"eligibility", "post_score"}
    # a new request_id, or the service would answer the first decision again (idempotency)
    again = dataclasses.replace(
        SERVICE.decide("consumer_mini", app, f"p-{next(REQUESTS)}"), request_id=decision.request_id
    )
    assert decision_json(stable_view(again.to_dict())) == decision_json(stable_view(decision.to_dict()))
