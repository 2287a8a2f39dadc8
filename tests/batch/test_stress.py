"""Stress shocks to the model's output and to the economics: PD through a stated macro link equals
logistic(logit(PD) + sum of beta x change) and shows in the report; a cost-of-funds shock prices every
offer's NPV at the shocked rate (checked against a hand computation) and re-ranks the offers exactly
as a policy stating that rate would; files that get either wrong are refused with locations."""

from __future__ import annotations

import decimal
import math
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.batch.decider import PD_CEILING, BatchDecider, Undecided, package_for, stressed_pd
from engine.batch.pool import InProcessPool
from engine.batch.scenario import Scenario, load_scenarios, stressed_policy
from engine.batch.sim_report import write_simulation_report
from engine.batch.simulate import SimulationOptions, simulate
from engine.bench.data import applications
from engine.decision import Decision, Offer
from engine.errors import ScenarioError
from engine.models.scaling import points
from engine.models.scoring import OnnxScorer
from engine.models.synthetic import write
from engine.policy import load_policy, load_policy_text

ROOT = Path(__file__).resolve().parents[2]
POLICY_PATH = ROOT / "policies" / "consumer_loan" / "policy.yaml"
STRESS = ROOT / "policies" / "consumer_loan" / "scenarios" / "stress.yaml"
POLICY = load_policy(POLICY_PATH)
PACKAGE = package_for(POLICY, ROOT / "models")
PD_PLACES = Decimal("0.000001")


def decided(items: list[Decision | Undecided]) -> list[Decision]:
    return [d for d in items if isinstance(d, Decision)]


def raw_pds(apps: list[dict[str, Any]]) -> list[float | None]:
    """The model's PD of each application that reaches the score stage (None when declined before)."""
    assert POLICY.score is not None and PACKAGE is not None
    scorer = OnnxScorer(PACKAGE)
    out: list[float | None] = []
    for app in apps:
        fact = POLICY.validate(app)
        POLICY.derive(fact)
        out.append(scorer.pd(POLICY.score.features(fact)))
    return out


def logistic_of_shifted_logit(pd: float, shift: float) -> float:
    return 1 / (1 + math.exp(-(math.log(pd / (1 - pd)) + shift)))


def test_pd_from_a_macro_link_is_the_logistic_of_the_shifted_logit() -> None:
    (scenario,) = [s for s in load_scenarios(STRESS, POLICY) if s.name == "unemployment_up"]
    assert scenario.pd_link == "logit"
    assert scenario.pd_logit_shift == Decimal("3.0") * Decimal("0.12") + Decimal("-2.0") * Decimal("-0.05")
    apps = applications(300, seed=53)
    shocked = BatchDecider(POLICY, PACKAGE, pd_logit_shift=float(scenario.pd_logit_shift)).decide(apps)
    checked = 0
    for decision, raw in zip(shocked, raw_pds(apps), strict=True):
        if isinstance(decision, Undecided) or decision.score is None:
            continue
        assert raw is not None
        want = logistic_of_shifted_logit(raw, 0.46)
        assert decision.score.pd == Decimal(repr(want)).quantize(PD_PLACES, rounding=ROUND_HALF_EVEN)
        assert decision.score.points == points(want, 600, 50, 20)
        assert want > raw
        checked += 1
    assert checked > 100


def test_the_stressed_pd_stays_a_probability_at_either_end() -> None:
    assert stressed_pd(0.0, 1.0, 5.0) == 0.0
    assert stressed_pd(0.5, 3.0, 0.0) == PD_CEILING  # a multiplied PD is capped
    assert stressed_pd(0.9, 1.0, 800.0) == PD_CEILING  # exp(800) would overflow a float
    assert stressed_pd(0.02, 1.0, -800.0) == 0.0  # exp(-800) underflows to zero, no error
    assert stressed_pd(0.5, 1.0, 0.0) == 0.5


def test_the_report_shows_the_macro_scenario_and_its_higher_pds(tmp_path: Path) -> None:
    data = tmp_path / "apps.parquet"
    write(400, 20261203, data, applications=True)
    options = SimulationOptions(POLICY_PATH, data, scenarios=STRESS, models_dir=ROOT / "models", chunk=200)
    result = simulate(options, InProcessPool())
    summary = result.summary()
    (arm,) = [a for a in summary["arms"] if a["name"] == "unemployment_up"]
    assert arm["shocks"]["model.pd_macro"] == {
        "link": "logit",
        "logit_shift": "0.460",
        "unemployment_rate": {"change": "3.0", "beta": "0.12"},
        "gdp_growth": {"change": "-2.0", "beta": "-0.05"},
    }
    results = summary["results"]
    assert Decimal(results["unemployment_up"]["overall"]["avg_pd"]) > Decimal(
        results["baseline"]["overall"]["avg_pd"]
    )
    html, _ = write_simulation_report(summary, result.timing(), tmp_path / "report")
    text = html.read_text(encoding="utf-8")
    assert "unemployment_up" in text and "model.pd_macro" in text and "logit" in text


