"""Instalment-loan candidates of the offers stage: one product x term x repayment method priced into
a schedule, fee, affordability and expected profit (the 1.x figures, or the lifetime ones), and the
disclosed APR; schedules and APRs cached, since limits and rates repeat across decisions."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Final, Protocol, TypeVar

from engine.decision import Fee, Instalment
from engine.finance import annuity_payment, apr, build_schedule, money, quantize
from engine.finance.lifetime import (
    Lifetime,
    LifetimeTerms,
    exposure_rows,
    float_losses,
    lifetime,
    present_value_key,
)
from engine.finance.schedule import INTEREST_ONLY, METHODS, PresentValues, Schedule

__all__ = [
    "LEGACY_OBJECTIVE",
    "Candidate",
    "OfferTerms",
    "Plan",
    "ProductPlans",
    "ProductPricing",
    "Refused",
    "candidate",
    "clear_caches",
    "disclosed_apr",
    "keep_bounded",
    "objective_value",
    "offer_schedule",
    "product_plans",
]

LEGACY_OBJECTIVE = "expected_profit"
APR_PLACES = 4  # APR is disclosed as a percentage with two decimals (0.1234 = 12.34%)


# Not frozen, as Candidate below: every decision builds one, and the frozen __init__ plus two cached
# properties cost ~4 us; nothing changes it once built.
@dataclass(slots=True)
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
    # the monthly budget left for a new loan after the existing payments
    allowed: Decimal = field(init=False, repr=False, compare=False)
    _room: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.allowed = self.affordability_cap * self.income - self.existing_payments

    @property
    def room(self) -> str:
        """`allowed` as the trace of an unaffordable offer states it (worked out at the first)."""
        if self._room is None:
            self._room = str(money(max(self.allowed, Decimal(0)), self.rounding))
        return self._room


# Not frozen: every decision builds one per product x term x method, and a frozen dataclass's
# __init__ (object.__setattr__ per field) cost 7x a plain one; nothing changes a candidate once
# built (an objective expression's value goes on a dataclasses.replace copy).
@dataclass(slots=True)
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
    fees: tuple[Fee, ...] = ()  # as an offer states them (lifetime objectives)

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
        return (
            objective_value(self),
            -self.expected_profit,
            self.product_index,
            self.schedule.term_months,
            METHODS.index(self.schedule.method),
        )

    def label(self) -> str:
        return f"{self.product}/{self.schedule.term_months}/{self.schedule.method}"


class Ranked(Protocol):
    """What the objective ranks an offer candidate (a loan here, a credit line in revolving.py) by."""

    @property
    def rank_value(self) -> Decimal | None: ...
    @property
    def objective(self) -> str: ...
    @property
    def instalment(self) -> Decimal: ...
    @property
    def total_cost(self) -> Decimal: ...


def objective_value(c: Ranked) -> Decimal:
    """The first sort key of a candidate, lowest first: an objective expression's value, the
    instalment or the total cost; 0 under the profit objectives (expected profit, next, decides)."""
    if c.rank_value is not None:
        return c.rank_value
    if c.objective == "lowest_instalment":
        return c.instalment
    if c.objective == "lowest_total_cost":
        return c.total_cost
    return _ZERO


_ZERO: Final = Decimal(0)


def candidate(
    product: str,
    product_index: int,
    amount: Decimal,
    annual_rate: Decimal,
    term_months: int,
    method: str,
    upfront_rate: Decimal,
    terms: OfferTerms,
) -> Candidate | Refused:
    """Schedule, fee, affordability and expected profit of one possible offer.

    Affordability uses the first instalment (the largest regular one for all three methods: equal
    principal falls, equal instalment is level, interest-only pays its principal as a final balloon
    which is refinanced or repaid, not budgeted from income): (first + existing payments) / income.
    Expected profit = total interest + upfront fee - PD x LGD x amount (EAD = the amount lent)."""
    return ProductPricing(product, product_index, amount, annual_rate, upfront_rate, terms).candidate(
        term_months, method
    )


class ProductPricing:
    """What every term x method of one product shares (fee, expected loss, cache keys), worked out
    once per product instead of once per candidate; the figures are the same expressions as before."""

    __slots__ = (
        "amount",
        "annual_rate",
        "fee",
        "fees",
        "index",
        "key",
        "loss",
        "monthly_fee",
        "name",
        "product",
        "pv_key",
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
        economics = terms.lifetime
        self.loss = terms.pd * terms.lgd * amount if economics is None else _ZERO  # the 1.x 12-month loss
        # the lifetime caches' key, the same for every term x method; an offer's fees, once one is priced
        self.pv_key = (
            None
            if economics is None
            else present_value_key(economics, self.fee, self.monthly_fee, terms.rounding)
        )
        self.fees: tuple[Fee, ...] | None = None

    def candidate(self, term_months: int, method: str) -> Candidate | Refused:
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

    def lifetime_candidate(self, schedule: Schedule) -> Candidate | Refused:
        """Every month's payment (fee included) must fit the affordability cap; the interest-only
        balloon too, or, when the policy states a refinancing term, the instalment refinancing it
        at the same rate. Profit and loss are the lifetime NPVs."""
        return self.unaffordable(schedule) or self.priced(schedule)

    def unaffordable(self, schedule: Schedule) -> Refused | None:
        """The candidate of `schedule` when some month's payment does not fit (an offer that is not
        made is never ranked: its NPV is not worked out), else None."""
        terms = self.terms
        worst, peak = _peak(
            self.key[0],
            self.key[1],
            schedule.term_months,
            schedule.method,
            terms.rounding,
            terms.refinance_months,
        )
        return self._refused(schedule, worst, peak)

    def _refused(self, schedule: Schedule, worst: int, peak: Decimal) -> Refused | None:
        terms = self.terms
        needed = peak + self.monthly_fee
        if terms.income > 0 and needed <= terms.allowed:
            return None
        # !s: a Decimal's str is its format() without a spec, at half the cost
        return Refused(self.product, schedule, f"month {worst + 1} needs {needed!s}, {terms.room} affordable")

    def priced(self, schedule: Schedule) -> Candidate:
        """The affordable loan of `schedule` with its lifetime figures."""
        assert self.terms.lifetime is not None
        figures = lifetime(
            schedule, self.terms.lifetime, self.fee, self.monthly_fee, self.terms.rounding, self.pv_key
        )
        if self.fees is None:
            self.fees = _fees(self.fee, self.monthly_fee)
        return self._lifetime_candidate(schedule, figures, self.fees)

    def _lifetime_candidate(self, schedule: Schedule, figures: Lifetime, fees: tuple[Fee, ...]) -> Candidate:
        terms = self.terms
        return Candidate(
            self.product,
            self.index,
            self.amount,
            self.annual_rate,
            self.fee,
            schedule,
            figures.expected_profit,
            True,
            terms.rounding,
            terms.objective,
            self.monthly_fee,
            figures,
            "",
            self.name,
            None,
            fees,
        )


def _fees(upfront: Decimal, monthly: Decimal) -> tuple[Fee, ...]:
    """The fees an offer states: those it charges."""
    return tuple(f for f in (Fee("upfront", upfront), Fee("monthly", monthly)) if f.amount)


class Refused:
    """A loan some month's payment of which does not fit the budget (lifetime objectives): never
    ranked nor priced, only named in the trace with why. Lighter than a Candidate, as a decision
    refuses about half of its loans."""

    __slots__ = ("product", "schedule", "unaffordable")
    affordable = False

    def __init__(self, product: str, schedule: Schedule, why: str) -> None:
        self.product = product
        self.schedule = schedule
        self.unaffordable = why

    def label(self) -> str:
        return f"{self.product}/{self.schedule.term_months}/{self.schedule.method}"


class Plan:
    """One term x method of a product at one amount and rate (ProductPlans): its schedule, what its
    costliest month needs with the monthly fee (`_peak`), the start of the trace's text when that
    does not fit ("personal/12/interest_only: month 12 needs 50487.50, "), and, once a decision
    asks, its profit bound (lifetime.profit_bound: the exact one once the loan is priced) and its
    disclosed APR, and its present values at its product's key (lifetime's, once priced); `row`:
    its place among its product's plans."""

    __slots__ = (
        "apr",
        "before",
        "bound",
        "method",
        "method_index",
        "needed",
        "refusal",
        "row",
        "schedule",
        "term",
    )

    def __init__(self, schedule: Schedule, needed: Decimal, refusal: str, row: int) -> None:
        self.schedule = schedule
        self.row = row
        self.term = schedule.term_months
        self.method = schedule.method
        self.method_index = METHODS.index(schedule.method)
        self.needed = needed
        self.refusal = refusal
        self.bound: Decimal | None = None
        self.apr: Decimal | None = None
        self.before: PresentValues | None = None


