"""Offers priced like a lender would (issue 17): the shipped consumer_loan's ranking for the README's
applicant re-derived by a plain month-by-month spreadsheet, lifetime loss beating a longer term,
the interest-only balloon in the affordability check, referral reasons kept, bookable offers."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest
from pipeline_helpers import ROOT

from engine.decision import Outcome, replaced
from engine.finance.dates import due_dates
from engine.pipeline.booking import book_offers
from engine.service import DecisionService

D = Decimal
CENT = D("0.01")

# the applicant of the README's "Calling it" example
README_APPLICANT: dict[str, Any] = json.loads((Path(__file__).parent / "readme_applicant.json").read_text())


def cents(x: Decimal) -> Decimal:
    return x.quantize(CENT, rounding=ROUND_HALF_EVEN)


def spreadsheet_rows(amount: Decimal, annual_rate: Decimal, n: int, method: str) -> list[tuple[Decimal, ...]]:
    """(opening balance, interest, payment) per month, the way a loan officer's sheet lays it out."""
    r = annual_rate / 12
    level = cents(amount * r / (1 - (1 + r) ** -n))
    rows, balance = [], amount
    for month in range(1, n + 1):
        interest = cents(balance * r)
        if month == n:
            principal = balance
        elif method == "equal_instalment":
            principal = level - interest
        elif method == "equal_principal":
            principal = cents(amount / n)
        else:  # interest_only
            principal = D(0)
        rows.append((balance, interest, principal + interest))
        balance -= principal
    return rows


def spreadsheet_npv(
    rows: list[tuple[Decimal, ...]],
    pd: Decimal,
    upfront_fee: Decimal,
    monthly_fee: Decimal,
    exposure: Decimal | None = None,
    economics: tuple[str, int, int] = ("0.035", 300, 8),
) -> tuple[Decimal, Decimal]:
    """consumer_loan 2.0.0's economics (cost of funds, operating cost per loan and per month),
    column by column: (expected profit, expected loss). The exposure at default is the opening
    balance, or for a credit line drawn + CCF x undrawn."""
    cof, lgd, per_loan, per_month = D(economics[0]) / 12, D("0.45"), D(economics[1]), D(economics[2])
    profit, loss = upfront_fee - per_loan, D(0)
    for t, (opening, interest, _) in enumerate(rows, start=1):
        discount = 1 / (1 + cof) ** t
        marginal_pd = (1 - pd) ** (D(t - 1) / 12) - (1 - pd) ** (D(t) / 12)
        expected_loss = marginal_pd * lgd * (opening if exposure is None else exposure)
        funding = opening * cof
        profit += discount * (interest + monthly_fee - funding - per_month - expected_loss)
        loss += discount * expected_loss
    return cents(profit), cents(loss)


@pytest.fixture
def shipped(make_service: Callable[..., DecisionService]) -> DecisionService:
    return make_service(policies_dir=ROOT / "policies")


