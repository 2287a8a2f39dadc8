"""Static analysis of a decision table when the policy loads: gaps (with an example input no row
matches), overlaps under hit policy unique, rows shadowed under first, rows that can never match.

Numeric, enum and boolean inputs with literal cells are analysed exactly: every literal cuts the
input's range into pieces on which each cell is constant, and each combination of pieces is tried
with one representative value (an integer input's pieces hold integers only).

Near-linear in rows: each cell becomes a bitset over its column's representatives (by bisection on
the sorted cuts), transposed once into, per representative, the bitset of rows whose cell holds;
a combination's matching rows are then one AND per column, not one test per row."""

from __future__ import annotations

import bisect
import itertools
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from engine.errors import DiagnosticSink, Location
from engine.expr.types import Type

Test = tuple[Any, ...]  # ("any",) ("opaque",) ("cmp", op, value) ("and"|"or", tests) ("not", test)
MAX_COMBINATIONS = 50_000
_ANY = object()  # the representative of an input every row ignores
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class Column:
    """A table input as the analysis sees it: its type and, for a declared numeric input, its bounds."""

    name: str
    type: Type
    lo: Any = None
    hi: Any = None
    optional: bool = False  # it can be none (an optional input is missing): then only `-` cells match


@dataclass(frozen=True)
class Findings:
    gap: dict[str, Any] | None  # an input (by column name) no row matches
    overlaps: list[tuple[int, int, dict[str, Any]]]  # rows a < b both matching the example
    shadowed: list[tuple[int, list[int]]]  # row, the earlier rows that take every input it matches
    never: list[int]  # rows that match no input at all


def holds(test: Test, x: Any) -> bool:
    kind = test[0]
    if kind == "any" or x is _ANY:
        return True
    if kind == "cmp":
        return _OPS[test[1]](x, test[2])
    if kind == "and":
        return all(holds(t, x) for t in test[1])
    if kind == "or":
        return any(holds(t, x) for t in test[1])
    if kind == "not":
        return not holds(test[1], x)
    raise ValueError(f"cannot decide {test!r}")


def _literals(test: Test) -> list[Any]:
    kind = test[0]
    if kind == "cmp":
        return [test[2]]
    if kind in ("and", "or"):
        return [v for t in test[1] for v in _literals(t)]
    if kind == "not":
        return _literals(test[1])
    return []


def _opaque(test: Test) -> bool:
    kind = test[0]
    if kind == "opaque":
        return True
    if kind in ("and", "or"):
        return any(_opaque(t) for t in test[1])
    if kind == "not":
        return _opaque(test[1])
    return False


def representatives(column: Column, tests: list[Test]) -> list[Any] | None:
    """One value per piece of the input's range; None when the column cannot be analysed."""
    if all(t[0] == "any" for t in tests):
        return [_ANY]
    if any(_opaque(t) for t in tests):
        return None
    kind = column.type.kind
    if kind == "enum":
        return list(column.type.values)
    if kind == "boolean":
        return [False, True]
    if not column.type.numeric:
        return None
    integer = kind == "integer"
    cuts = {
        Decimal(v)
        for t in tests
        for v in _literals(t)
        if isinstance(v, (int, Decimal)) and not isinstance(v, bool)
    }
    cuts |= {Decimal(v) for v in (column.lo, column.hi) if v is not None}
    ordered = sorted(cuts)
    reps: list[Decimal] = []
    if not ordered:
        reps.append(Decimal(0))
    else:
        reps.append(Decimal(math.ceil(ordered[0]) - 1) if integer else ordered[0] - 1)
        for a, b in itertools.pairwise(ordered):
            reps.append(a)
            mid = Decimal(math.floor(a) + 1) if integer else (a + b) / 2
            if mid < b:
                reps.append(mid)
        reps.append(ordered[-1])
        reps.append(Decimal(math.floor(ordered[-1]) + 1) if integer else ordered[-1] + 1)
    lo, hi = column.lo, column.hi
    out: list[Any] = []
    seen: set[Any] = set()
    for r in reps:
        if (
            (integer and r != r.to_integral_value())
            or (lo is not None and r < lo)
            or (hi is not None and r > hi)
        ):
            continue
        value: Any = int(r) if integer else r
        if value not in seen:
            seen.add(value)
            out.append(value)
    return out


def analyse(columns: list[Column], rows: list[tuple[int, list[Test]]], hit: str) -> Findings | None:
    """What the rows cover; None when an input or a cell cannot be analysed (or too many pieces)."""
    reps = [representatives(c, [tests[j] for _, tests in rows]) for j, c in enumerate(columns)]
    if any(r is None for r in reps) or math.prod(len(r) for r in reps if r) > MAX_COMBINATIONS:
        return None
    numbers = [n for n, _ in rows]
    # Per column (those with representatives), per representative: the bitset of row positions.
    matching = [
        _rows_holding(r, [tests[j] for _, tests in rows]) for j, r in enumerate(reps) if r is not None
    ]
    every = (1 << len(rows)) - 1
    gap: dict[str, Any] | None = None
    overlaps: dict[tuple[int, int], dict[str, Any]] = {}
    first_for: dict[int, set[int]] = {n: set() for n in numbers}
    shown = [r for r in reps if r is not None]
    for combo in itertools.product(*(range(len(r)) for r in shown)):
        bits = every
        for by_rep, k in zip(matching, combo, strict=True):
            bits &= by_rep[k]
            if not bits:
                break
        values = [r[k] for r, k in zip(shown, combo, strict=True)]
        example = {c.name: x for c, x in zip(columns, values, strict=True) if x is not _ANY}
        if not bits:
            gap = gap or example
            continue
        hits = [numbers[p] for p in _positions(bits)]
        if hit == "unique":
            for a, b in itertools.combinations(hits, 2):
                overlaps.setdefault((a, b), example)
        for n in hits:
            first_for[n].add(hits[0])
    never = [n for n, firsts in first_for.items() if not firsts]
    by_number = dict(rows)
    shadowed = [
        (n, sorted(firsts))
        for n, firsts in first_for.items()
        if firsts
        and n not in firsts
        and hit == "first"
        and not _fires_when_missing(columns, by_number, n, firsts)
    ]
    return Findings(gap, [(a, b, ex) for (a, b), ex in overlaps.items()], shadowed, never)


