"""Revolving credit lines as offers: a credit limit, a rate, a minimum-payment rule and interest-free
days instead of a term and a schedule. Affordable when the minimum payment on the full limit fits
the budget; priced by engine/finance/lifetime.py's line_lifetime (EAD through the CCF), only when
the ranking reaches it (RevolvingPlan)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from engine.decision import Offer, RevolvingTerms, maker
from engine.finance import money, quantize
from engine.finance.lifetime import (
    Lifetime,
    LifetimeTerms,
    line_bound,
    line_figures,
    line_lifetime,
    line_loss_and_profit,
)
from engine.finance.schedule import METHODS
from engine.pipeline.candidates import keep_bounded, objective_value
from engine.policy.model import Revolving

__all__ = ["REVOLVING", "RevolvingCandidate", "RevolvingPlan"]

REVOLVING = "revolving"  # an Offer's repayment_method for a credit line
_new_offer: Final = maker(Offer)  # Offer's constructor without the class call's own steps


# Not frozen, as Candidate: every decision offering a line builds one
@dataclass(slots=True)
class RevolvingCandidate:
    product: str
    product_index: int
    limit: Decimal
    annual_rate: Decimal
    terms: Revolving
    lifetime: Lifetime
    interest: Decimal  # over the horizon, undiscounted
    minimum_at_limit: Decimal
    affordable: bool
    unaffordable: str
    product_name: str
    objective: str
    rank_value: Decimal | None = None  # an objective expression's value, lowest first

    @property
    def amount(self) -> Decimal:
        return self.limit

    @property
    def instalment(self) -> Decimal:
        return self.minimum_at_limit

    @property
    def total_cost(self) -> Decimal:
        return self.interest

    @property
    def term_months(self) -> int:
        return 0

    @property
    def expected_profit(self) -> Decimal:
        return self.lifetime.expected_profit

    @property
    def sort_key(self) -> tuple[Decimal, Decimal, int, int, int]:
        # ranked beside instalment offers: a line sorts after every term and method of its product
        return (objective_value(self), -self.expected_profit, self.product_index, 0, len(METHODS))

    def label(self) -> str:
        return f"{self.product}/{REVOLVING}"

    def offer(self, apr: Decimal) -> Offer:
        figures = self.lifetime
        offered = _offered_terms(self.terms)
        return _line_offer(self, apr, self.interest, figures.expected_profit, figures.expected_loss, offered)

    def disclosed_apr(self) -> Decimal:
        """No fees on a line: its APR is the nominal rate, to the disclosed places."""
        return quantize(self.annual_rate, 4)


def _line_offer(
    line: RevolvingCandidate | RevolvingPlan,
    apr: Decimal,
    interest: Decimal,
    profit: Decimal,
    loss: Decimal,
    offered: RevolvingTerms,
) -> Offer:
    return _new_offer(  # positional, in Offer's field order: keywords cost a third more
        line.product,
        line.limit,
        0,
        REVOLVING,
        line.annual_rate,
        apr,
        line.instalment,
        interest,
        profit,
        (),
        loss,
        "",
        "",
        line.product_name,
        (),
        offered,
    )


def _offered_terms(terms: Revolving) -> RevolvingTerms:
    """A line product's terms as its offers state them: the same for every offer of a loaded
    policy's product, so kept by identity (a policy's spec never changes once loaded)."""
    known = _offered.get(id(terms))
    if known is not None and known[0] is terms:
        return known[1]
    offered = RevolvingTerms(
        terms.minimum_fixed, terms.minimum_rate, terms.interest_free_days, terms.horizon_months
    )
    if len(_offered) >= 64:  # policies loaded and dropped: forget them all, it refills
        _offered.clear()
    _offered[id(terms)] = (terms, offered)
    return offered


_offered: dict[int, tuple[Revolving, RevolvingTerms]] = {}


class LineQuote:
    """What a credit line at one limit and rate states whoever asks, under one policy's terms and
    economics: its minimum payment on the full limit (min(limit, max(fixed, rate x limit)), by
    comparisons: the same object on a tie), its PD-free lifetime figures (line_figures), its
    disclosed APR (no fees: the nominal rate to the disclosed places) and the terms its offer
    states. Limits are rounded and rates banded by grade, as a loan's: kept (_quote), as a
    product's plans are."""

    __slots__ = ("apr", "figures", "minimum", "offered", "terms")

    def __init__(
        self, limit: Decimal, annual_rate: Decimal, terms: Revolving, economics: LifetimeTerms, rounding: str
    ) -> None:
        minimum = money(terms.minimum_rate * limit, rounding)
        if not minimum > terms.minimum_fixed:
            minimum = terms.minimum_fixed
        if not minimum < limit:
            minimum = limit
        self.minimum, self.terms = minimum, terms
        self.figures = line_figures(
            limit, annual_rate, terms.utilisation, terms.ccf, terms.horizon_months, economics, rounding
        )
        self.apr = quantize(annual_rate, 4)
        self.offered = _offered_terms(terms)


