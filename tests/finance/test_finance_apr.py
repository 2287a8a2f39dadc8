"""APR as the IRR of a loan's cash flows: hand-checked figures, a float oracle, and the property
that a loan without fees costs exactly its nominal rate (up to its instalments' cent rounding)."""

from __future__ import annotations

import decimal
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.finance import METHODS, apr, build_schedule, effective_annual_rate, irr
from engine.finance.apr import npv

D = Decimal

amounts = st.integers(min_value=10_000, max_value=100_000_000).map(lambda cents: D(cents) / 100)
rates = st.integers(min_value=1, max_value=3600).map(lambda bp: D(bp) / 10_000)
terms = st.integers(min_value=1, max_value=120)


def float_irr(flows: list[float]) -> float:
    """An independent oracle: plain float bisection on [-0.99, 10]."""

    def f(rate: float) -> float:
        return sum(c / (1 + rate) ** t for t, c in enumerate(flows))

    lo, hi = -0.99, 10.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if (f(mid) > 0) == (f(lo) > 0):
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def test_fee_raises_apr_above_the_nominal_rate() -> None:
    schedule = build_schedule(D("10000"), D("0.12"), 12, "equal_instalment")
    assert apr(D("10000"), D("0"), schedule.payments).quantize(D("0.000001")) == D("0.120001")
    with_fee = apr(D("10000"), D("100"), schedule.payments)  # 1% kept at disbursement
    assert with_fee.quantize(D("0.0001")) == D("0.1391")
    oracle = 12 * float_irr([-9900.0, *(float(p) for p in schedule.payments)])
    assert abs(float(with_fee) - oracle) < 1e-9


def test_interest_only_without_fee_has_apr_exactly_nominal() -> None:
    schedule = build_schedule(D("10000"), D("0.12"), 12, "interest_only")
    assert apr(D("10000"), 0, schedule.payments) == D("0.120000000000000")


def test_effective_annual_rate_compounds_monthly() -> None:
    assert effective_annual_rate(D("0.12")) == D("0.126825030131970")
    assert effective_annual_rate(D("0")) == 0


def test_irr_finds_a_negative_rate() -> None:
    rate = irr([D(-100), D(50), D(40)])  # repaid less than lent
    assert rate < 0
    assert abs(npv(rate, [D(-100), D(50), D(40)])) < D("1e-20")
    assert abs(float(rate) - float_irr([-100.0, 50.0, 40.0])) < 1e-12


@pytest.mark.parametrize("flows", [[D(100), D(10)], [D(-100), D(-10)], [D(0)]])
def test_irr_needs_a_sign_change(flows: list[Decimal]) -> None:
    with pytest.raises(ValueError, match="outflow and an inflow"):
        irr(flows)


def test_fees_cannot_swallow_the_loan() -> None:
    with pytest.raises(ValueError, match="net disbursement"):
        apr(D("100"), D("100"), [D("110")])


@settings(max_examples=200, deadline=None)
@given(amounts, rates, terms)
def test_zero_fee_apr_of_exact_annuity_flows_is_the_nominal_rate(
    amount: Decimal, rate: Decimal, term: int
) -> None:
    with decimal.localcontext() as ctx:
        ctx.prec = 60
        r = rate / 12
        payment = amount * r / (1 - (1 + r) ** -term)
    assert abs(apr(amount, 0, [payment] * term) - rate) <= D("1e-12")


@settings(max_examples=200, deadline=None)
@given(amounts, rates, terms, st.sampled_from(METHODS))
def test_zero_fee_apr_of_a_schedule_is_the_nominal_rate_up_to_cent_rounding(
    amount: Decimal, rate: Decimal, term: int, method: str
) -> None:
    """NPV at the nominal rate is exactly the present value of the interest rounding errors e_t
    (the balance recursion telescopes), so the APR can move from the nominal rate only by that
    over the NPV's slope: a first-order bound computed from the schedule itself."""
    schedule = build_schedule(amount, rate, term, method)
    got = apr(amount, 0, schedule.payments)
    with decimal.localcontext() as ctx:
        ctx.prec = 50
        r = rate / 12
        v = 1 / (1 + r)
        opening = [amount, *(row.balance for row in schedule.rows[:-1])]
        rounding_pv = sum(
            abs(row.interest - b * r) * v**row.period for row, b in zip(schedule.rows, opening, strict=True)
        )
        slope = sum(row.period * row.payment * v ** (row.period + 1) for row in schedule.rows)
        bound = 12 * rounding_pv / slope * D("1.05") + D("1e-12")
    assert abs(got - rate) <= bound


@settings(max_examples=100, deadline=None)
@given(amounts, rates, terms, st.sampled_from(METHODS), st.integers(min_value=1, max_value=500))
def test_apr_with_fees_matches_a_float_oracle_and_exceeds_the_zero_fee_apr(
    amount: Decimal, rate: Decimal, term: int, method: str, fee_bp: int
) -> None:
    schedule = build_schedule(amount, rate, term, method)
    fee = (amount * fee_bp / 10_000).quantize(D("0.01"))
    if fee == 0:
        return
    got = apr(amount, fee, schedule.payments)
    oracle = 12 * float_irr([-float(amount - fee), *(float(p) for p in schedule.payments)])
    assert abs(float(got) - oracle) < 1e-7
    assert got > apr(amount, 0, schedule.payments)  # a fee always makes the same loan dearer


@settings(max_examples=150, deadline=None)
@given(amounts, rates, terms, st.sampled_from(METHODS), st.integers(min_value=0, max_value=500))
def test_a_guess_only_speeds_the_search_never_changes_the_apr(
    amount: Decimal, rate: Decimal, term: int, method: str, fee_bp: int
) -> None:
    schedule = build_schedule(amount, rate, term, method)
    fee = (amount * fee_bp / 10_000).quantize(D("0.01"))
    plain = apr(amount, fee, schedule.payments)
    for guess in (rate, D("0"), D("0.5"), -rate):
        assert abs(apr(amount, fee, schedule.payments, guess=guess) - plain) <= D("1e-15")
