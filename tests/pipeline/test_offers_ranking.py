"""Under the expected-profit objective the offers stage leaves a loan's lifetime figures unworked
until the ranking may need them (engine/pipeline/offers.py, _next): the offers made must be the
ones a full ranking of fully priced candidates makes, ties, APR caps and credit lines included."""

from __future__ import annotations

import random
from decimal import Decimal

from engine.finance.lifetime import CONSTANT_HAZARD, LifetimeTerms
from engine.finance.schedule import METHODS
from engine.pipeline.candidates import (
    Candidate,
    OfferTerms,
    ProductPricing,
    Refused,
    Unpriced,
    clear_caches,
)
from engine.pipeline.offers import rank_offers
from engine.pipeline.revolving import RevolvingCandidate, revolving_candidate
from engine.policy.model import Revolving

D = Decimal


def _terms(rng: random.Random) -> OfferTerms:
    curve: str | tuple[Decimal, ...] = CONSTANT_HAZARD
    if rng.random() < 0.3:
        curve = tuple(D(rng.randint(0, 300)) / 100 for _ in range(rng.randint(1, 24)))
    pd = D(rng.randint(0, 300_000)) / 1_000_000
    lgd = D(rng.randint(0, 100)) / 100
    economics = LifetimeTerms(
        pd, lgd, D(rng.randint(0, 800)) / 10_000, D(rng.randint(0, 500)), D(rng.randint(0, 20)), curve
    )
    return OfferTerms(
        income=D(rng.randint(0, 60_000)),
        existing_payments=D(rng.randint(0, 5_000)),
        affordability_cap=D("0.5"),
        lgd=lgd,
        pd=pd,
        apr_cap=rng.choice([None, D("0.24"), D(rng.randint(500, 2500)) / 10_000]),
        top=rng.randint(1, 6),
        rounding=rng.choice(["half_even", "half_up", "down"]),
        objective="expected_profit_npv",
        lifetime=economics,
        refinance_months=rng.choice([None, 12, 24]),
    )


def _products(rng: random.Random, terms: OfferTerms) -> list[ProductPricing]:
    products: list[ProductPricing] = []
    for index in range(rng.randint(1, 3)):
        if products and rng.random() < 0.3:  # a copy of the one before: every profit ties
            twin = products[-1]
            upfront, monthly = twin.fee / twin.amount, twin.monthly_fee / twin.amount
            products.append(
                ProductPricing(f"p{index}", index, twin.amount, twin.annual_rate, upfront, terms, monthly)
            )
            continue
        amount = D(rng.randint(10, 2_000)) * 100
        rate = D(rng.randint(300, 3000)) / 10_000
        upfront = D(rng.choice([0, 1, 2, 3])) / 100
        monthly = D(rng.choice([0, 0, 5, 10])) / 10_000
        products.append(
            ProductPricing(f"p{index}", index, amount, rate, upfront, terms, monthly, f"P{index}")
        )
    return products


def _line(rng: random.Random, terms: OfferTerms, index: int) -> RevolvingCandidate:
    assert terms.lifetime is not None
    line = Revolving(D(100), D("0.03"), 50, D("0.5"), D("0.4"), rng.choice([12, 24]))
    limit, rate = D(rng.randint(50, 500)) * 100, D(rng.randint(500, 3000)) / 10_000
    return revolving_candidate(
        "line",
        index,
        limit,
        rate,
        line,
        terms.lifetime,
        terms.allowed,
        terms.rounding,
        "Line",
        terms.objective,
    )


def test_the_offers_made_are_those_of_a_full_ranking_of_fully_priced_loans() -> None:
    """Deferred pricing offers what pricing every loan offers: with cold schedules first (a new
    amount's loans are bounded without their discounted sums), then warm (their exact bounds)."""
    rng = random.Random(20261202)
    deferred_some = 0
    for case in range(400):
        clear_caches()
        terms = _terms(rng)
        products = _products(rng, terms)
        plans = [(p, rng.sample([3, 6, 12, 24, 36, 48], 3)) for p in products]
        line = _line(rng, terms, len(products)) if rng.random() < 0.5 else None
        cold = _deferred(plans, line)
        full: list[Candidate | RevolvingCandidate | Unpriced | Refused] = [
            p.candidate(t, m) for p, terms_months in plans for t in terms_months for m in METHODS
        ]
        if line is not None:
            full.append(line)
        deferred_some += any(isinstance(c, Unpriced) for c in cold)
        expected = rank_offers(full, terms)
        assert rank_offers(cold, terms) == expected, f"case {case}, cold"
        assert rank_offers(_deferred(plans, line), terms) == expected, f"case {case}, warm"
    assert deferred_some > 100  # the lazy path was taken, not only the eager one


def _deferred(
    plans: list[tuple[ProductPricing, list[int]]], line: RevolvingCandidate | None
) -> list[Candidate | RevolvingCandidate | Unpriced | Refused]:
    made = [c for p, terms_months in plans for c in p.deferred(terms_months, METHODS)]
    return made if line is None else [*made, line]


def test_a_refused_loans_trace_names_the_first_of_its_largest_months() -> None:
    """The month the trace says does not fit is the first month whose payment is the largest: a
    level schedule (no interest) names month 1, equal principal its first, interest-only its
    balloon, and a refinanced balloon its month when it is the largest."""
    economics = LifetimeTerms(D("0.02"), D("0.45"), D("0.035"))

    def refusal(amount: str, rate: str, term: int, method: str, refinance: int | None = None) -> str:
        terms = OfferTerms(
            D(0),
            D(0),
            D("0.5"),
            D("0.45"),
            D("0.02"),
            None,
            4,
            "half_even",
            "expected_profit_npv",
            economics,
            refinance,
        )
        (refused,) = ProductPricing("p", 0, D(amount), D(rate), D(0), terms).deferred([term], [method])
        assert isinstance(refused, Refused) and not refused.affordable
        return refused.unaffordable

    assert refusal("1200", "0", 12, "equal_instalment") == "month 1 needs 100.00, 0.00 affordable"
    assert refusal("1200", "0.12", 12, "equal_principal").startswith("month 1 needs 112.00,")
    assert refusal("1200", "0.12", 12, "interest_only").startswith("month 12 needs 1212.00,")
    # refinanced over a year at no interest, the 1200 balloon is budgeted as 100 a month
    assert refusal("1200", "0", 12, "interest_only", 12) == "month 12 needs 100.00, 0.00 affordable"