def test_a_bad_macro_link_is_refused_with_every_problem_located(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "scenarios:\n"
        "  slump:\n"
        "    model:\n"
        "      pd_multiplier: 2\n"
        "      pd_macro:\n"
        "        link: probit\n"
        "        variables:\n"
        "          unemployment rate: {change: 3, beta: 0.1}\n"
        "          gdp: {change: -2}\n"
        "          rates: {change: 1, beta: 500, betta: 1}\n"
        "  flat:\n"
        "    model: {pd_macro: 3}\n",
        encoding="utf-8",
    )
    with pytest.raises(ScenarioError) as caught:
        load_scenarios(bad, POLICY)
    shown = [str(d) for d in caught.value.diagnostics]
    assert any(s.startswith(f"{bad}:5:") and "pd_multiplier or pd_macro, not both" in s for s in shown)
    assert any(s.startswith(f"{bad}:6:") and "the links are: logit" in s for s in shown)
    assert any(s.startswith(f"{bad}:8:11: SCENARIO_NAME") for s in shown)
    assert any(s.startswith(f"{bad}:9:") and "give beta" in s for s in shown)
    assert any(s.startswith(f"{bad}:10:") and "`beta` must be within [-100, 100]" in s for s in shown)
    assert any(s.startswith(f"{bad}:10:") and "did you mean 'beta'" in s for s in shown)
    at_flat = [s for s in shown if s.startswith(f"{bad}:12:")]
    assert len(at_flat) == 1 and "`pd_macro` must be a mapping" in at_flat[0]


def funding_shocked(bp: int) -> list[Decision]:
    stressed = stressed_policy(POLICY, Scenario("funding", cost_of_funds_bp=Decimal(bp)))
    return decided(BatchDecider(stressed, PACKAGE).decide(applications(400, seed=59)))


def npv_by_hand(offer: Offer, pd: Decimal, cost_of_funds: Decimal) -> tuple[Decimal, Decimal]:
    """(expected profit, expected loss) of an instalment offer, straight from the policy's lifetime
    conventions: constant hazard, flows discounted monthly at the cost of funds, EAD = opening balance."""
    lgd, per_loan, per_month = Decimal("0.45"), Decimal(300), Decimal(8)
    fees = {f.kind: f.amount for f in offer.fees}
    with decimal.localcontext() as ctx:
        ctx.prec = 50
        monthly = cost_of_funds / 12
        alive = [(1 - pd) ** (Decimal(t) / 12) for t in range(offer.term_months + 1)]
        profit, loss = fees.get("upfront", Decimal(0)) - per_loan, Decimal(0)
        for t, row in enumerate(offer.schedule, start=1):
            discount = (1 + monthly) ** -t
            opening = row.balance + row.principal
            month_loss = (alive[t - 1] - alive[t]) * lgd * opening
            flows = (
                row.interest + fees.get("monthly", Decimal(0)) - opening * monthly - per_month - month_loss
            )
            profit += discount * flows
            loss += discount * month_loss
    cent = Decimal("0.01")
    return profit.quantize(cent, rounding=ROUND_HALF_EVEN), loss.quantize(cent, rounding=ROUND_HALF_EVEN)


def test_a_cost_of_funds_shock_prices_each_offer_at_the_shocked_rate() -> None:
    checked = 0
    for decision in funding_shocked(200):
        for offer in decision.offers:
            if offer.repayment_method == "revolving":
                continue
            assert decision.score is not None
            profit, loss = npv_by_hand(offer, decision.score.pd, Decimal("0.055"))
            assert (offer.expected_profit, offer.expected_loss) == (profit, loss), offer.product
            checked += 1
    assert checked > 100


def order(decision: Decision) -> list[tuple[str, int, str]]:
    return [(o.product, o.term_months, o.repayment_method) for o in decision.offers]


def test_a_cost_of_funds_shock_ranks_offers_as_a_policy_stating_that_rate() -> None:
    """The shocked run gives exactly the offers (order included) of consumer_loan with
    `cost_of_funds: 0.055` written in it, and the order differs from the baseline's somewhere."""
    text = POLICY.text.replace("cost_of_funds: 0.035", "cost_of_funds: 0.055")
    assert text != POLICY.text
    stated = load_policy_text(text)
    apps = applications(400, seed=59)
    want = decided(BatchDecider(stated, PACKAGE).decide(apps))
    shocked = funding_shocked(200)
    assert [d.offers for d in shocked] == [d.offers for d in want]
    baseline = decided(BatchDecider(POLICY, PACKAGE).decide(apps))
    reranked = [i for i, (a, b) in enumerate(zip(baseline, shocked, strict=True)) if order(a) != order(b)]
    assert reranked, "a 200 bp rise in funding cost re-ranked no application's offers"


def test_a_cost_of_funds_shock_on_a_policy_without_lifetime_economics_is_refused(tmp_path: Path) -> None:
    german = load_policy(ROOT / "policies" / "german_credit" / "policy.yaml")
    bad = tmp_path / "funding.yaml"
    bad.write_text("scenarios:\n  funding:\n    economics: {cost_of_funds_bp: 200}\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenarios(bad, german)
    (problem,) = [str(d) for d in caught.value.diagnostics]
    assert problem.startswith(f"{bad}:3:") and "no cost of funds to shock" in problem
