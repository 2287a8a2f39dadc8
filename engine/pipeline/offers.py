"""The offers stage: every eligible product x term x repayment method priced into a schedule
(engine/pipeline/candidates.py; credit lines in revolving.py), checked for affordability, ranked by
the policy's objective, APR-capped, top N.

Two rankings. The 1.x `expected_profit` (margin - 12-month PD x LGD x amount, affordability on the
first instalment) is kept unchanged so old policy versions replay exactly. The lifetime objectives
(`expected_profit_npv`, `lowest_instalment`, `lowest_total_cost`) price each candidate with
engine/finance/lifetime.py and check every month's payment, the interest-only balloon included."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

from engine.decision import Offer, Reason
from engine.errors import PolicyRuntimeError
from engine.finance import quantize, to_decimal
from engine.finance.lifetime import LifetimeTerms
from engine.pipeline.candidates import (
    Candidate,
    OfferTerms,
    ProductPricing,
    Refused,
    Unpriced,
    disclosed_apr,
)
from engine.pipeline.context import DecisionContext
from engine.pipeline.revolving import RevolvingCandidate, revolving_candidate
from engine.pipeline.runner import StageResult
from engine.policy.model import Formula
from engine.policy.model import Lifetime as LifetimeSpec

__all__ = ["NO_OFFER_CODE", "offers_stage", "rank_offers"]

NO_OFFER_CODE = "NO_AFFORDABLE_OFFER"
NO_OFFER_TEXT = {
    "en": "No loan product is affordable within the approved limit and the rate cap",
    "zh": "在核定额度和利率上限内没有可负担的贷款产品",
}


def rank_offers(
    candidates: Sequence[Candidate | RevolvingCandidate | Unpriced | Refused], terms: OfferTerms
) -> tuple[list[Offer], dict[str, int]]:
    """The top N affordable candidates by expected profit whose APR (fees included) is within the
    cap. APR is the costliest figure, so it is computed only while walking down the ranking; so
    are the lifetime figures of an Unpriced loan (see _next)."""
    ranked: list[Candidate | RevolvingCandidate] = []
    unpriced: list[Unpriced] = []
    for made in candidates:
        if isinstance(made, Unpriced):
            unpriced.append(made)
        elif not isinstance(made, Refused) and made.affordable:
            ranked.append(made)
    affordable = len(ranked) + len(unpriced)
    ranked.sort(key=_sort_key)
    unpriced.sort(key=_bound, reverse=True)
    keys = [c.sort_key for c in ranked]  # beside the ranking: a key is worked out once a candidate
    offers: list[Offer] = []
    over_cap = 0
    while len(offers) < terms.top:
        c = _next(ranked, keys, unpriced)
        if c is None:
            break
        if isinstance(c, RevolvingCandidate):
            rate = c.disclosed_apr()
            if terms.apr_cap is not None and rate > terms.apr_cap:
                over_cap += 1
            else:
                offers.append(c.offer(rate))
            continue
        # The cap is checked on the disclosed APR: cent rounding of a fee-free loan priced exactly at
        # the cap can put its exact IRR a millionth above it, which no borrower ever sees.
        rate = disclosed_apr(
            str(c.amount),
            str(c.fee),
            str(c.annual_rate),
            c.schedule.term_months,
            c.schedule.method,
            c.rounding,
            str(c.monthly_fee),
        )
        if terms.apr_cap is not None and rate > terms.apr_cap:
            over_cap += 1
            continue
        offers.append(_offer(c, rate))
    counts = {
        "candidates": len(candidates),
        "affordable": affordable,
        "over_apr_cap": over_cap,
        "offered": len(offers),
    }
    return offers, counts


def _sort_key(c: Candidate | RevolvingCandidate) -> tuple[Decimal, Decimal, int, int, int]:
    return c.sort_key


def _bound(u: Unpriced) -> Decimal:
    return u.bound


def _next(
    ranked: list[Candidate | RevolvingCandidate],
    keys: list[tuple[Decimal, Decimal, int, int, int]],
    unpriced: list[Unpriced],
) -> Candidate | RevolvingCandidate | None:
    """Take the next candidate in ranking order from `ranked` (sorted, `keys` its sort keys),
    pricing unpriced loans (by highest bound first) only while one could rank at or ahead of it.
    Loans are left unpriced only under the expected-profit objective, which ranks by expected
    profit (then policy order): one whose bound is below the best priced profit comes after it
    whatever its loss."""
    while unpriced and (not ranked or ranked[0].expected_profit <= unpriced[0].bound):
        priced = unpriced.pop(0).price()
        key = priced.sort_key
        at = bisect.bisect_right(keys, key)  # where bisect.insort(ranked, priced, key=...) puts it
        keys.insert(at, key)
        ranked.insert(at, priced)
    if not ranked:
        return None
    del keys[0]
    return ranked.pop(0)


def _offer(c: Candidate, rate: Decimal) -> Offer:
    schedule = c.schedule
    figures = c.lifetime
    return Offer(
        product=c.product,
        amount=c.amount,
        term_months=schedule.term_months,
        repayment_method=schedule.method,
        annual_rate=c.annual_rate,
        apr=rate,
        instalment=schedule.first_payment,
        total_interest=schedule.total_interest,
        expected_profit=c.expected_profit,
        schedule=schedule.rows,
        expected_loss=None if figures is None else figures.expected_loss,
        product_name="" if figures is None else c.product_name,
        fees=c.fees,
    )


def offers_stage(ctx: DecisionContext) -> StageResult:
    """Build, rank and cut the offers; no offer at all is a decline (NO_AFFORDABLE_OFFER). A
    product lends the amount requested (when the policy names it), capped by the product's maximum
    and by the limit; below the product's minimum it is skipped. Under the lifetime objectives a
    decline for no offer keeps every referral reason raised before it."""
    policy = ctx.policy
    spec, products, price = policy.offers, policy.products, policy.price
    if spec is None or products is None or not products.items or ctx.annual_rate is None:
        return StageResult(values={"skipped": "policy declares no products, offers or price"})
    pd = _pd(ctx, spec.pd)
    life = spec.lifetime
    terms = OfferTerms(
        income=_number(spec.income(ctx.fact)),
        existing_payments=_number(spec.existing_payments(ctx.fact)),
        affordability_cap=spec.affordability_cap,
        lgd=spec.lgd,
        pd=pd,
        apr_cap=price.cap if price is not None else None,
        top=spec.top,
        rounding=ctx.rounding,
        objective=spec.objective,
        lifetime=None if life is None else _economics(life, spec.lgd).at_pd(pd),
        refinance_months=spec.refinance_months,
    )
    requested = _number(spec.requested(ctx.fact)) if spec.requested is not None else None
    # ranked by expected profit alone, a loan that cannot make the top N is never priced in full
    defer = spec.objective == "expected_profit_npv" and spec.rank_by is None
    wanted = set(products.stage.fire(ctx.evaluator, ctx.fact))
    candidates: list[Candidate | RevolvingCandidate | Unpriced | Refused] = []
    eligible: list[str] = []
    for index, product in enumerate(products.items):
        if product.id not in wanted:
            continue
        amount = product.amount_max if ctx.limit is None else min(product.amount_max, ctx.limit)
        if requested is not None and product.revolving is None:  # a line's limit is not the loan asked for
            amount = min(amount, requested)
        amount = quantize(amount, 2, "down")  # money in cents, however the policy wrote the maximum
        if amount < product.amount_min or amount <= 0:
            continue
        eligible.append(product.id)
        rate = ctx.annual_rate + product.rate_adjustment
        if price is not None and price.floor is not None:
            rate = max(rate, price.floor)
        if price is not None and price.cap is not None:
            rate = min(rate, price.cap)
        if product.revolving is not None and terms.lifetime is not None:
            candidates.append(
                revolving_candidate(
                    product.id,
                    index,
                    amount,
                    rate,
                    product.revolving,
                    terms.lifetime,
                    terms.allowed if terms.income > 0 else Decimal(-1),
                    terms.rounding,
                    ctx.text(product.names),
                    terms.objective,
                )
            )
            continue
        pricing = ProductPricing(
            product.id,
            index,
            amount,
            rate,
            product.upfront_fee_rate,
            terms,
            product.monthly_fee_rate,
            ctx.text(product.names) if life is not None else "",
        )
        if defer:
            candidates.extend(pricing.deferred(product.terms, product.methods))
            continue
        for term in product.terms:
            for method in product.methods:
                candidates.append(pricing.candidate(term, method))
    if spec.rank_by is not None:
        candidates = [
            _ranked_by(c, spec.rank_by, spec.maximise, ctx.fact) if c.affordable else c for c in candidates
        ]
    offers, counts = rank_offers(candidates, terms)
    ctx.offers = offers
    values: dict[str, Any] = {"eligible_products": eligible, **counts}
    if life is not None:
        ctx.objective = spec.objective
        values["objective"] = spec.objective
        values["pd_12m"] = str(pd)
        values["not_affordable"] = [f"{c.label()}: {c.unaffordable}" for c in candidates if not c.affordable]
    if not offers:
        ctx.declines.append(Reason(NO_OFFER_CODE, ctx.text(NO_OFFER_TEXT), "offers", ""))
        if life is not None:
            ctx.declines.extend(ctx.refers)  # the referrals still explain the file
    return StageResult(tuple(eligible), values)


def _ranked_by(
    c: Candidate | RevolvingCandidate | Unpriced | Refused,
    formula: Formula,
    maximise: bool,
    fact: dict[str, Any],
) -> Candidate | RevolvingCandidate:
    """`c` with the objective expression's value over the applicant and this offer's figures."""
    if isinstance(c, Unpriced):
        c = c.price()
    assert not isinstance(c, Refused) and c.lifetime is not None
    figures = {
        "offer.expected_profit": c.expected_profit,
        "offer.expected_loss": c.lifetime.expected_loss,
        "offer.instalment": c.instalment,
        "offer.total_cost": c.total_cost,
        "offer.amount": c.amount,
        "offer.term_months": c.term_months,
    }
    value = to_decimal(formula({**fact, **figures}))
    return replace(c, rank_value=-value if maximise else value)


def _economics(life: LifetimeSpec, lgd: Decimal) -> LifetimeTerms:
    """The policy's lifetime economics (at PD 0, its key strings worked out): kept per loaded
    policy's spec, by identity (a spec never changes once loaded)."""
    known = _policy_economics.get(id(life))
    if known is not None and known[0] is life and known[1] is lgd:
        return known[2]
    terms = LifetimeTerms(
        Decimal(0), lgd, life.cost_of_funds, life.operating_per_loan, life.operating_per_month, life.pd_curve
    )
    _ = terms.keys  # worked out once, kept by at_pd
    if len(_policy_economics) >= 64:  # policies loaded and dropped: forget them all, it refills
        _policy_economics.clear()
    _policy_economics[id(life)] = (life, lgd, terms)
    return terms


_policy_economics: dict[int, tuple[LifetimeSpec, Decimal, LifetimeTerms]] = {}


def _pd(ctx: DecisionContext, formula: Formula | None) -> Decimal:
    """The 12-month PD: the policy's own `offers.pd` (a scorecard) when given, else the model's.
    The loader refuses a policy with neither, so this zero is only reached on a decline path."""
    if formula is not None:
        value = to_decimal(formula(ctx.fact))
        if not Decimal(0) <= value <= Decimal(1):
            raise PolicyRuntimeError(
                f"offers.pd gave {value}, not a probability in [0, 1]", location=formula.location
            )
        return value
    return ctx.score.pd if ctx.score is not None else Decimal(0)


def _number(value: Any) -> Decimal:
    """Income and existing payments: a missing optional value counts as zero."""
    return Decimal(0) if value is None else to_decimal(value)
