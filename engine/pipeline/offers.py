"""The offers stage: every eligible product x term x repayment method priced into a schedule,
checked for affordability, ranked by expected profit (margin - PD x LGD x EAD), APR-capped, top N."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from engine.decision import Instalment, Offer, Reason
from engine.finance import apr, build_schedule, money, quantize, to_decimal
from engine.finance.schedule import METHODS, Schedule
from engine.pipeline.context import DecisionContext
from engine.pipeline.runner import StageResult

__all__ = ["NO_OFFER_CODE", "Candidate", "OfferTerms", "offer_schedule", "offers_stage", "rank_offers"]

NO_OFFER_CODE = "NO_AFFORDABLE_OFFER"
NO_OFFER_TEXT = {
    "en": "No loan product is affordable within the approved limit and the rate cap",
    "zh": "在核定额度和利率上限内没有可负担的贷款产品",
}
APR_PLACES = 4  # APR is disclosed as a percentage with two decimals (0.1234 = 12.34%)


@dataclass(frozen=True)
class OfferTerms:
    """The policy-wide inputs of the offers stage, already evaluated for this applicant."""

    income: Decimal
    existing_payments: Decimal
    affordability_cap: Decimal
    lgd: Decimal
    pd: Decimal
    apr_cap: Decimal | None
    top: int
    rounding: str = "half_even"


@dataclass(frozen=True)
class Candidate:
    """One (product, term, method) before APR capping and the top-N cut."""

    product: str
    product_index: int
    amount: Decimal
    annual_rate: Decimal
    fee: Decimal
    schedule: Schedule
    expected_profit: Decimal
    affordable: bool
    rounding: str = "half_even"

    @property
    def sort_key(self) -> tuple[Decimal, int, int, int]:
        # highest expected profit first; ties in policy order: product, shorter term, method order
        return (
            -self.expected_profit,
            self.product_index,
            self.schedule.term_months,
            METHODS.index(self.schedule.method),
        )


def candidate(
    product: str,
    product_index: int,
    amount: Decimal,
    annual_rate: Decimal,
    term_months: int,
    method: str,
    upfront_rate: Decimal,
    terms: OfferTerms,
) -> Candidate:
    """Schedule, fee, affordability and expected profit of one possible offer.

    Affordability uses the first instalment (the largest regular one for all three methods: equal
    principal falls, equal instalment is level, interest-only pays its principal as a final balloon
    which is refinanced or repaid, not budgeted from income): (first + existing payments) / income.
    Expected profit = total interest + upfront fee - PD x LGD x amount (EAD = the amount lent)."""
    return _ProductPricing(product, product_index, amount, annual_rate, upfront_rate, terms).candidate(
        term_months, method
    )


class _ProductPricing:
    """What every term x method of one product shares (fee, expected loss, cache keys), worked out
    once per product instead of once per candidate; the figures are the same expressions as before."""

    __slots__ = ("amount", "annual_rate", "fee", "index", "key", "loss", "product", "terms")

    def __init__(
        self,
        product: str,
        product_index: int,
        amount: Decimal,
        annual_rate: Decimal,
        upfront_rate: Decimal,
        terms: OfferTerms,
    ) -> None:
        self.product = product
        self.index = product_index
        self.amount = amount
        self.annual_rate = annual_rate
        self.terms = terms
        self.key = (str(amount), str(annual_rate))
        self.fee = money(amount * upfront_rate, terms.rounding)
        self.loss = terms.pd * terms.lgd * amount

    def candidate(self, term_months: int, method: str) -> Candidate:
        terms = self.terms
        schedule = _schedule(self.key[0], self.key[1], term_months, method, terms.rounding)
        burden = schedule.first_payment + terms.existing_payments
        affordable = terms.income > 0 and burden <= terms.affordability_cap * terms.income
        profit = money(schedule.total_interest + self.fee - self.loss, terms.rounding)
        return Candidate(
            self.product,
            self.index,
            self.amount,
            self.annual_rate,
            self.fee,
            schedule,
            profit,
            affordable,
            terms.rounding,
        )


# Schedules and APRs depend only on (amount, rate, term, method, rounding, fee). Limits are rounded
# and rates banded by grade, so live traffic repeats them constantly. Keys are the decimal *strings*:
# Decimal("0.07") == Decimal("0.070"), but they print differently, and output must not depend on
# what was decided before.
@lru_cache(maxsize=2048)
def _schedule(amount: str, annual_rate: str, term_months: int, method: str, rounding: str) -> Schedule:
    return build_schedule(Decimal(amount), Decimal(annual_rate), term_months, method, rounding)


def offer_schedule(
    amount: Decimal, annual_rate: Decimal, term_months: int, method: str, rounding: str
) -> tuple[Instalment, ...]:
    """The full schedule of an offer, as the offers stage built it (from the same cache): what a
    decision record keeps only the sha256 of, recomputed for GetDecision and replay."""
    return _schedule(str(amount), str(annual_rate), term_months, method, rounding).rows


@lru_cache(maxsize=2048)
def _disclosed_apr(
    amount: str, fee: str, annual_rate: str, term_months: int, method: str, rounding: str
) -> Decimal:
    schedule = _schedule(amount, annual_rate, term_months, method, rounding)
    exact = apr(Decimal(amount), Decimal(fee), schedule.payments, guess=Decimal(annual_rate))
    return quantize(exact, APR_PLACES)


def rank_offers(candidates: Sequence[Candidate], terms: OfferTerms) -> tuple[list[Offer], dict[str, int]]:
    """The top N affordable candidates by expected profit whose APR (fees included) is within the
    cap. APR is the costliest figure, so it is computed only while walking down the ranking."""
    ranked = sorted((c for c in candidates if c.affordable), key=lambda c: c.sort_key)
    offers: list[Offer] = []
    over_cap = 0
    for c in ranked:
        if len(offers) >= terms.top:
            break
        # The cap is checked on the disclosed APR: cent rounding of a fee-free loan priced exactly at
        # the cap can put its exact IRR a millionth above it, which no borrower ever sees.
        rate = _disclosed_apr(
            str(c.amount),
            str(c.fee),
            str(c.annual_rate),
            c.schedule.term_months,
            c.schedule.method,
            c.rounding,
        )
        if terms.apr_cap is not None and rate > terms.apr_cap:
            over_cap += 1
            continue
        offers.append(
            Offer(
                product=c.product,
                amount=c.amount,
                term_months=c.schedule.term_months,
                repayment_method=c.schedule.method,
                annual_rate=c.annual_rate,
                apr=rate,
                instalment=c.schedule.first_payment,
                total_interest=c.schedule.total_interest,
                expected_profit=c.expected_profit,
                schedule=c.schedule.rows,
            )
        )
    counts = {
        "candidates": len(candidates),
        "affordable": len(ranked),
        "over_apr_cap": over_cap,
        "offered": len(offers),
    }
    return offers, counts


def offers_stage(ctx: DecisionContext) -> StageResult:
    """Build, rank and cut the offers; no offer at all is a decline (NO_AFFORDABLE_OFFER). A
    product lends the amount requested (when the policy names it), capped by the product's maximum
    and by the limit; below the product's minimum it is skipped."""
    policy = ctx.policy
    spec, products, price = policy.offers, policy.products, policy.price
    if spec is None or products is None or not products.items or ctx.annual_rate is None:
        return StageResult(values={"skipped": "policy declares no products, offers or price"})
    terms = OfferTerms(
        income=_number(spec.income(ctx.fact)),
        existing_payments=_number(spec.existing_payments(ctx.fact)),
        affordability_cap=spec.affordability_cap,
        lgd=spec.lgd,
        pd=ctx.score.pd if ctx.score is not None else Decimal(0),
        apr_cap=price.cap if price is not None else None,
        top=spec.top,
        rounding=ctx.rounding,
    )
    requested = _number(spec.requested(ctx.fact)) if spec.requested is not None else None
    wanted = set(products.stage.fire(ctx.evaluator, ctx.fact))
    candidates: list[Candidate] = []
    eligible: list[str] = []
    for index, product in enumerate(products.items):
        if product.id not in wanted:
            continue
        amount = product.amount_max if ctx.limit is None else min(product.amount_max, ctx.limit)
        if requested is not None:
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
        pricing = _ProductPricing(product.id, index, amount, rate, product.upfront_fee_rate, terms)
        for term in product.terms:
            for method in product.methods:
                candidates.append(pricing.candidate(term, method))
    offers, counts = rank_offers(candidates, terms)
    ctx.offers = offers
    if not offers:
        ctx.declines.append(Reason(NO_OFFER_CODE, ctx.text(NO_OFFER_TEXT), "offers", ""))
    return StageResult(tuple(eligible), {"eligible_products": eligible, **counts})


def _number(value: Any) -> Decimal:
    """Income and existing payments: a missing optional value counts as zero."""
    return Decimal(0) if value is None else to_decimal(value)
