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
from operator import itemgetter
from typing import Any, Final

from engine.decision import Offer, Reason, maker
from engine.errors import PolicyRuntimeError
from engine.finance import money, to_decimal
from engine.finance.lifetime import LifetimeTerms, expected_loss_and_profit, profit_bound
from engine.finance.schedule import METHODS
from engine.pipeline.candidates import (
    Candidate,
    OfferTerms,
    Plan,
    ProductPlans,
    ProductPricing,
    Refused,
    disclosed_apr,
    product_plans,
)
from engine.pipeline.context import DecisionContext
from engine.pipeline.revolving import RevolvingCandidate, RevolvingPlan
from engine.pipeline.runner import StageResult
from engine.policy.model import Formula
from engine.policy.model import Lifetime as LifetimeSpec

__all__ = ["NO_OFFER_CODE", "offers_stage", "rank_offers", "rank_plans"]

NO_OFFER_CODE = "NO_AFFORDABLE_OFFER"
NO_OFFER_TEXT = {
    "en": "No loan product is affordable within the approved limit and the rate cap",
    "zh": "在核定额度和利率上限内没有可负担的贷款产品",
}


def rank_offers(
    candidates: Sequence[Candidate | RevolvingCandidate | Refused], terms: OfferTerms
) -> tuple[list[Offer], dict[str, int]]:
    """The top N affordable candidates by the objective whose APR (fees included) is within the
    cap. APR is the costliest figure, so it is computed only while walking down the ranking."""
    ranked = [c for c in candidates if not isinstance(c, Refused) and c.affordable]
    affordable = len(ranked)
    ranked.sort(key=_sort_key)
    offers: list[Offer] = []
    over_cap = 0
    for c in ranked:
        if len(offers) == terms.top:
            break
        if isinstance(c, RevolvingCandidate):
            over_cap += _offer_line(c, terms, offers)
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


def _offer_line(line: RevolvingCandidate | RevolvingPlan, terms: OfferTerms, offers: list[Offer]) -> int:
    """Offer `line` (append it to `offers`) unless its APR is over the cap: 1 if it is, else 0."""
    rate = line.disclosed_apr()
    if terms.apr_cap is not None and rate > terms.apr_cap:
        return 1
    offers.append(line.offer(rate))
    return 0


# A loan rank_plans has priced: (sort key, expected profit, its plan, its product's plans, its
# expected loss, its product's name); a credit line: (sort key, expected profit, the line, None,
# None, "")
_Priced = tuple[
    tuple[Decimal, Decimal, int, int, int],
    Decimal,
    Plan | RevolvingPlan | RevolvingCandidate,
    ProductPlans | None,
    Decimal | None,
    str,
]


