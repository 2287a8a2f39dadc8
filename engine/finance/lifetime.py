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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property, lru_cache
from itertools import accumulate, repeat
from math import fsum
from operator import add, itemgetter, mul, sub
from typing import Final

import numpy as np
import numpy.typing as npt

from engine.decision import value_object
from engine.finance.float_cents import cents, floats, half_unit_midpoint, loss_and_profit, loss_bound, usable
from engine.finance.money import _WIDE, money
from engine.finance.schedule import PresentValues, Schedule

__all__ = [
    "CONSTANT_HAZARD",
    "Lifetime",
    "LifetimeTerms",
    "LineFigures",
    "expected_loss_and_profit",
    "exposure_rows",
    "float_losses",
    "lifetime",
    "line_bound",
    "line_figures",
    "line_lifetime",
    "line_loss_and_profit",
    "marginal_pds",
    "present_value_key",
    "profit_bound",
    "revolving_lifetime",
]

CONSTANT_HAZARD: Final = "constant_hazard"
_PREC: Final = 50
_ZERO: Final = Decimal(0)


@dataclass(frozen=True)
class LifetimeTerms:
    """The policy's economics, the same for every offer of one decision but the PD."""

    pd_12m: Decimal
    lgd: Decimal
    cost_of_funds: Decimal  # annual, a fraction
    operating_per_loan: Decimal = Decimal(0)
    operating_per_month: Decimal = Decimal(0)
    pd_curve: str | tuple[Decimal, ...] = CONSTANT_HAZARD  # or marginal-PD multipliers by month

    @cached_property
    def loss_never_negative(self) -> bool:
        """No month's expected loss can be negative: the PD, the LGD and every PD multiplier are >= 0
        (a constant-hazard curve's marginal PDs then never are)."""
        curve = self.pd_curve
        return self.pd_12m >= 0 and self.lgd >= 0 and (isinstance(curve, str) or min(curve) >= 0)

    @cached_property
    def keys(self) -> tuple[str, str | tuple[str, ...], str, str, str, str]:
        """What this module's caches are keyed by, as decimal strings (worked out once for the many
        offers of a decision): PD, curve, cost of funds, LGD, operating cost per month and per loan."""
        return (
            str(self.pd_12m),
            _curve_key(self.pd_curve),
            str(self.cost_of_funds),
            str(self.lgd),
            str(self.operating_per_month),
            str(self.operating_per_loan),
        )

    @cached_property
    def curve(self) -> _Curve:
        """The PD's curve over its first _SPAN months (_loss_curve's): what most loans and lines of
        a decision read, found once per decision (at_pd's terms) instead of once per offer."""
        pd, curve, cof, lgd, _, _ = self.keys
        return _loss_curve(pd, _SPAN, curve, cof, lgd)

    def at_pd(self, pd_12m: Decimal) -> LifetimeTerms:
        """These economics at another 12-month PD, the policy's key strings kept: what every decision
        of a policy needs, without a frozen __init__ and five Decimal strings each time. With the
        keys known, the PD's curve is found here too (every loan and line priced reads it), without
        cached_property's own steps on the first read."""
        terms = object.__new__(LifetimeTerms)
        fields = terms.__dict__
        fields.update(self.__dict__)  # the fields and any cached property worked out
        fields["pd_12m"] = pd_12m
        known = fields.pop("loss_never_negative", None)  # depends on the PD
        if known is not None and self.pd_12m >= _ZERO:  # then it says whether the LGD and curve are
            fields["loss_never_negative"] = pd_12m >= _ZERO and known
        keys = fields.get("keys")
        if keys is None:
            fields.pop("curve", None)  # the PD's
            return terms
        _, curve, cof, lgd, per_month, per_loan = keys
        pd = str(pd_12m)
        fields["keys"] = (pd, curve, cof, lgd, per_month, per_loan)
        fields["curve"] = _loss_curve(pd, _SPAN, curve, cof, lgd)
        return terms


@value_object  # a decision prices several: a frozen dataclass's __init__ cost 3x
class Lifetime:
    """One offer's lifetime figures, each discounted to the decision date and rounded to the cent."""

    lifetime_pd: Decimal  # undiscounted probability of default within the term (6 places)
    expected_loss: Decimal
    funding_cost: Decimal
    operating_cost: Decimal
    expected_profit: Decimal


