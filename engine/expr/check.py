"""Parse an expression with `ast`, refuse everything outside the safe subset, and type-check it
against a `Scope` of declared names; the result is a typed tree (types.py) or a list of located errors."""

from __future__ import annotations

import ast
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from engine.expr import types as t
from engine.expr.types import BOOLEAN, DECIMAL, INTEGER, STRING, Node, Type

LIST_FUNCTIONS = ("len", "any", "all", "count", "sum", "min", "max")
STRING_FUNCTIONS = ("lower", "upper", "startswith", "endswith", "contains")
DATE_FUNCTIONS = ("years_between", "months_between", "days_between")
FUNCTIONS = tuple(
    dict.fromkeys(
        (
            "min",
            "max",
            "abs",
            "round",
            "lookup",
            "coalesce",
            *LIST_FUNCTIONS,
            *STRING_FUNCTIONS,
            *DATE_FUNCTIONS,
        )
    )
)
# A leading dot (`.balance`, or `.` alone) names the current item inside a list function; the parser
# sees it as this letter (one character for one, so every column stays where the author wrote it).
ITEM = "\u019b"
# round()'s third argument; without it round() uses the policy's `rounding` (half_even by default)
ROUNDING_MODES = ("half_even", "half_up", "half_down", "down", "up", "floor", "ceiling")
_CONSTANT_NAMES = {"true": True, "false": False, "True": True, "False": False}
_CMP = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
LITERAL_LIMIT = 10**18
_ARITH = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
MAX_SOURCE = 4000


@dataclass(frozen=True)
class ExprError:
    """A problem in an expression; line is 1-based and col 0-based, both inside the source string."""

    code: str
    message: str
    line: int = 1
    col: int = 0


@dataclass(frozen=True)
class TableInfo:
    key: Type
    value: Type
    keys: frozenset[object]


@dataclass
class Scope:
    """What an expression may name: fields with their types, tables for lookup(), and names that exist
    but are not available here (e.g. `score.pd` before the score stage) with the reason why."""

    names: Mapping[str, Type]
    tables: Mapping[str, TableInfo] = field(default_factory=dict)
    unavailable: Mapping[str, str] = field(default_factory=dict)


class _Fail(Exception):
    pass


def item_syntax(text: str) -> str:
    """`text` with each leading dot (one not after a name, a digit, `)` or `]`, and not starting a
    number like `.5`) replaced by ITEM, outside string literals."""
    out: list[str] = []
    quote = ""
    escaped = False
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and not escaped:
                quote = ""
            escaped = not escaped and ch == "\\"
            out.append(ch)
            continue
        if ch in "'\"":
            quote = ch
        elif ch == ".":
            before = text[i - 1] if i else " "
            after = text[i + 1] if i + 1 < len(text) else " "
            if not (before.isalnum() or before in "_)]" or before == ITEM or after.isdigit()):
                ch = ITEM
        out.append(ch)
    return "".join(out)


def _shown(name: str) -> str:
    return name.replace(ITEM, ".")


def check(source: str, scope: Scope, want: Type | None = None) -> tuple[Node | None, list[ExprError]]:
    """Parse and type-check `source`; `want` BOOLEAN for conditions, DECIMAL for any number."""
    if len(source) > MAX_SOURCE:
        return None, [ExprError("BAD_EXPRESSION", f"expression longer than {MAX_SOURCE} characters")]
    text = item_syntax(source.strip("\n"))
    # a multi-line expression (YAML block scalar) parses inside parentheses; positions on line 1 shift by 1
    shift = 1 if "\n" in text else 0
    try:
        tree = ast.parse(f"({text}\n)" if shift else text, mode="eval")
    except SyntaxError as exc:
        line, col = exc.lineno or 1, max((exc.offset or 1) - 1 - (shift if exc.lineno == 1 else 0), 0)
        return None, [ExprError("BAD_EXPRESSION", f"syntax error: {exc.msg}", line, col)]
    checker = _Checker(f"({text}" if shift else text, scope, shift)
    try:
        node = checker.visit(tree.body)
    except _Fail:
        node = None
    if node is not None and want is not None and not checker.errors:
        ok = node.type == want if want.kind == "boolean" else (want.numeric and node.type.numeric)
        if not ok:
            checker.err("TYPE_MISMATCH", f"expected a {want} expression, got {node.type}", node)
    if checker.errors:
        return None, checker.errors
    return node, []


