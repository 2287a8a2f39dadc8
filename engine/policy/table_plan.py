"""Derived values and decision tables compiled together, in dependency order (a cycle is a located
error), each given its phase: before the score stage, or after it when it reads score.* (directly or
through another table); the policy's evaluation plan and the tables' static analysis come from here."""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Literal

from engine.errors import Location
from engine.expr import DECIMAL, INTEGER, Scope, Type, enum_type
from engine.policy import schema as s
from engine.policy.builder import BROKEN, SCORE_AFTER, Builder, PathKey, mentioned_names
from engine.policy.cells import CellError, parse_cell
from engine.policy.declarations import compile_derived, derived_specs
from engine.policy.table_analysis import analyse, report
from engine.policy.table_compile import IDENT, compile_table

SCORE = ("score.pd", "score.points", "score.grade")
LATE = (
    "is computed after the score stage (it depends on {why}): use it in post_score rules, segments, "
    "limit, price, products or offers"
)
Node = tuple[str, str]  # ("derived" | "table", name)


def derived(b: Builder) -> None:
    """The `derived` compiler stage: derived values and decision tables, compiled together in
    dependency order."""
    derived_and_tables(b, derived_specs(b))


def derived_and_tables(b: Builder, derived: dict[str, tuple[PathKey, Any, Type | None]]) -> None:
    tables = _table_specs(b, derived)
    grade_table = _grade_table_name(b)
    _declare_score(b)
    owner: dict[str, str] = {}
    for tname, (_, spec) in tables.items():
        for oname in spec.outputs if tname != grade_table else ():  # the grade table gives score.grade
            owner.setdefault(oname, tname)
    deps: dict[Node, set[Node]] = {}
    for name, (_, value, _) in derived.items():
        deps[("derived", name)] = _deps(_names(value), derived, owner, grade_table, tables)
    for tname, (_, spec) in tables.items():
        deps[("table", tname)] = _deps(_table_names(spec), derived, owner, grade_table, tables)
    for name in [*derived, *owner]:
        b.unavailable[name] = BROKEN
    where = {("derived", n): spec[0] for n, spec in derived.items()}
    where.update({("table", n): path for n, (path, _) in tables.items()})
    late: dict[str, str] = {}  # late name -> why
    taken = set(b.names) | set(b.tables) | set(derived) | set(owner)
    for kind, name in _order(deps, where, b):
        if kind == "derived":
            _derived(b, name, derived[name], late)
        else:
            path, spec = tables[name]
            _table(b, name, path, spec, late, taken - set(spec.outputs), name == grade_table)
    b.policy.late_names = tuple(late)


def _table_specs(b: Builder, derived: dict[str, Any]) -> dict[str, tuple[PathKey, s.DecisionTableSpec]]:
    out: dict[str, tuple[PathKey, s.DecisionTableSpec]] = {}
    for name, raw in b.entries("decision_tables").items():
        path = ("decision_tables", name)
        if not isinstance(name, str) or not IDENT.match(name):
            b.sink.error(
                "BAD_VALUE", f"bad decision table name {name!r}: use a plain name", b.src.key_at(path)
            )
            continue
        spec = s.validate_part(s.DecisionTableSpec, raw, path, b.src, b.sink)
        if spec is None:
            if isinstance(raw, dict) and isinstance(raw.get("outputs"), (list, dict)):
                for oname in raw["outputs"]:
                    b.unavailable[str(oname)] = BROKEN
            continue
        out[name] = (path, spec)
    return out


def _grade_table_name(b: Builder) -> str | None:
    score = b.data.get("score")
    grades = score.get("grades") if isinstance(score, dict) else None
    return grades if isinstance(grades, str) else None


def _declare_score(b: Builder) -> None:
    """score.* types for expressions checked before the score section itself is compiled."""
    score = b.data.get("score")
    if not isinstance(score, dict):
        return
    grades = score.get("grades")
    values = (
        [g["grade"] for g in grades if isinstance(g, dict) and isinstance(g.get("grade"), str)]
        if isinstance(grades, list)
        else []
    )
    b.score_names.update({"score.pd": DECIMAL, "score.points": INTEGER, "score.grade": enum_type(values)})
    for name in SCORE:
        b.unavailable.setdefault(name, SCORE_AFTER)


def _names(value: Any) -> set[str]:
    return {n for n, _, _ in mentioned_names(value)} if isinstance(value, str) else set()


def _table_names(spec: s.DecisionTableSpec) -> set[str]:
    names: set[str] = set()  # what cells and outputs read, less the table's own inputs
    for row in spec.rows:
        cells = row.values() if isinstance(row, dict) else row if isinstance(row, list) else []
        for cell in cells:
            try:
                parsed = parse_cell(cell)
            except CellError:
                continue
            stack = [parsed]
            while stack:
                c = stack.pop()
                stack.extend(c.items)
                text = c.kind == "value" or (c.kind == "cmp" and c.op in ("==", "!="))
                if text and IDENT.match(c.pieces[0].text):
                    continue  # a bare word is text, never a dependency (table_compile._value)
                for piece in c.pieces:
                    names |= _names(piece.text)
    names -= set(spec.inputs)
    for source in spec.inputs.values():
        names |= _names(source)
    return names


