"""Compile one decision table: type-check its inputs, cells and outputs against the policy's names,
lower every row to an IR rule, and describe its literal cells for the gap/overlap analysis."""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from engine.errors import Location
from engine.expr import BOOLEAN, DECIMAL, INTEGER, STRING, Scope, Type, check, enum_type
from engine.expr import types as t
from engine.expr.closure import compile_value
from engine.expr.lower import Lowered, lower_condition
from engine.expr.types import list_of
from engine.policy import schema as s
from engine.policy.builder import BROKEN, Builder, PathKey, _value_compiler, mentioned_names
from engine.policy.cells import Cell, CellError, Piece, parse_cell, render
from engine.policy.decision_table import DecisionTable, TableOutput, TableRow
from engine.policy.model import Formula, RuleStage
from engine.policy.table_analysis import Column, Test
from engine.rules import ir

IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BARE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$")
_ORDERING = ("<", "<=", ">", ">=")


class _Bad(Exception):
    """A cell that already reported its error."""


@dataclass
class Compiled:
    table: DecisionTable
    columns: list[Column]
    tests: list[tuple[int, list[Test]]]  # (row number, one test per input) for rows that compiled
    reads: set[str]  # every name the table's expressions read
    ok: bool  # no error inside the table: the analysis may run
    output_locations: dict[str, Location] = field(default_factory=dict)


