"""The fast APR path (float Newton seed + Decimal polish) against the bracketed Decimal solver it
stands in for: on random loans both must give the same 15-place APR, digit for digit."""

from __future__ import annotations

import sys
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.finance import METHODS, apr, build_schedule

D = Decimal
apr_module = sys.modules["engine.finance.apr"]  # `engine.finance.apr` the attribute is the function

amounts = st.integers(min_value=10_000, max_value=100_000_000).map(lambda cents: D(cents) / 100)
rates = st.integers(min_value=0, max_value=3600).map(lambda bp: D(bp) / 10_000)
terms = st.sampled_from([1, 2, 3, 6, 12, 18, 24, 36, 48, 60, 120])
fee_permille = st.sampled_from([0, 0, 1, 5, 10, 25, 100, 300])


@settings(max_examples=300, deadline=None)
@given(amounts, rates, terms, st.sampled_from(METHODS), fee_permille, st.booleans())
def test_fast_path_prints_the_same_digits_as_the_bracketed_solver(
    amount: Decimal, rate: Decimal, term: int, method: str, permille: int, with_guess: bool
) -> None:
    fee = (amount * permille / 1000).quantize(D("0.01"))
    payments = build_schedule(amount, rate, term, method).payments
    guess = rate if with_guess else None
    flows = [-(amount - fee), *payments]
    monthly_guess = None if guess is None else guess / 12
    reference = apr_module._apr_bracketed(flows, monthly_guess)
    fast = apr_module._apr_fast(flows, monthly_guess)
    assert fast is None or str(fast) == str(reference)
    assert str(apr(amount, fee, payments, guess=guess)) == str(reference)


def test_fast_path_declines_flows_that_are_not_a_plain_loan() -> None:
    # a negative flow after the first may give several roots: the bracketed solver decides
    assert apr_module._apr_fast([D(-100), D(230), D(-132)], None) is None
    assert apr_module._apr_fast([D(100), D(-50), D(-60)], None) is None


def test_fast_path_declines_a_rate_next_to_a_rounding_midpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    # 12 x the monthly IRR of these flows, rounded, is checked against the midpoint guard: with a
    # guard wider than half a place every result is "too close" and the reference path answers
    payments = build_schedule(D("10000"), D("0.12"), 12, "equal_instalment").payments
    flows = [D(-9900), *payments]
    assert apr_module._apr_fast(flows, D("0.01")) is not None
    monkeypatch.setattr(apr_module, "_FAST_MARGIN", D("1e-15"))
    assert apr_module._apr_fast(flows, D("0.01")) is None
    assert apr(D("10000"), D("100"), payments) == apr_module._apr_bracketed(flows, None)


@settings(max_examples=300, deadline=None)
@given(amounts, rates, terms, st.sampled_from(["equal_instalment", "interest_only"]), fee_permille)
def test_level_flows_closed_form_is_the_horner_pass_to_30_digits(
    amount: Decimal, rate: Decimal, term: int, method: str, permille: int
) -> None:
    """Equal-instalment and interest-only flows (one payment, repeated, then the last) are valued by
    a closed form in the fast path: it must agree with the month-by-month Horner pass."""
    fee = (amount * permille / 1000).quantize(D("0.01"))
    flows = [-(amount - fee), *build_schedule(amount, rate, term, method).payments]
    level = apr_module._level(flows)
    assert (level is not None) == (term >= 3 and len(set(flows[1:-1])) == 1)
    if level is None:
        return
    scale = sum(abs(c) for c in flows)
    for monthly in (D("0.001"), rate / 12 + D("0.001"), D("0.05")):
        value, slope = apr_module._npv_and_slope(monthly, flows)
        closed_value, closed_slope = apr_module._npv_and_slope_level(monthly, level)
        assert abs(closed_value - value) <= scale * D("1e-30")
        assert abs(closed_slope - slope) <= abs(slope) * D("1e-30") + scale * D("1e-30")
