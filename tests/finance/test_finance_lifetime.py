"""Lifetime PD curves and due-date conventions: the properties a credit-risk manager checks first."""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
from decimal import Decimal

import pytest

from engine.finance.dates import dated_as, dates_again, due_dates
from engine.finance.lifetime import CONSTANT_HAZARD, LifetimeTerms, marginal_pds

D = Decimal


@pytest.mark.parametrize(("pd", "term"), [("0.02", 36), ("0.3", 7), ("0", 12), ("1", 24)])
def test_constant_hazard_marginal_pds_add_up_to_the_lifetime_pd(pd: str, term: int) -> None:
    marginal = marginal_pds(D(pd), term, CONSTANT_HAZARD)
    lifetime = 1 - (1 - D(pd)) ** (D(term) / 12)
    assert len(marginal) == term and all(m >= 0 for m in marginal)
    assert abs(sum(marginal) - lifetime) < D("1e-25")
    if term >= 12:
        assert abs(sum(marginal[:12]) - D(pd)) < D("1e-25")  # the first year is the 12-month PD


def test_a_marginal_pd_table_scales_the_12_month_pd_and_repeats_its_last_multiplier() -> None:
    marginal = marginal_pds(D("0.024"), 5, [D("0.5"), D("1.5")])
    assert marginal == (D("0.001"), D("0.003"), D("0.003"), D("0.003"), D("0.003"))


def test_same_day_due_dates_fall_on_a_short_months_last_day() -> None:
    assert due_dates(dt.date(2026, 1, 31), 3, "same", 0) == ("2026-02-28", "2026-03-31", "2026-04-30")


def test_a_fixed_due_day_too_close_to_the_decision_moves_a_month_later() -> None:
    assert due_dates(dt.date(2026, 3, 28), 2, 5, 0) == ("2026-04-05", "2026-05-05")
    assert due_dates(dt.date(2026, 3, 28), 2, 5, 15) == ("2026-05-05", "2026-06-05")  # 8 days is too soon


@pytest.mark.parametrize(
    ("decided", "day", "min_days", "kept"),
    [
        ("2026-01-31", "same", 0, "same"),
        ("2026-01-30", 28, 0, "2026-02-28"),
        ("2026-03-28", 5, 15, "2026-05-05"),
    ],
)
def test_a_record_keeps_due_dates_in_one_word_and_gets_the_same_dates_back(
    decided: str, day: str | int, min_days: int, kept: str
) -> None:
    dates = due_dates(dt.date.fromisoformat(decided), 13, day, min_days)
    stamp = f"{decided}T23:59:59.000000+00:00"
    assert dated_as(stamp, dates) == kept
    assert dates_again(stamp, kept, 13) == dates


@pytest.mark.parametrize("pd", ["0.000001", "0.020660", "0.5", "0.999999", "0." + "9" * 400, "1e-40"])
def test_marginal_pds_follow_the_survival_curve_even_for_a_pd_a_float_cannot_hold(pd: str) -> None:
    """The monthly survival is found by Newton's method from a float's root; a PD so close to 1
    that the survival underflows a float takes the 50-digit power instead."""
    marginal = marginal_pds(D(pd), 24, CONSTANT_HAZARD)
    with decimal.localcontext() as ctx:
        ctx.prec = 50
        alive = [D(1)] + [(1 - D(pd)) ** (D(t) / 12) for t in range(1, 25)]
        assert all(abs(m - (alive[t] - alive[t + 1])) < D("1e-45") for t, m in enumerate(marginal))


def test_economics_at_another_pd_are_those_built_at_it() -> None:
    """A policy's economics are built once and moved to each decision's PD (at_pd): the same
    fields, cache keys, loss curve and sign check as economics built at that PD, whatever was worked
    out before."""
    policy = LifetimeTerms(D(0), D("0.45"), D("0.035"), D(300), D(8), (D("0.5"), D("1.5")))
    assert policy.keys[0] == "0" and policy.loss_never_negative
    for pd in (D("0.020660"), D("-0.1"), D("1")):
        moved, built = (
            policy.at_pd(pd),
            LifetimeTerms(pd, D("0.45"), D("0.035"), D(300), D(8), policy.pd_curve),
        )
        assert moved == built and moved.keys == built.keys
        assert moved.curve is built.curve  # the PD's, not the policy's
        assert moved.loss_never_negative is built.loss_never_negative is (pd >= 0)
    assert policy.pd_12m == 0 and policy.keys[0] == "0"  # the policy's own are left as they were


def test_the_sign_check_moved_to_another_pd_is_the_one_built_at_it() -> None:
    """at_pd carries the LGD's and the curve's part of loss_never_negative over when it can: a
    negative LGD, PD multiplier or PD on either side still says the loss can be negative."""
    curves: tuple[str | tuple[Decimal, ...], ...] = (
        CONSTANT_HAZARD,
        (D("0.5"), D("1.5")),
        (D("1"), D("-0.5")),
    )
    for lgd, curve, start, checked in itertools.product(
        (D("0.45"), D("-0.1")), curves, (D(0), D("-0.1")), (True, False)
    ):
        base = LifetimeTerms(start, lgd, D("0.035"), D(300), D(8), curve)
        if checked:  # worked out before the move, or not
            _ = base.loss_never_negative
        for pd in (D("0.02"), D(0), D("-0.1")):
            built = LifetimeTerms(pd, lgd, D("0.035"), D(300), D(8), curve)
            assert base.at_pd(pd).loss_never_negative is built.loss_never_negative, (lgd, curve, start, pd)