def _fires_when_missing(columns: list[Column], rows: dict[int, list[Test]], n: int, firsts: set[int]) -> bool:
    """Row `n` takes inputs the earlier rows cannot: it ignores (`-`) an input that can be missing and
    that some earlier row tests (a test on a missing value never holds)."""
    return any(
        column.optional and rows[n][j][0] == "any" and any(rows[f][j][0] != "any" for f in firsts)
        for j, column in enumerate(columns)
    )


def _positions(bits: int) -> list[int]:
    """The set bit positions of `bits`, lowest first."""
    out = []
    while bits:
        low = bits & -bits
        out.append(low.bit_length() - 1)
        bits ^= low
    return out


def _rows_holding(reps: list[Any], cells: list[Test]) -> list[int]:
    """For each representative (by index), the bitset of the cells (row positions) that hold on it.

    Each cell's own bitset over the representatives is a few runs; the transposition toggles a row's
    bit where its runs start and end and sweeps once across the representatives."""
    ordered = _sorted_numbers(reps)
    memo: dict[str, int] = {}
    toggles = [0] * (len(reps) + 1)
    for position, test in enumerate(cells):
        key = repr(test)
        mask = memo.get(key)
        if mask is None:
            mask = memo[key] = _mask(test, reps, ordered)
        row = 1 << position
        for edge in _positions(mask ^ (mask << 1)):  # where a run starts or ends
            toggles[edge] ^= row
    out: list[int] = []
    current = 0
    for k in range(len(reps)):
        current ^= toggles[k]
        out.append(current)
    return out


def _sorted_numbers(reps: list[Any]) -> bool:
    return all(isinstance(r, (int, Decimal)) and not isinstance(r, bool) for r in reps) and all(
        a < b for a, b in itertools.pairwise(reps)
    )


def _mask(test: Test, reps: list[Any], ordered: bool) -> int:
    """The bitset of the representatives on which `test` holds (bisection when they are sorted numbers)."""
    full = (1 << len(reps)) - 1
    kind = test[0]
    if kind == "any" or (len(reps) == 1 and reps[0] is _ANY):
        return full
    if kind == "and":
        mask = full
        for t in test[1]:
            mask &= _mask(t, reps, ordered)
        return mask
    if kind == "or":
        mask = 0
        for t in test[1]:
            mask |= _mask(t, reps, ordered)
        return mask
    if kind == "not":
        return full ^ _mask(test[1], reps, ordered)
    if kind == "cmp" and ordered and isinstance(test[2], (int, Decimal)) and not isinstance(test[2], bool):
        op, value = test[1], test[2]
        left, right = bisect.bisect_left(reps, value), bisect.bisect_right(reps, value)
        lo, hi = {
            "<": (0, left),
            "<=": (0, right),
            ">": (right, len(reps)),
            ">=": (left, len(reps)),
            "==": (left, right),
            "!=": (left, right),
        }[op]
        mask = ((1 << hi) - 1) ^ ((1 << lo) - 1)
        return full ^ mask if op == "!=" else mask
    return sum(1 << k for k, x in enumerate(reps) if holds(test, x))


def show(example: dict[str, Any]) -> str:
    def one(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        return repr(v) if isinstance(v, str) else str(v)

    return ", ".join(f"{k} = {one(v)}" for k, v in example.items()) or "any input"


def report(
    sink: DiagnosticSink,
    name: str,
    found: Findings,
    *,
    hit: str,
    complete: bool,
    defaults: bool,
    rows_at: Location,
    row_at: dict[int, Location],
) -> None:
    """Turn findings into located diagnostics (errors and warnings as the hit policy makes them)."""
    if found.gap is not None:
        message = f"decision table {name} has a gap: no row matches {show(found.gap)}"
        if complete:
            sink.error("TABLE_GAP", message + " (the table says complete: true)", rows_at)
        elif hit != "collect" and not defaults:
            sink.warning("TABLE_GAP", message + " (its outputs are none there)", rows_at)
    for a, b, example in found.overlaps:
        sink.error(
            "TABLE_OVERLAP",
            f"rows {a} and {b} of decision table {name} both match {show(example)} (hit policy unique)",
            row_at[b],
        )
    for n in found.never:
        sink.warning("UNREACHABLE_ROW", f"row {n} of decision table {name} matches no input", row_at[n])
    for n, earlier in found.shadowed:
        rows = ", ".join(map(str, earlier))
        sink.warning(
            "SHADOWED_ROW",
            f"row {n} of decision table {name} is never used: row(s) {rows} match every input it matches "
            "(hit policy first)",
            row_at[n],
        )