def marginal_pds(pd_12m: Decimal, term_months: int, curve: str | Sequence[Decimal]) -> tuple[Decimal, ...]:
    """The probability of defaulting in each month 1..term (not conditional on survival)."""
    return _marginal(str(pd_12m), term_months, _curve_key(curve))


def _curve_key(curve: str | Sequence[Decimal]) -> str | tuple[str, ...]:
    return curve if isinstance(curve, str) else tuple(map(str, curve))


# Every candidate of a decision shares its PD and most share terms: the curve is worked once per
# (PD, term). Keys are decimal strings, as in candidates.py.
@lru_cache(maxsize=1024)
def _marginal(pd_text: str, term_months: int, curve: str | tuple[str, ...]) -> tuple[Decimal, ...]:
    pd_12m = Decimal(pd_text)
    with decimal.localcontext() as ctx:
        ctx.prec = _PREC
        if isinstance(curve, str):  # CONSTANT_HAZARD, the only named curve
            # S(t) = (1 - PD12)^(t/12) as powers of the monthly survival (1 - PD12)^(1/12), one
            # product a month
            alive = (Decimal(1), *accumulate(repeat(_monthly_survival(pd_text), term_months), mul))
            return tuple(map(sub, alive, alive[1:]))
        weights = tuple(Decimal(w) for w in curve)
        return tuple(pd_12m * weights[min(t, len(weights)) - 1] / 12 for t in range(1, term_months + 1))


@lru_cache(maxsize=1024)
def _monthly_survival(pd_text: str) -> Decimal:
    """(1 - PD12)^(1/12) at 50 digits, by Newton's method from the float root: a 50-digit `**` of a
    fractional power (an ln and an exp) cost 13x as much, and every term of a decision needs it."""
    with decimal.localcontext() as ctx:
        ctx.prec = _PREC
        alive = 1 - Decimal(pd_text)
        guess = float(alive) ** (1 / 12)  # 16 digits; each step below doubles them
        if alive == 1 or not guess:  # no PD, or a survival too small for a float
            return alive ** (Decimal(1) / 12)
        ctx.prec = _PREC + 10
        root = Decimal(guess)
        for _ in range(3):
            root = (11 * root + alive / root**11) / 12
        ctx.prec = _PREC
        return +root


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


def _term_pd(terms: LifetimeTerms, term_months: int) -> Decimal:
    """The lifetime PD over the term, kept with the PD's cached curve, not cached per term: a new
    PD would fill one entry per term it prices."""
    known = _curve_of(terms, term_months)
    lifetime_pd = known.pds.get(term_months)
    if lifetime_pd is None:
        pd, curve = terms.keys[:2]
        months = max(term_months, _SPAN)
        lifetime_pd = known.pds[term_months] = _lifetime_pd(pd, months, curve, term_months, known.alive)
    return lifetime_pd


def _curve_of(terms: LifetimeTerms, term_months: int) -> _Curve:
    """The PD's curve over max(term, _SPAN) months: the decision's own (terms.curve) for a term
    within the span."""
    if term_months <= _SPAN:
        return terms.curve
    pd, curve, cof, lgd, _, _ = terms.keys
    return _loss_curve(pd, term_months, curve, cof, lgd)


_SPAN: Final = 36  # months of a PD's curve worked out at once: most terms of a decision share them


class _Curve:
    """A PD's curve over a span of months: the float loss weights (as a tuple, and as a numpy vector
    for a loan's loss, a dot product with its exposures) and survival (_approx_weights), and the
    lifetime PD of each term asked for so far."""

    __slots__ = ("alive", "pds", "sums", "vector", "weights")

    def __init__(self, weights: tuple[float, ...] | None, alive: tuple[float, ...] | None) -> None:
        self.weights = weights
        self.vector = None if weights is None else np.array(weights, dtype=np.float64)
        self.alive = alive
        self.pds: dict[int, Decimal] = {}
        self.sums: dict[int, float] = {}  # fsum of the first weights, by months (a line's horizon)


@lru_cache(maxsize=256)
def _loss_curve(
    pd_text: str, months: int, curve: str | tuple[str, ...], cost_of_funds: str, lgd: str
) -> _Curve:
    """A term's figures are the first of these (a month's figures do not depend on the term), so a
    new PD works its curve out once, not per term."""
    return _Curve(*_approx_weights(pd_text, months, curve, cost_of_funds, lgd))