class ProductPlans:
    """A product lent at one amount and rate, under one policy's economics (lifetime objectives):
    its fees and every term x method's Plan. Limits are rounded and rates banded by grade, so
    decisions lend the same ones again and again: each works out per plan only what its applicant
    changes (affordability; the lifetime figures of the loans the ranking reaches)."""

    __slots__ = (
        "amount",
        "annual_rate",
        "exposures",
        "fee",
        "fees",
        "index",
        "monthly_fee",
        "plans",
        "product",
        "pv_key",
        "rounding",
        "texts",
    )

    def __init__(
        self, pricing: ProductPricing, term_months: tuple[int, ...], methods: tuple[str, ...]
    ) -> None:
        """Every term x method of `pricing`'s product, amount and rate (its fees and keys)."""
        terms, key = pricing.terms, pricing.pv_key
        assert key is not None  # a lifetime objective's
        product = self.product = pricing.product
        rounding = self.rounding = terms.rounding
        self.index, self.amount, self.annual_rate = pricing.index, pricing.amount, pricing.annual_rate
        self.fee, self.monthly_fee, self.pv_key = pricing.fee, pricing.monthly_fee, key
        amount_text, rate_text = pricing.key
        self.fees = _fees(self.fee, self.monthly_fee)
        self.texts = (amount_text, key[3], rate_text, key[4])  # disclosed_apr's keys
        plans: list[Plan] = []
        for term in term_months:
            for method in methods:
                schedule = _schedule(amount_text, rate_text, term, method, rounding)
                worst, peak = _peak_of(schedule, rounding, terms.refinance_months)
                needed = peak + self.monthly_fee
                # !s: a Decimal's str is its format() without a spec, at half the cost
                refusal = f"{product}/{term}/{method}: month {worst + 1} needs {needed!s}, "
                plans.append(Plan(schedule, needed, refusal, len(plans)))
        self.plans = tuple(plans)
        self.exposures = exposure_rows([plan.schedule for plan in plans])

    def float_losses(self, economics: LifetimeTerms) -> list[float] | None:
        """Every plan's float loss at `economics`' PD, by its row (lifetime.float_losses): one
        matrix product for the product at its first loan priced, not a dot product per loan."""
        return None if self.exposures is None else float_losses(self.exposures, economics)

    def disclosed_apr(self, plan: Plan) -> Decimal:
        """The APR of `plan` (disclosed_apr's), kept with it."""
        rate = plan.apr
        if rate is None:
            amount, fee, annual_rate, monthly_fee = self.texts
            rate = plan.apr = disclosed_apr(
                amount, fee, annual_rate, plan.term, plan.method, self.rounding, monthly_fee
            )
        return rate