def test_readme_applicant_offers_and_profits_match_a_month_by_month_spreadsheet(
    shipped: DecisionService,
) -> None:
    decision = shipped.decide("consumer_loan", README_APPLICANT, "readme")
    assert decision.outcome is Outcome.APPROVE and decision.objective == "expected_profit_npv"
    assert decision.score is not None and decision.annual_rate == D("0.117")
    pd, amount, allowed = decision.score.pd, D("50000.00"), D("0.5") * D(18000) - D(2500)
    sheet = []
    products = [  # id, rate, upfront fee, monthly fee, terms, methods: as consumer_loan 2.0.0 states
        ("personal_std", D("0.117"), cents(amount * D("0.01")), D(0), (12, 24, 36), ("ei", "ep", "io")),
        ("personal_flex", D("0.127"), D(0), cents(amount * D("0.0005")), (3, 6, 12), ("ei", "io")),
    ]
    names = {"ei": "equal_instalment", "ep": "equal_principal", "io": "interest_only"}
    for order, (product, rate, upfront, monthly, terms, methods) in enumerate(products):
        for term in terms:
            for method in methods:
                rows = spreadsheet_rows(amount, rate, term, names[method])
                if max(payment for _, _, payment in rows) + monthly > allowed:
                    continue  # not affordable in some month (every interest-only balloon here)
                profit, loss = spreadsheet_npv(rows, pd, upfront, monthly)
                sheet.append((-profit, order, term, list(names).index(method), product, names[method], loss))
    # the credit line (limit 50,000 at 11.7% + 5%): 40% drawn for 24 months, half the rest drawn by
    # default; its minimum payment on the full limit, max(100, 3%) = 1,500, is affordable
    drawn, line_rate = D(20000), D("0.167")
    line = [(drawn, drawn * line_rate / 12, D(0))] * 24
    profit, loss = spreadsheet_npv(line, pd, D(0), D(0), exposure=drawn + D("0.5") * (amount - drawn))
    sheet.append((-profit, 2, 0, 3, "credit_line", "revolving", loss))
    sheet.sort()
    want = [(product, term, method, -neg, loss) for neg, _, term, _, product, method, loss in sheet[:4]]
    got = [
        (o.product, o.term_months, o.repayment_method, o.expected_profit, o.expected_loss)
        for o in decision.offers
    ]
    assert got == want
    assert all(o.repayment_method != "interest_only" for o in decision.offers)


LIFETIME_DEMO = """\
policy: lifetime_demo
version: "1.0.0"
currency: CNY
inputs:
  applicant.income_monthly: {type: decimal, min: 0}
  risk.pd_12m: {type: decimal, min: 0, max: 1, description: "from a scorecard table, not a model"}
price: {base_rate: 0.12}
products:
  - id: loan
    name: {en: Instalment loan}
    amount: {min: 1000, max: 20000}
    terms: [12, 36]
    methods: [METHODS]
offers:
  top: 4
  affordability_cap: 0.5
  income: applicant.income_monthly
  existing_payments: 0
  lgd: 0.45
  pd: risk.pd_12m
  objective: OBJECTIVE
  lifetime: {cost_of_funds: 0.03}
BALLOON"""


def demo(
    tmp_path: Path,
    make: Callable[..., DecisionService],
    methods: str,
    balloon: str = "",
    objective: str = "expected_profit_npv",
) -> DecisionService:
    folder = tmp_path / "policies" / "lifetime_demo"
    folder.mkdir(parents=True)
    text = (
        LIFETIME_DEMO.replace("METHODS", methods).replace("BALLOON", balloon).replace("OBJECTIVE", objective)
    )
    (folder / "policy.yaml").write_text(text, encoding="utf-8")
    return make(policies_dir=tmp_path / "policies")


def test_a_longer_term_with_higher_lifetime_loss_ranks_below_the_shorter_one(
    tmp_path: Path, make_service: Callable[..., DecisionService]
) -> None:
    service = demo(tmp_path, make_service, "equal_instalment")

    def ranked(pd: str) -> list[tuple[int, Decimal | None]]:
        app = {"applicant": {"income_monthly": "20000"}, "risk": {"pd_12m": pd}}
        return [
            (o.term_months, o.expected_loss) for o in service.decide("lifetime_demo", app, f"r-{pd}").offers
        ]

    safe, risky = ranked("0.01"), ranked("0.30")
    assert [term for term, _ in safe] == [36, 12]  # the margin over three years pays for its risk
    assert [term for term, _ in risky] == [12, 36]  # the same loan, but 36 months of loss outweigh it
    loss = dict(risky)
    assert loss[36] is not None and loss[12] is not None and loss[36] > loss[12]


def test_an_interest_only_offer_with_an_unaffordable_balloon_is_not_made(
    tmp_path: Path, make_service: Callable[..., DecisionService]
) -> None:
    app = {"applicant": {"income_monthly": "3000"}, "risk": {"pd_12m": "0.02"}}
    budgeted = demo(tmp_path / "a", make_service, "equal_instalment, interest_only")
    decision = budgeted.decide("lifetime_demo", app, "balloon")
    assert [(o.term_months, o.repayment_method) for o in decision.offers] == [(36, "equal_instalment")]
    offers_trace = next(t for t in decision.trace if t.stage == "offers")
    assert (
        "loan/36/interest_only: month 36 needs 20200.00, 1500.00 affordable"
        in offers_trace.values["not_affordable"]
    )
    # a policy that states the balloon is refinanced over 36 months budgets that instalment instead
    refinanced = demo(
        tmp_path / "b", make_service, "equal_instalment, interest_only", "  balloon: {refinance_months: 36}\n"
    )
    again = refinanced.decide("lifetime_demo", app, "balloon-refinanced")
    assert (36, "interest_only") in [(o.term_months, o.repayment_method) for o in again.offers]


