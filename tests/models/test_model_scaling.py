"""PD -> points -> grade, as a policy's score.scaling and score.grades declare them."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

import numpy as np
import pytest

from engine.errors import ModelError
from engine.models.scaling import PD_PLACES, grade, pd_decimal, points

BANDS = [
    {"grade": "C", "min_points": 0},
    {"grade": "A", "min_points": 720},
    {"grade": "B", "min_points": 680},
]


def test_base_odds_give_base_points_and_doubling_adds_pdo() -> None:
    assert points(1 / 51, 600, 50, 20) == 600  # odds 50:1
    assert points(1 / 101, 600, 50, 20) == 620  # odds 100:1
    assert points(Decimal(1) / Decimal(26), 600, 50, 20) == 580


def test_points_fall_as_pd_rises_and_extremes_stay_finite() -> None:
    values = [points(p, 600, 50, 20) for p in (0.0, 0.01, 0.05, 0.2, 0.5, 0.9, 1.0)]
    assert values == sorted(values, reverse=True)
    assert values[3] == 600 + round(20 * __import__("math").log2(4 / 50))


def test_rounding_is_half_even() -> None:
    # odds chosen so the unrounded value is exactly x.5: base 600, pdo 20 * ln2/ln2, odds = 50 * 2**(k/40)
    odds_half_up = 50 * 2 ** (0.5 / 20)  # 600.5 -> 600
    odds_one_and_half = 50 * 2 ** (1.5 / 20)  # 601.5 -> 602
    assert points(1 / (1 + odds_half_up), 600, 50, 20) == 600
    assert points(1 / (1 + odds_one_and_half), 600, 50, 20) == 602


def test_bad_pd_is_refused() -> None:
    with pytest.raises(ModelError):
        points(1.5, 600, 50, 20)


def test_grade_bands_in_any_order() -> None:
    assert grade(735, BANDS) == "A"
    assert grade(720, BANDS) == "A"
    assert grade(700, BANDS) == "B"
    assert grade(100, BANDS) == "C"
    with pytest.raises(ModelError):
        grade(-5, BANDS)


def test_points_round_the_float_as_its_shortest_repr_rounds_half_even() -> None:
    """scaler rounds with round() (half-even on the float); the contract is half-even on the
    float's shortest repr. They agree at and next to every .5 (the float just below 600.5 reprs
    as 600.49999999999994, never as 600.5)."""
    import math
    import random

    from engine.models.scaling import scaler

    def by_repr(value: float) -> int:
        return int(Decimal(repr(value)).quantize(Decimal(1), rounding="ROUND_HALF_EVEN"))

    rng = random.Random(7)
    for _ in range(20_000):
        half = rng.randint(-2000, 2000) + 0.5
        for value in (
            half,
            math.nextafter(half, -math.inf),
            math.nextafter(half, math.inf),
            rng.uniform(-3e3, 3e3),
        ):
            assert round(value) == by_repr(value), value
    scale = scaler(600, Decimal("50"), Decimal("20"))
    for pd in (0.0, 1e-12, 0.001, 0.02, 0.3, 0.5, 0.999, 1.0, Decimal("0.0384615")):
        assert scale(pd) == points(pd, 600, Decimal("50"), Decimal("20"))


def test_bad_scaling_is_refused_after_the_pd_is_checked() -> None:
    with pytest.raises(ModelError) as caught:
        points(0.1, 600, 0, 20)
    assert caught.value.code == "BAD_SCALING"
    with pytest.raises(ModelError) as caught:
        points(2.0, 600, 0, 20)
    assert caught.value.code == "BAD_PD"


def test_points_are_the_documented_formula_on_every_kind_of_pd() -> None:
    """points = base_points + pdo / ln(2) * ln(odds / base_odds), odds = (1 - pd) / pd, the PD
    clamped to [1e-9, 1 - 1e-9] and the value rounded half-even: on ONNX's float32 PDs (as floats),
    on plain floats, on Decimals and at the clamp; NaN and the infinities are refused like 1.5."""
    import math
    import random

    import numpy as np

    from engine.models.scaling import scaler

    def formula(pd: float | Decimal) -> int:
        p = min(max(float(pd), 1e-9), 1.0 - 1e-9)
        value = 600.0 + 20.0 / math.log(2.0) * math.log((1.0 - p) / p / 50.0)
        return int(Decimal(repr(value)).quantize(Decimal(1), rounding="ROUND_HALF_EVEN"))

    rng = random.Random(11)
    floats = [rng.random() for _ in range(5_000)]
    pds: list[float | Decimal] = [*floats, *(float(np.float32(p)) for p in floats)]
    pds += [0.0, 1.0, 1e-12, 5e-10, 1e-9, 1.0 - 1e-12, Decimal("0.0384615"), np.float64(0.25)]
    scale = scaler(600, Decimal("50"), Decimal("20"))
    assert [scale(pd) for pd in pds] == [formula(pd) for pd in pds]
    for bad in (math.nan, math.inf, -math.inf, -1e-300, 1.5):
        with pytest.raises(ModelError) as caught:
            scale(bad)
        assert caught.value.code == "BAD_PD"


def _shown(pd: float) -> Decimal:
    """The PD a decision shows, by its definition: the shortest repr, rounded half-even to 6 places."""
    return Decimal(repr(pd)).quantize(PD_PLACES, ROUND_HALF_EVEN)


def test_no_float32_value_but_a_tie_itself_reprs_as_a_tie_at_the_7th_place() -> None:
    """pd_decimal's proof: '.6f' of a float (correctly rounded) and its shortest repr rounded
    half-even differ only when the float's repr is a 7-place tie t (a 5 at the 7th place) while the
    float is not t, i.e. the float is the double nearest t. For every tie in [0, 1] the nearest
    double (IEEE division of exact integers is correctly rounded) is either no float32 value or t
    itself, where both roundings go to the even neighbour."""
    ties = (np.arange(1_000_000, dtype=np.float64) * 10 + 5) / 1e7  # the double nearest each tie
    single = ties[ties.astype(np.float32).astype(np.float64) == ties]
    assert len(single) > 0  # the dyadic ties (2**-7 = 0.0078125, ...): exact, and checked below
    for pd in single.tolist():
        assert Decimal(pd) == Decimal(repr(pd)) and len(repr(pd).split(".")[1]) == 7
        assert str(pd_decimal(pd)) == str(_shown(pd))


def test_pd_decimal_is_the_shortest_repr_rounded_half_even() -> None:
    """Float32 PDs (the '.6f' path) and other floats (the repr path) give the same text as the
    definition, sign of a zero and both ends included."""
    rng = np.random.default_rng(11)
    singles = rng.random(20_000, dtype=np.float32).astype(np.float64).tolist()
    doubles = rng.random(2_000).tolist()
    edges = [0.0, -0.0, 1.0, 5e-7, 4.999999e-7, 0.0078125, 0.1, 0.5, float(np.float32(0.1234565))]
    for pd in [*singles, *doubles, *edges]:
        assert str(pd_decimal(pd)) == str(_shown(pd)), pd
