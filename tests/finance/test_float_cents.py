"""The lifetime loss's float fast path (engine/finance/float_cents.py) gives exactly the cents of the
50-digit Decimal sums it stands in for, or steps aside: on random loans and lines, and on values
placed on a half cent or within a few ulps of one, where a float alone would round the wrong way."""

from __future__ import annotations

import decimal
import math
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine.finance.lifetime as lifetime_module
from engine.finance import build_schedule, money
from engine.finance.float_cents import cents, floats, loss_and_profit
from engine.finance.lifetime import (
    CONSTANT_HAZARD,
    Lifetime,
    LifetimeTerms,
    expected_loss_and_profit,
    exposure_rows,
    float_losses,
    lifetime,
    present_value_key,
    revolving_lifetime,
)
from engine.finance.money import ROUNDINGS
from engine.finance.schedule import METHODS

D = Decimal
ROUNDING_NAMES = sorted(ROUNDINGS)


@pytest.fixture
def fast_paths(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """Every loss_and_profit answer of the test, True where it proved the cents."""
    taken: list[bool] = []

    def counted(*args: Any) -> Any:
        got = loss_and_profit(*args)
        taken.append(got is not None)
        return got

    monkeypatch.setattr(lifetime_module, "loss_and_profit", counted)
    yield taken


def decimal_only(fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)` with the fast path switched off: the 50-digit sums alone decide every cent."""
    saved = lifetime_module.loss_and_profit
    lifetime_module.loss_and_profit = lambda *_: None  # type: ignore[assignment]
    try:
        return fn(*args)
    finally:
        lifetime_module.loss_and_profit = saved


def _fifty_digits(value: Decimal) -> Decimal:
    with decimal.localcontext() as ctx:
        ctx.prec = 50
        return +value


def _nudged(x: float, ulps: int) -> float:
    """`x` a few ulps off, as a float approximation within the proven relative error can be (a
    zero is exact: a sum of non-negative terms is 0.0 only when every term is)."""
    for _ in range(abs(ulps) if x else 0):
        x = math.nextafter(x, math.inf if ulps > 0 else -math.inf)
    return x


# a value on a half cent (offset 0), a few units of the 50th digit off it, or anywhere
_OFFSETS = st.one_of(
    st.just(D(0)),
    st.integers(-5, 5).map(lambda n: D(n).scaleb(-47)),
    st.integers(-5, 5).map(lambda n: D(n).scaleb(-20)),
    st.decimals(min_value=D("-0.5"), max_value=D("0.5"), places=30),
)


@settings(max_examples=2000, deadline=None)
@given(
    half_cents=st.one_of(st.integers(-3, 3), st.integers(-(10**13), 10**13)),
    offset=_OFFSETS,
    before_half_cents=st.integers(-(10**13), 10**13),
    before_offset=_OFFSETS,
    ulps=st.integers(-2, 2),
    rounding=st.sampled_from(ROUNDING_NAMES),
)
def test_proven_cents_are_the_decimal_cents_on_and_beside_half_cents(
    half_cents: int, offset: Decimal, before_half_cents: int, before_offset: Decimal, ulps: int, rounding: str
) -> None:
    """Whatever a float approximation within the proven error reads (a few ulps either way), the
    cents it proves are money() of the Decimal values, sign of a zero included; on a half cent it
    proves nothing."""
    loss = _fifty_digits((D(half_cents) / 2 + offset) / 100)
    before = _fifty_digits((D(before_half_cents) / 2 + before_offset) / 100)
    with decimal.localcontext() as ctx:
        ctx.prec = 50
        profit = before - loss
    approx = _nudged(float(loss) * 100.0, ulps)
    # two ulps are at most 4u of the value: the bound the test states is as tight as that
    got = loss_and_profit(approx, abs(approx) * 2.0**-51, _nudged(cents(before), -ulps), rounding)
    if got is None:
        return
    assert loss >= 0 or approx < 0  # (a loss is never negative; the arithmetic does not mind)
    assert (str(got[0]), str(got[1])) == (str(money(loss, rounding)), str(money(profit, rounding)))
    assert offset or half_cents == 0 or approx * 2 != round(approx * 2), "a half cent proved"


@pytest.mark.parametrize("rounding", ROUNDING_NAMES)
def test_proven_cents_are_those_of_the_half_cent_intervals_midpoint(rounding: str) -> None:
    """Cents proved for a value strictly between two half cents are money() of the interval's
    midpoint (any value in it rounds alike), sign of a zero included, on either side of zero."""
    for quarters in [*range(-401, 402, 2), 4 * 10**12 + 1, -(4 * 10**12) - 3]:
        midpoint = D(quarters) / 4  # cents, an odd number of quarter cents: inside (k/2, (k+1)/2)
        got = loss_and_profit(quarters / 4, 0.0, quarters / 2, rounding)  # a profit as large
        want = str(money(midpoint / 100, rounding))
        assert got is not None and (str(got[0]), str(got[1])) == (want, want), quarters


def test_a_value_on_a_half_cent_is_left_to_the_decimal_sum() -> None:
    assert loss_and_profit(0.5, 1e-12, 1000.0, "half_even") is None  # half a cent of loss
    assert loss_and_profit(2.0, 1e-12, 1000.5, "half_up") is None  # its profit on a half cent
    assert loss_and_profit(0.0, 0.0, 100.0, "down") is None  # a zero loss: its sign is the Decimal's
    assert loss_and_profit(12.3, 1e-12, 4567.9, "half_even") == (D("0.12"), D("45.56"))
    assert loss_and_profit(12.3, 0.3, 4567.9, "half_even") is None  # 12.5 within the bound


def test_floats_refuse_what_the_bound_does_not_cover() -> None:
    assert floats([D("0.5"), D(0), D("1234.56")]) == (0.5, 0.0, 1234.56)
    assert floats([D("-0.01")]) is None  # a negative weight or exposure
    assert floats([D("1e-200")]) is None  # a product could underflow
    assert floats([D("1e-400")]) is None  # a float 0.0 that is not a zero
    assert math.isnan(cents(D("1e-400")))  # never proves anything


def _terms(data: st.DataObject) -> LifetimeTerms:
    curve: str | tuple[Decimal, ...] = CONSTANT_HAZARD
    if data.draw(st.booleans()):
        curve = tuple(
            data.draw(st.lists(st.integers(0, 300).map(lambda n: D(n) / 100), min_size=1, max_size=40))
        )
    return LifetimeTerms(
        pd_12m=data.draw(
            st.one_of(
                st.sampled_from([D(0), D(1), D("0.12")]), st.integers(1, 999_999).map(lambda n: D(n) / 10**6)
            )
        ),
        lgd=data.draw(st.integers(0, 100).map(lambda n: D(n) / 100)),
        cost_of_funds=data.draw(st.one_of(st.just(D(0)), st.integers(1, 1500).map(lambda n: D(n) / 10_000))),
        operating_per_loan=data.draw(st.integers(0, 100_000).map(lambda n: D(n) / 100)),
        operating_per_month=data.draw(st.integers(0, 5_000).map(lambda n: D(n) / 100)),
        pd_curve=curve,
    )


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_loans_lifetime_figures_are_those_of_the_decimal_sums(data: st.DataObject) -> None:
    rounding = data.draw(st.sampled_from(ROUNDING_NAMES))
    schedule = build_schedule(
        data.draw(st.integers(1, 50_000_000).map(lambda n: D(n) / 100)),
        data.draw(st.one_of(st.just(D(0)), st.integers(1, 3600).map(lambda n: D(n) / 10_000))),
        data.draw(st.integers(1, 72)),
        data.draw(st.sampled_from(METHODS)),
        rounding,
    )
    terms = _terms(data)
    upfront = data.draw(st.integers(0, 500_000).map(lambda n: D(n) / 100))
    monthly = data.draw(st.one_of(st.just(D(0)), st.integers(1, 10_000).map(lambda n: D(n) / 100)))
    got = lifetime(schedule, terms, upfront, monthly, rounding)
    want = decimal_only(lifetime, schedule, terms, upfront, monthly, rounding)
    assert repr(got) == repr(want)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_credit_lines_lifetime_figures_are_those_of_the_decimal_sums(data: st.DataObject) -> None:
    rounding = data.draw(st.sampled_from(ROUNDING_NAMES))
    args = (
        data.draw(st.integers(1, 10_000).map(lambda n: D(n) * 100)),
        data.draw(st.integers(0, 3600).map(lambda n: D(n) / 10_000)),
        data.draw(st.integers(0, 100).map(lambda n: D(n) / 100)),
        data.draw(st.integers(0, 100).map(lambda n: D(n) / 100)),
        data.draw(st.integers(1, 60)),
        _terms(data),
        rounding,
    )
    assert repr(revolving_lifetime(*args)) == repr(decimal_only(revolving_lifetime, *args))


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_loans_priced_from_one_matrix_product_are_priced_as_the_decimal_sums(data: st.DataObject) -> None:
    """A product's loans of several terms (a shorter one's exposures padded with zeros) priced from
    one matrix product of their exposures with the loss weights have the 50-digit sums' cents."""
    rounding = data.draw(st.sampled_from(ROUNDING_NAMES))
    amount = data.draw(st.integers(1, 50_000_000).map(lambda n: D(n) / 100))
    rate = data.draw(st.one_of(st.just(D(0)), st.integers(1, 3600).map(lambda n: D(n) / 10_000)))
    terms_months = data.draw(st.lists(st.integers(1, 72), min_size=1, max_size=4))
    schedules = [
        build_schedule(amount, rate, t, data.draw(st.sampled_from(METHODS)), rounding) for t in terms_months
    ]
    terms = _terms(data)
    upfront = data.draw(st.integers(0, 500_000).map(lambda n: D(n) / 100))
    key = present_value_key(terms, upfront, D(0), rounding)
    rows = exposure_rows(schedules)
    dots = None if rows is None else float_losses(rows, terms)
    for at, schedule in enumerate(schedules):
        dot = None if dots is None else dots[at]
        got = expected_loss_and_profit(schedule, terms, upfront, D(0), rounding, key, dot)
        want = decimal_only(expected_loss_and_profit, schedule, terms, upfront, D(0), rounding, key)
        assert repr(got) == repr(want)


def test_the_fast_path_proves_nearly_every_random_loan(fast_paths: list[bool]) -> None:
    """Not a test that steps aside every time: priced at a positive PD and LGD, a loan's cents are
    proved by the floats (the Decimal sums are then never worked)."""
    terms = LifetimeTerms(D("0.020660"), D("0.45"), D("0.035"), D(300), D(8))
    for amount in range(1000, 200_000, 997):
        for method in METHODS:
            schedule = build_schedule(D(amount), D("0.117"), 36, method)
            lifetime(schedule, terms, D(amount) / 100, D(0), "half_even")
    revolving_lifetime(D(50_000), D("0.167"), D("0.4"), D("0.5"), 24, terms, "half_even")
    assert len(fast_paths) == 3 * len(range(1000, 200_000, 997)) + 1 and all(fast_paths)


@pytest.mark.parametrize("rounding", ROUNDING_NAMES)
def test_a_zero_cost_of_funds_line_whose_loss_and_profit_sit_on_half_cents(rounding: str) -> None:
    """Exposure 50.00 (half of 100 drawn, no CCF), m_1 = 0.0012 / 12 = 0.0001 at LGD 1, no cost of
    funds: the loss is exactly 0.005 and the profit 0.50 - 0.005 = 0.495, both half cents, which
    only the Decimal sums may round."""
    terms = LifetimeTerms(D("0.0012"), D(1), D(0), pd_curve=(D(1),))
    got, interest = revolving_lifetime(D(100), D("0.12"), D("0.5"), D(0), 1, terms, rounding)
    want = decimal_only(revolving_lifetime, D(100), D("0.12"), D("0.5"), D(0), 1, terms, rounding)
    assert (got, interest) == want
    assert got.expected_loss == money(D("0.005"), rounding)
    assert got.expected_profit == money(D("0.495"), rounding)


@pytest.mark.parametrize("rounding", ROUNDING_NAMES)
def test_a_loan_whose_loss_sits_on_a_half_cent(rounding: str) -> None:
    """One month, 1.00 lent, m_1 = 0.06 / 12 = 0.005 at LGD 1 and no cost of funds: a loss of
    exactly half a cent."""
    schedule = build_schedule(D(1), D(0), 1, METHODS[0], rounding)
    terms = LifetimeTerms(D("0.06"), D(1), D(0), pd_curve=(D(1),))
    got = lifetime(schedule, terms, D(0), D(0), rounding)
    assert got == decimal_only(lifetime, schedule, terms, D(0), D(0), rounding)
    assert got.expected_loss == money(D("0.005"), rounding)
    assert isinstance(got, Lifetime)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_the_float_loss_weights_are_within_their_proven_error_of_the_50_digit_ones(
    data: st.DataObject,
) -> None:
    """lifetime.py's float weights w'_t stay within g_(2t+7) + 1e-28 of the 50-digit w_t, the bound
    float_cents' proof starts from (u = 2^-53)."""
    terms = _terms(data)
    months = data.draw(st.integers(1, 120))
    pd, curve, cof, lgd, _, _ = terms.keys
    approx, _ = lifetime_module._approx_weights(pd, months, curve, cof, lgd)
    exact = lifetime_module._decimal_weights(pd, months, curve, cof, lgd)
    if approx is None:  # a zero PD or LGD, or a survival a float cannot hold for long: no float path
        zero_curve = isinstance(curve, tuple) and not any(map(D, curve))
        assert terms.pd_12m == 0 or terms.lgd == 0 or zero_curve or terms.pd_12m > D("0.99")
        return
    assert len(approx) == len(exact) == months
    u = D(2) ** -53
    for t, (fast, slow) in enumerate(zip(approx, exact, strict=True), 1):
        if not slow:
            assert fast == 0.0
            continue
        k = 2 * t + 7
        assert abs(D(fast) / slow - 1) <= k * u / (1 - k * u) + D("1e-28"), f"month {t}"


@settings(max_examples=300, deadline=None)
@given(
    pd=st.one_of(st.sampled_from([D("0.000001"), D("0.999999"), D("0.5")]), st.integers(1, 999_999).map(D)),
    term=st.integers(1, 120),
)
def test_a_lifetime_pd_from_the_float_survival_is_the_50_digit_ones(pd: Decimal, term: int) -> None:
    """1 - S'_T stays within (2T + 2) u of the 50-digit partial sum of the marginal PDs, and the
    lifetime PD it proves is that sum's, rounded to six places."""
    pd = pd if pd < 1 else pd / 1_000_000
    months = max(term, 36)
    _, alive = lifetime_module._approx_weights(str(pd), months, CONSTANT_HAZARD, "0.035", "0.45")
    if alive is None:  # S_T below 1e-50: the 50-digit sum decides
        assert pd > D("0.99")
        return
    partial = lifetime_module._partial_pds(str(pd), months, CONSTANT_HAZARD)[term - 1]
    u = D(2) ** -53
    assert abs(1 - D(alive[term]) - partial) <= (2 * term + 2) * u * D("1.001")
    want = round(partial, 6)
    got = lifetime_module._lifetime_pd(str(pd), months, CONSTANT_HAZARD, term, alive)
    assert (str(got), got) == (str(want), want)


def test_a_survival_that_puts_the_lifetime_pd_on_a_half_millionth_is_left_to_the_decimal_sum() -> None:
    """A float survival whose lifetime PD reads exactly 0.0206605 (a half-millionth: half_even and
    half_up round it apart) proves nothing: the 50-digit sum decides."""
    want = round(lifetime_module._partial_pds("0.020660", 36, CONSTANT_HAZARD)[11], 6)
    on = 1 - 0.0206605
    above = on
    while (1.0 - above) * 2e6 <= 41321.0:  # a hair above the half-millionth, well within the bound
        above = math.nextafter(above, 0.0)
    for survival in (on, above, math.nextafter(on, 1.0)):
        alive = (1.0,) * 12 + (survival,)
        assert (
            lifetime_module._lifetime_pd("0.020660", 36, CONSTANT_HAZARD, 12, alive) == want == D("0.020660")
        )
    far = (1.0,) * 12 + (1 - 0.0206601,)  # a float that does prove (a wrong one, to show it is used)
    assert lifetime_module._lifetime_pd("0.020660", 36, CONSTANT_HAZARD, 12, far) == D("0.020660")
    wrong = (1.0,) * 12 + (1 - 0.03012345,)
    assert lifetime_module._lifetime_pd("0.020660", 36, CONSTANT_HAZARD, 12, wrong) == D("0.030123")