def test_no_affordable_offer_keeps_the_referral_reasons(shipped: DecisionService) -> None:
    app = {
        **README_APPLICANT,
        "debt": {"monthly_payments": "8950.00"},
        "bureau": {**README_APPLICANT["bureau"], "months_on_file": 4},
    }
    decision = shipped.decide("consumer_loan", app, "no-offer")
    codes = [r.code for r in decision.reasons]
    assert decision.outcome is Outcome.DECLINE
    assert codes[:2] == ["NO_AFFORDABLE_OFFER", "THIN_FILE"]


def test_offers_are_bookable_dated_from_the_recorded_decision_time(shipped: DecisionService) -> None:
    decision = shipped.decide("consumer_loan", README_APPLICANT, "bookable", language="zh")
    first = decision.offers[0]
    decided = decision.decided_at[:10]
    assert first.product_name == "个人消费贷"
    assert [(f.kind, f.amount) for f in first.fees] == [("upfront", D("500.00"))]
    assert first.valid_until > decided and len({o.offer_id for o in decision.offers}) == len(decision.offers)
    assert first.schedule[0].due_date[8:] == decided[8:] and first.schedule[0].due_date[:7] > decided[:7]
    again = shipped.decide("consumer_loan", README_APPLICANT, "bookable-2", language="zh")
    assert again.offers[0].offer_id != first.offer_id  # one id per decision and offer, never reused


def test_an_offer_is_valid_from_the_utc_day_of_its_own_decision(shipped: DecisionService) -> None:
    """Validity dates are kept per decision day: each booking reads its own day (the UTC one)."""
    offers = shipped.decide("consumer_loan", README_APPLICANT, "validity").offers

    def valid_until(decided_at: str) -> set[str]:
        return {o.valid_until for o in book_offers(offers, "d", decided_at, 14, "same", 0)}

    assert valid_until("2026-01-31T23:59:59.999999+00:00") == {"2026-02-14"}
    assert valid_until("2026-02-01T00:00:00.000000+00:00") == {"2026-02-15"}
    assert valid_until("2026-02-01T00:00:00.000000Z") == {"2026-02-15"}
    assert valid_until("2026-01-31T18:00:00-06:00") == {"2026-02-15"}  # already February 1st in UTC
    assert valid_until("2026-02-01T07:30:00+08:00") == {"2026-02-14"}  # still January 31st in UTC


def test_booked_rows_are_the_offers_rows_dated_by_their_own_day_and_convention(
    shipped: DecisionService,
) -> None:
    """Booking finds dated rows it made before (kept per rows and day): every booking's rows are
    still the offer's rows with the due dates of its own decision day and the policy's convention."""
    offers = shipped.decide("consumer_loan", README_APPLICANT, "dated").offers
    rng = random.Random(11)
    for _ in range(100):
        day = dt.date(2026, 1, 1) + dt.timedelta(days=rng.randint(0, 400))
        convention = rng.choice([("same", 0), (rng.randint(1, 28), rng.choice([0, 10, 20]))])
        decided_at = f"{day.isoformat()}T{rng.randint(0, 23):02d}:30:00.000000+00:00"
        for _ in range(2):  # made, then found again
            booked = book_offers(offers, "d", decided_at, 14, *convention)
            for offer, made in zip(offers, booked, strict=True):
                dates = due_dates(day, offer.term_months, *convention)
                dated = zip(offer.schedule, dates, strict=True)
                assert made.schedule == tuple(replaced(row, due_date=due) for row, due in dated)


