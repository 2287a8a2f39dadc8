"""The offers stage: every eligible product x term x repayment method priced into a schedule,
checked for affordability, ranked by the policy's objective, APR-capped, top N.

Two rankings. The 1.x `expected_profit` (margin - 12-month PD x LGD x amount, affordability on the
first instalment) is kept unchanged so old policy versions replay exactly. The lifetime objectives
(`expected_profit_npv`, `lowest_instalment`, `lowest_total_cost`) price each candidate with
engine/finance/lifetime.py and check every month's payment, the interest-only balloon included."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import lru_cache
from typing import Any

from engine.decision import Fee, Instalment, Offer, Reason
from engine.errors import PolicyRuntimeError
from engine.finance import annuity_payment, apr, build_schedule, money, quantize, to_decimal
from engine.finance.lifetime import Lifetime, LifetimeTerms, lifetime
from engine.finance.schedule import INTEREST_ONLY, METHODS, Schedule
from engine.pipeline.context import DecisionContext
from engine.pipeline.revolving import RevolvingCandidate, revolving_candidate
from engine.pipeline.runner import StageResult
from engine.policy.model import Formula

__all__ = [
    "LEGACY_OBJECTIVE",
    "NO_OFFER_CODE",
    "Candidate",
    "OfferTerms",
    "offer_schedule",
    "offers_stage",
    "rank_offers",
]

LEGACY_OBJECTIVE = "expected_profit"

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
    objective: str = LEGACY_OBJECTIVE
    lifetime: LifetimeTerms | None = None  # set for the lifetime objectives
    refinance_months: int | None = None  # None: an interest-only balloon is budgeted in full


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
    objective: str = LEGACY_OBJECTIVE
    monthly_fee: Decimal = Decimal(0)
    lifetime: Lifetime | None = None
    unaffordable: str = ""  # why not, for the trace (lifetime objectives)
    product_name: str = ""
    rank_value: Decimal | None = None  # an objective expression's value, lowest first

    @property
    def term_months(self) -> int:
        return self.schedule.term_months

    @property
    def instalment(self) -> Decimal:
        """The largest month's payment, fees included: what `lowest_instalment` compares."""
        return self.schedule.max_payment + self.monthly_fee

    @property
    def total_cost(self) -> Decimal:
        """What the borrower pays beyond the amount: interest and every fee."""
        return self.schedule.total_interest + self.fee + self.monthly_fee * self.schedule.term_months

    @property
    def sort_key(self) -> tuple[Decimal, Decimal, int, int, int]:
        # by the objective, then highest expected profit; ties in policy order: product, shorter
        # term, method order
        first = Decimal(0)
        if self.rank_value is not None:
            first = self.rank_value
        elif self.objective == "lowest_instalment":
            first = self.instalment
        elif self.objective == "lowest_total_cost":
            first = self.total_cost
        return (
            first,
            -self.expected_profit,
            self.product_index,
            self.schedule.term_months,
            METHODS.index(self.schedule.method),
        )

    def label(self) -> str:
        return f"{self.product}/{self.schedule.term_months}/{self.schedule.method}"


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

    __slots__ = (
        "amount",
        "annual_rate",
        "fee",
        "index",
        "key",
        "loss",
        "monthly_fee",
        "name",
        "product",
        "terms",
    )

    def __init__(
        self,
        product: str,
        product_index: int,
        amount: Decimal,
        annual_rate: Decimal,
        upfront_rate: Decimal,
        terms: OfferTerms,
        monthly_rate: Decimal = Decimal(0),
        name: str = "",
    ) -> None:
        self.product = product
        self.name = name
        self.monthly_fee = money(amount * monthly_rate, terms.rounding)
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
        if terms.lifetime is not None:
            return self.lifetime_candidate(schedule)
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

    def lifetime_candidate(self, schedule: Schedule) -> Candidate:
        """Every month's payment (fee included) must fit the affordability cap; the interest-only
        balloon too, or, when the policy states a refinancing term, the instalment refinancing it
        at the same rate. Profit and loss are the lifetime NPVs."""
        terms = self.terms
        assert terms.lifetime is not None
        allowed = terms.affordability_cap * terms.income - terms.existing_payments
        budget = list(schedule.payments)
        if schedule.method == INTEREST_ONLY and terms.refinance_months is not None:
            balloon = schedule.table[-1]
            refinanced = annuity_payment(balloon[2], self.annual_rate, terms.refinance_months, terms.rounding)
            budget[-1] = balloon[3] + refinanced
        worst = max(range(len(budget)), key=lambda i: (budget[i], -i))
        needed = budget[worst] + self.monthly_fee
        affordable = terms.income > 0 and needed <= allowed
        room = money(max(allowed, Decimal(0)), terms.rounding)
        why = "" if affordable else f"month {worst + 1} needs {needed}, {room} affordable"
        # an offer that is not made is never ranked: its NPV is not worked out
        figures = (
            lifetime(schedule, terms.lifetime, self.fee, self.monthly_fee, terms.rounding)
            if affordable
            else None
        )
        return Candidate(
            self.product,
            self.index,
            self.amount,
            self.annual_rate,
            self.fee,
            schedule,
            Decimal(0) if figures is None else figures.expected_profit,
            affordable,
            terms.rounding,
            terms.objective,
            self.monthly_fee,
            figures,
            why,
            self.name,
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
    amount: str,
    fee: str,
    annual_rate: str,
    term_months: int,
    method: str,
    rounding: str,
    monthly_fee: str = "0",
) -> Decimal:
    schedule = _schedule(amount, annual_rate, term_months, method, rounding)
    payments = schedule.payments
    if Decimal(monthly_fee):
        payments = tuple(p + Decimal(monthly_fee) for p in payments)
    exact = apr(Decimal(amount), Decimal(fee), payments, guess=Decimal(annual_rate))
    return quantize(exact, APR_PLACES)


