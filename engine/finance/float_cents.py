"""The cents of a 50-digit Decimal loss sum, and of the profit left after it, read from a float
approximation of the sum when a proven error bound shows the two cannot round differently; None
otherwise, and the caller does the Decimal sums (engine/finance/lifetime.py).

Why it is exact. money() (any rounding mode) is constant on each open interval between consecutive
multiples of half a cent: the half_* modes change value only at k + 1/2 cents, the others only at
whole cents, and the sign of a zero result is the sign of the interval. So if a value x and an
approximation a satisfy |a - x| <= B, and a is farther than B from every multiple of half a cent,
x lies in a's interval and money(x) = money(the interval's midpoint), an exact Decimal.

The loss. lifetime.py adds L = sum of w_t x e_t over n months at 50 digits (w_t >= 0 its loss
weights, e_t >= 0 the exposures) and approximates it, in cents, by a = 100 x dot(w', e'), the float
dot product of w'_t within g_(2t+7) + 1e-28 of w_t (lifetime.py shows how) and e'_t = float(e_t),
u = 2^-53, g_k = k u / (1 - k u). A float dot product of n terms, added in any order, with or
without fused multiply-adds (numpy's), is within g_n x sum |w'_t e'_t| of the exact one (Higham,
Accuracy and Stability of Numerical Algorithms, 2nd ed., section 3.1); zeros padding a shorter term
(a matrix of several loans' exposures) add nothing and round nothing. So each term carries at most
g_(2t+9+n) of relative error with the x 100 rounding, at most g_(3n+9), and with every term >= 0 the
errors add up to at most g_(3n+9) x 100 S, S the exact sum of the exact products. The Decimal sum
rounds n products and n additions, each within 1e-49: |L - S| <= (2n + 1) 1e-49 S. So
|a - 100 L| <= (3n + 10) u x a, and loss_bound's B = 2 (3n + 12) u x a covers it twice (the margin
for working B out in floats). A credit line's a = fsum(w'_t) x e' x 100 (lifetime.py) carries
g_(2n+11), within the same B.
Nothing under- or overflows: every w'_t and e'_t is 0 or within [1e-150, 1e150] (`usable`), and
a product is 0 exactly when the Decimal one is.
The profit P = b - L (b, the profit before the loss, a 50-digit Decimal; the subtraction rounded
at 50 digits) is approximated by p = b' - a, b' = float(b) x 100 (`cents`, two roundings):
|p - 100 P| <= B + 2u |b'| + u |p| + 1e-49 |100 P|, which B + 2^-50 (|b'| + |p|) covers.
Values of 1e15 cents or more, or not finite, are left to the Decimal sum (no float grid there).
tests/finance/test_float_cents.py checks these figures against the Decimal sums, values placed on
and within a few ulps of half cents included."""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import (
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_HALF_DOWN,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    ROUND_UP,
    Decimal,
)
from typing import Final

from engine.finance.money import _WIDE, CENT, ROUNDINGS, rounding_mode

__all__ = ["cents", "floats", "half_unit_midpoint", "loss_and_profit", "loss_bound", "usable"]

_LOW: Final = 1e-150  # a stored value is 0 or within [_LOW, _HIGH]: no product under- or overflows
_HIGH: Final = 1e150
_TWO_U: Final = 2.0**-52
_PROFIT_REL: Final = 2.0**-50
_TINY: Final = 1e-300
_FAR: Final = 1e15  # cents: beyond, a float's grid is too coarse to say anything


def floats(values: Iterable[Decimal]) -> tuple[float, ...] | None:
    """`values` as floats, or None when one is negative, or outside [1e-150, 1e150] and not 0 (the
    sums above are then left to Decimal)."""
    decimals = tuple(values)
    out = tuple(map(float, decimals))
    if out and min(out) >= _LOW and max(out) <= _HIGH:
        return out
    # a zero float is a zero only when the Decimal is (a tiny Decimal turns into 0.0 too)
    return out if usable(out) and all(f or not d for f, d in zip(out, decimals, strict=True)) else None