def test_an_objective_expression_ranks_the_offers_and_is_named_in_the_decision(
    tmp_path: Path, make_service: Callable[..., DecisionService]
) -> None:
    app = {"applicant": {"income_monthly": "20000"}, "risk": {"pd_12m": "0.01"}}
    by_profit = demo(tmp_path / "a", make_service, "equal_instalment").decide("lifetime_demo", app, "p")
    careful = demo(
        tmp_path / "b", make_service, "equal_instalment", objective='{minimise: "offer.expected_loss"}'
    )
    by_loss = careful.decide("lifetime_demo", app, "l")
    assert [o.term_months for o in by_profit.offers] == [36, 12]
    assert [o.term_months for o in by_loss.offers] == [12, 36]  # the same offers, the least risk first
    assert by_loss.objective == "minimise: offer.expected_loss"
    assert [o.expected_profit for o in by_loss.offers] == [
        o.expected_profit for o in reversed(by_profit.offers)
    ]


def test_a_monthly_fee_is_charged_every_month_counted_in_profit_and_disclosed_in_the_apr(
    tmp_path: Path, make_service: Callable[..., DecisionService]
) -> None:
    demo(tmp_path, make_service, "equal_instalment")  # writes the policy, given a fee below
    folder = tmp_path / "policies" / "lifetime_demo" / "policy.yaml"
    text = folder.read_text(encoding="utf-8").replace(
        "    methods:", "    fee: {monthly_rate: 0.001}\n    methods:"
    )
    folder.write_text(text, encoding="utf-8")
    service = make_service(policies_dir=tmp_path / "policies")
    app = {"applicant": {"income_monthly": "20000"}, "risk": {"pd_12m": "0.02"}}
    offer = next(o for o in service.decide("lifetime_demo", app, "fee").offers if o.term_months == 12)
    assert [(f.kind, f.amount) for f in offer.fees] == [("monthly", D("20.00"))]
    rows = spreadsheet_rows(D(20000), D("0.12"), 12, "equal_instalment")
    profit, loss = spreadsheet_npv(rows, D("0.02"), D(0), D("20.00"), economics=("0.03", 0, 0))
    assert (offer.expected_profit, offer.expected_loss) == (profit, loss)
    assert D("0.14") < offer.apr < D("0.145")  # 12% nominal, plus 240 of fees a year on a falling balance


def test_a_stored_lifetime_decision_reads_back_with_dated_schedules_and_its_credit_line(
    tmp_path: Path, make_service: Callable[..., DecisionService]
) -> None:
    """The lean record keeps schedules by hash and their dating in two words; GetDecision rebuilds
    the very offers that were answered."""
    service = make_service(policies_dir=ROOT / "policies", store=f"sqlite:///{tmp_path / 'audit.db'}")
    answered = service.decide("consumer_loan", README_APPLICANT, "stored", language="zh")
    stored = service.get_decision(answered.decision_id)
    assert stored.offers == answered.offers and stored.objective == answered.objective
    assert "revolving" in [o.repayment_method for o in stored.offers]
    assert all(row.due_date for o in stored.offers for row in o.schedule)


def test_offers_do_not_depend_on_what_was_decided_before(shipped: DecisionService) -> None:
    """Every shipped consumer_loan input is offered the same loans and lines, with the same figures
    and the same offers-stage trace, whether decided first or after all the others (the plans,
    credit-line quotes and per-PD economics the offers stage keeps across decisions)."""
    policy = shipped.policy("consumer_loan")
    inputs = [dict(t.input) for t in policy.tests if "error" not in t.expect]
    inputs.append(README_APPLICANT)

    def offered(order: list[int], run: str) -> dict[int, Any]:
        seen = {}
        for i in order:
            decision = shipped.decide("consumer_loan", inputs[i], f"{run}-{i}")
            stage = [e.values for e in decision.trace if e.stage == "offers"]
            seen[i] = ([replaced(o, offer_id="") for o in decision.offers], stage)
        return seen

    forward = offered(list(range(len(inputs))), "forward")
    assert sum(bool(offers) for offers, _ in forward.values()) >= 8
    assert offered(list(reversed(range(len(inputs)))), "backward") == forward
