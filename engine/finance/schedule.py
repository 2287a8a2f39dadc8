"""Repayment schedules for the three methods: equal instalment (等额本息), equal principal (等额本金)
and interest-only then principal (先息后本), exact to the cent in Decimal.

Conventions, shared by all methods:
- the monthly rate is `annual_rate / 12` (nominal annual rate, monthly compounding);
- each month's interest is the opening balance times the monthly rate, rounded to the cent;
- principal parts sum to the amount exactly: the last instalment absorbs every rounding difference,
  and no balance is ever negative (a principal part never exceeds the balance it repays).
"""

from __future__ import annotations

import decimal
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from functools import cached_property
from operator import is_
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from engine.decision import Instalment
from engine.finance.float_cents import floats
from engine.finance.money import CENT, money, rounding_mode, to_decimal

__all__ = [
    "EQUAL_INSTALMENT",
    "EQUAL_PRINCIPAL",
    "INTEREST_ONLY",
    "METHODS",
    "Schedule",
    "annuity_payment",
    "build_schedule",
    "dated_schedule",
    "schedule_sha256",
]

EQUAL_INSTALMENT: Final = "equal_instalment"
EQUAL_PRINCIPAL: Final = "equal_principal"
INTEREST_ONLY: Final = "interest_only"
METHODS: Final = (EQUAL_INSTALMENT, EQUAL_PRINCIPAL, INTEREST_ONLY)

ZERO: Final = Decimal("0.00")  # a principal part of nothing, still in cents
_PREC: Final = 50  # working precision: far beyond cents for any term and rate a policy can name


Row = tuple[int, Decimal, Decimal, Decimal, Decimal]  # period, payment, principal, interest, balance
# a schedule's PD-free lifetime figures (engine/finance/lifetime.py's _before_loss)
PresentValues = tuple[Decimal, Decimal, Decimal, Decimal, Decimal, Decimal, float]


@dataclass(frozen=True)
class Schedule:
    """A repayment plan: one row per month, with the totals an offer needs. Rows are kept as plain
    tuples and become `Instalment`s only when asked for (most candidate offers are never shown)."""

    amount: Decimal
    annual_rate: Decimal
    term_months: int
    method: str
    table: tuple[Row, ...] = field(repr=False)
    # Its lifetime figures that do not depend on the PD, by the economics and fees they were worked
    # at (engine/finance/lifetime.py): a cached schedule is priced again by every decision with the
    # same limit and rate.
    present_values: dict[tuple[str, ...], PresentValues] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    # the looser profit bound of a schedule whose present values are not worked out (lifetime.py's
    # profit_bound), by the same keys
    loose_bounds: dict[tuple[str, ...], Decimal] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @cached_property
    def rows(self) -> tuple[Instalment, ...]:
        return tuple(Instalment(*row) for row in self.table)

    # Cached: a schedule is shared (offers keep them in an LRU cache) and every candidate offer
    # reads its total interest; summing 36 rows each time cost more than the rest of the candidate.
    @cached_property
    def total_interest(self) -> Decimal:
        return sum((row[3] for row in self.table), ZERO)

    @property
    def first_payment(self) -> Decimal:
        return self.table[0][1]

    @property
    def max_payment(self) -> Decimal:
        """The largest instalment (the first for equal principal, the last for interest-only)."""
        return max(row[1] for row in self.table)

    @cached_property
    def payments(self) -> tuple[Decimal, ...]:
        return tuple(row[1] for row in self.table)

    @cached_property
    def openings(self) -> tuple[Decimal, ...]:
        """Each month's opening balance, its exposure at default: the amount, then the balance
        each month before leaves."""
        return (self.amount, *(row[4] for row in self.table[:-1]))

    @cached_property
    def opening_floats(self) -> npt.NDArray[np.float64] | None:
        """`openings` as a vector of floats, for the lifetime loss's fast path: one numpy dot product
        with the loss weights (engine/finance/float_cents.py) costs a third of a math.fsum over 36
        products, and the vector a third of the memory of a tuple of floats."""
        exposures = floats(self.openings)
        return None if exposures is None else np.array(exposures, dtype=np.float64)


def annuity_payment(
    amount: Decimal | int | str,
    annual_rate: Decimal | int | str,
    term_months: int,
    rounding: str = "half_even",
) -> Decimal:
    """The textbook equal-instalment payment P*r / (1 - (1+r)^-n), r = annual/12, rounded to the cent
    (P/n when the rate is zero)."""
    principal, rate = to_decimal(amount), to_decimal(annual_rate)
    with decimal.localcontext() as ctx:
        ctx.prec = _PREC
        r = rate / 12
        approx = principal / term_months if r == 0 else principal * r / (1 - (1 + r) ** -term_months)
        # 50 digits decide the cent unless the payment sits on (or within 1e-30 of) a half cent:
        # then exact rational arithmetic decides, so a true tie rounds as the policy says.
        off_tie = abs((approx * 200) - (approx * 200).to_integral_value()) > Decimal("1e-28")
        if off_tie:
            return money(approx, rounding)
        p, q = Fraction(principal), Fraction(rate) / 12
        exact = p / term_months if q == 0 else p * q / (1 - (1 + q) ** -term_months)
        return money(Decimal(exact.numerator) / Decimal(exact.denominator), rounding)