def rank_plans(
    made: Sequence[tuple[ProductPlans | RevolvingPlan | RevolvingCandidate, str]], terms: OfferTerms
) -> tuple[list[Offer], dict[str, int], list[str]]:
    """rank_offers under the expected-profit objective, over each product's plans (with the
    product's name, for its offers) and credit lines, in policy order; and the trace's text of
    every loan and line that does not fit the budget. A loan's or a line's lifetime figures are
    worked out only while it could rank at or ahead of the best priced one: the ranking is by
    expected profit (then policy order), and one whose bound (its profit before the expected loss,
    which is never negative) is below that profit comes after it whatever its loss. Without such a
    bound (a negative LGD or PD multiplier) every affordable loan and line is priced."""
    economics = terms.lifetime
    assert economics is not None
    bounded = economics.loss_never_negative
    fits, allowed = terms.income > 0, terms.allowed
    ranked: list[_Priced] = []
    unpriced: list[tuple[Decimal, Plan | RevolvingPlan, ProductPlans | None, str]] = []
    refused: list[str] = []
    room = ""  # the end of a refused loan's text, worked out at the first
    dots: dict[ProductPlans, list[float] | None] = {}  # each product's float losses (_dots)
    count = 0
    for entry, name in made:
        if not isinstance(entry, ProductPlans):  # a credit line
            count += 1
            if not entry.affordable:
                refused.append(f"{entry.label()}: {entry.unaffordable}")
            elif isinstance(entry, RevolvingPlan) and entry.bound is not None:
                unpriced.append((entry.bound, entry, None, ""))
            else:
                ranked.append(_priced_line(entry))
            continue
        count += len(entry.plans)
        for plan in entry.plans:
            if not fits or plan.needed > allowed:  # as ProductPricing.unaffordable decides
                room = room or f"{terms.room} affordable"
                refused.append(plan.refusal + room)
            elif not bounded:
                ranked.append(_priced(plan, entry, name, economics, _dots(entry, economics, dots))[0])
            else:
                bound = plan.bound
                if bound is None:
                    bound = plan.bound = _bound(plan, entry, economics)
                unpriced.append((bound, plan, entry, name))
    affordable = count - len(refused)
    ranked.sort(key=_FIRST)
    unpriced.sort(key=_FIRST, reverse=True)  # stable: ties stay in policy order
    keys = [r[0] for r in ranked]  # beside the ranking, for bisect
    offers: list[Offer] = []
    over_cap = 0
    while len(offers) < terms.top:
        while unpriced and (not ranked or ranked[0][1] <= unpriced[0][0]):
            _, quoted, of, name = unpriced.pop(0)
            if isinstance(quoted, RevolvingPlan):
                priced = _priced_line(quoted)
            else:
                assert of is not None  # a loan's product
                # exact now: its sums are kept
                losses = dots[of] if of in dots else _dots(of, economics, dots)
                priced, quoted.bound = _priced(quoted, of, name, economics, losses)
            at = bisect.bisect_right(keys, priced[0])  # where bisect.insort(ranked, ...) puts it
            keys.insert(at, priced[0])
            ranked.insert(at, priced)
        if not ranked:
            break
        del keys[0]
        _, profit, item, plans, loss, name = ranked.pop(0)
        if not isinstance(item, Plan):  # a credit line
            over_cap += _offer_line(item, terms, offers)
            continue
        assert plans is not None and loss is not None
        rate = item.apr
        if rate is None:  # worked out once per plan, kept with it
            rate = plans.disclosed_apr(item)
        if terms.apr_cap is not None and rate > terms.apr_cap:
            over_cap += 1
            continue
        schedule = item.schedule
        offers.append(  # positional, in Offer's field order (offer_id and valid_until are booked later)
            _new_offer(
                plans.product,
                plans.amount,
                item.term,
                item.method,
                plans.annual_rate,
                rate,
                schedule.first_payment,
                schedule.total_interest,
                profit,
                schedule.rows,
                loss,
                "",
                "",
                name,
                plans.fees,
            )
        )
    counts = {"candidates": count, "affordable": affordable, "over_apr_cap": over_cap, "offered": len(offers)}
    return offers, counts, refused


def _priced(
    plan: Plan, plans: ProductPlans, name: str, economics: LifetimeTerms, dots: list[float] | None
) -> tuple[_Priced, Decimal]:
    """`plan` with its lifetime figures, ranked by expected profit (then policy order: product,
    shorter term, method order), as Candidate.sort_key ranks a loan under this objective; and its
    exact profit bound (lifetime.profit_bound's, from the same sums). `dots`: its product's float
    losses (_dots)."""
    loss, profit, bound = expected_loss_and_profit(
        plan.schedule,
        economics,
        plans.fee,
        plans.monthly_fee,
        plans.rounding,
        plans.pv_key,
        None if dots is None else dots[plan.row],
        plan.before,
    )
    if plan.before is None:  # kept with the plan: its product's fees and economics fix the key
        plan.before = plan.schedule.present_values.get(plans.pv_key)
    return (
        (_ZERO, -profit, plans.index, plan.term, plan.method_index),
        profit,
        plan,
        plans,
        loss,
        name,
    ), bound