def _quote(
    limit: Decimal, annual_rate: Decimal, terms: Revolving, economics: LifetimeTerms, rounding: str
) -> LineQuote:
    """The LineQuote of these figures (kept: the last 128 asked for). Keyed by the terms' identity
    (a loaded policy's spec never changes; the quote holds them, so their id is not reused while
    it is kept) and decimal strings, as a product's plans are."""
    _, _, cost_of_funds, _, per_month, per_loan = economics.keys  # what line_figures reads
    key = (id(terms), str(limit), str(annual_rate), rounding, cost_of_funds, per_month, per_loan)
    known = _quotes.get(key)
    if known is not None and known.terms is terms:
        return known
    return keep_bounded(
        _quotes, _quotes_lock, _QUOTES_KEPT, key, LineQuote(limit, annual_rate, terms, economics, rounding)
    )


_QUOTES_KEPT: Final = 128
_quotes: dict[tuple[object, ...], LineQuote] = {}  # read without the lock, written under it (keep_bounded)
_quotes_lock = threading.Lock()


class RevolvingPlan:
    """A credit line at one limit and rate before its lifetime figures: its minimum payment on the
    full limit and whether that fits `allowed` (the monthly budget left after existing payments),
    and the most its expected profit can be (its profit before the expected loss; None without
    such a bound). The ranking prices it (`priced`)
    only when it may rank, as it prices a loan (engine/pipeline/offers.py, rank_plans)."""

    __slots__ = (
        "affordable",
        "annual_rate",
        "bound",
        "economics",
        "figures",
        "limit",
        "loss",
        "minimum",
        "objective",
        "product",
        "product_index",
        "product_name",
        "profit",
        "quote",
        "rounding",
        "terms",
        "unaffordable",
    )

    def __init__(
        self,
        product: str,
        product_index: int,
        limit: Decimal,
        annual_rate: Decimal,
        terms: Revolving,
        economics: LifetimeTerms,
        allowed: Decimal,
        rounding: str,
        product_name: str,
        objective: str,
    ) -> None:
        self.product, self.product_index, self.product_name = product, product_index, product_name
        self.limit, self.annual_rate, self.terms = limit, annual_rate, terms
        self.economics, self.rounding, self.objective = economics, rounding, objective
        quote = self.quote = _quote(limit, annual_rate, terms, economics, rounding)
        minimum = self.minimum = quote.minimum
        self.affordable = minimum <= allowed
        self.unaffordable = ""
        if not self.affordable:
            room = money(max(allowed, Decimal(0)), rounding)
            self.unaffordable = f"minimum payment {minimum!s} on the full limit, {room!s} affordable"
        self.figures = quote.figures
        self.bound = line_bound(self.figures, economics)

    def label(self) -> str:
        return f"{self.product}/{REVOLVING}"

    @property
    def instalment(self) -> Decimal:
        return self.minimum

    def price(self) -> Decimal:
        """Work out the line's expected loss and profit, kept for its offer (the ranking's way:
        no Lifetime nor RevolvingCandidate made); its expected profit."""
        self.loss, self.profit = line_loss_and_profit(
            self.figures, self.terms.horizon_months, self.economics, self.rounding
        )
        return self.profit

    def offer(self, apr: Decimal) -> Offer:
        """The line's offer, once priced (`price`)."""
        return _line_offer(self, apr, self.figures[4], self.profit, self.loss, self.quote.offered)

    def disclosed_apr(self) -> Decimal:
        """No fees on a line: its APR is the nominal rate, to the disclosed places (its quote's)."""
        return self.quote.apr

    def priced(self) -> RevolvingCandidate:
        """The line with its lifetime figures."""
        horizon = self.terms.horizon_months
        figures, interest = line_lifetime(self.figures, horizon, self.economics, self.rounding)
        return RevolvingCandidate(
            self.product,
            self.product_index,
            self.limit,
            self.annual_rate,
            self.terms,
            figures,
            interest,
            self.minimum,
            self.affordable,
            self.unaffordable,
            self.product_name,
            self.objective,
        )