def compile_table(
    b: Builder, name: str, spec: s.DecisionTableSpec, path: PathKey, scope: Scope, taken: set[str]
) -> Compiled:
    errors_before = len(b.sink.items)
    refs_before = len(b.refs)
    inputs: dict[str, Formula] = {}
    columns: list[Column] = []
    for iname, source in spec.inputs.items():
        ipath = (*path, "inputs", iname)
        same = isinstance(source, str) and source.strip() == iname  # `band: band` reads the name itself
        if not IDENT.match(iname) or (iname in taken and not same):
            b.sink.error(
                "NAME_CLASH" if IDENT.match(iname) else "BAD_VALUE",
                f"table input '{iname}' must be a plain name not used elsewhere in the policy",
                b.src.key_at(ipath),
            )
        f = b.formula(ipath, source, scope, None)
        if f is None:
            columns.append(Column(iname, Type("broken")))
            continue
        inputs[iname] = f
        decl = b.policy.inputs.get(str(source).strip()) if isinstance(source, str) else None
        optional = _may_be_missing(b, f.source, set())
        if decl is not None and f.type.numeric:
            columns.append(Column(iname, f.type, decl.min, decl.max, optional))
        else:
            columns.append(Column(iname, f.type, optional=optional))
    out_specs = _outputs(spec)
    out_locations: dict[str, Location] = {}
    for oname, _ in out_specs:
        opath = (*path, "outputs", oname) if isinstance(spec.outputs, dict) else (*path, "outputs")
        loc = b.src.key_at(opath)
        if isinstance(spec.outputs, list):
            loc = b.src.at((*path, "outputs", spec.outputs.index(oname)))
        out_locations[oname] = loc
        if not IDENT.match(oname):
            b.sink.error("BAD_VALUE", f"table output '{oname}' must be a plain name", loc)
        elif oname in spec.inputs:
            b.sink.error("NAME_CLASH", f"output '{oname}' has the same name as an input of table {name}", loc)
        elif oname in taken:
            b.sink.error("NAME_CLASH", f"output '{oname}' collides with a name the policy already uses", loc)
    local = Scope(
        {**scope.names, **{c.name: c.type for c in columns if c.type.kind != "broken"}},
        scope.tables,
        {**scope.unavailable, **{c.name: BROKEN for c in columns if c.type.kind == "broken"}},
    )
    # every name a bare word in a cell could be mistaken for, whatever order the plan compiles them in
    declared = frozenset({*taken, *local.names, *local.tables})
    row_loc = b.src.at((*path, "rows"))
    lowered = Lowered(compile_value=_value_compiler(row_loc, name, b.policy))
    rules: list[ir.Rule] = []
    rows: list[TableRow] = []
    tests: list[tuple[int, list[Test]]] = []
    kinds: dict[str, list[tuple[Type | None, Any, PathKey]]] = {o: [] for o, _ in out_specs}
    for i, raw in enumerate(spec.rows):
        rpath = (*path, "rows", i)
        cells = _row_cells(b, raw, rpath, i + 1, list(spec.inputs), [o for o, _ in out_specs])
        if cells is None:
            continue
        conds: list[t.Node] = []
        row_tests: list[Test] = []
        texts: list[str] = []
        bad = False
        for column in columns:
            cpath, raw_cell = cells[("in", column.name)]
            try:
                cell = parse_cell(raw_cell)
            except CellError as exc:
                b.sink.error("BAD_CELL", exc.message, b.src.expr_location(cpath, 1, exc.offset))
                bad = True
                continue
            if column.type.kind == "broken":
                continue
            left = t.Name(column.type, 1, 0, column.name)
            try:
                node, test = _cell(b, cpath, cell, left, local, declared)
            except _Bad:
                bad = True
                continue
            row_tests.append(test)
            if node is not None:
                conds.append(node)
                texts.append(f"{column.name} {_text(cell, node)}")
        fns, literal, sources, nodes = [], [], [], []
        for oname, _ in out_specs:
            cpath, raw_cell = cells[("out", oname)]
            got = _output(b, cpath, raw_cell, local, declared)
            if got is None:
                bad = True
                continue
            fn, kind, value, source, is_literal, out_node = got
            kinds[oname].append((kind, value, cpath))
            fns.append(fn)
            literal.append(is_literal)
            sources.append(source)
            nodes.append(out_node)
        if bad:
            continue
        cond = (
            conds[0] if len(conds) == 1 else t.BoolOp(BOOLEAN, 1, 0, "and", tuple(conds)) if conds else None
        )
        rule_id = f"row{i + 1}"
        lowered.compile_value = _value_compiler(b.src.at(rpath), name, b.policy)
        rules.append(ir.Rule(rule_id, lower_condition(cond, lowered) if cond else ir.Truth(True)))
        rows.append(
            TableRow(
                i + 1,
                rule_id,
                "; ".join(texts) or "any",
                tuple(fns),
                tuple(literal),
                tuple(sources),
                b.src.at(rpath),
                tuple(nodes),
            )
        )
        tests.append((i + 1, row_tests))
    outputs = tuple(
        _output_column(b, spec, path, oname, ospec, kinds[oname], out_locations) for oname, ospec in out_specs
    )
    ruleset = ir.RuleSet(
        f"{b.policy.name}@{b.sha256[:12]}/table/{name}", tuple(rules), tuple(sorted(lowered.fields))
    )
    stage = RuleStage(
        f"table/{name}",
        ruleset,
        {},
        dict(lowered.hoisted),
        {r.rule_id: r.location for r in rows},
        hoisted_nodes=dict(lowered.nodes),
    )
    if spec.hit == "priority" and not any(o.values for o in outputs):
        b.sink.error(
            "BAD_VALUE",
            "hit policy priority needs `values` on an output, listing its values from the highest priority",
            b.src.at((*path, "hit")),
        )
    table = DecisionTable(
        name,
        spec.hit,
        spec.aggregate,
        spec.complete,
        "input",
        inputs,
        outputs,
        tuple(rows),
        stage,
        b.src.key_at(path),
    )
    reads = {n for n, _ in b.refs[refs_before:]} - set(spec.inputs)
    ok = not any(d.is_error for d in b.sink.items[errors_before:]) and len(rows) == len(spec.rows)
    ok = ok and all(c.type.kind != "broken" for c in columns)
    return Compiled(table, columns, tests, reads, ok, out_locations)


def _outputs(spec: s.DecisionTableSpec) -> list[tuple[str, s.TableOutputSpec | None]]:
    if isinstance(spec.outputs, list):
        return [(o, None) for o in spec.outputs]
    return list(spec.outputs.items())