def _dots(
    plans: ProductPlans, economics: LifetimeTerms, known: dict[ProductPlans, list[float] | None]
) -> list[float] | None:
    """The float losses of every plan of `plans` (ProductPlans.float_losses), worked out at the
    first of its loans a decision prices and kept in `known` for the others."""
    if plans in known:
        return known[plans]
    dots = known[plans] = plans.float_losses(economics)
    return dots


def _priced_line(line: RevolvingPlan | RevolvingCandidate) -> _Priced:
    """A credit line with its lifetime figures, ranked as Candidate.sort_key ranks it (after every
    term and method of its product)."""
    if isinstance(line, RevolvingCandidate):
        return (line.sort_key, line.expected_profit, line, None, None, "")
    profit = line.price()
    return ((_ZERO, -profit, line.product_index, 0, _AFTER_METHODS), profit, line, None, None, "")


def _bound(plan: Plan, plans: ProductPlans, economics: LifetimeTerms) -> Decimal:
    bound = profit_bound(plan.schedule, economics, plans.fee, plans.monthly_fee, plans.rounding, plans.pv_key)
    assert bound is not None  # the loss is never negative: rank_plans asked first
    return bound


_ZERO: Final = Decimal(0)
_FIRST: Final = itemgetter(0)  # a ranking's sort key
_AFTER_METHODS: Final = len(METHODS)
_new_offer: Final = maker(Offer)  # Offer's constructor without the class call's own steps


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
    economics = None if life is None else _economics_at(life, spec.lgd, pd)
    terms = OfferTerms(  # positional, in OfferTerms' field order: keywords cost a third more
        _number(spec.income(ctx.fact)),
        _number(spec.existing_payments(ctx.fact)),
        spec.affordability_cap,
        spec.lgd,
        pd,
        price.cap if price is not None else None,
        spec.top,
        ctx.rounding,
        spec.objective,
        economics,
        spec.refinance_months,
    )
    requested = _number(spec.requested(ctx.fact)) if spec.requested is not None else None
    # ranked by expected profit alone, a loan that cannot make the top N is never priced in full
    defer = spec.objective == "expected_profit_npv" and spec.rank_by is None
    wanted = set(products.stage.fire(ctx.evaluator, ctx.fact))
    candidates: list[Candidate | RevolvingCandidate | Refused] = []
    made: list[tuple[ProductPlans | RevolvingPlan, str]] = []  # what rank_plans ranks (defer)
    eligible: list[str] = []
    limit, annual_rate = ctx.limit, ctx.annual_rate
    floor, cap = (None, None) if price is None else (price.floor, price.cap)
    for index, product in enumerate(products.items):
        if product.id not in wanted:
            continue
        # the least of these, the first of equals (as min() picks it; a comparison costs less)
        amount = product.amount_max
        if limit is not None and limit < amount:
            amount = limit
        if requested is not None and requested < amount and product.revolving is None:
            amount = requested  # a line's limit is not the loan asked for
        amount = money(amount, "down")  # in cents, however the policy wrote the maximum
        if amount < product.amount_min or amount <= _ZERO:  # a Decimal zero: no int to convert
            continue
        eligible.append(product.id)
        rate = annual_rate + product.rate_adjustment
        if floor is not None and floor > rate:
            rate = floor
        if cap is not None and cap < rate:
            rate = cap
        if product.revolving is not None and economics is not None:
            line = RevolvingPlan(
                product.id,
                index,
                amount,
                rate,
                product.revolving,
                economics,
                terms.allowed if terms.income > 0 else Decimal(-1),
                terms.rounding,
                ctx.text(product.names),
                terms.objective,
            )
            if defer:
                made.append((line, ""))  # priced if the ranking reaches it
            else:
                candidates.append(line.priced())
            continue
        if defer:
            plans = product_plans(
                product.id,
                index,
                amount,
                rate,
                product.upfront_fee_rate,
                product.monthly_fee_rate,
                product.terms,
                product.methods,
                terms,
            )
            made.append((plans, ctx.text(product.names)))
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
        for term in product.terms:
            for method in product.methods:
                candidates.append(pricing.candidate(term, method))
    if defer:
        offers, counts, refused = rank_plans(made, terms)
    else:
        by, fact = spec.rank_by, ctx.fact
        if by is not None:
            candidates = [_ranked_by(c, by, spec.maximise, fact) if c.affordable else c for c in candidates]
        offers, counts = rank_offers(candidates, terms)
        refused = [f"{c.label()}: {c.unaffordable}" for c in candidates if not c.affordable]
    ctx.offers = offers
    values: dict[str, Any] = {"eligible_products": eligible, **counts}
    if life is not None:
        ctx.objective = spec.objective
        values["objective"] = spec.objective
        assert economics is not None
        values["pd_12m"] = economics.keys[0]  # str(pd), worked out with the economics
        values["not_affordable"] = refused
    if not offers:
        ctx.declines.append(Reason(NO_OFFER_CODE, ctx.text(NO_OFFER_TEXT), "offers", ""))
        if life is not None:
            ctx.declines.extend(ctx.refers)  # the referrals still explain the file
    return StageResult(tuple(eligible), values)


