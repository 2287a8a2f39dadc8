"""APR: the internal rate of return of a loan's cash flows (net disbursement, then the instalments),
found in Decimal: a float Newton seed polished by Decimal Newton steps, falling back to a bracketed,
safeguarded Newton-bisection root finder whenever the fast path cannot vouch for every digit.

Convention: `apr` is NOMINAL — the monthly IRR times 12 — the same unit as a policy's `annual_rate`,
so a loan without fees has an APR equal to its nominal rate (up to the cent rounding of its
instalments). `effective_annual_rate` converts a nominal rate to the compounded (1 + i)^12 - 1.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Final

from engine.finance.money import ZERO, to_decimal

__all__ = ["apr", "effective_annual_rate", "irr", "npv"]

_PREC: Final = 40
_TOL: Final = Decimal("1e-20")  # on the periodic rate: far below the 15 places apr() keeps
_QUADRATIC: Final = Decimal("1e-11")
_MAX_ITER: Final = 400
_PLACES: Final = Decimal("1e-15")  # apr() result: fixed places, so the same flows give the same digits
_HALF_PLACE: Final = _PLACES / 2
_FAST_MARGIN: Final = Decimal("1e-17")  # on 12 x rate: 100x the reference solver's own error bound
_FAST_LAST_STEP: Final = Decimal("1e-13")  # polish step this small -> the polished rate is within ~1e-22
_FLOAT_MAX_ITER: Final = 60
# Level flows (below) take their closed form from this monthly rate up: under it 1 - v is too small
# for the float seed's sums to hold their digits, and the loop does it (a loan below 1.2% a year)
_LEVEL_FROM: Final = 1e-3
_LEVEL_FROM_DECIMAL: Final = Decimal("0.001")


def npv(rate: Decimal, cash_flows: Sequence[Decimal]) -> Decimal:
    """Net present value at periodic `rate` of flows at periods 0, 1, 2, ..."""
    value, _ = _npv_and_slope(rate, [to_decimal(c) for c in cash_flows])
    return value


def irr(cash_flows: Sequence[Decimal | int | str], guess: Decimal | None = None) -> Decimal:
    """The periodic rate i > -1 at which the flows' NPV is zero. The flows must change sign; the
    root is first bracketed (around `guess` if given, else stepping outward from 0), then refined
    to ~1e-20. ValueError when the flows have no root in (-1, 1e6)."""
    flows = [to_decimal(c) for c in cash_flows]
    if not any(c > 0 for c in flows) or not any(c < 0 for c in flows):
        raise ValueError("cash flows need both an outflow and an inflow to have a rate of return")
    with decimal.localcontext() as ctx:
        ctx.prec = _PREC
        bracket = _bracket_near(flows, guess) if guess is not None and guess > -1 else None
        lo, hi = bracket or _bracket(flows)
        return _solve(flows, lo, hi, guess if bracket else None)


def apr(
    amount: Decimal | int | str,
    fees: Decimal | int | str,
    payments: Sequence[Decimal | int | str],
    guess: Decimal | None = None,
) -> Decimal:
    """Nominal APR (monthly IRR x 12) of lending `amount`, of which `fees` are kept up front
    (net disbursed = amount - fees), repaid by monthly `payments`. Rounded to 15 places. `guess`
    (an annual rate, e.g. the loan's nominal rate) only speeds the search up."""
    net = to_decimal(amount) - to_decimal(fees)
    if net <= 0:
        raise ValueError(f"net disbursement must be positive (amount {amount}, fees {fees})")
    # Schedules hand over Decimals already: skip to_decimal's type dispatch for them.
    flows = [-net, *(p if type(p) is Decimal and p.is_finite() else to_decimal(p) for p in payments)]
    monthly_guess = None if guess is None else to_decimal(guess) / 12
    fast = _apr_fast(flows, monthly_guess)
    if fast is not None:
        return fast
    return _apr_bracketed(flows, monthly_guess)


def _apr_bracketed(flows: list[Decimal], monthly_guess: Decimal | None) -> Decimal:
    """The reference path: the bracketed Decimal root finder, then 15 places."""
    monthly = irr(flows, monthly_guess)
    with decimal.localcontext() as ctx:
        ctx.prec = _PREC
        return (monthly * 12).quantize(_PLACES, rounding=decimal.ROUND_HALF_EVEN)


def _apr_fast(flows: list[Decimal], monthly_guess: Decimal | None) -> Decimal | None:
    """apr()'s result by a float Newton seed polished by one Decimal Newton step (~5x cheaper than
    the bracketed search), or None when it cannot be sure to print the same 15 digits.

    Why the digits are the same: a loan's flows (one outflow, then non-negative payments) have one
    root. The bracketed solver stops within ~1e-19 of it (Newton step < 1e-11 -> error ~ n * 1e-22);
    the polish lands within ~1e-22. Both therefore round to the same 15 places unless 12 x root lies
    within `_FAST_MARGIN` of a rounding midpoint — then (~2% of loans) the reference path decides."""
    if not flows or flows[0] >= 0 or any(c < 0 for c in flows[1:]) or not any(c > 0 for c in flows[1:]):
        return None  # not a plain loan: possibly several roots or none, leave it to the reference
    seed = 0.0 if monthly_guess is None else float(monthly_guess)
    level = _level(flows)
    rate = None if level is None else _float_irr_level(level, seed)
    if rate is None:
        rate = _float_irr(list(map(float, flows)), seed)
    if rate is None:
        return None
    with decimal.localcontext() as ctx:
        ctx.prec = _PREC
        x = Decimal(rate)
        if level is not None and x >= _LEVEL_FROM_DECIMAL:
            value, slope = _npv_and_slope_level(x, level)
        else:
            value, slope = _npv_and_slope(x, flows)
        if slope == 0:
            return None
        step = value / slope
        x -= step
        # Newton is quadratic: the step taken measures the seed's error e, and the polished rate is
        # within ~n/2 x e^2 of the root (< 1e-22 for e < 1e-13 and any term up to 360 months).
        if x <= -1 or abs(step) > _FAST_LAST_STEP:
            return None  # the seed was poor: no bound on the error, so no promise on the digits
        scaled = x * 12
        result = scaled.quantize(_PLACES, rounding=decimal.ROUND_HALF_EVEN)
        if abs(abs(scaled - result) - _HALF_PLACE) < _FAST_MARGIN:
            return None  # next to a rounding midpoint: the two solvers' last digits could differ
        if result.is_zero():
            return None  # 0E-15 or -0E-15 depends on the side each solver approaches 0 from
        return result


def _float_newton(
    value_and_dv: Callable[[float, float], tuple[float, float] | None], guess: float
) -> float | None:
    """Plain float Newton on an NPV from `guess` (a seed only); None if it does not settle.
    `value_and_dv(x, v)` gives the NPV at rate x and its derivative in v = 1/(1+x), or None to give up."""
    x = guess if guess > -0.5 else 0.0
    for _ in range(_FLOAT_MAX_ITER):
        v = 1.0 / (1.0 + x)
        got = value_and_dv(x, v)
        if got is None:
            return None
        value, dvalue = got
        slope = -dvalue * v * v
        if slope == 0.0 or value != value:
            return None
        step = value / slope
        x -= step
        if x <= -1.0 or x > 1e6:
            return None
        if abs(step) <= 1e-13 * max(1.0, abs(x)):  # float noise floor; the Decimal polish does the rest
            return x
    return None


def _float_irr(flows: list[float], guess: float) -> float | None:
    """_float_newton over the flows by a Horner pass."""

    def value_and_dv(_x: float, v: float) -> tuple[float, float]:
        value = dvalue = 0.0
        for c in reversed(flows):
            dvalue = dvalue * v + value
            value = value * v + c
        return value, dvalue

    return _float_newton(value_and_dv, guess)


Level = tuple[Decimal, Decimal, int, Decimal]  # outflow, level payment, how many, last payment


def _level(flows: list[Decimal]) -> Level | None:
    """The flows as (outflow, a, k, b) when the k payments before the last are all `a` (equal
    instalment, interest-only): their NPV and its slope then have a closed form in v = 1/(1+rate),
    a few operations instead of a Horner pass over every month (the seed's and the polish's)."""
    k = len(flows) - 2
    if k < 2 or flows[1:-1].count(flows[1]) != k:
        return None
    return flows[0], flows[1], k, flows[-1]


def _float_irr_level(level: Level, guess: float) -> float | None:
    """_float_irr over level flows, by the closed form: value = c0 + a v (1 - v^k) / (1 - v) +
    b v^(k+1), and d value / dv = a (1 - (k+1) v^k + k v^(k+1)) / (1 - v)^2 + b (k+1) v^k.
    None when it does not settle or the rate goes below _LEVEL_FROM (the loop then seeds)."""
    c0, a, b = float(level[0]), float(level[1]), float(level[3])
    k = level[2]

    def value_and_dv(x: float, v: float) -> tuple[float, float] | None:
        if x < _LEVEL_FROM:
            return None
        vk = v**k
        w = 1.0 - v
        value = c0 + a * v * (1.0 - vk) / w + b * vk * v
        dvalue = a * (1.0 - (k + 1) * vk + k * vk * v) / (w * w) + b * (k + 1) * vk
        return value, dvalue

    return _float_newton(value_and_dv, guess)


def _npv_and_slope_level(rate: Decimal, level: Level) -> tuple[Decimal, Decimal]:
    """_npv_and_slope of level flows by the closed form of _float_irr_level, at the same precision:
    from a monthly rate of 0.001 up, 1 - v keeps the cancellation within a few of its 40 digits, far
    inside what the polish needs (its result is trusted to ~1e-22)."""
    c0, a, k, b = level
    with decimal.localcontext() as ctx:
        ctx.prec = _PREC
        v = 1 / (1 + rate)
        vk = v**k
        w = 1 - v
        value = c0 + a * v * (1 - vk) / w + b * vk * v
        dvalue = a * (1 - (k + 1) * vk + k * vk * v) / (w * w) + b * (k + 1) * vk
        return value, -dvalue * v * v


def effective_annual_rate(nominal_rate: Decimal | int | str, periods_per_year: int = 12) -> Decimal:
    """(1 + nominal/m)^m - 1: the compounded annual rate of a nominal rate (e.g. an `apr` result)."""
    with decimal.localcontext() as ctx:
        ctx.prec = _PREC
        rate = (1 + to_decimal(nominal_rate) / periods_per_year) ** periods_per_year - 1
        return rate.quantize(_PLACES, rounding=decimal.ROUND_HALF_EVEN)


def _npv_and_slope(rate: Decimal, flows: Sequence[Decimal]) -> tuple[Decimal, Decimal]:
    """NPV and dNPV/drate by Horner's scheme in v = 1/(1+rate)."""
    with decimal.localcontext() as ctx:
        ctx.prec = _PREC
        v = 1 / (1 + rate)
        value = ZERO
        dvalue = ZERO  # d(value)/dv
        for c in reversed(flows):
            dvalue = dvalue * v + value
            value = value * v + c
        return value, -dvalue * v * v


def _bracket(flows: Sequence[Decimal]) -> tuple[Decimal, Decimal]:
    """Two rates whose NPVs differ in sign, nearest 0 first: 0, 1%, 2%, 4%, ... up; -50%, -75%, ... down."""
    previous = ZERO
    f_previous, _ = _npv_and_slope(previous, flows)
    if f_previous == 0:
        return previous, previous
    step = Decimal("0.01")
    upward = [step * 2**k for k in range(0, 27)]  # up to ~6.7e5 per period
    for rate in upward:
        f_rate, _ = _npv_and_slope(rate, flows)
        if (f_rate > 0) != (f_previous > 0) or f_rate == 0:
            return previous, rate
        previous, f_previous = rate, f_rate
    previous = ZERO
    f_previous, _ = _npv_and_slope(previous, flows)
    for k in range(1, 60):
        rate = -1 + Decimal(2) ** -k
        f_rate, _ = _npv_and_slope(rate, flows)
        if (f_rate > 0) != (f_previous > 0) or f_rate == 0:
            return rate, previous
        previous, f_previous = rate, f_rate
    raise ValueError("no rate of return found for these cash flows")


def _bracket_near(flows: Sequence[Decimal], guess: Decimal) -> tuple[Decimal, Decimal] | None:
    """A bracket grown geometrically from `guess` (fee-bearing loans: a little above the nominal
    rate); None if none is found within a few steps, and the search from 0 takes over."""
    f_guess, _ = _npv_and_slope(guess, flows)
    if f_guess == 0:
        return guess, guess
    step = max(abs(guess) / 4, Decimal("0.0001"))
    for _ in range(12):
        other = guess + step if (f_guess > 0) == _npv_falls(flows) else guess - step
        if other <= -1:
            return None
        f_other, _ = _npv_and_slope(other, flows)
        if f_other == 0 or (f_other > 0) != (f_guess > 0):
            return (guess, other) if other > guess else (other, guess)
        step *= 2
    return None


def _npv_falls(flows: Sequence[Decimal]) -> bool:
    """Whether NPV falls as the rate rises: true for a loan (money out first, repayments after)."""
    return flows[0] < 0


def _solve(flows: Sequence[Decimal], lo: Decimal, hi: Decimal, start: Decimal | None = None) -> Decimal:
    """Newton steps kept inside the bracket [lo, hi]; bisection whenever Newton would leave it or
    is not halving the interval fast enough (Numerical Recipes' rtsafe, in Decimal)."""
    if lo == hi:
        return lo
    f_lo, _ = _npv_and_slope(lo, flows)
    if f_lo == 0:
        return lo
    x = start if start is not None and lo <= start <= hi else (lo + hi) / 2
    step_before = hi - lo
    step = step_before
    for _ in range(_MAX_ITER):
        f, slope = _npv_and_slope(x, flows)
        if f == 0:
            return x
        if (f > 0) == (f_lo > 0):
            lo, f_lo = x, f
        else:
            hi = x
        newton_ok = slope != 0 and abs(2 * f) <= abs(step_before * slope)
        if newton_ok:
            candidate = x - f / slope
            newton_ok = lo < candidate < hi
        step_before = step
        if newton_ok:
            step = abs(candidate - x)
            x = candidate
            if step < _QUADRATIC:  # Newton converges quadratically: the next step would be < 1e-22
                return x
        else:
            step = (hi - lo) / 2
            x = lo + step
        if step < _TOL or hi - lo < _TOL:
            return x
    return x
