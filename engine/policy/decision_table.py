"""Compiled decision tables: each row is a rule of one IR RuleSet, fired on the decision's evaluator;
the hit policy (first, unique, priority, collect with sum/min/max/count) is then applied to the rows."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from types import MappingProxyType
from typing import Any, Literal

from engine.errors import Location, PolicyRuntimeError
from engine.expr.types import Type
from engine.policy.model import Formula, RuleStage
from engine.rules import Evaluator
from engine.rules.compiled import CompiledEvaluator
from engine.rules.reference import ReferenceEvaluator

__all__ = ["DecisionTable", "TableHit", "TableOutput", "TableRow", "show_value"]

Hit = Literal["first", "unique", "priority", "collect"]
Aggregate = Literal["sum", "min", "max", "count"]
_REFERENCE = ReferenceEvaluator()


@dataclass(frozen=True)
class TableOutput:
    """One output column. `values` is the priority order (first = highest) for hit policy priority;
    `exported` outputs become fact names (a collect table's list too; not the score stage's grade
    table's)."""

    name: str
    type: Type
    values: tuple[Any, ...] = ()
    default: Any = None
    exported: bool = True


@dataclass(frozen=True)
class TableRow:
    number: int  # 1-based, as an author counts
    rule_id: str
    conditions: str  # "points in [660..699]", for the trace
    outputs: tuple[Callable[[Mapping[str, Any]], Any], ...] = field(repr=False)
    literal: tuple[bool, ...]  # per output: a literal (trace shows the value) or an expression
    sources: tuple[str, ...]
    location: Location
    nodes: tuple[Any, ...] = ()  # per output: the typed tree of an expression, None for a literal


@dataclass(frozen=True)
class TableHit:
    """What one evaluation of a table found: the rows it used, the output values, the trace lines."""

    table: str
    rows: tuple[int, ...]
    outputs: Mapping[str, Any]
    lines: tuple[str, ...]


@dataclass(frozen=True)
class DecisionTable:
    name: str
    hit: Hit
    aggregate: Aggregate | None
    complete: bool
    phase: Literal["input", "score", "grade"]  # evaluated in derive, after the score, or as the grade
    inputs: Mapping[str, Formula]
    outputs: tuple[TableOutput, ...]
    rows: tuple[TableRow, ...]
    stage: RuleStage
    location: Location
    # rows, hit policy and outputs as one function of the policy's generated module (codegen), set
    # at load: fact -> (row numbers, outputs by name, trace lines)
    compiled: Callable[[Mapping[str, Any]], tuple[tuple[int, ...], dict[str, Any], list[str]]] | None = field(
        default=None, repr=False, compare=False
    )

    def evaluate(
        self, fact: dict[str, Any] | Mapping[str, Any], evaluator: Evaluator | None = None
    ) -> TableHit:
        """Fire the rows on `evaluator` (the reference evaluator by default), apply the hit policy and
        write the exported outputs into `fact` (when it is a dict). On the compiled evaluator the
        policy's generated function does all of it."""
        if self.compiled is not None and isinstance(evaluator, CompiledEvaluator):
            rows, outputs, lines = self.compiled(fact)
            if isinstance(fact, dict):
                for name in self._exported:
                    fact[name] = outputs[name]
            return TableHit(self.name, rows, outputs, tuple(lines))
        local = dict(fact)
        for name, formula in self.inputs.items():
            local[name] = formula(fact)
        fired = self.stage.fire(evaluator or _REFERENCE, local)
        if fired and (self.hit == "first" or (self.hit == "unique" and len(fired) == 1)):
            known = self._constant_hits.get(fired[0])
            if known is not None:  # the one row chosen has literal outputs: its hit never changes
                if isinstance(fact, dict):
                    for name in self._exported:
                        fact[name] = known.outputs[name]
                return known
        by_id = self._rows_by_id
        matched = [by_id[rule_id] for rule_id in fired]
        values = {row.number: self._values(row, local) for row in matched}
        chosen = self._choose(matched, values)
        outputs = self._outputs(chosen, values)
        if isinstance(fact, dict):
            for out in self.outputs:
                if out.exported:
                    fact[out.name] = outputs[out.name]
        lines = [self._line(row, values[row.number]) for row in chosen]
        if self.hit == "collect" and self.aggregate:
            got = ", ".join(f"{o.name} = {show_value(outputs[o.name])}" for o in self.outputs)
            lines.append(f"{self.name} {self.aggregate} of {len(chosen)} row(s): {got}")
        elif not chosen:
            got = ", ".join(f"{o.name} = {show_value(outputs[o.name])}" for o in self.outputs)
            lines.append(f"{self.name}: no row matches -> {got}")
        hit = TableHit(self.name, tuple(r.number for r in chosen), outputs, tuple(lines))
        if len(chosen) == 1 and self.hit in ("first", "unique") and all(chosen[0].literal):
            self._constant_hits[chosen[0].rule_id] = TableHit(
                hit.table, hit.rows, MappingProxyType(dict(outputs)), hit.lines
            )
        return hit

    @cached_property
    def _constant_hits(self) -> dict[str, TableHit]:
        """Per row id, for first/unique tables: the hit of a row whose outputs are all literals."""
        return {}

    @cached_property
    def _exported(self) -> tuple[str, ...]:
        return tuple(out.name for out in self.outputs if out.exported)

    @cached_property
    def _rows_by_id(self) -> dict[str, TableRow]:
        return {row.rule_id: row for row in self.rows}

    @cached_property
    def _literal_rows(self) -> dict[int, tuple[tuple[Any, ...], str]]:
        """Rows whose outputs are all literals: their values and trace line, made on first use."""
        return {}

    def _values(self, row: TableRow, local: Mapping[str, Any]) -> tuple[Any, ...]:
        known = self._literal_rows.get(row.number)
        if known is not None:
            return known[0]
        values = tuple(fn(local) for fn in row.outputs)
        if all(row.literal):
            self._literal_rows[row.number] = (values, self._make_line(row, values))
        return values

    def _choose(self, matched: list[TableRow], values: dict[int, tuple[Any, ...]]) -> list[TableRow]:
        if not matched or self.hit == "collect":
            return matched
        if self.hit == "unique" and len(matched) > 1:
            raise self.clash(matched[0].number, matched[1].number)
        if self.hit == "priority":

            def rank(row: TableRow) -> tuple[int, ...]:
                return tuple(
                    out.values.index(v) if v in out.values else len(out.values)
                    for out, v in zip(self.outputs, values[row.number], strict=True)
                    if out.values
                )

            return [min(matched, key=rank)]
        return matched[:1]

    def clash(self, first: int, second: int) -> PolicyRuntimeError:
        """The error of a unique table two of whose rows (by number) match."""
        return PolicyRuntimeError(
            f"decision table {self.name} (hit policy unique): rows {first} and {second} both match",
            location=self.location,
        )

    def _outputs(self, chosen: list[TableRow], values: dict[int, tuple[Any, ...]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, spec in enumerate(self.outputs):
            column = [values[row.number][i] for row in chosen]
            if self.hit != "collect":
                out[spec.name] = column[0] if column else spec.default
                continue
            present = [v for v in column if v is not None]
            if self.aggregate is None:
                out[spec.name] = tuple(column)
            elif self.aggregate == "count":
                out[spec.name] = len(set(present))
            elif self.aggregate == "sum":
                out[spec.name] = sum(
                    present, Decimal(0) if any(isinstance(v, Decimal) for v in present) else 0
                )
            elif present:
                out[spec.name] = min(present) if self.aggregate == "min" else max(present)
            else:
                out[spec.name] = spec.default
        return out

    def _line(self, row: TableRow, values: tuple[Any, ...]) -> str:
        known = self._literal_rows.get(row.number)
        return known[1] if known is not None else self._make_line(row, values)

    def _make_line(self, row: TableRow, values: tuple[Any, ...]) -> str:
        shown = []
        for out, value, literal, source in zip(self.outputs, values, row.literal, row.sources, strict=True):
            text = show_value(value) if literal else f"{source} = {show_value(value)}"
            shown.append(text if len(self.outputs) == 1 else f"{out.name} = {text}")
        return f"{self.name} row {row.number}: {row.conditions} -> {', '.join(shown)}"


def show_value(value: Any) -> str:
    """A value as the trace shows it: none, true/false, [a, b], else its text."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(show_value(v) for v in value) + "]"
    return str(value)