class _Checker:
    def __init__(self, source: str, scope: Scope, shift: int = 0):
        self.shift = shift
        self.lines = source.split("\n")
        self.scope = scope
        self.errors: list[ExprError] = []
        self.items: list[Type] = []  # the item types of the list functions being checked, innermost last

    # positions: ast gives UTF-8 byte offsets; diagnostics want characters
    def pos(self, node: ast.AST | Node) -> tuple[int, int]:
        if isinstance(node, Node):
            return node.line, node.col
        line = getattr(node, "lineno", 1)
        off = getattr(node, "col_offset", 0)
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        return line, len(text.encode()[:off].decode(errors="ignore")) - (self.shift if line == 1 else 0)

    def err(self, code: str, message: str, node: ast.AST | Node) -> None:
        line, col = self.pos(node)
        self.errors.append(ExprError(code, _shown(message), line, col))

    def fail(self, code: str, message: str, node: ast.AST | Node) -> _Fail:
        self.err(code, message, node)
        return _Fail()

    def visit(self, node: ast.AST) -> Node:
        method = getattr(self, f"v_{type(node).__name__}", None)
        if method is None:
            raise self.fail(
                "BAD_EXPRESSION", f"{_describe(node)} is not allowed in a policy expression", node
            )
        result: Node = method(node)
        return result

    def v_Constant(self, node: ast.Constant) -> Node:
        line, col = self.pos(node)
        value = node.value
        if isinstance(value, bool):
            return t.Lit(BOOLEAN, line, col, value)
        if isinstance(value, int):
            if abs(value) >= LITERAL_LIMIT:
                raise self.fail("BAD_VALUE", f"number {value} is too large: literals stay below 10^18", node)
            return t.Lit(INTEGER, line, col, value)
        if isinstance(value, float):
            text = ast.get_source_segment("\n".join(self.lines), node) or repr(value)
            try:
                dec = Decimal(text.replace("_", ""))
            except InvalidOperation:
                dec = Decimal(repr(value))
            # Bounded literals keep every formula's arithmetic finite: `x * 1e999999` would pass
            # validate and then overflow on every decision.
            if not dec.is_finite() or abs(dec) >= LITERAL_LIMIT or int(dec.as_tuple().exponent) < -28:
                raise self.fail(
                    "BAD_VALUE",
                    f"number {text} is out of range: literals stay below 10^18 (28 decimal places at most)",
                    node,
                )
            return t.Lit(DECIMAL, line, col, dec)
        if isinstance(value, str):
            return t.Lit(STRING, line, col, value)
        raise self.fail("BAD_EXPRESSION", f"literal {value!r} is not allowed", node)

    def v_Name(self, node: ast.Name) -> Node:
        if node.id in _CONSTANT_NAMES:
            line, col = self.pos(node)
            return t.Lit(BOOLEAN, line, col, _CONSTANT_NAMES[node.id])
        return self.name(node.id, node)

    def v_Attribute(self, node: ast.Attribute) -> Node:
        parts: list[str] = []
        cur: ast.expr = node
        while isinstance(cur, ast.Attribute):
            parts.append(cur.attr)
            cur = cur.value
        if not isinstance(cur, ast.Name):
            raise self.fail(
                "BAD_EXPRESSION", "attribute access is only allowed on declared input paths", node
            )
        parts.append(cur.id)
        return self.name(".".join(reversed(parts)), node)

    def name(self, name: str, node: ast.AST) -> Node:
        if "__" in name:
            raise self.fail("BAD_EXPRESSION", f"'{name}': dunder names are not allowed", node)
        line, col = self.pos(node)
        if name.startswith(ITEM):
            return self.item(name[1:], node, line, col)
        if name in self.scope.names:
            return t.Name(self.scope.names[name], line, col, name)
        if name in self.scope.tables:
            return t.TableRef(t.TABLE, line, col, name)
        if name in self.scope.unavailable:
            raise self.fail("UNKNOWN_NAME", f"'{name}' {self.scope.unavailable[name]}", node)
        known = [*self.scope.names, *self.scope.tables]
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise self.fail("UNKNOWN_NAME", f"unknown name '{name}'{hint}", node)

    def item(self, field_name: str, node: ast.AST, line: int, col: int) -> Node:
        shown = f".{field_name}"
        if not self.items:
            raise self.fail(
                "BAD_EXPRESSION",
                f"'{shown}' names a list item: it is only allowed in the second argument of "
                + ", ".join(f"{f}()" for f in LIST_FUNCTIONS if f != "len"),
                node,
            )
        item = self.items[-1]
        if not field_name:
            return t.Item(item, line, col, "")
        if item.kind != "object":
            raise self.fail(
                "BAD_EXPRESSION", f"'{shown}': the items of this list are {item}, not objects", node
            )
        kind = item.field(field_name)
        if kind is None:
            names = [name for name, _ in item.fields]
            close = difflib.get_close_matches(field_name, names, n=1, cutoff=0.6)
            hint = f"; did you mean '.{close[0]}'?" if close else f"; the items have {', '.join(names)}"
            raise self.fail("UNKNOWN_NAME", f"unknown item field '{shown}'{hint}", node)
        return t.Item(kind, line, col, field_name)

    def v_UnaryOp(self, node: ast.UnaryOp) -> Node:
        operand = self.visit(node.operand)
        line, col = self.pos(node)
        if isinstance(node.op, ast.Not):
            self.want_bool(operand, "operand of 'not'")
            return t.Not(BOOLEAN, line, col, operand)
        if isinstance(node.op, (ast.USub, ast.UAdd)):
            if not operand.type.numeric:
                raise self.fail("TYPE_MISMATCH", f"unary minus needs a number, got {operand.type}", node)
            if isinstance(node.op, ast.UAdd):
                return operand
            if isinstance(operand, t.Lit) and not isinstance(operand.value, (bool, str)):
                return t.Lit(operand.type, line, col, -operand.value)
            return t.Neg(operand.type, line, col, operand)
        raise self.fail("BAD_EXPRESSION", "bitwise operators are not allowed", node)

    def v_BoolOp(self, node: ast.BoolOp) -> Node:
        items = tuple(self.visit(v) for v in node.values)
        for item in items:
            self.want_bool(item, "operand of 'and'/'or'")
        line, col = self.pos(node)
        return t.BoolOp(BOOLEAN, line, col, "and" if isinstance(node.op, ast.And) else "or", items)

    def want_bool(self, node: Node, what: str) -> None:
        if node.type != BOOLEAN:
            self.err("TYPE_MISMATCH", f"{what} must be boolean, got {node.type}", node)

    def v_BinOp(self, node: ast.BinOp) -> Node:
        op = _ARITH.get(type(node.op))
        if op is None:
            raise self.fail("BAD_EXPRESSION", f"operator {type(node.op).__name__} is not allowed", node)
        left, right = self.visit(node.left), self.visit(node.right)
        if op == "+" and left.type.textual and right.type.textual:
            line, col = self.pos(node)
            return t.Arith(STRING, line, col, op, left, right)
        if not (left.type.numeric and right.type.numeric):
            raise self.fail("TYPE_MISMATCH", f"'{op}' needs numbers, got {left.type} and {right.type}", node)
        kind = INTEGER if op != "/" and left.type == INTEGER and right.type == INTEGER else DECIMAL
        line, col = self.pos(node)
        return t.Arith(kind, line, col, op, left, right)

    def v_Compare(self, node: ast.Compare) -> Node:
        line, col = self.pos(node)
        if len(node.ops) == 1 and isinstance(node.ops[0], (ast.In, ast.NotIn)):
            return self.in_list(node, line, col)
        for op in node.ops:
            if type(op) not in _CMP:
                raise self.fail("BAD_EXPRESSION", f"'{_describe(op)}' is not allowed here", node)
        operands = [self.visit(node.left), *(self.visit(c) for c in node.comparators)]
        ops: list[str] = []
        for i, op in enumerate(node.ops):
            name = _CMP[type(op)]
            a, b = operands[i], operands[i + 1]
            if not t.comparable(a.type, b.type):
                raise self.fail("TYPE_MISMATCH", mismatch(a, b), node)
            if name not in ("==", "!=") and a.type.kind in ("boolean", "string", "enum"):
                raise self.fail("TYPE_MISMATCH", f"'{name}' is not defined for {a.type} values", node)
            self.enum_literal(a, b)
            self.enum_literal(b, a)
            ops.append(name)
        return t.Compare(BOOLEAN, line, col, tuple(ops), tuple(operands))

    def enum_literal(self, a: Node, b: Node) -> None:
        if a.type.kind == "enum" and isinstance(b, t.Lit) and b.value not in a.type.values:
            name = a.name if isinstance(a, t.Name) else "value"
            close = difflib.get_close_matches(str(b.value), a.type.values, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            self.err(
                "BAD_ENUM_VALUE", f"{b.value!r} is not one of {name}'s values {list(a.type.values)}{hint}", b
            )

    def in_list(self, node: ast.Compare, line: int, col: int) -> Node:
        operand = self.visit(node.left)
        seq = node.comparators[0]
        negated = isinstance(node.ops[0], ast.NotIn)
        if not isinstance(seq, (ast.List, ast.Tuple, ast.Set)):
            collection = self.visit(seq)
            if collection.type.kind != "list" or collection.type.item is None:
                raise self.fail(
                    "BAD_EXPRESSION",
                    f"'in' needs a list (a literal like ['a', 'b'] or a list value), got {collection.type}",
                    seq,
                )
            if not t.comparable(operand.type, collection.type.item):
                raise self.fail(
                    "TYPE_MISMATCH", f"cannot look for {operand.type} in a {collection.type}", node
                )
            return t.Member(BOOLEAN, line, col, operand, collection, negated)
        values: list[t.Scalar] = []
        for elt in seq.elts:
            item = self.visit(elt)
            if not isinstance(item, t.Lit):
                raise self.fail("BAD_EXPRESSION", "a list after 'in' may hold literals only", elt)
            if not t.comparable(operand.type, item.type):
                raise self.fail("TYPE_MISMATCH", mismatch(operand, item), elt)
            self.enum_literal(operand, item)
            values.append(item.value)
        return t.InList(BOOLEAN, line, col, operand, tuple(values), negated)

    def v_IfExp(self, node: ast.IfExp) -> Node:
        test, body, orelse = self.visit(node.test), self.visit(node.body), self.visit(node.orelse)
        self.want_bool(test, "condition of 'if'")
        kind = t.join(body.type, orelse.type)
        if kind is None:
            raise self.fail("TYPE_MISMATCH", f"branches have types {body.type} and {orelse.type}", node)
        line, col = self.pos(node)
        return t.IfExp(kind, line, col, test, body, orelse)

    def v_Call(self, node: ast.Call) -> Node:
        if not isinstance(node.func, ast.Name):
            raise self.fail(
                "BAD_EXPRESSION", "only the functions " + ", ".join(FUNCTIONS) + " may be called", node
            )
        func = node.func.id
        if func not in FUNCTIONS:
            close = difflib.get_close_matches(func, FUNCTIONS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; allowed: {', '.join(FUNCTIONS)}"
            raise self.fail("UNKNOWN_FUNCTION", f"unknown function '{func}'{hint}", node)
        if node.keywords:
            raise self.fail("BAD_EXPRESSION", f"{func}() takes no keyword arguments", node)
        line, col = self.pos(node)
        if func in LIST_FUNCTIONS and node.args:
            first = self.visit(node.args[0])
            if first.type.kind == "list":
                return self.list_call(func, first, node, line, col)
            args = (first, *(self.visit(a) for a in node.args[1:]))
        else:
            args = tuple(self.visit(a) for a in node.args)
        kind = self.call_type(func, args, node)
        return t.Call(kind, line, col, func, args)

    def list_call(self, func: str, collection: Node, node: ast.Call, line: int, col: int) -> Node:
        """len/any/all/count/sum/min/max over a list: `count(xs)`, `count(xs, .dpd > 30)`,
        `sum(xs, .balance)`; the second argument is checked once, against the list's item type."""
        item = collection.type.item
        assert item is not None
        if len(node.args) > (1 if func == "len" else 2):
            raise self.fail(
                "BAD_ARGUMENTS", f"{func}() over a list takes the list and at most one more argument", node
            )
        each: Node | None = None
        if len(node.args) == 2:
            self.items.append(item)
            try:
                each = self.visit(node.args[1])
            finally:
                self.items.pop()
        value = each.type if each is not None else item
        if func in ("len", "count"):
            if each is not None:
                self.want_bool(each, f"the predicate of {func}()")
            return t.Call(INTEGER, line, col, func, (collection, *(() if each is None else (each,))))
        if func in ("any", "all"):
            if value != BOOLEAN:
                raise self.fail(
                    "TYPE_MISMATCH",
                    f"{func}() needs a predicate like {func}(xs, .dpd > 30), got {value} items",
                    node,
                )
            return t.Call(BOOLEAN, line, col, func, (collection, *(() if each is None else (each,))))
        if func == "sum" and not value.numeric:
            raise self.fail(
                "TYPE_MISMATCH", f"sum() needs numbers, like sum(xs, .balance); got {value}", node
            )
        if func in ("min", "max") and not (value.numeric or value == t.DATE):
            raise self.fail(
                "TYPE_MISMATCH", f"{func}() over a list needs numbers or dates; got {value}", node
            )
        return t.Call(value, line, col, func, (collection, *(() if each is None else (each,))))

    def call_type(self, func: str, args: tuple[Node, ...], node: ast.Call) -> Type:
        def arity(lo: int, hi: int | None) -> None:
            if len(args) < lo or (hi is not None and len(args) > hi):
                want = f"{lo}" if lo == hi else f"{lo}..{hi}" if hi else f"at least {lo}"
                raise self.fail("BAD_ARGUMENTS", f"{func}() takes {want} argument(s), got {len(args)}", node)

        if func in STRING_FUNCTIONS:
            arity(1, 1) if func in ("lower", "upper") else arity(2, 2)
            for a in args:
                if not a.type.textual:
                    raise self.fail("TYPE_MISMATCH", f"{func}() needs strings, got {a.type}", a)
            return STRING if func in ("lower", "upper") else BOOLEAN
        if func in DATE_FUNCTIONS:
            arity(2, 2)
            for a in args:
                if a.type != t.DATE:
                    raise self.fail("TYPE_MISMATCH", f"{func}() needs two dates (from, to), got {a.type}", a)
            return INTEGER
        if func in ("len", "any", "all", "count", "sum"):
            raise self.fail(
                "TYPE_MISMATCH",
                f"{func}() needs a list first, got {args[0].type if args else 'nothing'}",
                node,
            )
        if func in ("min", "max"):
            arity(2, None)
            if not all(a.type.numeric for a in args):
                raise self.fail("TYPE_MISMATCH", f"{func}() needs numbers", node)
            return INTEGER if all(a.type == INTEGER for a in args) else DECIMAL
        if func == "abs":
            arity(1, 1)
            if not args[0].type.numeric:
                raise self.fail("TYPE_MISMATCH", "abs() needs a number", node)
            return args[0].type
        if func == "round":  # round(x), round(x, places), round(x, places, "mode")
            arity(1, 3)
            if not args[0].type.numeric:
                raise self.fail("TYPE_MISMATCH", "round() needs a number", node)
            if len(args) == 1:
                return INTEGER
            places = args[1]
            if not (isinstance(places, t.Lit) and places.type == INTEGER and 0 <= int(places.value) <= 12):
                raise self.fail("BAD_ARGUMENTS", "round()'s places must be an integer literal 0..12", node)
            if len(args) == 3 and not (isinstance(args[2], t.Lit) and args[2].value in ROUNDING_MODES):
                close = difflib.get_close_matches(str(getattr(args[2], "value", "")), ROUNDING_MODES, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise self.fail(
                    "BAD_ARGUMENTS",
                    f"round()'s mode must be one of {', '.join(map(repr, ROUNDING_MODES))} in quotes{hint}",
                    args[2],
                )
            return DECIMAL
        if func == "coalesce":
            arity(2, None)
            kind: Type | None = args[0].type
            for a in args[1:]:
                kind = t.join(kind, a.type) if kind else None
            if kind is None:
                raise self.fail("TYPE_MISMATCH", "coalesce() arguments have incompatible types", node)
            return kind
        # lookup(table, key)
        arity(2, 2)
        table, key = args
        if not isinstance(table, t.TableRef):
            raise self.fail("BAD_ARGUMENTS", "lookup()'s first argument must be a table name", node)
        info = self.scope.tables[table.name]
        if not t.comparable(info.key, key.type):
            raise self.fail("TYPE_MISMATCH", f"table '{table.name}' has {info.key} keys, got {key.type}", key)
        if isinstance(key, t.Lit) and key.value not in info.keys:
            self.err("BAD_ARGUMENTS", f"{key.value!r} is not a key of table '{table.name}'", key)
        return info.value

    def v_List(self, node: ast.List) -> Node:
        raise self.fail("BAD_EXPRESSION", "a literal list is only allowed after 'in'", node)


def mismatch(a: Node, b: Node) -> str:
    """Two sides that cannot be compared: both named with their types, and the likely fix."""
    message = f"cannot compare {_side(a)} ({a.type}) with {_side(b)} ({b.type})"
    return message + "; " + (_fix(a, b) or _fix(b, a) or "both sides need the same type")


def _side(node: Node) -> str:
    if isinstance(node, t.Name):
        return node.name
    if isinstance(node, t.Lit):
        return repr(node.value) if isinstance(node.value, str) else str(node.value).lower()
    return "an expression"


def _fix(x: Node, y: Node) -> str | None:
    if x.type.numeric and isinstance(y, t.Lit) and isinstance(y.value, str):
        try:
            Decimal(y.value.strip())
        except InvalidOperation:
            return f"{_side(x)} is a number: compare it with a number, not a text"
        return f"write the number without quotes: {y.value.strip()}"
    if x.type.kind in ("string", "enum") and isinstance(y, t.Lit) and not isinstance(y.value, (str, bool)):
        return f"write the text in quotes: '{y.value}'"
    if x.type.kind == "boolean":
        return f"{_side(x)} is true or false: test it alone (or with `not`), or compare it with true or false"
    return None


def _describe(node: ast.AST) -> str:
    names = {
        "Subscript": "subscript",
        "Lambda": "lambda",
        "ListComp": "a comprehension",
        "GeneratorExp": "a comprehension",
        "DictComp": "a comprehension",
        "SetComp": "a comprehension",
        "Dict": "a dict",
        "JoinedStr": "an f-string",
        "NamedExpr": "':='",
        "Starred": "'*'",
        "Is": "is",
        "IsNot": "is not",
        "Await": "await",
        "Yield": "yield",
    }
    return names.get(type(node).__name__, type(node).__name__)