def product_plans(
    product: str,
    index: int,
    amount: Decimal,
    annual_rate: Decimal,
    upfront_rate: Decimal,
    monthly_rate: Decimal,
    term_months: tuple[int, ...],
    methods: tuple[str, ...],
    terms: OfferTerms,
) -> ProductPlans:
    """The ProductPlans of these figures (kept: the last 128 asked for)."""
    economics = terms.lifetime
    assert economics is not None
    _, _, cost_of_funds, _, per_month, per_loan = economics.keys  # what present_value_key reads
    key = (
        product,
        index,
        str(amount),  # decimal strings, as _schedule's keys: 0.07 and 0.070 print apart
        str(annual_rate),
        upfront_rate,  # read through money() only: equal rates give the same fee
        monthly_rate,
        term_months,
        methods,
        terms.rounding,
        terms.refinance_months,
        cost_of_funds,
        per_month,
        per_loan,
    )
    known = _product_plans.get(key)
    if known is None:
        pricing = ProductPricing(product, index, amount, annual_rate, upfront_rate, terms, monthly_rate)
        known = keep_bounded(
            _product_plans, _plans_lock, _PLANS_KEPT, key, ProductPlans(pricing, term_months, methods)
        )
    return known


def keep_bounded(kept: dict[_K, _V], lock: threading.Lock, most: int, key: _K, value: _V) -> _V:
    """`value`, put in `kept` under `key`, the oldest entries out first while `kept` holds `most`:
    a cache the offers stage reads without the lock (one dict get) and writes under it, so no two
    writers evict at once."""
    with lock:
        while len(kept) >= most:
            del kept[next(iter(kept))]
        kept[key] = value
    return value