def _lifetime_pd(
    pd_text: str, months: int, curve: str | tuple[str, ...], term_months: int, alive: tuple[float, ...] | None
) -> Decimal:
    """round(m_1 + ... + m_term, 6) of the 50-digit marginal PDs (six places: any precision rounds
    alike). Under a constant hazard the floats decide it when they prove it: the 50-digit partial
    sum P (the m_t >= 0 each rounded once, then added) is within (2T + 1) 1e-49 of 1 - r^T, the
    float 1 - S'_T within g_(2T) + u of it (S'_T = float(r)^T, _approx_weights), so 1e6 (1 - S'_T)
    is within (2T + 4) u 1e6 of 1e6 P: B = 4 (T + 2) u 1e6 covers it twice."""
    if alive is not None:
        millionths = (1.0 - alive[term_months]) * 1e6
        odd = half_unit_midpoint(millionths, (term_months + 2) * 2.0**-51 * 1e6)
        if odd is not None:  # P is strictly between two half-millionths: it rounds as their midpoint
            return round(Decimal(odd * 25).scaleb(-8, _WIDE), 6)
    return round(_partial_pds(pd_text, months, curve)[term_months - 1], 6)


@lru_cache(maxsize=256)
def _partial_pds(pd_text: str, months: int, curve: str | tuple[str, ...]) -> tuple[Decimal, ...]:
    """m_1 + ... + m_t for t = 1..months at 50 digits."""
    marginal = _marginal(pd_text, months, curve)
    with decimal.localcontext() as ctx:
        ctx.prec = _PREC
        return tuple(accumulate(marginal, add))


@lru_cache(maxsize=256)
def _decimal_weights(
    pd_text: str, months: int, curve: str | tuple[str, ...], cost_of_funds: str, lgd: str
) -> tuple[Decimal, ...]:
    """d_t x m_t x LGD for t = 1..months at 50 digits (what a unit exposed in month t loses,
    discounted): worked out only when the floats cannot prove a loss's cents."""
    marginal = _marginal(pd_text, months, curve)
    with decimal.localcontext() as ctx:
        ctx.prec = _PREC
        return tuple(map(mul, map(mul, _discounts(cost_of_funds, months), marginal), repeat(Decimal(lgd))))


# The loss's float fast path (engine/finance/float_cents.py) needs the weights w_t = d_t x m_t x LGD
# of _decimal_weights as floats w'_t = w_t (1 + e_t), |e_t| <= g_(2t+7) + 1e-28 (u = 2^-53,
# g_k = k u / (1 - k u)). Converting 50-digit Decimals costs ~0.4 us each, so they are worked in
# floats from the same 50-digit inputs instead, each factor within a few roundings:
# - constant hazard: the Decimal S_t = fl(S_(t-1) r) = r^t (1 + x), |x| <= t 1e-49, and the exact
#   m_t = S_(t-1) - S_t = S_(t-1) ((1 - r) - r x_t): relative to r^(t-1) (1 - r) within 1e-29 when
#   1 - r >= 1e-20 (required). The float S'_(t-1) = float(r)^(t-1), t - 1 products: within
#   g_(2t) of r^(t-1); q' = float(1 - r) (its 50-digit difference rounded at most once, then the
#   float once): m'_t = S'_(t-1) q' within g_(2t+3) of r^(t-1) (1 - r);
# - a PD table: m_t = fl(fl(PD x W_k) / 12), m'_t = float(PD) x float(W_k) / 12: within g_4;
# - w'_t = float(d_t) x m'_t x float(LGD): two conversions and two products more, g_(2t+7) in all.
# No float under- or overflows on the way: every factor is 0 (its Decimal exactly 0) or within
# [1e-50, 1e50], S'_(t-1) >= 1e-50 unless r = 0, q' >= 1e-20, so a non-zero w'_t is within
# [1e-200, 1e200] and 0 exactly when w_t is; float_cents.usable then keeps it to [1e-150, 1e150].
_LOW: Final = 1e-50
_HIGH: Final = 1e50
_NEAR_ONE: Final = Decimal("1e-20")  # 1 - r at least: the 50-digit m_t within 1e-29 of S (1 - r)