def _ranked_by(
    c: Candidate | RevolvingCandidate | Refused,
    formula: Formula,
    maximise: bool,
    fact: dict[str, Any],
) -> Candidate | RevolvingCandidate:
    """`c` with the objective expression's value over the applicant and this offer's figures."""
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


def _economics_at(life: LifetimeSpec, lgd: Decimal, pd: Decimal) -> LifetimeTerms:
    """The policy's lifetime economics at the 12-month PD `pd` (at_pd's): kept with the policy's
    by the PD's decimal string (the trace states that string), at most _AT_PDS of them, as the
    PD's loss curve is kept (lifetime._loss_curve): PDs are six-place model outputs or grade
    tables, so decisions share them. The terms are frozen: a decision only reads them."""
    known = _policy_entry(life, lgd)
    by_pd = known[3]
    text = str(pd)
    terms = by_pd.get(text)
    if terms is None:
        terms = known[2].at_pd(pd)
        if len(by_pd) >= _AT_PDS:  # forget them all: it refills with the PDs decided now
            by_pd.clear()
        by_pd[text] = terms
    return terms


def _policy_entry(life: LifetimeSpec, lgd: Decimal) -> _PolicyEconomics:
    """The policy's lifetime economics (at PD 0, its key strings worked out): kept per loaded
    policy's spec, by identity (a spec never changes once loaded)."""
    known = _policy_economics.get(id(life))
    if known is not None and known[0] is life and known[1] is lgd:
        return known
    terms = LifetimeTerms(
        Decimal(0), lgd, life.cost_of_funds, life.operating_per_loan, life.operating_per_month, life.pd_curve
    )
    _ = terms.keys, terms.loss_never_negative  # worked out once, kept by at_pd
    if len(_policy_economics) >= 64:  # policies loaded and dropped: forget them all, it refills
        _policy_economics.clear()
    known = _policy_economics[id(life)] = (life, lgd, terms, {})
    return known


# per loaded policy's lifetime spec: the spec, its LGD, its economics at PD 0 and at the PDs decided
_PolicyEconomics = tuple[LifetimeSpec, Decimal, LifetimeTerms, dict[str, LifetimeTerms]]
_policy_economics: dict[int, _PolicyEconomics] = {}
_AT_PDS: Final = 256


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
    if type(value) is Decimal and value.is_finite():  # to_decimal's answer, without its type tests
        return value
    return Decimal(0) if value is None else to_decimal(value)