def rank_offers(
    candidates: Sequence[Candidate | RevolvingCandidate], terms: OfferTerms
) -> tuple[list[Offer], dict[str, int]]:
    """The top N affordable candidates by expected profit whose APR (fees included) is within the
    cap. APR is the costliest figure, so it is computed only while walking down the ranking."""
    ranked = sorted((c for c in candidates if c.affordable), key=lambda c: c.sort_key)
    offers: list[Offer] = []
    over_cap = 0
    for c in ranked:
        if len(offers) >= terms.top:
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
        rate = _disclosed_apr(
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
        "affordable": len(ranked),
        "over_apr_cap": over_cap,
        "offered": len(offers),
    }
    return offers, counts


def _offer(c: Candidate, rate: Decimal) -> Offer:
    offer = Offer(
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
    if c.lifetime is None:
        return offer
    fees = (Fee("upfront", c.fee), Fee("monthly", c.monthly_fee))
    return replace(
        offer,
        expected_loss=c.lifetime.expected_loss,
        product_name=c.product_name,
        fees=tuple(f for f in fees if f.amount),
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
        lifetime=None
        if life is None
        else LifetimeTerms(
            pd, spec.lgd, life.cost_of_funds, life.operating_per_loan, life.operating_per_month, life.pd_curve
        ),
        refinance_months=spec.refinance_months,
    )
    requested = _number(spec.requested(ctx.fact)) if spec.requested is not None else None
    wanted = set(products.stage.fire(ctx.evaluator, ctx.fact))
    candidates: list[Candidate | RevolvingCandidate] = []
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
            allowed = terms.affordability_cap * terms.income - terms.existing_payments
            candidates.append(
                revolving_candidate(
                    product.id,
                    index,
                    amount,
                    rate,
                    product.revolving,
                    terms.lifetime,
                    allowed if terms.income > 0 else Decimal(-1),
                    terms.rounding,
                    ctx.text(product.names),
                    terms.objective,
                )
            )
            continue
        pricing = _ProductPricing(
            product.id,
            index,
            amount,
            rate,
            product.upfront_fee_rate,
            terms,
            product.monthly_fee_rate,
            ctx.text(product.names) if life is not None else "",
        )
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
    c: Candidate | RevolvingCandidate, formula: Formula, maximise: bool, fact: dict[str, Any]
) -> Candidate | RevolvingCandidate:
    """`c` with the objective expression's value over the applicant and this offer's figures."""
    assert c.lifetime is not None
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