def usable(values: tuple[float, ...]) -> bool:
    """Every value 0 or within [1e-150, 1e150]: no product of two of them under- or overflows."""
    if not values or (min(values) >= _LOW and max(values) <= _HIGH):
        return True
    return all(v == 0.0 or _LOW <= v <= _HIGH for v in values)


def cents(value: Decimal) -> float:
    """float(value) x 100: `before` of loss_and_profit; NaN (never proves anything) when the float
    would not be within two roundings of the value (too small a non-zero, or too large)."""
    approx = float(value) * 100.0
    if _LOW <= abs(approx) <= _HIGH or not value:
        return approx
    return math.nan


def loss_bound(loss: float, months: int) -> float:
    """B for a loss `loss` = a summed over `months` terms as the module docstring states it."""
    return abs(loss) * ((3 * months + 12) * _TWO_U)


def loss_and_profit(
    loss: float, bound: float, before: float, rounding: str
) -> tuple[Decimal, Decimal] | None:
    """money(L, rounding) and money(b - L, rounding), from `loss` = a within `bound` of L and
    `before` = b' as the module docstring states them (all in cents), or None when either could
    round apart.

    Each lies strictly between k/2 and (k+1)/2 cents (half_unit_midpoint's odd = 2k + 1): never on
    a whole or a half cent, so its floor is k // 2 = (odd - 1) // 4, its ceiling one more, and its
    nearest cent (any half_* mode) (odd + 1) // 4 (_cents). Both midpoints are found before either
    is rounded (each is a pure function of its figures): under a half_* mode, two positive ones
    (a loan's usual figures) are rounded here, without _cents' calls."""
    mode = ROUNDINGS.get(rounding) or rounding_mode(rounding)  # rounding_mode: its error
    profit = before - loss
    lost = half_unit_midpoint(loss, bound)
    made = half_unit_midpoint(profit, bound + (abs(before) + abs(profit)) * _PROFIT_REL)
    if lost is None or made is None:
        return None
    if lost > 0 and made > 0 and mode in _NEAREST:
        return _TIMES((lost + 1) // 4, CENT), _TIMES((made + 1) // 4, CENT)  # exact: < 16 digits
    return _cents(lost, mode), _cents(made, mode)


def _cents(odd: int, mode: str) -> Decimal:
    """money(x) under the decimal rounding `mode` for any x strictly between k/2 and (k+1)/2 cents
    (odd = 2k + 1), as loss_and_profit states it. The cents are worked in ints and made a Decimal
    by one exact product, at under half the cost of rounding the midpoint's Decimal."""
    if mode in _NEAREST:
        whole = (odd + 1) // 4
    else:
        whole = (odd - 1) // 4  # the floor
        if mode == ROUND_CEILING or (mode == ROUND_UP and odd > 0) or (mode == ROUND_DOWN and odd < 0):
            whole += 1
    if not whole and odd < 0:
        return _MINUS_ZERO  # money() keeps a negative value's sign on a zero
    return _TIMES(whole, CENT)  # exact: fewer than 16 digits


_NEAREST: Final = frozenset({ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_HALF_DOWN})
_TIMES: Final = _WIDE.multiply  # bound once: the lookup and binding cost more than the product
_MINUS_ZERO: Final = Decimal("-0.00")


def half_unit_midpoint(approx: float, bound: float) -> int | None:
    """2k + 1 when every x within `bound` of `approx` lies strictly between k/2 and (k+1)/2 units
    (x then rounds to whole units, in any mode, as (2k+1)/4 does), else None; None too beyond 1e15
    units or for a value not finite."""
    if not abs(approx) < _FAR:  # not finite either
        return None
    twice = approx * 2.0  # in half units: exact
    k = math.floor(twice)
    frac = twice - k  # exact: a float below 2^53 minus its floor
    margin = bound * 2.0 + _TINY  # + an absolute floor: no approximation is trusted to a subnormal
    if frac <= margin or 1.0 - frac <= margin:
        return None
    return 2 * k + 1
