"""Emit a typed expression tree as Python source: one plain expression with the semantics of the
closures of closure.py (a missing operand gives None, a comparison with one gives False, Decimal
arithmetic in closure.CONTEXT, int + int stays int), for the generated module of a policy.

One emitter per node kind (`ExprWriter.VALUE`, `ExprWriter.COND`): a new kind adds its method.
Names become `get('name')` reads with the name as a `repr` literal; strings, ints and booleans are
`repr` literals; a Decimal, a table or a rounding exponent is a module constant the writer binds.
Every operand is evaluated before its None check, as the closures do, so an operand that raises
raises here too. The one difference is the wording of an arithmetic trap or a missing table key:
the generated code raises the bare DecimalException/KeyError (`TRAPS`), and its caller re-runs the
closure, which raises the located PolicyRuntimeError.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable
from decimal import Decimal, DecimalException
from typing import Any, ClassVar

from engine.expr import types as t
from engine.expr.check import STRING_FUNCTIONS
from engine.expr.closure import CONTEXT, ROUNDING, days_between, member, months_between, years_between

__all__ = ["RUNTIME", "TRAPS", "ExprWriter", "can_raise"]

TRAPS = (DecimalException, KeyError)


def _total(values: list[Any], zero: int | Decimal) -> int | Decimal:
    """sum() over a list's values as the closures have it: None skipped, int + int stays int, any
    Decimal in CTX (a trap raises bare, like the other generated arithmetic)."""
    total = zero
    for v in values:
        if v is not None:
            total = total + v if type(total) is int and type(v) is int else CONTEXT.add(total, v)
    return total


def _extreme(pick: Callable[[list[Any]], Any], values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    return pick(present) if present else None


RUNTIME: dict[str, Any] = {
    "Decimal": Decimal,
    "CTX": CONTEXT,
    "TRAPS": TRAPS,
    "TOTAL": _total,
    "EXTREME": _extreme,
    "MEMBER": member,
    "YEARS": years_between,
    "MONTHS": months_between,
    "DAYS": days_between,
}
_DATES = {"years_between": "YEARS", "months_between": "MONTHS", "days_between": "DAYS"}
_CONTEXT_OP = {"+": "CTX.add", "-": "CTX.subtract", "*": "CTX.multiply", "/": "CTX.divide"}
_NEG = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}
_RAISES = (t.Arith, t.Call)  # node kinds whose evaluation can raise (traps, missing table keys)

Bind = Callable[[Any, str], str]  # (value, name prefix) -> the module-level name bound to it


class ExprWriter:
    """Python source of expressions of one policy. `bind` makes module constants (shared by the
    module's writers); `tables` are the policy's lookup tables; `rounding` its rounding mode.
    Names read become local variables of the function being written (`start` a function, emit its
    expressions, then `loads()` gives the lines that set them, in first-read order)."""

    VALUE: ClassVar[dict[type, str]] = {
        t.Lit: "lit",
        t.Name: "name",
        t.Neg: "neg",
        t.Arith: "arith",
        t.IfExp: "ifexp",
        t.Call: "call",
        t.Item: "item",
        t.Member: "member",
    }
    COND: ClassVar[dict[type, str]] = {
        t.Lit: "cond_lit",
        t.Not: "cond_not",
        t.BoolOp: "cond_boolop",
        t.Compare: "cond_compare",
        t.InList: "cond_in",
        t.Member: "cond_member",
    }

    def __init__(self, bind: Bind, tables: dict[str, Any] | None = None, rounding: str = "half_even"):
        self.bind = bind
        self.tables = tables or {}
        self.rounding = rounding
        self.temps = 0
        self.reads: dict[str, str] = {}  # fact name -> local variable, for the current function
        self.taken: set[str] = set()
        self.items: list[str] = []  # the loop variable of each list function being written, innermost last

    def start(self, taken: set[str] | frozenset[str] = frozenset()) -> None:
        """Begin a new function: no names read yet; `taken` are its other local names."""
        self.temps = 0
        self.reads = {}
        self.taken = set(taken) | _RESERVED

    def loads(self, get: str = "get") -> list[str]:
        """`var = get('name')` for every name the function's expressions read."""
        return [f"{var} = {get}({name!r})" for name, var in self.reads.items()]

    def temp(self) -> str:
        self.temps += 1
        return f"_{self.temps}"

    def operand(self, node: t.Node) -> tuple[str, str, bool]:
        """(text that evaluates `node` once, text of its value afterwards, whether it may be None)."""
        if isinstance(node, t.Lit):
            text = self.literal(node.value)
            return text, text, node.value is None
        if isinstance(node, t.Name) and node.type != t.BOOLEAN:
            var = self.name(node)
            return var, var, True
        x = self.temp()
        return f"({x} := {self.value(node)})", x, True

    # ---- values ---------------------------------------------------------------------------------

    def value(self, node: t.Node) -> str:
        """Source of an expression whose value is the closure's value of `node`."""
        if isinstance(node, (t.Not, t.BoolOp, t.Compare, t.InList)):
            return self.cond(node, False)
        method = self.VALUE.get(type(node))
        if method is None:
            raise TypeError(f"cannot emit {type(node).__name__} as a value")  # the checker guarantees
        text: str = getattr(self, method)(node)
        return text

    def lit(self, node: t.Lit) -> str:
        return self.literal(node.value)

    def literal(self, value: Any) -> str:
        if value is None or isinstance(value, bool) or type(value) is int or type(value) is str:
            return repr(value)
        if isinstance(value, Decimal):
            return self.bind(value, "D")
        return self.bind(value, "C")

    def name(self, node: t.Name) -> str:
        if node.name not in self.reads:
            self.reads[node.name] = _identifier(node.name, self.taken)
        return self.reads[node.name]

    def neg(self, node: t.Neg) -> str:
        assign, x, maybe = self.operand(node.operand)
        return f"(None if {assign} is None else -{x})" if maybe else f"-{assign}"

    def missing(self, operands: list[tuple[str, str, bool]], raises: bool) -> str:
        """A test that evaluates every operand in order and is true when one is None; every operand
        runs even after a None if a later one can raise (as the closures, which evaluate all first)."""
        tests = [f"{assign} is None" for assign, _, maybe in operands if maybe]
        if raises and len(tests) > 1:
            return " | ".join(f"({test})" for test in tests)
        return " or ".join(tests)

    def item(self, node: t.Item) -> str:
        var = self.items[-1]
        return f"{var}.get({node.field!r})" if node.field else var

    def member(self, node: t.Member) -> str:
        operands = [self.operand(node.operand), self.operand(node.collection)]
        missing = self.missing(operands, can_raise(node.collection))
        test = f"MEMBER({operands[0][1]}, {operands[1][1]}, {node.negated})"
        return f"(None if {missing} else {test})" if missing else test

    def cond_member(self, node: t.Member, neg: bool) -> str:
        return f"({self.member(node)} is {not neg})"

    def arith(self, node: t.Arith) -> str:
        left, right = self.operand(node.left), self.operand(node.right)
        missing = self.missing([left, right], can_raise(node.right))
        a, b = left[1], right[1]
        if node.type == t.STRING:  # text + text
            return f"(None if {missing} else {a} + {b})"
        result = f"{_CONTEXT_OP[node.op]}({self.exact(a, node.left)}, {self.exact(b, node.right)})"
        if not _always_decimal(node):
            ints = [f"isinstance({x}, int)" for x, n in ((a, node.left), (b, node.right)) if not _is_int(n)]
            plain = f"{a} {node.op} {b}"
            result = f"{plain} if {' and '.join(ints)} else {result}" if ints else plain
        return f"(None if {missing} else {result})" if missing else f"({result})"

    def exact(self, text: str, node: t.Node) -> str:
        """An operand of a CTX operation: an int constant as the Decimal CTX converts it to (the same
        number, exactly), made once at load instead of on every call."""
        if isinstance(node, t.Lit) and type(node.value) is int:
            return self.literal(Decimal(node.value))
        return text

    def ifexp(self, node: t.IfExp) -> str:
        test = self.cond(node.test, False)
        return f"({self.value(node.body)} if {test} else {self.value(node.orelse)})"

    def list_call(self, node: t.Call) -> str:
        """len/count/any/all/sum/min/max over a list, as a generator over its items (None when the
        list is missing; a predicate counts an item only when it holds)."""
        assign, xs, maybe = self.operand(node.args[0])
        func = node.func
        if len(node.args) == 1 and func in ("len", "count"):
            body = f"len({xs})"
        else:
            self.temps += 1
            var = f"_it{self.temps}"
            self.items.append(var)
            try:
                if len(node.args) == 1:
                    each = f"({var} is True)" if func in ("any", "all") else var
                elif func in ("count", "any", "all"):
                    each = self.cond(node.args[1], False)
                else:
                    each = self.value(node.args[1])
            finally:
                self.items.pop()
            if func == "count":
                body = f"sum(1 for {var} in {xs} if {each})"
            elif func in ("any", "all"):
                body = f"{func}({each} for {var} in {xs})"
            elif func == "sum":
                zero = "0" if node.type == t.INTEGER else self.literal(Decimal(0))
                body = f"TOTAL([{each} for {var} in {xs}], {zero})"
            else:
                body = f"EXTREME({func}, [{each} for {var} in {xs}])"
        return f"(None if {assign} is None else {body})" if maybe else body

    def call(self, node: t.Call) -> str:
        if node.args and node.args[0].type.kind == "list":
            return self.list_call(node)
        args = [a for a in node.args if not isinstance(a, t.TableRef)]
        if node.func in _DATES or node.func in STRING_FUNCTIONS:
            operands = [self.operand(a) for a in args]
            missing = self.missing(operands, True)
            vals = [value for _, value, _ in operands]
            if node.func in _DATES:
                result = f"{_DATES[node.func]}({vals[0]}, {vals[1]})"
            elif node.func in ("lower", "upper"):
                result = f"{vals[0]}.{node.func}()"
            elif node.func == "contains":
                result = f"({vals[1]} in {vals[0]})"
            else:
                result = f"{vals[0]}.{node.func}({vals[1]})"
            return f"(None if {missing} else {result})" if missing else result
        if node.func == "coalesce":
            parts: list[str] = []
            for arg in args:
                assign, x, maybe = self.operand(arg)
                if not maybe:
                    return "(" + " ".join([*parts, assign]) + ")"
                parts.append(f"{x} if {assign} is not None else")
            return "(" + " ".join([*parts, "None"]) + ")"
        if node.func == "lookup":
            table_ref = node.args[0]
            assert isinstance(table_ref, t.TableRef)  # the checker guarantees
            table = self.bind(self.tables[table_ref.name], "T")
            assign, k, maybe = self.operand(args[0])
            return f"(None if {assign} is None else {table}[{k}])" if maybe else f"{table}[{assign}]"
        if node.func in ("min", "max"):
            operands = [self.operand(a) for a in args]
            missing = self.missing(operands, True)
            result = f"{node.func}(({''.join(f'{x}, ' for _, x, _ in operands)}))"
            if not missing:
                return f"{node.func}(({''.join(f'{a}, ' for a, _, _ in operands)}))"
            return f"(None if {missing} else {result})"
        assign, x, maybe = self.operand(args[0])
        if node.func == "abs":
            return f"(None if {assign} is None else abs({x}))" if maybe else f"abs({assign})"
        if node.func != "round":
            raise TypeError(f"cannot emit a call of {node.func}")  # the checker guarantees
        places = node.args[1].value if len(node.args) >= 2 else None  # type: ignore[attr-defined]
        exp = self.bind(Decimal(1).scaleb(-int(places)) if places is not None else Decimal(1), "D")
        mode = ROUNDING.get(self.rounding, ROUNDING["half_even"])
        if len(node.args) == 3:  # round(x, places, "mode"): the author's mode (a checked literal)
            mode = ROUNDING[node.args[2].value]  # type: ignore[attr-defined]
        quantize = f".quantize({exp}, rounding={mode!r}, context=CTX)"
        if not maybe:
            rounded = f"Decimal({assign}){quantize}"
            return rounded if places is not None else f"int({rounded})"
        rounded = f"Decimal({x}){quantize}"
        return f"(None if {assign} is None else {rounded if places is not None else f'int({rounded})'})"

    # ---- conditions -----------------------------------------------------------------------------

    def cond(self, node: t.Node, neg: bool) -> str:
        """Source of a bool: the closure's condition of `node` (negated if `neg`), missing -> False."""
        method = self.COND.get(type(node))
        if method is None:  # a boolean-valued name, call or conditional: compared with True/False
            inner = self.name(node) if isinstance(node, t.Name) else self.value(node)
            return f"({inner} is {not neg})"
        text: str = getattr(self, method)(node, neg)
        return text

    def cond_lit(self, node: t.Lit, neg: bool) -> str:
        return repr(bool(node.value) != neg)

    def cond_not(self, node: t.Not, neg: bool) -> str:
        return self.cond(node.operand, not neg)

    def cond_boolop(self, node: t.BoolOp, neg: bool) -> str:
        joiner = " and " if (node.op == "and") != neg else " or "
        return "(" + joiner.join(self.cond(item, neg) for item in node.items) + ")"

    def cond_compare(self, node: t.Compare, neg: bool) -> str:
        pairs = []
        for i, op in enumerate(node.ops):
            real = _NEG[op] if neg else op
            left, right = self.operand(node.operands[i]), self.operand(node.operands[i + 1])
            tests = [f"{assign} is not None" for assign, _, maybe in (left, right) if maybe]
            if can_raise(node.operands[i + 1]) and len(tests) > 1:
                tests = [" & ".join(f"({test})" for test in tests)]
            a = left[1] if left[2] else left[0]
            b = right[1] if right[2] else right[0]
            pairs.append("(" + " and ".join([*tests, f"{a} {real} {b}"]) + ")")
        return pairs[0] if len(pairs) == 1 else "(" + (" or " if neg else " and ").join(pairs) + ")"

    def cond_in(self, node: t.InList, neg: bool) -> str:
        assign, x, maybe = self.operand(node.operand)
        inside = neg == node.negated
        values = "(" + "".join(f"{self.literal(v)}, " for v in node.values) + ")"
        test = "in" if inside else "not in"
        if not maybe:
            return f"({assign} {test} {values})"
        return f"({assign} is not None and {x} {test} {values})"


_RESERVED = {
    "fact", "get", "fired", "lines", "local", "chosen", "entry", "outputs", "present", "more", "row",
    "date", "show", "Decimal", "CTX", "TRAPS", "NUM", "STR", "BOOL", "None", "True", "False",
}  # fmt: skip


def _identifier(name: str, taken: set[str]) -> str:
    """A local variable named after fact name `name`, unused in the function and never a name the
    generated code uses itself (those are reserved, numbered or start with `_`)."""
    clean = "".join(ch if ch.isascii() and ch.isalnum() else "_" for ch in name).strip("_") or "value"
    if clean[0].isdigit() or keyword.iskeyword(clean) or (clean[0].isupper() and clean[1:].isdigit()):
        clean = f"x_{clean}"
    if (clean[0] in "vo" and clean[1:].isdigit()) or clean.startswith("ROWS_"):
        clean = f"x_{clean}"
    out, n = clean, 1
    while out in taken:
        n += 1
        out = f"{clean}_{n}"
    taken.add(out)
    return out


def _is_int(node: t.Node) -> bool:
    return isinstance(node, t.Lit) and type(node.value) is int


def _is_decimal(node: t.Node) -> bool:
    return isinstance(node, t.Lit) and isinstance(node.value, Decimal)


def _always_decimal(node: t.Node) -> bool:
    """Whether arithmetic `node`, when not None, is a Decimal: a quotient, or an operand that is
    (a Decimal constant, or such arithmetic itself), so no int + int fast path can apply."""
    if not isinstance(node, t.Arith) or node.type == t.STRING:
        return _is_decimal(node)
    return node.op == "/" or any(_always_decimal(n) for n in (node.left, node.right))


def can_raise(node: t.Node) -> bool:
    """Whether evaluating `node` can raise (an arithmetic trap, a missing table key)."""
    return any(isinstance(n, _RAISES) for n in t.walk(node))
