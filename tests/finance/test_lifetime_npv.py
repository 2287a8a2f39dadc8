"""The lifetime figures an offer shows (expected loss, funding, operating cost, expected profit) are
worked from factored sums cached per PD and per schedule; here they are checked, to the cent, against
the month-by-month definition they replaced, kept below as the reference."""

from __future__ import annotations

import decimal
import random
from collections.abc import Sequence
from decimal import Decimal

from engine.finance import build_schedule, money
from engine.finance.lifetime import CONSTANT_HAZARD, Lifetime, LifetimeTerms, lifetime, revolving_lifetime
from engine.finance.money import ROUNDINGS
from engine.finance.schedule import METHODS, Schedule

D = Decimal
CASES = 3000


def month_by_month_marginal(pd_12m: Decimal, term: int, curve: str | Sequence[Decimal]) -> list[Decimal]:
    """m_t = S(t-1) - S(t), S(t) = (1 - PD12)^(t/12); or PD12 x w_t / 12, the last w repeating."""
    with decimal.localcontext() as ctx:
        ctx.prec = 50
        if isinstance(curve, str):
            alive = [D(1)] + [(1 - pd_12m) ** (D(t) / 12) for t in range(1, term + 1)]
            return [alive[t - 1] - alive[t] for t in range(1, term + 1)]
        return [pd_12m * curve[min(t, len(curve)) - 1] / 12 for t in range(1, term + 1)]


def month_by_month(
    schedule: Schedule, terms: LifetimeTerms, upfront_fee: Decimal, monthly_fee: Decimal, rounding: str
) -> Lifetime:
    """The definition: every month's flows discounted at the cost of funds and added up."""
    marginal = month_by_month_marginal(terms.pd_12m, schedule.term_months, terms.pd_curve)
    with decimal.localcontext() as ctx:
        ctx.prec = 50
        opening = schedule.amount
        loss = funding = operating = income = D(0)
        for t, ((_, _, _, interest, closing), pd_t) in enumerate(
            zip(schedule.table, marginal, strict=True), 1
        ):
            discount = (1 + terms.cost_of_funds / 12) ** -t
            loss += discount * pd_t * terms.lgd * opening
            funding += discount * opening * terms.cost_of_funds / 12
            operating += discount * terms.operating_per_month
            income += discount * (interest + monthly_fee)
            opening = closing
        operating += terms.operating_per_loan
        return Lifetime(
            round(sum(marginal, D(0)), 6),
            money(loss, rounding),
            money(funding, rounding),
            money(operating, rounding),
            money(upfront_fee + income - funding - operating - loss, rounding),
        )


def month_by_month_line(
    limit: Decimal,
    rate: Decimal,
    utilisation: Decimal,
    ccf: Decimal,
    horizon: int,
    terms: LifetimeTerms,
    rounding: str,
) -> tuple[Lifetime, Decimal]:
    marginal = month_by_month_marginal(terms.pd_12m, horizon, terms.pd_curve)
    with decimal.localcontext() as ctx:
        ctx.prec = 50
        drawn = limit * utilisation
        exposure = drawn + ccf * (limit - drawn)
        interest = drawn * rate / 12
        loss = funding = operating = income = D(0)
        for t, pd_t in enumerate(marginal, 1):
            discount = (1 + terms.cost_of_funds / 12) ** -t
            loss += discount * pd_t * terms.lgd * exposure
            funding += discount * drawn * terms.cost_of_funds / 12
            operating += discount * terms.operating_per_month
            income += discount * interest
        operating += terms.operating_per_loan
        figures = Lifetime(
            round(sum(marginal, D(0)), 6),
            money(loss, rounding),
            money(funding, rounding),
            money(operating, rounding),
            money(income - funding - operating - loss, rounding),
        )
        return figures, money(interest * horizon, rounding)


def _economics(rng: random.Random) -> LifetimeTerms:
    pd = rng.choice([D(0), D(1), D(rng.randint(1, 999_999)) / 1_000_000, D(rng.randint(1, 400)) / 1000])
    curve: str | tuple[Decimal, ...] = CONSTANT_HAZARD
    if rng.random() < 0.3:
        curve = tuple(D(rng.randint(0, 300)) / 100 for _ in range(rng.randint(1, 40)))
    return LifetimeTerms(
        pd_12m=pd,
        lgd=D(rng.randint(0, 100)) / 100,
        cost_of_funds=rng.choice([D(0), D(rng.randint(1, 1500)) / 10_000]),
        operating_per_loan=D(rng.randint(0, 100_000)) / 100,
        operating_per_month=D(rng.randint(0, 5_000)) / 100,
        pd_curve=curve,
    )


def test_expected_profit_equals_the_month_by_month_definition_to_the_cent() -> None:
    rng = random.Random(20261202)
    schedules: list[Schedule] = []
    for case in range(CASES):
        rounding = rng.choice(sorted(ROUNDINGS))
        if schedules and rng.random() < 0.3:  # a cached schedule priced again, at another PD
            schedule = rng.choice(schedules)
        else:
            amount = D(rng.randint(100, 50_000_000)) / 100
            rate = rng.choice([D(0), D(rng.randint(1, 3600)) / 10_000])
            schedule = build_schedule(amount, rate, rng.randint(1, 72), rng.choice(METHODS), rounding)
            schedules.append(schedule)
        terms = _economics(rng)
        upfront = D(rng.randint(0, 500_000)) / 100
        monthly = rng.choice([D(0), D(rng.randint(1, 10_000)) / 100])
        got = lifetime(schedule, terms, upfront, monthly, rounding)
        want = month_by_month(schedule, terms, upfront, monthly, rounding)
        assert got == want, (
            f"case {case}: {schedule.amount} at {schedule.annual_rate} {schedule.method}, {terms}"
        )


def test_a_credit_lines_profit_equals_the_month_by_month_definition_to_the_cent() -> None:
    rng = random.Random(20261203)
    for case in range(CASES // 3):
        rounding = rng.choice(sorted(ROUNDINGS))
        limit = D(rng.randint(1, 10_000)) * 100
        rate = D(rng.randint(0, 3600)) / 10_000
        utilisation, ccf = D(rng.randint(0, 100)) / 100, D(rng.randint(0, 100)) / 100
        horizon = rng.randint(1, 60)
        terms = _economics(rng)
        got = revolving_lifetime(limit, rate, utilisation, ccf, horizon, terms, rounding)
        want = month_by_month_line(limit, rate, utilisation, ccf, horizon, terms, rounding)
        assert got == want, f"case {case}: line of {limit} at {rate} over {horizon}, {terms}"
