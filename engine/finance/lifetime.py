"""Lifetime economics of one instalment loan, month by month in Decimal: how a 12-month PD spreads
over the term, the expected loss on each month's exposure, and the expected profit as an NPV.

Conventions (the policy reference states them too):
- month t runs from t-1 to t; its exposure at default is the balance outstanding at its start
  (the amount in month 1), so an interest-only loan stays fully exposed until the balloon;
- marginal PD of month t: constant hazard S(t) = (1 - PD12)^(t/12), m_t = S(t-1) - S(t), so the
  lifetime PD over T months is 1 - (1 - PD12)^(T/12); or a policy table of multipliers w_t with
  m_t = PD12 x w_t / 12 (the last multiplier repeats beyond the table);
- every monthly flow is discounted at the cost of funds: d_t = (1 + cof/12)^-t;
- expected profit = upfront fee - per-loan operating cost
  + sum over t of d_t x (interest_t + monthly fee - funding_t - operating cost per month - EL_t),
  funding_t = opening balance x cof/12, EL_t = m_t x LGD x EAD_t.
A revolving line is worked the same way over a horizon of months with a steady drawn balance
D = utilisation x limit: interest D x rate/12 a month, funding D x cof/12, and exposure at default
EAD = D + CCF x (limit - D), the credit-conversion factor CCF being the share of the undrawn limit
expected to be drawn by the time of a default.
Figures are worked at 50 digits and rounded to the cent once, at the end.
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Final

from engine.finance.money import money
from engine.finance.schedule import Schedule

__all__ = ["CONSTANT_HAZARD", "Lifetime", "LifetimeTerms", "lifetime", "marginal_pds", "revolving_lifetime"]

CONSTANT_HAZARD: Final = "constant_hazard"
_PREC: Final = 50


@dataclass(frozen=True)
class LifetimeTerms:
    """The policy's economics, the same for every offer of one decision but the PD."""

    pd_12m: Decimal
    lgd: Decimal
    cost_of_funds: Decimal  # annual, a fraction
    operating_per_loan: Decimal = Decimal(0)
    operating_per_month: Decimal = Decimal(0)
    pd_curve: str | tuple[Decimal, ...] = CONSTANT_HAZARD  # or marginal-PD multipliers by month


@dataclass(frozen=True)
class Lifetime:
    """One offer's lifetime figures, each discounted to the decision date and rounded to the cent."""

    lifetime_pd: Decimal  # undiscounted probability of default within the term (6 places)
    expected_loss: Decimal
    funding_cost: Decimal
    operating_cost: Decimal
    expected_profit: Decimal


def marginal_pds(pd_12m: Decimal, term_months: int, curve: str | Sequence[Decimal]) -> tuple[Decimal, ...]:
    """The probability of defaulting in each month 1..term (not conditional on survival)."""
    return _marginal(str(pd_12m), term_months, curve if isinstance(curve, str) else tuple(map(str, curve)))


# Every candidate of a decision shares its PD and most share terms: the fractional powers of the
# constant-hazard curve are worked once per (PD, term). Keys are decimal strings, as in candidates.py.
@lru_cache(maxsize=1024)
def _marginal(pd_text: str, term_months: int, curve: str | tuple[str, ...]) -> tuple[Decimal, ...]:
    pd_12m = Decimal(pd_text)
    with decimal.localcontext() as ctx:
        ctx.prec = _PREC
        if isinstance(curve, str):  # CONSTANT_HAZARD, the only named curve
            # S(t) = (1 - PD12)^(t/12) as powers of the monthly survival (1 - PD12)^(1/12): one
            # fractional power per curve instead of one per month (each costs a 50-digit ln and exp)
            monthly = (Decimal(1) - pd_12m) ** (Decimal(1) / 12)
            alive = [Decimal(1)] + [monthly**t for t in range(1, term_months + 1)]
            return tuple(alive[t - 1] - alive[t] for t in range(1, term_months + 1))
        weights = tuple(Decimal(w) for w in curve)
        return tuple(pd_12m * weights[min(t, len(weights)) - 1] / 12 for t in range(1, term_months + 1))


@lru_cache(maxsize=256)
def _discounts(cost_of_funds: str, term_months: int) -> tuple[Decimal, ...]:
    """(1 + cof/12)^-t for t = 1..term, at 50 digits."""
    with decimal.localcontext() as ctx:
        ctx.prec = _PREC
        step, factor, out = 1 + Decimal(cost_of_funds) / 12, Decimal(1), []
        for _ in range(term_months):
            factor /= step
            out.append(factor)
        return tuple(out)


def lifetime(
    schedule: Schedule, terms: LifetimeTerms, upfront_fee: Decimal, monthly_fee: Decimal, rounding: str
) -> Lifetime:
    """Expected loss, funding and operating cost and expected profit of `schedule`, as NPVs."""
    marginal = marginal_pds(terms.pd_12m, schedule.term_months, terms.pd_curve)
    discounts = _discounts(str(terms.cost_of_funds), schedule.term_months)
    with decimal.localcontext() as ctx:
        ctx.prec = _PREC
        monthly_cof = terms.cost_of_funds / 12
        opening = schedule.amount
        loss = funding = operating = income = Decimal(0)
        for (_, _, _, interest, closing), pd_t, discount in zip(
            schedule.table, marginal, discounts, strict=True
        ):
            loss += discount * pd_t * terms.lgd * opening
            funding += discount * opening * monthly_cof
            operating += discount * terms.operating_per_month
            income += discount * (interest + monthly_fee)
            opening = closing
        operating += terms.operating_per_loan
        profit = upfront_fee + income - funding - operating - loss
        return Lifetime(
            lifetime_pd=round(sum(marginal, Decimal(0)), 6),
            expected_loss=money(loss, rounding),
            funding_cost=money(funding, rounding),
            operating_cost=money(operating, rounding),
            expected_profit=money(profit, rounding),
        )


def revolving_lifetime(
    limit: Decimal,
    annual_rate: Decimal,
    utilisation: Decimal,
    ccf: Decimal,
    horizon_months: int,
    terms: LifetimeTerms,
    rounding: str,
) -> tuple[Lifetime, Decimal]:
    """A credit line's lifetime figures over `horizon_months`, and the interest it earns (undiscounted)."""
    marginal = marginal_pds(terms.pd_12m, horizon_months, terms.pd_curve)
    discounts = _discounts(str(terms.cost_of_funds), horizon_months)
    with decimal.localcontext() as ctx:
        ctx.prec = _PREC
        drawn = limit * utilisation
        exposure = drawn + ccf * (limit - drawn)
        interest = drawn * annual_rate / 12
        funding_month = drawn * terms.cost_of_funds / 12
        loss = funding = operating = income = Decimal(0)
        for pd_t, discount in zip(marginal, discounts, strict=True):
            loss += discount * pd_t * terms.lgd * exposure
            funding += discount * funding_month
            operating += discount * terms.operating_per_month
            income += discount * interest
        operating += terms.operating_per_loan
        figures = Lifetime(
            lifetime_pd=round(sum(marginal, Decimal(0)), 6),
            expected_loss=money(loss, rounding),
            funding_cost=money(funding, rounding),
            operating_cost=money(operating, rounding),
            expected_profit=money(income - funding - operating - loss, rounding),
        )
        return figures, money(interest * horizon_months, rounding)
