"""Repayment schedules: hand-checked examples for each method and properties a borrower relies on
(principal parts sum to the amount, balances never negative, the textbook instalment to the cent)."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from engine.finance import METHODS, annuity_payment, build_schedule, quantize
from engine.finance.schedule import dated_schedule

D = Decimal

amounts = st.integers(min_value=10_000, max_value=100_000_000).map(lambda cents: D(cents) / 100)
rates = st.integers(min_value=0, max_value=3600).map(lambda bp: D(bp) / 10_000)
terms = st.integers(min_value=1, max_value=120)
methods = st.sampled_from(METHODS)
roundings = st.sampled_from(["half_even", "half_up", "down"])


def textbook_payment(amount: Decimal, annual_rate: Decimal, term: int) -> Decimal:
    """P*r / (1 - (1+r)^-n) computed exactly with fractions, then rounded half-even to the cent."""
    p, r = Fraction(amount), Fraction(annual_rate) / 12
    exact = p / term if r == 0 else p * r / (1 - (1 + r) ** -term)
    return (D(exact.numerator) / D(exact.denominator)).quantize(D("0.01"), rounding=ROUND_HALF_EVEN)


def test_equal_instalment_10000_cny_12_months_at_12_percent() -> None:
    schedule = build_schedule(D("10000"), D("0.12"), 12, "equal_instalment")
    assert schedule.first_payment == D("888.49")
    assert [row.payment for row in schedule.rows[:-1]] == [D("888.49")] * 11
    first = schedule.rows[0]
    assert (first.interest, first.principal, first.balance) == (D("100.00"), D("788.49"), D("9211.51"))
    last = schedule.rows[-1]
    assert (last.payment, last.principal, last.interest, last.balance) == (
        D("888.47"),
        D("879.67"),
        D("8.80"),
        D("0.00"),
    )
    assert schedule.total_interest == D("661.86")


def test_equal_principal_10000_cny_12_months_at_12_percent() -> None:
    schedule = build_schedule(D("10000"), D("0.12"), 12, "equal_principal")
    assert schedule.first_payment == D("933.33")  # 833.33 principal + 100.00 interest
    assert schedule.max_payment == D("933.33")
    assert [row.principal for row in schedule.rows[:-1]] == [D("833.33")] * 11
    assert schedule.rows[-1].principal == D("833.37")  # the last instalment absorbs the rounding
    assert schedule.rows[-1].payment == D("841.70")
    assert schedule.total_interest == D("650.00")


def test_interest_only_repays_principal_in_the_last_month() -> None:
    schedule = build_schedule(D("10000"), D("0.12"), 12, "interest_only")
    assert [row.payment for row in schedule.rows[:-1]] == [D("100.00")] * 11
    assert schedule.rows[-1].payment == D("10100.00")
    assert schedule.max_payment == D("10100.00")
    assert schedule.total_interest == D("1200.00")


def test_zero_rate_loan_has_no_interest() -> None:
    schedule = build_schedule(D("1000"), D("0"), 3, "equal_instalment")
    assert [row.payment for row in schedule.rows] == [D("333.33"), D("333.33"), D("333.34")]
    assert schedule.total_interest == 0


def test_policy_rounding_mode_is_applied_to_interest() -> None:
    # 12.50 at 1% a month is 0.125 of interest: half_even keeps 0.12, half_up gives 0.13
    assert build_schedule(D("12.50"), D("0.12"), 2, "interest_only", "half_even").rows[0].interest == D(
        "0.12"
    )
    assert build_schedule(D("12.50"), D("0.12"), 2, "interest_only", "half_up").rows[0].interest == D("0.13")


@pytest.mark.parametrize(
    ("amount", "rate", "term", "method", "message"),
    [
        (D("0"), D("0.1"), 12, "equal_instalment", "amount must be positive"),
        (D("100"), D("-0.1"), 12, "equal_instalment", "must not be negative"),
        (D("100"), D("0.1"), 0, "equal_instalment", "term_months"),
        (D("100"), D("0.1"), 12, "balloon", "unknown repayment method"),
    ],
)
def test_bad_arguments_are_refused(
    amount: Decimal, rate: Decimal, term: int, method: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_schedule(amount, rate, term, method)


def test_unknown_rounding_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown rounding"):
        build_schedule(D("100"), D("0.1"), 12, "equal_instalment", "bankers")
    with pytest.raises(ValueError, match="unknown rounding"):
        quantize(D("1.005"), 2, "nearest")


@settings(max_examples=300, deadline=None)
@given(amounts, rates, terms, methods, roundings)
def test_principal_parts_sum_to_the_amount_and_balances_stay_non_negative(
    amount: Decimal, rate: Decimal, term: int, method: str, rounding: str
) -> None:
    schedule = build_schedule(amount, rate, term, method, rounding)
    assert len(schedule.rows) == term
    assert sum(row.principal for row in schedule.rows) == amount
    assert all(row.balance >= 0 and row.principal >= 0 and row.interest >= 0 for row in schedule.rows)
    assert schedule.rows[-1].balance == 0
    assert all(row.payment == row.principal + row.interest for row in schedule.rows)
    assert all(row.payment.as_tuple().exponent == -2 for row in schedule.rows)
    assert schedule.total_interest == sum(row.interest for row in schedule.rows)


@settings(max_examples=300, deadline=None)
@given(amounts, rates, terms)
def test_equal_instalment_payment_is_the_textbook_formula_to_the_cent(
    amount: Decimal, rate: Decimal, term: int
) -> None:
    expected = textbook_payment(amount, rate, term)
    assert annuity_payment(amount, rate, term) == expected
    # a tiny loan over many months at a high rate can have a rounded payment that does not cover
    # the first month's interest; the schedule then pays the interest only (never lets the balance
    # grow), so the level payment is checked where it amortises
    assume(expected > (amount * rate / 12).quantize(D("0.01"), rounding=ROUND_HALF_EVEN))
    schedule = build_schedule(amount, rate, term, "equal_instalment")
    # every instalment before the last is the level payment, except that on a tiny, long loan the
    # payment's rounding surplus (compounded) can repay it early: that row clears the balance and
    # the rows after it are zero (regression: 100.00 at 32.4% over 120 months)
    assert all(row.payment == expected or row.balance == 0 for row in schedule.rows[:-1])
    # the last instalment only absorbs rounding: of the payment and of the interest, half a cent
    # each per month, compounded, plus its own cent
    r = rate / 12
    compounded = D(term) if r == 0 else ((1 + r) ** term - 1) / r
    assert abs(schedule.rows[-1].payment - expected) <= D("0.01") * compounded + D("0.01")


@settings(max_examples=200, deadline=None)
@given(amounts, rates, terms)
def test_equal_principal_interest_falls_every_month(amount: Decimal, rate: Decimal, term: int) -> None:
    schedule = build_schedule(amount, rate, term, "equal_principal")
    interests = [row.interest for row in schedule.rows]
    assert interests == sorted(interests, reverse=True)


def test_one_to_decimal_refuses_what_validation_reports() -> None:
    """Issue 21: two to_decimal had opposite contracts on bad input (one raised, one returned None)
    and disagreed on "1_000". There is one; validation parses caller input with its own stricter
    rules (engine.policy.inputs.parse_decimal) and reports a refusal as a field violation."""
    from engine.finance import to_decimal
    from engine.policy.inputs import parse_decimal

    for bad in ("1_000", "", "abc", "NaN", "Infinity"):
        with pytest.raises(ValueError):
            to_decimal(bad)
        assert parse_decimal(bad)[0] is None
    with pytest.raises(TypeError):
        to_decimal(True)  # type: ignore[arg-type]
    assert to_decimal(" 12.50 ") == Decimal("12.50") and str(to_decimal(0.1)) == "0.1"


def test_a_booked_schedule_carries_its_own_rows_and_due_dates_whatever_was_booked_before() -> None:
    rows = build_schedule(Decimal(10000), Decimal("0.12"), 3, "equal_instalment").rows
    same_rows = build_schedule(
        Decimal(10000), Decimal("0.12"), 3, "equal_instalment"
    ).rows  # equal, not the same
    other = build_schedule(Decimal(20000), Decimal("0.12"), 3, "equal_instalment").rows
    march, april = ("2026-03-15", "2026-04-15", "2026-05-15"), ("2026-04-15", "2026-05-15", "2026-06-15")
    first = dated_schedule(rows, march)
    assert [r.due_date for r in first] == list(march) and [r.payment for r in first] == [
        r.payment for r in rows
    ]
    assert dated_schedule(rows, march) is first  # a decision on the same day at the same terms reuses it
    assert [r.due_date for r in dated_schedule(rows, april)] == list(april)
    assert [r.due_date for r in dated_schedule(same_rows, april)] == list(april)
    assert [r.balance for r in dated_schedule(other, march)] == [r.balance for r in other]