def _may_be_missing(b: Builder, source: str, seen: set[str]) -> bool:
    """Whether an expression can be none: it reads an optional input without a default, directly or
    through derived values."""
    for name, _, _ in mentioned_names(source):
        decl = b.policy.inputs.get(name)
        if decl is not None and not decl.required and decl.default is None:
            return True
        derived = b.policy.derived.get(name)
        if derived is not None and name not in seen:
            seen.add(name)
            if _may_be_missing(b, derived.source, seen):
                return True
    return False


def _row_cells(
    b: Builder, raw: Any, rpath: PathKey, number: int, inputs: list[str], outputs: list[str]
) -> dict[tuple[str, str], tuple[PathKey, Any]] | None:
    names = inputs + outputs
    keys = [("in", n) for n in inputs] + [("out", n) for n in outputs]
    shape = (
        f"the table has {len(inputs)} input(s) ({', '.join(inputs)}) "
        f"and {len(outputs)} output(s) ({', '.join(outputs)})"
    )
    if isinstance(raw, list):
        if len(raw) != len(names):
            code = "MISSING_CELL" if len(raw) < len(names) else "BAD_VALUE"
            b.sink.error(code, f"row {number} has {len(raw)} cell(s); {shape}", b.src.at(rpath))
            return None
        return {k: ((*rpath, j), raw[j]) for j, k in enumerate(keys)}
    if isinstance(raw, dict):
        ok = True
        for key in raw:
            if key not in names:
                b.sink.error(
                    "UNKNOWN_KEY",
                    f"row {number}: '{key}' is not an input or output; {shape}",
                    b.src.key_at((*rpath, key)),
                )
                ok = False
        for n in names:
            if n not in raw:
                b.sink.error("MISSING_CELL", f"row {number} has no cell for '{n}'", b.src.at(rpath))
                ok = False
        return {k: ((*rpath, k[1]), raw[k[1]]) for k in keys} if ok else None
    b.sink.error("WRONG_TYPE", f"row {number} must be a list of cells or a mapping", b.src.at(rpath))
    return None


def _check(
    b: Builder, path: PathKey, text: str, offset: int, scope: Scope, want: Type | None = None
) -> t.Node:
    node, errors = check(text, scope, want)
    for e in errors:
        if not e.message.endswith(BROKEN):
            b.sink.error(
                e.code, e.message, b.src.expr_location(path, e.line, offset + e.col if e.line == 1 else e.col)
            )
    if errors:
        for ref, line, col in mentioned_names(text):
            b.refs.append((ref, b.src.expr_location(path, line, offset + col)))
        raise _Bad
    assert node is not None
    for n in t.walk(node):
        if isinstance(n, t.Name):
            b.refs.append((n.name, b.src.expr_location(path, n.line, offset + n.col)))
    return node


def _value(
    b: Builder, path: PathKey, piece: Piece, left: t.Name, scope: Scope, declared: frozenset[str], op: str
) -> t.Node:
    """A bare word is text wherever text is meant (a cell's value, a list item, `=`/`!=`); a name is
    read only from an expression, e.g. `(green)` or after `<`; a word that is also a name is an error."""
    if piece.literal is not None:
        v = piece.literal
        kind = BOOLEAN if isinstance(v, bool) else INTEGER if isinstance(v, int) else DECIMAL
        return t.Lit(kind, 1, 0, v)
    if _is_word(piece.text) and op in ("==", "!="):
        _ambiguous(b, path, b.src.expr_location(path, 1, piece.offset), piece.text, declared)
        return t.Lit(STRING, 1, piece.offset, piece.text)
    if left.type.textual and _BARE.match(piece.text):
        return t.Lit(STRING, 1, piece.offset, piece.text)
    return _check(b, path, piece.text, piece.offset, scope)


def _is_word(text: str) -> bool:
    return bool(IDENT.match(text)) and text not in ("true", "false", "True", "False")


