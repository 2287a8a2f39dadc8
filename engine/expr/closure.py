"""Compile a typed expression tree into a Python closure `f(fact) -> value` with exact Decimal
semantics; conditions follow the rule IR's rule "a comparison with a missing value is False"."""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Iterator, Mapping
from decimal import (
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_FLOOR,
    ROUND_HALF_DOWN,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    ROUND_UP,
    Context,
    Decimal,
    DecimalException,
    DivisionByZero,
    InvalidOperation,
    Overflow,
)
from typing import Any

from engine.errors import Location, PolicyRuntimeError
from engine.expr import types as t
from engine.expr.check import ITEM

Fact = Mapping[str, Any]
Closure = Callable[[Fact], Any]

ROUNDING = {
    "half_even": ROUND_HALF_EVEN,
    "half_up": ROUND_HALF_UP,
    "half_down": ROUND_HALF_DOWN,
    "down": ROUND_DOWN,
    "up": ROUND_UP,
    "floor": ROUND_FLOOR,
    "ceiling": ROUND_CEILING,
}
CONTEXT = Context(prec=28, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow])
_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_NEG = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}


def _dec(x: Any) -> Decimal:
    return x if isinstance(x, Decimal) else Decimal(x)


def _exact(
    fail: Callable[[str], PolicyRuntimeError], op: Callable[[Decimal, Decimal], Decimal], a: Any, b: Any
) -> Decimal:
    """op(a, b) in the policy context; an overflow is the policy's runtime error, not a crash."""
    try:
        return op(_dec(a), _dec(b))
    except DecimalException as exc:
        raise fail(f"arithmetic {type(exc).__name__.lower()} on {a} and {b}") from None


class _ItemFact(Mapping[str, Any]):
    """The fact as a list function's predicate sees it: the current item under ITEM, the rest as is."""

    __slots__ = ("fact", "item")

    def __init__(self, fact: Fact, item: Any):
        self.fact, self.item = fact, item

    def __getitem__(self, key: str) -> Any:
        return self.item if key == ITEM else self.fact[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.item if key == ITEM else self.fact.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self.fact)

    def __len__(self) -> int:
        return len(self.fact)


def years_between(start: dt.date, end: dt.date) -> int:
    """Whole years from `start` to `end` (an age on a birthday counts it); negative if `end` is earlier."""
    if end < start:
        return -years_between(end, start)
    return end.year - start.year - ((end.month, end.day) < (start.month, start.day))


def months_between(start: dt.date, end: dt.date) -> int:
    """Whole calendar months from `start` to `end` (Jan 31 -> Feb 28 is 0); negative if `end` is earlier."""
    if end < start:
        return -months_between(end, start)
    return (end.year - start.year) * 12 + end.month - start.month - (end.day < start.day)


def days_between(start: dt.date, end: dt.date) -> int:
    return (end - start).days


_DATES: dict[str, Callable[[dt.date, dt.date], int]] = {
    "years_between": years_between,
    "months_between": months_between,
    "days_between": days_between,
}
_STRINGS: dict[str, Callable[..., Any]] = {
    "lower": str.lower,
    "upper": str.upper,
    "startswith": str.startswith,
    "endswith": str.endswith,
    "contains": operator.contains,
}


