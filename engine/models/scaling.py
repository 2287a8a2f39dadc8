"""Scorecard scaling: probability of default -> points (base points at base odds, points to
double the odds) -> grade bands, as a policy's `score.scaling` and `score.grades` declare them."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from engine.errors import BAD_PD, BAD_SCALING, NO_GRADE, ModelError

# A PD of exactly 0 or 1 has infinite odds; clamp so points stay finite and monotone.
PD_EPSILON = 1e-9
_LN2 = math.log(2.0)
PD_PLACES = Decimal("0.000001")  # a decision shows its PD to 6 places
_FLOAT32_SIGNIFICAND = float(1 << 24)  # a float32 value's significand scaled by this is a whole number


def pd_decimal(pd: float) -> Decimal:
    """A model's PD as the 6-place Decimal a decision shows: its shortest repr rounded half-even.

    A float32 value in [0, 1] (what ONNX Runtime answers) takes `f"{pd:.6f}"` instead: the float
    itself correctly rounded, ties to even; the same Decimal without the shortest repr (about 0.2 µs
    less). The two roundings differ only where a tie at the 7th place (...5) is the repr of a float
    that is not the tie itself, and no float32 value is such a float: tests/models/test_model_scaling.py
    checks every tie in [0, 1]. Any other float (a batch's native or stressed PD) takes the repr."""
    if 0.0 <= pd <= 1.0 and (math.frexp(pd)[0] * _FLOAT32_SIGNIFICAND).is_integer():
        return Decimal(f"{pd:.6f}")
    return Decimal(repr(pd)).quantize(PD_PLACES, ROUND_HALF_EVEN)  # positional: keywords cost more


def points(
    pd: float | Decimal, base_points: float | Decimal, base_odds: float | Decimal, pdo: float | Decimal
) -> int:
    """points = base_points + pdo / ln(2) * ln(odds / base_odds), odds = (1 - pd) / pd (good:bad),
    rounded half-even to an integer. `pd` is clamped to [1e-9, 1 - 1e-9]."""
    return scaler(base_points, base_odds, pdo)(pd)


def scaler(
    base_points: float | Decimal, base_odds: float | Decimal, pdo: float | Decimal
) -> Callable[[float | Decimal], int]:
    """`points` with the scaling fixed: its constants converted once (a policy's score stage keeps
    one per policy version). Same arithmetic, same order, same errors."""
    base, odds0, slope = float(base_points), float(base_odds), float(pdo)
    valid = odds0 > 0 and slope > 0
    factor = slope / _LN2 if valid else 0.0
    lowest, highest = PD_EPSILON, 1.0 - PD_EPSILON
    log, inf = math.log, math.inf  # read once: the closure's cells cost less than module lookups

    def scale(pd: float | Decimal) -> int:
        p = pd if pd.__class__ is float else float(pd)  # ONNX's PD is a float already
        if not 0.0 <= p <= 1.0:  # NaN and the infinities fail this too
            raise ModelError(f"pd must be a probability in [0, 1], got {pd!r}", code=BAD_PD)
        if not valid:
            raise ModelError("base_odds and pdo must be positive", code=BAD_SCALING)
        if p < lowest:  # the clamp, as comparisons rather than min() and max() calls
            p = lowest
        elif p > highest:
            p = highest
        value = base + factor * log((1.0 - p) / p / odds0)  # odds (1 - p) / p over the base odds
        if -inf < value < inf:
            # round() is half-even on the float itself, which is the half-even rounding of its
            # shortest repr too (no float but x.5 itself reprs as x.5): 612.5 -> 612, 613.5 -> 614
            return round(value)
        return int(Decimal(repr(value)).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))

    return scale


def grade(score_points: int, bands: Sequence[Mapping[str, Any]]) -> str:
    """The band with the highest `min_points` not above the points (band order does not matter).
    Bands look like `[{grade: A, min_points: 720}, {grade: B, min_points: 680}, {grade: C, min_points: 0}]`.
    """
    for band in sorted(bands, key=lambda b: int(b["min_points"]), reverse=True):
        if score_points >= int(band["min_points"]):
            return str(band["grade"])
    raise ModelError(f"no grade band covers {score_points} points", code=NO_GRADE)