def _approx_weights(
    pd_text: str, months: int, curve: str | tuple[str, ...], cost_of_funds: str, lgd: str
) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """w'_t for t = 1..months as above, and under a constant hazard S'_t for t = 0..months; None
    when a factor is outside what the bound covers (a zero or negative LGD or PD, a PD below
    ~1e-19, extreme rates): the 50-digit sums decide then."""
    discounts = _float_discounts(cost_of_funds, months)
    loss_given = float(lgd)
    if discounts is None or not _LOW <= loss_given <= _HIGH:
        return None, None
    marginal: Iterable[float]
    alive: tuple[float, ...] | None = None
    if isinstance(curve, str):  # CONSTANT_HAZARD
        survival = _monthly_survival(pd_text)
        with decimal.localcontext() as ctx:
            ctx.prec = _PREC
            dies = 1 - survival
        if not _NEAR_ONE <= dies <= 1:
            return None, None
        alive = (1.0, *accumulate(repeat(float(survival), months), mul))
        if survival and not alive[-1] >= _LOW:
            return None, None
        marginal = map(mul, alive, repeat(float(dies)))  # zipped with `months` discounts
    else:
        pd_12m, multipliers = float(pd_text), tuple(map(float, curve))
        if not _LOW <= pd_12m <= _HIGH or not all(map(_factor, multipliers, curve)):
            return None, None
        last = len(multipliers) - 1
        marginal = (pd_12m * multipliers[min(t, last)] / 12 for t in range(months))
    weights = tuple(map(mul, map(mul, discounts, marginal), repeat(loss_given)))
    return (weights, alive) if usable(weights) else (None, None)


def _factor(value: float, text: str) -> bool:
    """A float factor within [1e-50, 1e50], or exactly zero as its decimal string is."""
    return _LOW <= value <= _HIGH or (value == 0.0 and not Decimal(text))


@lru_cache(maxsize=256)
def _float_discounts(cost_of_funds: str, months: int) -> tuple[float, ...] | None:
    """float(d_t) for t = 1..months (each rounded once), or None beyond [1e-50, 1e50]."""
    discounts = tuple(map(float, _discounts(cost_of_funds, months)))
    return discounts if min(discounts) >= _LOW and max(discounts) <= _HIGH else None


@lru_cache(maxsize=256)
def _operating(cost_of_funds: str, term_months: int, per_month: str, per_loan: str) -> Decimal:
    with decimal.localcontext() as ctx:
        ctx.prec = _PREC
        return _discounted(cost_of_funds, term_months, Decimal(per_month)) + Decimal(per_loan)


def _discounted(cost_of_funds: str, term_months: int, monthly: Decimal) -> Decimal:
    """sum over t of d_t x `monthly`, added month by month (in the current context)."""
    return sum(map(mul, _discounts(cost_of_funds, term_months), repeat(monthly)), Decimal(0))


def lifetime(
    schedule: Schedule,
    terms: LifetimeTerms,
    upfront_fee: Decimal,
    monthly_fee: Decimal,
    rounding: str,
    key: tuple[str, ...] | None = None,
) -> Lifetime:
    """Expected loss, funding and operating cost and expected profit of `schedule`, as NPVs.

    Each is the sum over months of the module docstring, added month by month in the same order
    with the same 50-digit products as a loop over the months would: only the loss depends on the
    PD, so the other sums are cached (per schedule and cost of funds) and the loss's per-month
    weights d_t x m_t x LGD (per PD and term). tests/finance/test_lifetime_npv.py checks the figures
    against the month-by-month definition. `key`: present_value_key(...) of these terms and fees,
    when the caller prices many schedules at them."""
    lifetime_pd = _term_pd(terms, schedule.term_months)
    key = key or present_value_key(terms, upfront_fee, monthly_fee, rounding)
    before = _before_loss(schedule, terms, upfront_fee, monthly_fee, rounding, key)
    loss, profit = _loss_and_profit(schedule, terms, before, rounding)
    return Lifetime(lifetime_pd, loss, before[3], before[4], profit)