def _ambiguous(b: Builder, path: PathKey, where: Location, word: str, declared: frozenset[str]) -> None:
    """A bare word that is also a declared name is an error naming both readings; a cell quoted in the
    YAML ('green') says text, so it is not ambiguous."""
    node = b.src.nodes.get(tuple(path))
    if word in declared and getattr(node, "style", None) not in ("'", '"'):
        b.sink.error(
            "AMBIGUOUS_CELL",
            f"cell {word} could be the text '{word}' or the value named {word}: quote it ('{word}')"
            f" for the text, or write ({word}) for the value",
            where,
        )
        raise _Bad


def _compare(b: Builder, path: PathKey, op: str, left: t.Name, v: t.Node, piece: Piece) -> t.Node:
    where = b.src.expr_location(path, 1, piece.offset)
    if not t.comparable(left.type, v.type):
        b.sink.error(
            "TYPE_MISMATCH",
            f"cell compares input '{left.name}' ({left.type}) with {v.type} {piece.text or v}",
            where,
        )
        raise _Bad
    if op in _ORDERING and left.type.kind in ("boolean", "string", "enum"):
        b.sink.error("TYPE_MISMATCH", f"'{op}' is not defined for {left.type} input '{left.name}'", where)
        raise _Bad
    if left.type.kind == "enum" and isinstance(v, t.Lit) and v.value not in left.type.values:
        close = difflib.get_close_matches(str(v.value), left.type.values, n=1)
        b.sink.error(
            "BAD_ENUM_VALUE",
            f"{v.value!r} is not one of {left.name}'s values {list(left.type.values)}"
            + (f"; did you mean '{close[0]}'?" if close else ""),
            where,
        )
        raise _Bad
    return t.Compare(BOOLEAN, 1, 0, (op,), (left, v))


def _lit(node: t.Node) -> Any:
    return node.value if isinstance(node, t.Lit) else _OPAQUE


_OPAQUE = object()


def _cmp_test(op: str, node: t.Node) -> Test:
    value = _lit(node)
    return ("opaque",) if value is _OPAQUE else ("cmp", op, value)


def _cell(
    b: Builder, path: PathKey, cell: Cell, left: t.Name, scope: Scope, declared: frozenset[str]
) -> tuple[t.Node | None, Test]:
    if cell.kind == "any":
        return None, ("any",)
    if cell.kind == "cmp":
        piece = cell.pieces[0]
        v = _value(b, path, piece, left, scope, declared, cell.op)
        return _compare(b, path, cell.op, left, v, piece), _cmp_test(cell.op, v)
    if cell.kind == "range":
        if not left.type.numeric:
            where = b.src.expr_location(path, 1, 0)
            b.sink.error(
                "TYPE_MISMATCH", f"a range needs a number input; '{left.name}' is {left.type}", where
            )
            raise _Bad
        lo_op, hi_op = (">=" if cell.lo_closed else ">"), ("<=" if cell.hi_closed else "<")
        lo = _value(b, path, cell.pieces[0], left, scope, declared, lo_op)
        hi = _value(b, path, cell.pieces[1], left, scope, declared, hi_op)
        parts = (
            _compare(b, path, lo_op, left, lo, cell.pieces[0]),
            _compare(b, path, hi_op, left, hi, cell.pieces[1]),
        )
        return t.BoolOp(BOOLEAN, 1, 0, "and", parts), ("and", (_cmp_test(lo_op, lo), _cmp_test(hi_op, hi)))
    if cell.kind == "value":
        piece = cell.pieces[0]
        v = _value(b, path, piece, left, scope, declared, "==")
        if v.type == BOOLEAN and left.type != BOOLEAN:  # a full condition
            return v, ("opaque",)
        return _compare(b, path, "==", left, v, piece), _cmp_test("==", v)
    got = [_cell(b, path, item, left, scope, declared) for item in cell.items]
    if any(node is None for node, _ in got):
        if cell.kind == "not":
            b.sink.error("BAD_CELL", "not(...) of any value matches nothing", b.src.expr_location(path, 1, 0))
            raise _Bad
        return None, ("any",)
    nodes = tuple(node for node, _ in got if node is not None)
    either: t.Node = nodes[0] if len(nodes) == 1 else t.BoolOp(BOOLEAN, 1, 0, "or", nodes)
    test: Test = ("or", tuple(test for _, test in got))
    if cell.kind == "not":
        return t.Not(BOOLEAN, 1, 0, either), ("not", test)
    return either, test