_K = TypeVar("_K")
_V = TypeVar("_V")


# Each entry holds a product's dozen schedules, and holding keeps them alive past `_schedule`'s own
# bound: at 1,024 a run of varied amounts kept ~12,000 schedules (RSS +36 MiB, rss_growth 1.13);
# 128 keep about as many schedules as `_schedule` does. Read without the lock (one dict get);
# written under it, so no two writers evict at once.
_PLANS_KEPT: Final = 128
_product_plans: dict[tuple[object, ...], ProductPlans] = {}
_plans_lock = threading.Lock()


# Schedules and APRs depend only on (amount, rate, term, method, rounding, fee). Limits are rounded
# and rates banded by grade, so live traffic repeats them constantly. Keys are the decimal *strings*:
# Decimal("0.07") == Decimal("0.070"), but they print differently, and output must not depend on
# what was decided before.
@lru_cache(maxsize=2048)
def _schedule(amount: str, annual_rate: str, term_months: int, method: str, rounding: str) -> Schedule:
    return build_schedule(Decimal(amount), Decimal(annual_rate), term_months, method, rounding)


@lru_cache(maxsize=2048)
def _peak(
    amount: str, annual_rate: str, term_months: int, method: str, rounding: str, refinance_months: int | None
) -> tuple[int, Decimal]:
    """The month whose payment the borrower must budget most for (the first of equals, from 0) and
    that payment, fees aside: the interest-only balloon counts as the instalment refinancing it
    when the policy states a refinancing term."""
    schedule = _schedule(amount, annual_rate, term_months, method, rounding)
    return _peak_of(schedule, rounding, refinance_months)


def _peak_of(schedule: Schedule, rounding: str, refinance_months: int | None) -> tuple[int, Decimal]:
    budget = schedule.payments
    if schedule.method == INTEREST_ONLY and refinance_months is not None:
        balloon = schedule.table[-1]
        refinanced = annuity_payment(balloon[2], schedule.annual_rate, refinance_months, rounding)
        budget = (*budget[:-1], balloon[3] + refinanced)
    peak = max(budget)  # the first of equals, as index() finds it
    return budget.index(peak), peak


def offer_schedule(
    amount: Decimal, annual_rate: Decimal, term_months: int, method: str, rounding: str
) -> tuple[Instalment, ...]:
    """The full schedule of an offer, as the offers stage built it (from the same cache): what a
    decision record keeps only the sha256 of, recomputed for GetDecision and replay."""
    return _schedule(str(amount), str(annual_rate), term_months, method, rounding).rows


@lru_cache(maxsize=2048)
def disclosed_apr(
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


def clear_caches() -> None:
    """Forget every cached schedule and APR (benchmarks start each side cold)."""
    _schedule.cache_clear()
    _peak.cache_clear()
    with _plans_lock:
        _product_plans.clear()
    disclosed_apr.cache_clear()