def expected_loss_and_profit(
    schedule: Schedule,
    terms: LifetimeTerms,
    upfront_fee: Decimal,
    monthly_fee: Decimal,
    rounding: str,
    key: tuple[str, ...],
    dot: float | None = None,
    before: PresentValues | None = None,
) -> tuple[Decimal, Decimal, Decimal]:
    """lifetime(...)'s expected loss and expected profit alone: what ranking a loan needs (its
    lifetime PD and the Lifetime are not made); and its profit before the loss, to the cent
    (profit_bound's exact bound, read from the same sums). `key`: present_value_key(...) of these
    terms and fees; `dot`: the schedule's entry of float_losses at these terms, when the caller
    has them; `before`: the schedule's present values at `key` (_before_loss's), when the caller
    kept them."""
    if before is None:
        before = schedule.present_values.get(key)  # _before_loss's kept figures, without its call
        if before is None:
            before = _before_loss(schedule, terms, upfront_fee, monthly_fee, rounding, key)
    if dot is not None:  # _loss_and_profit's float fast path, inline: a ranked loan's usual way
        approx_loss = dot * 100.0
        bound = loss_bound(approx_loss, schedule.term_months)
        fast = loss_and_profit(approx_loss, bound, before[6], rounding)
        if fast is not None:
            return fast[0], fast[1], before[5]
    loss, profit = _loss_and_profit(schedule, terms, before, rounding, dot)  # then the 50-digit sums
    return loss, profit, before[5]


def exposure_rows(schedules: Sequence[Schedule]) -> npt.NDArray[np.float64] | None:
    """The schedules' float exposures (Schedule.opening_floats) as the rows of one matrix, zeros
    after a shorter term, or None when one has none: their float losses at a PD are then one
    matrix product (float_losses), where a dot product each costs about as much per loan."""
    exposures = [schedule.opening_floats for schedule in schedules]
    known = [row for row in exposures if row is not None]
    if not known or len(known) < len(exposures):
        return None
    rows = np.zeros((len(known), max(map(len, known))))
    for at, row in enumerate(known):
        rows[at, : len(row)] = row
    return rows


def float_losses(rows: npt.NDArray[np.float64], terms: LifetimeTerms) -> list[float] | None:
    """Each row's dot product with the loss weights at `terms`' PD (exposure_rows' rows, in their
    order): what _loss_and_profit approximates a loss by (x 100, in cents), for every schedule at
    once; None when the PD's curve has no float weights. The zeros after a shorter term add
    nothing and round nothing (engine/finance/float_cents.py)."""
    months = rows.shape[1]
    approx = _curve_of(terms, months).vector
    if approx is None:
        return None
    losses: list[float] = rows.dot(approx[:months]).tolist()
    return losses


def _loss_and_profit(
    schedule: Schedule, terms: LifetimeTerms, before: PresentValues, rounding: str, dot: float | None = None
) -> tuple[Decimal, Decimal]:
    """The expected loss of `schedule` and the profit `before` (_before_loss's) leaves after it, to
    the cent: from a float dot product (`dot`, when the caller worked it out with float_losses)
    when it proves the cents (engine/finance/float_cents.py), else the 50-digit sum over the
    term's months."""
    months = schedule.term_months
    if dot is None:
        approx = _curve_of(terms, months).vector
        exposures = schedule.opening_floats
        if approx is not None and exposures is not None:
            dot = float(exposures.dot(approx[:months]))  # over the term's months
    if dot is not None:
        approx_loss = dot * 100.0
        bound = loss_bound(approx_loss, months)
        fast = loss_and_profit(approx_loss, bound, before[6], rounding)
        if fast is not None:
            return fast
    pd, curve, cof, lgd, _, _ = terms.keys
    weights = _decimal_weights(pd, max(schedule.term_months, _SPAN), curve, cof, lgd)
    with decimal.localcontext() as ctx:
        ctx.prec = _PREC
        loss = sum(map(mul, weights, schedule.openings), Decimal(0))  # over the term's months
        profit = before[2] - loss
    return money(loss, rounding), money(profit, rounding)


def profit_bound(
    schedule: Schedule,
    terms: LifetimeTerms,
    upfront_fee: Decimal,
    monthly_fee: Decimal,
    rounding: str,
    key: tuple[str, ...] | None = None,
) -> Decimal | None:
    """The most `lifetime(...).expected_profit` can be, whatever the PD: the profit before the
    expected loss, which is never negative when the LGD and the PD curve are not (None otherwise).
    Worked from the same cached sums, so it is cheap, and rounding to the cent keeps the order.

    A schedule whose sums are not worked out yet (a new amount or rate: three 50-digit sums over
    its months) gets a looser bound instead, when there is one: the same profit undiscounted and
    without its funding cost, which a cost of funds >= 0 only lowers. A loan the ranking never
    reaches is then never summed; one it prices gets its sums, and its exact bound after that."""
    if not terms.loss_never_negative:
        return None
    key = key or present_value_key(terms, upfront_fee, monthly_fee, rounding)
    figures = schedule.present_values.get(key)
    if figures is not None:
        return figures[5]
    loose = schedule.loose_bounds.get(key)  # kept: a loan never priced is bounded every decision
    if loose is not None:
        return loose
    if terms.cost_of_funds >= 0 and monthly_fee >= 0:
        loose = schedule.loose_bounds[key] = _undiscounted_bound(
            schedule, upfront_fee, monthly_fee, rounding, key
        )
        return loose
    return _before_loss(schedule, terms, upfront_fee, monthly_fee, rounding, key)[5]


