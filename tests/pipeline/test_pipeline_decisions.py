"""Decisions end to end on the consumer_mini policy and the shipped consumer_pd model: outcomes,
reasons and their order, limits, prices and offers exact to the cent."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from pipeline_helpers import application, variant

from engine.decision import Decision, Outcome
from engine.errors import InvalidInput, NotFound, VersionNotLoaded
from engine.service import DecisionService

D = Decimal


def textbook(amount: Decimal, annual_rate: Decimal, term: int) -> Decimal:
    r = Fraction(annual_rate) / 12
    exact = Fraction(amount) * r / (1 - (1 + r) ** -term)
    return (D(exact.numerator) / D(exact.denominator)).quantize(D("0.01"), rounding=ROUND_HALF_EVEN)


def stages(decision: Decision) -> list[str]:
    return [entry.stage for entry in decision.trace]


def test_good_applicant_is_approved_with_ranked_affordable_offers(service: DecisionService) -> None:
    decision = service.decide("consumer_mini", application(), "r-1")
    assert decision.outcome is Outcome.APPROVE
    assert decision.score is not None and decision.score.grade in {"A", "B"}
    assert decision.segments == ("prime",)
    assert decision.limit == D("200000.00")  # 20000 x 10, at the cap
    assert decision.annual_rate is not None
    assert 1 <= len(decision.offers) <= 3
    profits = [offer.expected_profit for offer in decision.offers]
    assert profits == sorted(profits, reverse=True)
    pd = decision.score.pd
    for offer in decision.offers:
        assert offer.amount <= decision.limit
        assert sum(row.principal for row in offer.schedule) == offer.amount
        assert offer.total_interest == sum(row.interest for row in offer.schedule)
        assert offer.instalment == offer.schedule[0].payment
        assert (offer.instalment + D(1000)) <= D("0.5") * D(20000)  # affordable against income
        fee = D("0.01") * offer.amount if offer.product == "personal_std" else D(0)
        margin = offer.total_interest + fee - pd * D("0.45") * offer.amount
        assert offer.expected_profit == margin.quantize(D("0.01"), rounding=ROUND_HALF_EVEN)
        assert offer.apr >= offer.annual_rate.quantize(D("0.0001"))  # fees only ever add to the cost
    assert stages(decision) == [
        *("validate", "derive", "eligibility", "score", "post_score"),
        *("segments", "limit", "price", "offers", "outcome"),
    ]


def test_every_method_matches_its_textbook_schedule(make_service: object, tmp_path: Path) -> None:
    # top: 20 keeps every candidate, so each product x term x method shows up
    path = variant(tmp_path, {"  top: 3": "  top: 20"})
    service = make_service()  # type: ignore[operator]
    decision = service.decide(
        service.load_policy_file(path), application(**{"debt.monthly_payments": "0"}), "r-m"
    )
    methods = {offer.repayment_method for offer in decision.offers}
    assert methods == {"equal_instalment", "equal_principal", "interest_only"}
    for offer in decision.offers:
        n, r = offer.term_months, offer.annual_rate / 12
        first = offer.schedule[0]
        if offer.repayment_method == "equal_instalment":
            level = textbook(offer.amount, offer.annual_rate, n)
            assert all(row.payment == level for row in offer.schedule[:-1])
        elif offer.repayment_method == "equal_principal":
            share = (offer.amount / n).quantize(D("0.01"), rounding=ROUND_HALF_EVEN)
            interest = (offer.amount * r).quantize(D("0.01"), rounding=ROUND_HALF_EVEN)
            assert (first.principal, first.interest) == (share, interest)
        else:
            assert all(row.principal == 0 for row in offer.schedule[:-1])
            assert offer.schedule[-1].principal == offer.amount


def test_every_failing_eligibility_rule_is_reported_and_nothing_after_runs(service: DecisionService) -> None:
    app = application(**{"applicant.age": 19, "flags.blacklisted": True})
    decision = service.decide("consumer_mini", app, "r-2")
    assert decision.outcome is Outcome.DECLINE
    assert [r.code for r in decision.reasons] == ["AGE_MIN", "BLACKLISTED"]
    assert [(r.stage, r.rule_id) for r in decision.reasons] == [
        ("eligibility", "age_min"),
        ("eligibility", "blacklisted"),
    ]
    assert decision.score is None and decision.limit is None and decision.offers == ()
    assert stages(decision) == ["validate", "derive", "eligibility", "outcome"]


def test_reasons_come_in_the_requested_language(service: DecisionService) -> None:
    decision = service.decide("consumer_mini", application(**{"applicant.age": 19}), "r-3", language="zh")
    assert [r.text for r in decision.reasons] == ["申请人未满21岁"]


def test_refer_lists_the_rule_then_model_reasons_at_most_four(service: DecisionService) -> None:
    decision = service.decide("consumer_mini", application(**{"bureau.months_on_file": 3}), "r-4")
    assert decision.outcome is Outcome.REFER
    assert decision.reasons[0].code == "THIN_FILE"
    assert 1 < len(decision.reasons) <= 4
    assert all(r.stage == "score" for r in decision.reasons[1:])
    assert decision.limit == D("100000.00")  # the thin-file adjustment halves the limit
    assert decision.offers  # an underwriter sees what could be offered


def test_post_score_decline_keeps_the_score(service: DecisionService) -> None:
    app = application(
        **{
            "bureau.score": 420,
            "bureau.delinquencies_24m": 5,
            "bureau.inquiries_6m": 8,
            "bureau.utilisation": "1.4",
            "applicant.employment_type": "unemployed",
            "debt.monthly_payments": "9000",
        }
    )
    decision = service.decide("consumer_mini", app, "r-5")
    assert decision.outcome is Outcome.DECLINE
    assert decision.score is not None and decision.score.pd > D("0.5")
    assert decision.reasons[0].code == "PD_TOO_HIGH"
    assert len(decision.reasons) == 4 and decision.reasons[1].stage == "score"
    assert stages(decision)[-2:] == ["post_score", "outcome"]


def test_limit_below_floor_declines(service: DecisionService) -> None:
    small = application(**{"applicant.income_monthly": "150", "bureau.months_on_file": 8})
    decision = service.decide("consumer_mini", small, "r-7")  # 1500 halved -> 750 -> 700 < 1000
    assert decision.outcome is Outcome.DECLINE
    assert decision.reasons[0].code == "LIMIT_BELOW_FLOOR"
    assert "offers" not in stages(decision)


def test_no_affordable_offer_declines(service: DecisionService) -> None:
    decision = service.decide("consumer_mini", application(**{"debt.monthly_payments": "9990"}), "r-8")
    assert decision.outcome is Outcome.DECLINE
    assert decision.reasons[0].code == "NO_AFFORDABLE_OFFER"
    assert decision.offers == ()


def test_price_is_capped_and_offers_above_the_apr_cap_are_dropped(
    make_service: object, tmp_path: Path
) -> None:
    path = variant(tmp_path, {"  cap: 0.24": "  cap: 0.09"})
    service = make_service()  # type: ignore[operator]
    decision = service.decide(service.load_policy_file(path), application(), "r-9")
    assert decision.annual_rate == D("0.09")
    assert decision.offers
    # personal_std charges a 1% fee, so at the capped rate its APR is above the cap: only the
    # fee-free salary_express (rate + 1%, capped back to 9%) remains
    assert {offer.product for offer in decision.offers} == {"salary_express"}
    assert all(offer.apr <= D("0.09") and offer.annual_rate == D("0.09") for offer in decision.offers)
    price = next(entry for entry in decision.trace if entry.stage == "price")
    assert price.values["capped"] is True


def test_price_adjustment_applies_and_is_reported(service: DecisionService) -> None:
    plain = service.decide("consumer_mini", application(), "r-10")
    civil = service.decide(
        "consumer_mini", application(**{"applicant.employment_type": "civil_servant"}), "r-11"
    )
    assert civil.outcome is Outcome.APPROVE
    assert civil.score is not None and plain.score is not None
    if civil.score.grade == plain.score.grade:
        assert civil.annual_rate == plain.annual_rate - D("0.005")  # type: ignore[operator]
    assert "PRICE_CIVIL" in [r.code for r in civil.reasons]


def test_invalid_application_lists_every_bad_field(service: DecisionService) -> None:
    app = application(**{"applicant.age": "old", "applicant.employment_type": "pirate", "extra": 1})
    del app["bureau"]["score"]
    with pytest.raises(InvalidInput) as caught:
        service.decide("consumer_mini", app, "r-12")
    assert [v.field for v in caught.value.violations] == [
        "applicant.age",
        "applicant.employment_type",
        "bureau.score",
        "extra",
    ]


def test_unknown_policy_is_not_found_and_an_unloaded_version_a_failed_precondition(
    service: DecisionService,
) -> None:
    with pytest.raises(NotFound):
        service.decide("no_such_policy", application(), "r-13")
    with pytest.raises(VersionNotLoaded) as caught:
        service.decide("consumer_mini", application(), "r-14", version="9.9.9")
    assert caught.value.grpc_status == "FAILED_PRECONDITION"
    assert service.list_policies()[0]["name"] == "consumer_mini"


def test_a_formula_that_divides_by_zero_refuses_the_decision_with_its_location(
    service: DecisionService,
) -> None:
    from engine.errors import PolicyRuntimeError

    with pytest.raises(PolicyRuntimeError) as caught:
        service.decide("consumer_mini", application(**{"applicant.income_monthly": "0"}), "r-15")
    assert caught.value.location is not None and caught.value.location.line == 24
    assert "division by zero" in caught.value.message


def test_shipped_policy_offers_match_the_textbook_formulas() -> None:
    from pipeline_helpers import ROOT

    from engine.policy import load_policy

    service = DecisionService(ROOT / "policies", ROOT / "models")
    checked = 0
    for path in sorted((ROOT / "policies").glob("*/policy.yaml")):
        policy = load_policy(path)
        for n, case in enumerate(policy.tests):
            if "error" in case.expect:
                continue
            decision = service.decide(policy, case.input, f"t-{policy.name}-{n}")
            if decision.outcome is Outcome.APPROVE and policy.products is not None:  # credit_card has none
                assert decision.offers, case.name
            for offer in decision.offers:
                assert decision.limit is not None and offer.amount <= decision.limit
                assert sum(row.principal for row in offer.schedule) == offer.amount
                if offer.repayment_method == "equal_instalment":
                    level = textbook(offer.amount, offer.annual_rate, offer.term_months)
                    assert all(row.payment == level for row in offer.schedule[:-1]), case.name
                checked += 1
    assert checked > 0


def test_german_credit_offers_every_repayment_method_to_a_homeowner() -> None:
    from pipeline_helpers import ROOT

    from engine.policy import load_policy

    service = DecisionService(ROOT / "policies", ROOT / "models")
    policy = load_policy(ROOT / "policies" / "german_credit" / "policy.yaml")
    case = next(t for t in policy.tests if t.name.startswith("grade A homeowner"))
    decision = service.decide(policy, case.input, "gc-methods", language="zh")
    assert decision.outcome is Outcome.APPROVE
    assert {o.repayment_method for o in decision.offers} == {
        "equal_instalment",
        "equal_principal",
        "interest_only",
    }
    bullet = next(o for o in decision.offers if o.repayment_method == "interest_only")
    assert bullet.product == "bullet_loan" and bullet.annual_rate == D(
        "0.075"
    )  # 0.065 + 0.01 product adjustment
    assert bullet.apr == D("0.0750")  # no fee: the APR is the nominal rate
    assert [r.text for r in decision.reasons] == ["持有不动产，利率优惠"]
