"""Under the expected-profit objective the offers stage ranks each product's plans kept across
decisions and leaves a loan's lifetime figures unworked until the ranking may need them
(engine/pipeline/offers.py, rank_plans): the offers made, the counts and the trace's refusals must
be those of a full ranking of fully priced candidates, ties, APR caps and credit lines included."""

from __future__ import annotations

import random
from decimal import Decimal

from engine.finance.lifetime import CONSTANT_HAZARD, LifetimeTerms
from engine.finance.schedule import METHODS
from engine.pipeline.candidates import (
    Candidate,
    OfferTerms,
    ProductPlans,
    ProductPricing,
    Refused,
    clear_caches,
    product_plans,
)
from engine.pipeline.offers import rank_offers, rank_plans
from engine.pipeline.revolving import RevolvingCandidate, RevolvingPlan
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


# (id, index, amount, rate, upfront fee rate, monthly fee rate, name) of a product
_Product = tuple[str, int, Decimal, Decimal, Decimal, Decimal, str]


def _products(rng: random.Random) -> list[_Product]:
    products: list[_Product] = []
    for index in range(rng.randint(1, 3)):
        if products and rng.random() < 0.3:  # a copy of the one before: every profit ties
            products.append((f"p{index}", index, *products[-1][2:6], ""))
            continue
        amount = D(rng.randint(10, 2_000)) * 100
        rate = D(rng.randint(300, 3000)) / 10_000
        upfront = D(rng.choice([0, 1, 2, 3])) / 100
        monthly = D(rng.choice([0, 0, 5, 10])) / 10_000
        products.append((f"p{index}", index, amount, rate, upfront, monthly, f"P{index}"))
    return products


def _line(rng: random.Random, terms: OfferTerms, index: int) -> RevolvingPlan:
    """A credit line before its lifetime figures (priced: the line with them)."""
    assert terms.lifetime is not None
    line = Revolving(D(100), D("0.03"), 50, D("0.5"), D("0.4"), rng.choice([12, 24]))
    limit, rate = D(rng.randint(50, 500)) * 100, D(rng.randint(500, 3000)) / 10_000
    return RevolvingPlan(
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
    """rank_plans offers what pricing every loan and line offers: with cold schedules first (a new
    amount's loans are bounded without their discounted sums), then warm (their exact bounds, kept
    with the plans); a credit line given priced or left to the ranking; and its trace names the
    loans and lines that do not fit as the full ranking does."""
    rng = random.Random(20261202)
    bounded = 0
    for case in range(400):
        clear_caches()
        terms = _terms(rng)
        products = _products(rng)
        chosen = [(p, tuple(rng.sample([3, 6, 12, 24, 36, 48], 3))) for p in products]
        line = _line(rng, terms, len(products)) if rng.random() < 0.5 else None
        full: list[Candidate | RevolvingCandidate | Refused] = []
        for (product, index, amount, rate, upfront, monthly, name), months in chosen:
            pricing = ProductPricing(product, index, amount, rate, upfront, terms, monthly, name)
            full.extend(pricing.candidate(t, m) for t in months for m in METHODS)
        if line is not None:
            full.append(line.priced())
        offers, counts = rank_offers(full, terms)
        refused = [f"{c.label()}: {c.unaffordable}" for c in full if not c.affordable]
        for warmth, quoted in (("cold", True), ("warm", False), ("warm", True)):
            made = _made(chosen, terms, line if line is None or quoted else line.priced())
            assert rank_plans(made, terms) == (offers, counts, refused), f"case {case}, {warmth}"
        plans = [p for entry, _ in made if isinstance(entry, ProductPlans) for p in entry.plans]
        bounded += any(p.bound is not None for p in plans) and any(p.apr is None for p in plans)
    assert bounded > 100  # some loans were bounded and never priced nor offered


def _made(
    chosen: list[tuple[_Product, tuple[int, ...]]],
    terms: OfferTerms,
    line: RevolvingPlan | RevolvingCandidate | None,
) -> list[tuple[ProductPlans | RevolvingPlan | RevolvingCandidate, str]]:
    made: list[tuple[ProductPlans | RevolvingPlan | RevolvingCandidate, str]] = [
        (product_plans(product, index, amount, rate, upfront, monthly, months, METHODS, terms), name)
        for (product, index, amount, rate, upfront, monthly, name), months in chosen
    ]
    return made if line is None else [*made, (line, "")]


def test_plans_are_kept_apart_by_what_prices_them() -> None:
    """A product's plans are found again for the same figures, and never for figures that print
    differently (a rate of 0.070 is offered as 0.070, not as the 0.07 decided before)."""
    rng = random.Random(7)
    terms = _terms(rng)

    def plans(rate: str, upfront: str = "0.01") -> ProductPlans:
        return product_plans("p", 0, D("12000.00"), D(rate), D(upfront), D(0), (12,), METHODS, terms)

    assert plans("0.07") is plans("0.07")
    assert plans("0.070") is not plans("0.07")
    assert plans("0.070").annual_rate.as_tuple() == D("0.070").as_tuple()
    assert plans("0.07", "0.02").fee == D("240.00")


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
        plans = product_plans("p", 0, D(amount), D(rate), D(0), D(0), (term,), (method,), terms)
        _, counts, (refused,) = rank_plans([(plans, "")], terms)
        assert counts["affordable"] == 0
        return refused.removeprefix(f"p/{term}/{method}: ")

    assert refusal("1200", "0", 12, "equal_instalment") == "month 1 needs 100.00, 0.00 affordable"
    assert refusal("1200", "0.12", 12, "equal_principal").startswith("month 1 needs 112.00,")
    assert refusal("1200", "0.12", 12, "interest_only").startswith("month 12 needs 1212.00,")
    # refinanced over a year at no interest, the 1200 balloon is budgeted as 100 a month
    assert refusal("1200", "0", 12, "interest_only", 12) == "month 12 needs 100.00, 0.00 affordable"


def test_a_loan_needing_exactly_the_budget_fits() -> None:
    """Affordable means the costliest month needs no more than the budget: equal is enough."""
    economics = LifetimeTerms(D("0.02"), D("0.45"), D("0.035"))
    terms = OfferTerms(
        D(200), D(0), D("0.5"), D("0.45"), D("0.02"), None, 4, "half_even", "expected_profit_npv", economics
    )
    plans = product_plans("p", 0, D(1200), D(0), D(0), D(0), (12,), ("equal_instalment",), terms)
    assert plans.plans[0].needed == terms.allowed == D(100)
    _, counts, refused = rank_plans([(plans, "")], terms)
    assert counts["affordable"] == 1 and refused == []