def _undiscounted_bound(
    schedule: Schedule, upfront_fee: Decimal, monthly_fee: Decimal, rounding: str, key: tuple[str, ...]
) -> Decimal:
    """upfront fee + sum of (interest_t + monthly fee) - operating cost, to the cent: at least
    _before_loss's profit, whose income discounts the same non-negative flows by d_t <= 1 and
    subtracts a funding cost >= 0 (cost of funds >= 0); the operating cost is the same figure.
    Worked at 50 digits like it, so a zero cost of funds gives that very figure."""
    cof, per_month, per_loan = key[:3]
    operating = _operating(cof, schedule.term_months, per_month, per_loan)
    with decimal.localcontext() as ctx:
        ctx.prec = _PREC
        before = upfront_fee + schedule.total_interest + monthly_fee * schedule.term_months - operating
    return money(before, rounding)


def present_value_key(
    terms: LifetimeTerms, upfront_fee: Decimal, monthly_fee: Decimal, rounding: str
) -> tuple[str, ...]:
    """What a schedule's PD-free figures are kept by: the economics, the fees (decimal strings) and
    the rounding of the cent figures kept with them."""
    _, _, cof, _, per_month, per_loan = terms.keys
    return (cof, per_month, per_loan, str(upfront_fee), str(monthly_fee), rounding)


def _before_loss(
    schedule: Schedule,
    terms: LifetimeTerms,
    upfront_fee: Decimal,
    monthly_fee: Decimal,
    rounding: str,
    key: tuple[str, ...],
) -> PresentValues:
    """Funding cost, operating cost, and the expected profit before the expected loss, at 50 digits:
    sum d_t x opening_t x cof/12, per month x sum d_t + per loan, and upfront fee + sum d_t x
    (interest_t + monthly fee) - those two; then the same three rounded to the cent, and the profit
    before the loss as a float in cents (float_cents.loss_and_profit's `before`). Kept with the
    (cached, shared) schedule."""
    figures = schedule.present_values.get(key)
    if figures is None:
        cof, per_month, per_loan = key[:3]
        discounts = _discounts(cof, schedule.term_months)
        operating = _operating(cof, schedule.term_months, per_month, per_loan)
        with decimal.localcontext() as ctx:
            ctx.prec = _PREC
            funded = map(mul, discounts, schedule.openings)
            # each month's interest and fee; with no fee, the interest as it is (adding a zero in
            # cents gives the same Decimal, at the cost of an addition a month)
            earned = (
                (row[3] + monthly_fee for row in schedule.table)
                if monthly_fee
                else map(itemgetter(3), schedule.table)
            )
            funding = sum(map(mul, funded, repeat(terms.cost_of_funds / 12)), Decimal(0))
            income = sum(map(mul, discounts, earned), Decimal(0))
            before = upfront_fee + income - funding - operating
        figures = (
            funding,
            operating,
            before,
            money(funding, rounding),
            money(operating, rounding),
            money(before, rounding),
            cents(before),
        )
        schedule.present_values[key] = figures
    return figures


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
    figures = line_figures(limit, annual_rate, utilisation, ccf, horizon_months, terms, rounding)
    return line_lifetime(figures, horizon_months, terms, rounding)


def line_figures(
    limit: Decimal,
    annual_rate: Decimal,
    utilisation: Decimal,
    ccf: Decimal,
    horizon_months: int,
    terms: LifetimeTerms,
    rounding: str,
) -> LineFigures:
    """What a credit line's lifetime figures read that does not depend on the PD (kept, _line's):
    a line's profit bound (line_bound) reads them too, and its loss is worked out only when the
    ranking reaches it (line_lifetime)."""
    _, _, cof, _, per_month, per_loan = terms.keys
    return _line(
        str(limit),
        str(annual_rate),
        str(utilisation),
        str(ccf),
        cof,
        horizon_months,
        per_month,
        per_loan,
        rounding,
    )