def build_schedule(
    amount: Decimal | int | str,
    annual_rate: Decimal | int | str,
    term_months: int,
    method: str,
    rounding: str = "half_even",
) -> Schedule:
    """The month-by-month schedule of a loan of `amount` (rounded to the cent) at the nominal
    `annual_rate` (a fraction, e.g. 0.12) over `term_months`, repaid by `method`."""
    principal = money(amount, rounding)
    rate = to_decimal(annual_rate)
    rounding_mode(rounding)  # refuse an unknown rounding name before doing any work
    if principal <= 0:
        raise ValueError(f"amount must be positive, got {principal}")
    if rate < 0:
        raise ValueError(f"annual_rate must not be negative, got {rate}")
    if isinstance(term_months, bool) or not isinstance(term_months, int) or term_months < 1:
        raise ValueError(f"term_months must be a positive integer, got {term_months!r}")
    if method == EQUAL_INSTALMENT:
        level = annuity_payment(principal, rate, term_months, rounding)
        parts = _rows(principal, rate, term_months, rounding, level=level)
    elif method == EQUAL_PRINCIPAL:
        with decimal.localcontext() as ctx:
            ctx.prec = _PREC
            share = money(principal / term_months, rounding)
        parts = _rows(principal, rate, term_months, rounding, share=share)
    elif method == INTEREST_ONLY:
        parts = _interest_only_rows(principal, rate, term_months, rounding)
    else:
        raise ValueError(f"unknown repayment method {method!r}; expected one of {', '.join(METHODS)}")
    return Schedule(principal, rate, term_months, method, parts)


def _rows(
    principal: Decimal,
    rate: Decimal,
    term_months: int,
    rounding: str,
    level: Decimal | None = None,
    share: Decimal | None = None,
) -> tuple[Row, ...]:
    """Walk the balance down month by month, paying `level` in total (equal instalment) or `share`
    of principal (equal principal) each month; the last month repays whatever balance is left."""
    rows: list[Row] = []
    balance = principal
    mode = rounding_mode(rounding)
    fixed_part = share if share is not None else ZERO
    with decimal.localcontext() as ctx:
        ctx.prec = _PREC
        monthly = rate / 12
        for period in range(1, term_months):
            interest = (balance * monthly).quantize(CENT, mode)  # positional: a keyword costs 2x
            part = fixed_part if level is None else level - interest
            # Clamp: rounding can make a planned part exceed the balance (tiny loans) or an
            # instalment fall below the interest; neither may push the balance below zero.
            if part < 0:
                part = ZERO
            elif part > balance:
                part = balance
            elif level is not None:  # part + interest, added back: the level payment itself (cents)
                balance -= part
                rows.append((period, level, part, interest, balance))
                continue
            balance -= part
            rows.append((period, part + interest, part, interest, balance))
        interest = (balance * monthly).quantize(CENT, mode)
        rows.append((term_months, balance + interest, balance, interest, ZERO))
    return tuple(rows)


def _interest_only_rows(
    principal: Decimal, rate: Decimal, term_months: int, rounding: str
) -> tuple[Row, ...]:
    """先息后本: the balance never moves, so every month's interest is the same cent-rounded figure."""
    with decimal.localcontext() as ctx:
        ctx.prec = _PREC
        interest = (principal * rate / 12).quantize(CENT, rounding_mode(rounding))
    rows: list[Row] = [(period, interest, ZERO, interest, principal) for period in range(1, term_months)]
    rows.append((term_months, principal + interest, principal, interest, ZERO))
    return tuple(rows)


class _ByIdentity:
    """Values worked out from immutable objects (schedule rows, due dates), kept by the objects'
    *identity*: hashing 36 rows of Decimals would cost most of what is saved. An entry holds the
    objects themselves, so their ids cannot be reused while it is cached; the oldest goes first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[int, ...], tuple[tuple[object, ...], Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, *keys: object) -> Any:
        # no lock to read: one C-level get of the OrderedDict, atomic under the GIL, while put()
        # holds the lock for its insert and evictions; a hit is checked object by object (C-level
        # is_, not a generator: booking reads this once an offer)
        hit = self._entries.get(tuple(map(id, keys)))
        if hit is not None and all(map(is_, hit[0], keys)):
            return hit[1]
        return None

    def put(self, keys: tuple[object, ...], value: Any) -> None:
        with self._lock:
            self._entries[tuple(map(id, keys))] = (keys, value)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


# Offers share their rows tuple with the offers stage's schedule cache, so a schedule's hash is kept
# per tuple identity; so are its dated rows, per rows and due dates (engine/finance/dates.py caches
# those): every decision of the day at the same limit and rate books the same dated schedule.
_hashes = _ByIdentity(512)
_dated = _ByIdentity(512)


def schedule_sha256(rows: Sequence[Instalment]) -> str:
    """The sha256 (hex) a decision record keeps of a full schedule instead of its rows: of the
    canonical JSON (engine.audit.canonical) of the rows as arrays
    `[[period, "payment", "principal", "interest", "balance"], ...]`, amounts as Decimal strings."""
    digest: str | None = _hashes.get(rows)
    if digest is not None:
        return digest
    table = [[r.period, str(r.payment), str(r.principal), str(r.interest), str(r.balance)] for r in rows]
    digest = hashlib.sha256(json.dumps(table, separators=(",", ":")).encode("ascii")).hexdigest()
    if isinstance(rows, tuple):  # a list could change under us: only immutable rows are cached
        _hashes.put((rows,), digest)
    return digest


def dated_schedule(rows: tuple[Instalment, ...], dates: tuple[str, ...]) -> tuple[Instalment, ...]:
    """`rows` with their due dates, one date a row."""
    dated: tuple[Instalment, ...] | None = _dated.get(rows, dates)
    if dated is None:
        dated = tuple(
            Instalment(row.period, row.payment, row.principal, row.interest, row.balance, day)
            for row, day in zip(rows, dates, strict=True)
        )
        _dated.put((rows, dates), dated)
    return dated