class _Compiler:
    def __init__(self, location: Location | None, source: str, rounding: str, tables: Mapping[str, Mapping]):
        self.location = location
        self.source = source
        self.rounding = ROUNDING.get(rounding, ROUND_HALF_EVEN)
        self.tables = tables

    def fail(self, message: str) -> PolicyRuntimeError:
        return PolicyRuntimeError(f"{message} in '{self.source}'", location=self.location)

    def value(self, node: t.Node) -> Closure:
        if isinstance(node, (t.Not, t.BoolOp, t.Compare, t.InList)):
            return self.cond(node, False)
        if isinstance(node, t.Lit):
            v = node.value
            return lambda f: v
        if isinstance(node, t.Name):
            name = node.name
            return lambda f: f.get(name)
        if isinstance(node, t.Item):
            key = node.field
            if not key:
                return lambda f: f.get(ITEM)
            return lambda f: None if (it := f.get(ITEM)) is None else it.get(key)
        if isinstance(node, t.Member):
            return self.member(node)
        if isinstance(node, t.Neg):
            inner = self.value(node.operand)
            return lambda f: None if (x := inner(f)) is None else -x
        if isinstance(node, t.Arith):
            return self.arith(node)
        if isinstance(node, t.IfExp):
            test, body, orelse = self.cond(node.test, False), self.value(node.body), self.value(node.orelse)
            return lambda f: body(f) if test(f) else orelse(f)
        if isinstance(node, t.Call):
            return self.call(node)
        raise TypeError(f"cannot compile {type(node).__name__} as a value")  # checker guarantees

    def member(self, node: t.Member) -> Closure:
        """`x in xs` on a list value: None when either side is missing (a rule's comparison with a
        missing value is False, negated or not: `cond` and the IR's hoisting both rely on it)."""
        operand, collection, negated = self.value(node.operand), self.value(node.collection), node.negated

        def run(f: Fact) -> bool | None:
            x, xs = operand(f), collection(f)
            if x is None or xs is None:
                return None
            return member(x, xs, negated)

        return run

    def arith(self, node: t.Arith) -> Closure:
        left, right = self.value(node.left), self.value(node.right)
        op = node.op
        fail = self.fail
        if node.type == t.STRING:
            return lambda f: None if (a := left(f)) is None or (b := right(f)) is None else a + b

        def run(f: Fact) -> Any:
            a, b = left(f), right(f)
            if a is None or b is None:
                return None
            if op == "/":
                if b == 0:
                    raise fail("division by zero")
                return _exact(fail, CONTEXT.divide, a, b)
            if isinstance(a, int) and isinstance(b, int):
                return a + b if op == "+" else a - b if op == "-" else a * b
            return _exact(
                fail, CONTEXT.add if op == "+" else CONTEXT.subtract if op == "-" else CONTEXT.multiply, a, b
            )

        return run

    def call(self, node: t.Call) -> Closure:
        func = node.func
        if node.args and node.args[0].type.kind == "list":
            return self.list_call(node)
        args = [self.value(a) for a in node.args if not isinstance(a, t.TableRef)]
        if func in _DATES or func in _STRINGS:
            fn = _DATES.get(func) or _STRINGS[func]

            def apply(f: Fact) -> Any:
                values = [a(f) for a in args]
                return None if any(v is None for v in values) else fn(*values)

            return apply
        if func == "coalesce":

            def coalesce(f: Fact) -> Any:
                for a in args:
                    if (v := a(f)) is not None:
                        return v
                return None

            return coalesce
        if func == "lookup":
            table_name = node.args[0].name  # type: ignore[attr-defined]
            table = self.tables[table_name]
            key = args[0]
            fail = self.fail

            def lookup(f: Fact) -> Any:
                k = key(f)
                if k is None:
                    return None
                if k not in table:
                    raise fail(f"{k!r} is not a key of table '{table_name}'")
                return table[k]

            return lookup
        if func in ("min", "max"):
            pick = min if func == "min" else max

            def extreme(f: Fact) -> Any:
                vals = [a(f) for a in args]
                return None if any(v is None for v in vals) else pick(vals)

            return extreme
        if func == "abs":
            one = args[0]
            return lambda f: None if (x := one(f)) is None else abs(x)
        # round
        one, mode = args[0], self.rounding
        if len(node.args) == 3:  # the mode the author wrote; the checker allows only a known literal
            mode = ROUNDING[node.args[2].value]  # type: ignore[attr-defined]
        places = int(node.args[1].value) if len(node.args) >= 2 else None  # type: ignore[attr-defined]
        exp = Decimal(1).scaleb(-places) if places is not None else Decimal(1)

        def rnd(f: Fact) -> Any:
            x = one(f)
            if x is None:
                return None
            try:
                q = _dec(x).quantize(exp, rounding=mode, context=CONTEXT)
            except DecimalException:
                raise self.fail(f"{x} cannot be rounded to {exp} (too many digits)") from None
            return int(q) if places is None else q

        return rnd

    def list_call(self, node: t.Call) -> Closure:
        """len/count/any/all/sum/min/max over a list (None when the list is missing): a predicate
        counts an item only when it holds (missing is False); sum, min and max skip missing values."""
        func, collection = node.func, self.value(node.args[0])
        each: Closure | None = None
        if len(node.args) == 2:
            inner = node.args[1]
            each = self.cond(inner, False) if func in ("count", "any", "all") else self.value(inner)
        fail = self.fail
        zero: int | Decimal = 0 if node.type == t.INTEGER else Decimal(0)

        def run(f: Fact) -> Any:
            xs = collection(f)
            if xs is None:
                return None
            if func == "len":
                return len(xs)
            vals = list(xs) if each is None else [each(_ItemFact(f, x)) for x in xs]
            if func == "count":
                return len(vals) if each is None else sum(1 for v in vals if v is True)
            if func == "any":
                return any(v is True for v in vals)
            if func == "all":
                return all(v is True for v in vals)
            present = [v for v in vals if v is not None]
            if func == "sum":
                total = zero
                for v in present:
                    total = (
                        total + v
                        if isinstance(total, int) and isinstance(v, int)
                        else _exact(fail, CONTEXT.add, total, v)
                    )
                return total
            if not present:
                return None
            return min(present) if func == "min" else max(present)

        return run

    def cond(self, node: t.Node, neg: bool) -> Callable[[Fact], bool]:
        """Negation normal form, like the IR: a comparison with a missing operand is False either way."""
        if isinstance(node, t.Lit):
            c = bool(node.value) != neg
            return lambda f: c
        if isinstance(node, t.Not):
            return self.cond(node.operand, not neg)
        if isinstance(node, t.BoolOp):
            items = [self.cond(i, neg) for i in node.items]
            if (node.op == "and") != neg:
                return lambda f: all(i(f) for i in items)
            return lambda f: any(i(f) for i in items)
        if isinstance(node, t.Compare):
            pairs = []
            for i, op in enumerate(node.ops):
                fn = _CMP[_NEG[op] if neg else op]
                pairs.append((self.value(node.operands[i]), fn, self.value(node.operands[i + 1])))

            def pair(f: Fact, a: Closure, fn: Callable[[Any, Any], bool], b: Closure) -> bool:
                x, y = a(f), b(f)
                return x is not None and y is not None and fn(x, y)

            if neg:
                return lambda f: any(pair(f, *p) for p in pairs)
            return lambda f: all(pair(f, *p) for p in pairs)
        if isinstance(node, t.InList):
            operand, values = self.value(node.operand), node.values
            inside = neg == node.negated

            def member(f: Fact) -> bool:
                x = operand(f)
                if x is None:
                    return False
                return (x in values) if inside else all(x != v for v in values)

            return member
        if isinstance(node, t.Member):
            value = self.member(node)
            want_member = not neg
            return lambda f: (x := value(f)) is not None and x is want_member
        # a boolean-valued name, call or conditional: compared with True (or False when negated)
        inner = self.value(node) if not isinstance(node, t.Name) else (lambda f, n=node.name: f.get(n))
        want = not neg
        return lambda f: (x := inner(f)) is not None and x is want


def member(x: Any, xs: Any, negated: bool = False) -> bool:
    """`x in xs` (`not in` when `negated`) with the rule IR's equality: True is not 1, 1 equals 1.0."""
    return any((isinstance(x, bool) == isinstance(v, bool)) and x == v for v in xs) != negated


def compile_value(
    node: t.Node,
    *,
    location: Location | None = None,
    source: str = "",
    rounding: str = "half_even",
    tables: Mapping[str, Mapping] | None = None,
) -> Closure:
    """A closure computing the expression's value (None when an optional input it needs is missing)."""
    return _Compiler(location, source, rounding, tables or {}).value(node)


def compile_condition(
    node: t.Node,
    *,
    location: Location | None = None,
    source: str = "",
    rounding: str = "half_even",
    tables: Mapping[str, Mapping] | None = None,
) -> Callable[[Fact], bool]:
    """A closure deciding a boolean expression with the IR's semantics (missing -> False)."""
    return _Compiler(location, source, rounding, tables or {}).cond(node, False)