def line_bound(figures: LineFigures, terms: LifetimeTerms) -> Decimal | None:
    """The most a line's expected profit can be, whatever the PD: its profit before the expected
    loss, to the cent, when that loss is never negative (a PD curve, LGD and exposure >= 0), as
    profit_bound bounds a loan; None otherwise."""
    return figures[6] if terms.loss_never_negative else None


def line_lifetime(
    figures: LineFigures, horizon_months: int, terms: LifetimeTerms, rounding: str
) -> tuple[Lifetime, Decimal]:
    """revolving_lifetime of the line whose line_figures are `figures`."""
    lifetime_pd = _term_pd(terms, horizon_months)
    loss, profit = line_loss_and_profit(figures, horizon_months, terms, rounding)
    return Lifetime(lifetime_pd, loss, figures[2], figures[3], profit), figures[4]


def line_loss_and_profit(
    figures: LineFigures, horizon_months: int, terms: LifetimeTerms, rounding: str
) -> tuple[Decimal, Decimal]:
    """line_lifetime's expected loss and expected profit alone: what ranking and offering a line
    needs (its lifetime PD and the Lifetime are not made)."""
    exposure, before_loss, _, _, _, floats_at, _ = figures
    known = _curve_of(terms, horizon_months)
    approx = known.weights
    if approx is not None and floats_at is not None:
        # the same exposure every month: fsum(w'_t) x float(exposure) x 100, within the bound of a
        # loan's dot product (engine/finance/float_cents.py); the sum kept with the PD's curve
        summed = known.sums.get(horizon_months)
        if summed is None:
            summed = known.sums[horizon_months] = fsum(approx[:horizon_months])
        approx_loss = summed * floats_at[0] * 100.0
        fast = loss_and_profit(approx_loss, loss_bound(approx_loss, horizon_months), floats_at[1], rounding)
        if fast is not None:
            return fast
    pd, curve, cof, lgd, _, _ = terms.keys
    weights = _decimal_weights(pd, max(horizon_months, _SPAN), curve, cof, lgd)
    with decimal.localcontext() as ctx:
        ctx.prec = _PREC
        loss = sum(map(mul, weights, repeat(exposure, horizon_months)), Decimal(0))
        profit = before_loss - loss
    return money(loss, rounding), money(profit, rounding)


# _line's figures: a line's exposure at default and profit before the expected loss (50 digits);
# its funding and operating cost and interest, to the cent; the exposure and that profit as floats
# (float_cents'); that profit to the cent when the exposure is not negative (line_bound's), else None
LineFigures = tuple[Decimal, Decimal, Decimal, Decimal, Decimal, tuple[float, float] | None, Decimal | None]


# A line's limit is rounded and its rate banded by grade, as a loan's: what does not depend on the
# PD is kept like a schedule (keys are decimal strings, as there).
@lru_cache(maxsize=1024)
def _line(
    limit: str,
    annual_rate: str,
    utilisation: str,
    ccf: str,
    cost_of_funds: str,
    horizon_months: int,
    per_month: str,
    per_loan: str,
    rounding: str,
) -> LineFigures:
    """A line's exposure at default and its profit before the expected loss (discounted, at 50
    digits), then its funding and operating cost (discounted) and the interest over the horizon
    (undiscounted), to the cent; and the exposure as a float, the profit before the loss as a float
    in cents (None: the exposure is not one float_cents can use); and that profit to the cent when
    the exposure is not negative (the line's profit bound), else None."""
    operating = _operating(cost_of_funds, horizon_months, per_month, per_loan)
    with decimal.localcontext() as ctx:
        ctx.prec = _PREC
        drawn = Decimal(limit) * Decimal(utilisation)
        exposure = drawn + Decimal(ccf) * (Decimal(limit) - drawn)
        interest = drawn * Decimal(annual_rate) / 12
        funding = _discounted(cost_of_funds, horizon_months, drawn * Decimal(cost_of_funds) / 12)
        income = _discounted(cost_of_funds, horizon_months, interest)
        before = income - funding - operating
        exposed = floats((exposure,))
        return (
            exposure,
            before,
            money(funding, rounding),
            money(operating, rounding),
            money(interest * horizon_months, rounding),
            None if exposed is None else (exposed[0], cents(before)),
            money(before, rounding) if exposure >= 0 else None,
        )