def _deps(
    names: set[str], derived: dict[str, Any], owner: dict[str, str], grade: str | None, tables: dict[str, Any]
) -> set[Node]:
    out: set[Node] = {("derived", n) for n in names if n in derived}
    out |= {("table", owner[n]) for n in names if n in owner}
    if "score.grade" in names and grade in tables:
        out.add(("table", str(grade)))
    return out


def _order(deps: dict[Node, set[Node]], where: dict[Node, PathKey], b: Builder) -> list[Node]:
    order: list[Node] = []
    state: dict[Node, int] = {}

    def visit(node: Node, stack: list[Node]) -> None:
        if state.get(node) == 2:
            return
        if state.get(node) == 1:
            cycle = [*stack[stack.index(node) :], node]
            shown = " -> ".join(f"table {n}" if k == "table" else n for k, n in cycle)
            b.sink.error(
                "CYCLE",
                f"derived values and decision tables depend on each other: {shown}",
                b.src.at(where[node]),
            )
            return
        state[node] = 1
        for dep in sorted(deps[node]):
            visit(dep, [*stack, node])
        state[node] = 2
        order.append(node)

    for node in deps:
        visit(node, [])
    return order


def _register(b: Builder, name: str, kind: Type, why: str | None, late: dict[str, str]) -> None:
    if why is None:
        b.names[name] = kind
        b.unavailable.pop(name, None)
    else:
        late[name] = why
        b.score_names[name] = kind
        b.unavailable[name] = LATE.format(why=why)


def _why(reads: set[str], late: dict[str, str]) -> str | None:
    """The score.* value `reads` depends on (directly or through a late name), None if none."""
    for name in sorted(reads):
        if name in SCORE:
            return name
        if name in late:
            return late[name]
    return None


def _derived(b: Builder, name: str, spec: tuple[PathKey, Any, Type | None], late: dict[str, str]) -> None:
    before = len(b.refs)
    names = {**b.names, **{n: b.score_names[n] for n in late}}
    scope = Scope(names, b.tables, {k: v for k, v in b.unavailable.items() if k not in names})
    f = compile_derived(b, name, spec, scope)
    if f is None:
        return
    why = _why({n for n, _ in b.refs[before:]}, late)
    b.policy.derived[name] = f
    b.policy.plan.append(("score" if why else "input", "derived", name))
    _register(b, name, spec[2] or f.type, why, late)


def _table(
    b: Builder,
    name: str,
    path: PathKey,
    spec: s.DecisionTableSpec,
    late: dict[str, str],
    taken: set[str],
    grades: bool,
) -> None:
    compiled = compile_table(b, name, spec, path, b.scope(True), taken)
    table = compiled.table
    why = _why(compiled.reads, late)
    phase: Literal["input", "score", "grade"] = "grade" if grades else "score" if why else "input"
    table = dataclasses.replace(table, phase=phase)
    b.policy.decision_tables[name] = table
    if grades:
        _grade_table(b, name, path, spec, compiled.reads, table)
    else:
        b.policy.plan.append((phase, "table", name))
        for out in table.outputs:
            if not compiled.ok:  # its own errors are reported: uses of its outputs add no more
                b.unavailable[out.name] = BROKEN
            else:  # a collect table without `aggregate` gives a list of the matched rows' values
                b.table_outputs[out.name] = compiled.output_locations[out.name]
                _register(b, out.name, out.type, why, late)
    if compiled.ok:
        found = analyse(compiled.columns, compiled.tests, spec.hit)
        if found is not None:
            report(
                b.sink,
                name,
                found,
                hit=spec.hit,
                complete=spec.complete,
                defaults=all(o.default is not None for o in table.outputs),
                rows_at=b.src.key_at((*path, "rows")),
                row_at={r.number: r.location for r in table.rows},
            )


def _grade_table(
    b: Builder, name: str, path: PathKey, spec: s.DecisionTableSpec, reads: set[str], table: Any
) -> None:
    loc: Location = b.src.key_at(path)
    if reads - {"score.points"} or len(table.outputs) != 1 or spec.hit == "collect":
        b.sink.error(
            "BAD_VALUE",
            f"decision table {name} grades the score: it must read score.points only, have one output "
            "and a hit policy other than collect",
            loc,
        )
        return
    kind = table.outputs[0].type
    if kind.kind == "enum":
        b.score_names["score.grade"] = kind


def grade_table_or_error(b: Builder, name: str) -> Any:
    """The decision table `score.grades` names (None, with a located error, if there is none)."""
    table = b.policy.decision_tables.get(name)
    if table is None:
        known = list(b.policy.decision_tables) or list(b.entries("decision_tables"))
        close = difflib.get_close_matches(name, [str(k) for k in known], n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        if name not in b.entries("decision_tables"):
            b.sink.error(
                "UNKNOWN_NAME", f"unknown decision table '{name}'{hint}", b.src.at(("score", "grades"))
            )
    return table


def table_lint(b: Builder) -> None:
    """Warn about decision-table outputs nothing reads (run after every expression is checked)."""
    used = {name for name, _ in b.refs}
    for name, loc in b.table_outputs.items():
        if name not in used:
            b.sink.warning("UNUSED_OUTPUT", f"decision table output '{name}' is not used anywhere", loc)