def _text(cell: Cell, node: t.Node) -> str:
    if cell.kind == "value" and node.type == BOOLEAN and not isinstance(node, t.Compare):
        return f"matches ({cell.text})"
    return render(cell)


def _output(
    b: Builder, path: PathKey, raw: Any, scope: Scope, declared: frozenset[str]
) -> tuple[Any, Type | None, Any, str, bool, t.Node | None] | None:
    """(closure, type or None for no value, literal value or _OPAQUE, source, shown as a literal,
    the typed tree of an expression)."""
    if raw is None or raw == "-":
        return (lambda f: None), None, None, "-", True, None
    if isinstance(raw, (bool, int, Decimal)):
        kind = BOOLEAN if isinstance(raw, bool) else INTEGER if isinstance(raw, int) else DECIMAL
        return (lambda f, v=raw: v), kind, raw, str(raw), True, None
    if not isinstance(raw, str):
        b.sink.error("WRONG_TYPE", "an output cell must be a literal or an expression", b.src.at(path))
        return None
    text = raw.strip()
    try:
        ast.parse(text, mode="eval")
        literal = _is_word(text)  # a bare word is text; a name is read from an expression, like (green)
    except SyntaxError:
        literal = True
    if literal:
        if _is_word(text):
            try:
                _ambiguous(b, path, b.src.at(path), text, declared)
            except _Bad:
                return None
        return (lambda f, v=text: v), enum_type((text,)), text, text, True, None
    try:
        node = _check(b, path, text, 0, scope)
    except _Bad:
        return None
    if isinstance(node, t.Lit):
        value = node.value
        kind = enum_type((value,)) if isinstance(value, str) else node.type
        return (lambda f, v=value: v), kind, value, text, True, None
    fn = compile_value(
        node, location=b.src.at(path), source=text, rounding=b.policy.rounding, tables=b.policy.tables
    )
    return fn, node.type, _OPAQUE, text, False, node


def _output_column(
    b: Builder,
    spec: s.DecisionTableSpec,
    path: PathKey,
    name: str,
    ospec: s.TableOutputSpec | None,
    kinds: list[tuple[Type | None, Any, PathKey]],
    locations: dict[str, Location],
) -> TableOutput:
    values = tuple(ospec.values) if ospec and ospec.values else ()
    default = ospec.default if ospec else None
    joined: Type | None = None
    for kind, value, cpath in kinds:
        if kind is None:
            continue
        if values and value is not _OPAQUE and value not in values:
            b.sink.error(
                "BAD_VALUE",
                f"{value!r} is not one of output '{name}''s values {list(values)}",
                b.src.at(cpath),
            )
            continue
        both = kind if joined is None else t.join(joined, kind)
        if both is None:
            b.sink.error(
                "TYPE_MISMATCH",
                f"output '{name}' is {joined} in earlier rows but {kind} here",
                b.src.at(cpath),
            )
            continue
        joined = both
    if values and all(isinstance(v, str) for v in values):
        joined = enum_type(tuple(str(v) for v in values))
    if default is not None and joined is not None and joined.kind == "enum" and isinstance(default, str):
        joined = enum_type(tuple(dict.fromkeys((*joined.values, default))))
    kind = joined or STRING
    if spec.hit == "collect" and spec.aggregate is None:  # the matched rows' values, in row order
        kind = list_of(kind)
    elif spec.aggregate == "count":
        kind = INTEGER
    elif spec.aggregate is not None and not kind.numeric:
        b.sink.error(
            "TYPE_MISMATCH", f"{spec.aggregate} needs a number output; '{name}' is {kind}", locations[name]
        )
    return TableOutput(name, kind, values, default)
