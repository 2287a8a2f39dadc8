"""Whole-policy code generation: every ruleset of a policy version (rule stages, decision-table
rows, segments, limit and price adjustments, product eligibility) becomes one function of ONE
generated Python module, compiled once when the policy loads; `credo compile` prints that module.

Each function takes the decision's fact as it is and does in one call what `RuleStage.prepare`
followed by an evaluator's `fire` does: read the compared fields (dates as ISO ordinals), compute
the hoisted values (the policy's own compiled expressions, bound by name), fire the rules as plain
`if` chains. Names in the source come only from the validated policy, and only as string
literals; constants and expressions are bound by name, so no text of a request is ever code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from engine.expr import types as t
from engine.expr.emit import RUNTIME as EXPR_RUNTIME
from engine.expr.emit import ExprWriter, can_raise
from engine.policy.decision_table import DecisionTable, show_value
from engine.policy.model import Formula, Policy, RuleStage
from engine.rules.compiled import FireFn, RuleWriter, compile_module
from engine.rules.ir import And, Compare, Field, In, Or
from engine.rules.reference import ReferenceEvaluator

__all__ = ["PolicyProgram", "compile_policy", "policy_formulas", "policy_stages"]

_MEMO_MAX = 4096
_NOT_DATES = {"integer", "decimal", "boolean", "string", "enum"}
_SCORE_NAMES = ("score.pd", "score.points", "score.grade")  # numbers and a string, never dates


@dataclass(frozen=True)
class PolicyProgram:
    """The generated module of one policy version: its text, its rule functions by ruleset name,
    and the plan functions computing the derived values and decision tables (None: nothing to do)."""

    source: str
    functions: Mapping[str, FireFn]
    derive_input: Callable[[dict[str, Any]], list[str]] | None = None
    derive_score: Callable[[dict[str, Any]], list[str]] | None = None


def policy_stages(policy: Policy) -> list[tuple[str, RuleStage]]:
    """(function name, stage) for every ruleset of the policy, in decision order."""
    found: list[tuple[str, RuleStage]] = [(_name(s.name), s) for s in policy.rule_stages]
    found += [(_name(f"table_{name}"), table.stage) for name, table in policy.decision_tables.items()]
    if policy.segments is not None:
        found.append(("segments", policy.segments.stage))
    if policy.limit is not None:
        found.append(("limit_adjustments", policy.limit.adjustments))
    if policy.price is not None:
        found.append(("price_adjustments", policy.price.adjustments))
    if policy.products is not None:
        found.append(("product_eligibility", policy.products.stage))
    seen: dict[str, int] = {}
    out = []
    for name, stage in found:  # function names unique whatever the policy calls its stages
        seen[name] = seen.get(name, 0) + 1
        out.append((name if seen[name] == 1 else f"{name}_{seen[name]}", stage))
    return out


def policy_formulas(policy: Policy) -> list[tuple[str, Formula]]:
    """(function name, formula) for the policy's derived values and its limit and price formulas."""
    found = [(f"derived_{_name(name)}", formula) for name, formula in policy.derived.items()]
    if policy.limit is not None:
        found.append(("limit_formula", policy.limit.formula))
    if policy.price is not None:
        found.append(("price_base_rate", policy.price.base_rate))
        if policy.price.spread is not None:
            found.append(("price_spread", policy.price.spread))
    return found


def generate(policy: Policy) -> tuple[str, dict[str, Any]]:
    """The module source of `policy` and the values its names are bound to."""
    module = _Module(policy)
    return module.source(), module.bindings


def compile_policy(policy: Policy) -> PolicyProgram:
    """Generate and compile `policy`'s module once; each RuleStage, formula and decision table gets
    its function (`compiled`)."""
    module = _Module(policy)
    source = module.source()
    try:
        namespace = compile_module(
            source,
            {"date": dt.date, "show": show_value, **EXPR_RUNTIME, **module.bindings},
            f"<policy {policy.name}@{policy.sha256[:12]}>",
        )
    except (SyntaxError, RecursionError):  # nesting beyond Python's parser: the closures run
        return PolicyProgram(source, {})
    functions: dict[str, FireFn] = {}
    for name, stage in module.stages:
        fire: FireFn = namespace[name]
        object.__setattr__(stage, "compiled", fire)  # frozen: set once, here, before any decision
        functions[stage.ruleset.name] = fire
    for name, formula in module.formulas:
        object.__setattr__(formula, "compiled", namespace[name])
    for name, table in module.tables:
        object.__setattr__(table, "compiled", namespace[name])
    if policy.score is not None and "score_features" in namespace:
        object.__setattr__(policy.score, "compiled", namespace["score_features"])
    return PolicyProgram(source, functions, namespace.get("derive_input"), namespace.get("derive_score"))


class _Module:
    """The generated module of one policy: constants as source, then one function per formula,
    ruleset, decision table and plan phase. Names of functions come from the policy, cleaned."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.bindings: dict[str, Any] = {}  # names bound to values the text does not spell out
        self.constants: list[str] = []  # module constants spelled out: D0 = Decimal('9.99')
        self.known: dict[Any, str] = {}
        self.notes: dict[str, str] = {}
        self.taken: set[str] = set()
        self.expr = ExprWriter(self.constant, policy.tables, policy.rounding)
        self.stages = policy_stages(policy)
        self.formulas = policy_formulas(policy)
        self.tables: list[tuple[str, DecisionTable]] = []
        # per hit function whose answer is a function of its key: the lines computing that key
        self.keys: dict[str, list[str]] = {}
        self.late = set(policy.late_names)
        self.late_names = sorted(self.late)  # the same text on every run
        self.ensure_after_score = policy.ensure_after_score  # one bound method: one name for it
        self.taken |= {name for name, _ in self.stages} | {name for name, _ in self.formulas}
        self.taken |= {"derive_input", "derive_score", "score_features"}

    def source(self) -> str:
        functions = [self.formula(name, formula) for name, formula in self.formulas]
        if self.policy.score is not None and self.policy.score.feature_formulas:
            functions += filter(None, [self.features(self.policy.score)])
        functions += [self.stage(name, stage) for name, stage in self.stages]
        table_functions = {id(stage): name for name, stage in self.stages}
        for name, table in self.policy.decision_tables.items():
            function = self.unique(f"hit_{_name(name)}")
            self.tables.append((function, table))
            functions.append(self.table(function, table, table_functions[id(table.stage)]))
        functions += self.plan()
        constants = "\n".join(self.constants) + "\n" if self.constants else ""
        return "\n\n".join(
            [_header(self.policy, self.bindings, self.notes), *filter(None, [constants]), *functions]
        )

    def unique(self, name: str) -> str:
        out, n = name, 1
        while out in self.taken:
            n += 1
            out = f"{name}_{n}"
        self.taken.add(out)
        return out

    def bind(self, value: Any, prefix: str) -> str:
        """A module-level name for `value`, not spelled out in the text (a closure, a table)."""
        key = (prefix, id(value))
        if key not in self.known:
            self.known[key] = f"{prefix}{len(self.bindings)}"
            self.bindings[self.known[key]] = value
        return self.known[key]

    def constant(self, value: Any, prefix: str) -> str:
        """A module constant: a Decimal spelled out as source, anything else bound by name."""
        if not isinstance(value, Decimal):
            return self.bind(value, prefix)
        key = ("D", str(value))
        if key not in self.known:
            self.known[key] = f"D{sum(1 for k in self.known if k[0] == 'D')}"
            self.constants.append(f"{self.known[key]} = Decimal({str(value)!r})")
        return self.known[key]

    def literal(self, value: Any) -> str:
        """Python text of an output value: None, a repr'd scalar, a Decimal constant, a tuple."""
        if value is None:
            return "None"
        if isinstance(value, tuple):
            return "(" + "".join(f"{self.literal(v)}, " for v in value) + ")"
        return self.expr.literal(value)

    def ensure(self, node: Any) -> list[str]:
        """The line computing the score-phase values first, when `node` reads one of them."""
        if (
            node is None
            or not self.late
            or not any(isinstance(n, t.Name) and n.name in self.late for n in t.walk(node))
        ):
            return []
        return [f"    {line}" for line in self.score_phase_first(self.ensure_after_score)]

    def score_phase_first(self, ensure: Callable[[Any], None]) -> list[str]:
        """Lines calling `ensure` (it computes the score-phase values) unless the fact has them all:
        one `in` per name, where the loader's own frozenset <= fact.keys() test costs 3-4x two."""
        call = f"{self.bind(ensure, 'B')}(fact)"
        if not self.late_names:
            return [f"{call}  # score-phase values first"]
        missing = " or ".join(f"{name!r} not in fact" for name in self.late_names)
        return [f"if {missing}:  # score-phase values first", f"    {call}"]

    def formula(self, name: str, formula: Formula) -> str:
        head = [f"def {name}(fact):", f"    # {_comment(formula.source)}  ({formula.location})"]
        if formula.node is None:  # built without a typed tree: the closure is the function
            return "\n".join([*head, f"    return {self.bind(formula.fn, 'F')}(fact)", ""])
        return "\n".join([*head, *self.ensure(formula.node), *self.guarded(formula.node, formula.fn)])

    def guarded(self, node: Any, fallback: Callable[[Any], Any]) -> list[str]:
        """`return <node>` on fact; an arithmetic trap re-runs `fallback` (the closure), which raises
        the located error."""
        self.expr.start(self.taken)
        value = self.expr.value(node)
        loads = [f"    {line}" for line in self.expr.loads()]
        get = ["    get = fact.get", *loads] if loads else []
        if not can_raise(node):
            return [*get, f"    return {value}", ""]
        again = self.bind(fallback, "F")
        return [
            *get,
            "    try:",
            f"        return {value}",
            "    except TRAPS:  # the closure words the error, with its location",
            f"        return {again}(fact)",
            "",
        ]

    def features(self, score: Any) -> str:
        nodes = [f.node for f in score.feature_formulas.values()]
        if any(node is None for node in nodes):
            return ""
        self.expr.start(self.taken)
        items = ", ".join(
            f"{name!r}: {self.expr.value(f.node)}" for name, f in score.feature_formulas.items()
        )
        loads = ["    get = fact.get", *(f"    {line}" for line in self.expr.loads())]
        lines = ["def score_features(fact):", "    # the model's features (score.features), by name"]
        lines += [line for node in nodes for line in self.ensure(node)][:1]
        if not any(can_raise(node) for node in nodes):
            return "\n".join([*lines, *loads, f"    return {{{items}}}", ""])
        again = self.bind(score.closure_features, "F")
        return "\n".join(
            [*lines, *loads, "    try:", f"        return {{{items}}}", "    except TRAPS:",
             f"        return {again}(fact)", ""]
        )  # fmt: skip

    def stage(self, name: str, stage: RuleStage) -> str:
        self.expr.start(self.taken | {f"v{i}" for i in range(len(stage.ruleset.fields) + len(stage.hoisted))})
        hoisted: dict[str, str] = {}
        for field_name, fn in stage.hoisted.items():
            node = stage.hoisted_nodes.get(field_name)
            hoisted[field_name] = self.expr.value(node) if node is not None else f"{self.bind(fn, 'H')}(fact)"
            if node is None:
                self.notes[hoisted[field_name][:-6]] = _hoisted_note(self.policy, name, stage, field_name)
        guard = None
        if any(can_raise(node) for node in stage.hoisted_nodes.values()):
            guard = self.bind(_reference_fire(stage), "R")
        not_dates = _typed_not_dates(self.policy) | {
            field_name for field_name, node in stage.hoisted_nodes.items() if node.type.kind in _NOT_DATES
        }
        # a compared field the hoisted values read already is their local, not a second read (a
        # date's rule local is its ordinal, so dates are read twice)
        shared = {n: var for n, var in self.expr.reads.items() if n in not_dates and n in stage.reads}
        writer = RuleWriter(self.bindings, _loader(hoisted, not_dates, shared))
        writer.fields.update(shared)
        prologue: tuple[str, ...] = ()
        if stage.before is not None:
            prologue = tuple(self.score_phase_first(stage.before))
        preload = (*stage.reads, *stage.hoisted)
        setup = tuple(self.expr.loads())
        return writer.function(
            name, stage.ruleset, preload=preload, prologue=prologue, guard=guard, setup=setup
        )

    def table(self, name: str, table: DecisionTable, fire: str) -> str:
        """The hit step of `table`: its inputs, the rows `fire` finds, then the hit policy, outputs
        and trace lines: (row numbers, outputs by name, lines), as DecisionTable.evaluate."""
        hit = table.hit + (f" ({table.aggregate})" if table.aggregate else "")
        lines = [f"def {name}(fact):", f"    # decision table {_comment(table.name)}, hit {hit}"]
        first = [line for f in table.inputs.values() for line in self.ensure(f.node)][:1]
        lines += first
        opaque = any(f.node is None for f in table.inputs.values())
        self.expr.start(self.taken)
        inputs = {
            n: self.expr.value(f.node) if f.node is not None else f"{self.bind(f.fn, 'F')}(fact)"
            for n, f in table.inputs.items()
        }
        reads = {n: f"get({n!r})" for n in table.stage.reads if n not in inputs}
        lines += ["    get = fact.get"] if reads or self.expr.reads else []
        lines += [f"    {line}" for line in self.expr.loads()]
        body: list[str] = []
        expression_rows = [row for row in table.rows if not all(row.literal)]
        if table.stage.hoisted or expression_rows or opaque:
            body.append("local = dict(fact)")
            body += [f"local[{n!r}] = {v}" for n, v in inputs.items()]
            body.append(f"fired = {fire}(local)")
        else:  # the rows read only these: no copy of the fact, and the rows found kept per values
            body += self.remembered(fire, {**reads, **inputs})
            if not first and not any(can_raise(f.node) for f in table.inputs.values() if f.node is not None):
                # nothing computed first and a key that cannot raise: the plan may keep the answer
                reading = lines[2:]  # after the def and its comment: the fact's reads
                self.keys[name] = [*reading, *(f"    {line}" for line in self.key(reads | inputs)[0])]
        rows = self.constant_rows(table)
        if not expression_rows and table.hit in ("first", "unique"):
            body += self.one_literal_row(table, rows)
        elif not expression_rows:
            body.append(f"chosen = [{rows}[row] for row in fired]")
        else:
            body += ["chosen = []", "for row in fired:"]
            body += [f"    entry = {rows}.get(row)" if rows != "{}" else "    entry = None"]
            for i, row in enumerate(expression_rows):
                body.append(f"    {'if' if i == 0 else 'elif'} row == {row.rule_id!r}:")
                body += [f"        {line}" for line in self.expression_row(table, row)]
            body.append("    chosen.append(entry)")
        if expression_rows or table.hit not in ("first", "unique"):
            body += self.hit_policy(table)
        nodes = [f.node for f in table.inputs.values()] + [n for row in expression_rows for n in row.nodes]
        if not any(node is not None and can_raise(node) for node in nodes):
            return "\n".join([*lines, *(f"    {line}" for line in body), ""])
        again = self.bind(_reference_table(table), "R")
        lines += ["    try:", *(f"        {line}" for line in body)]
        lines += [
            "    except TRAPS:  # the reference evaluation words the error",
            f"        return {again}(fact)",
            "",
        ]
        return "\n".join(lines)

    def remembered(self, fire: str, values: Mapping[str, str]) -> list[str]:
        """Lines setting `fired` from the rows `fire` finds on `values` (name -> expression), kept
        per (class, value) of each: a table whose rows read only these finds the same rows for the
        same values, so each combination is fired once (a value without a hash is fired each time)."""
        memo = self.bind(_Memo(), "M")
        key, local = self.key(values)
        return [
            *key,
            "try:",
            f"    fired = {memo}[_key]",
            "except KeyError:",
            f"    fired = {memo}.remember(_key, {fire}({local}))",
            "except TypeError:  # a value without a hash",
            f"    fired = {fire}({local})",
        ]

    def key(self, values: Mapping[str, str]) -> tuple[list[str], str]:
        """(lines setting `_key`, the (class, value) of each of `values` (name -> expression), the
        dict literal of the values by name)."""
        temps = {name: v if v.isidentifier() else f"_i{i}" for i, (name, v) in enumerate(values.items())}
        local = "{" + ", ".join(f"{n!r}: {temps[n]}" for n in values) + "}"
        key = "(" + "".join(f"{t}.__class__, {t}, " for t in temps.values()) + ")"
        return [*(f"{temps[n]} = {v}" for n, v in values.items() if temps[n] != v), f"_key = {key}"], local

    def kept(self, hit: str, table: DecisionTable) -> tuple[str, str]:
        """(name, source) of the plan's step for a table whose answer is a function of the values
        its rows read: (its exported outputs, its trace lines), kept per those values, from `hit`
        on a new key."""
        name = self.unique(f"kept_{hit.removeprefix('hit_')}")
        memo = self.bind(_Memo(), "K")
        exported = "(" + "".join(f"outputs[{o.name!r}], " for o in table.outputs if o.exported) + ")"
        return name, "\n".join(
            [
                f"def {name}(fact):",
                f"    # {hit}'s exported outputs and trace lines, kept per the values its rows read",
                *self.keys[hit],
                "    try:",
                f"        return {memo}[_key]",
                "    except KeyError:",
                f"        _, outputs, more = {hit}(fact)",
                f"        return {memo}.keep(_key, ({exported}, tuple(more)))",
                "    except TypeError:  # a value without a hash",
                f"        _, outputs, more = {hit}(fact)",
                f"        return {exported}, tuple(more)",
                "",
            ]
        )

    def one_literal_row(self, table: DecisionTable, rows: str) -> list[str]:
        """The hit step of a first/unique table whose rows all have literal outputs: one row's
        constant entry, or the defaults."""
        empty = table._outputs([], {})
        got = ", ".join(f"{o.name} = {show_value(empty[o.name])}" for o in table.outputs)
        default = ", ".join(f"{o.name!r}: {self.literal(o.default)}" for o in table.outputs)
        out = [
            "if not fired:",
            f"    return (), {{{default}}}, [{f'{table.name}: no row matches -> {got}'!r}]",
        ]
        if table.hit == "unique":
            clash = self.bind(table.clash, "E")
            out += ["if len(fired) > 1:", f"    raise {clash}({rows}[fired[0]][0], {rows}[fired[1]][0])"]
        values = ", ".join(f"{o.name!r}: values[{i}]" for i, o in enumerate(table.outputs))
        return [*out, f"number, values, line = {rows}[fired[0]]", f"return (number,), {{{values}}}, [line]"]

    def hit_policy(self, table: DecisionTable) -> list[str]:
        """From the matched rows' entries (`chosen`): the hit policy, the outputs, the trace lines."""
        body: list[str] = []
        body += self.choose(table)
        body += self.outputs(table)
        body.append("lines = [entry[2] for entry in chosen]")
        empty = table._outputs([], {})
        if table.hit == "collect" and table.aggregate:
            shown = " + ', ' + ".join(
                f"{o.name + ' = '!r} + show(outputs[{o.name!r}])" for o in table.outputs
            )
            head = f"{table.name} {table.aggregate} of "
            body.append(f"lines.append({head!r} + str(len(chosen)) + ' row(s): ' + {shown})")
        else:
            got = ", ".join(f"{o.name} = {show_value(empty[o.name])}" for o in table.outputs)
            body += ["if not chosen:", f"    lines.append({f'{table.name}: no row matches -> {got}'!r})"]
        body.append("return tuple(entry[0] for entry in chosen), outputs, lines")
        return body

    def constant_rows(self, table: DecisionTable) -> str:
        """The module constant holding, per row id of a row with literal outputs, its entry
        (row number, output values, trace line)."""
        entries = []
        for row in table.rows:
            if all(row.literal):
                values = tuple(fn({}) for fn in row.outputs)
                line = table._make_line(row, values)
                entries.append(f"    {row.rule_id!r}: ({row.number}, {self.literal(values)}, {line!r}),")
        if not entries:
            return "{}"
        name = self.unique(f"ROWS_{_name(table.name)}")
        self.constants.append(
            "\n".join([f"{name} = {{  # decision table {_comment(table.name)}", *entries, "}"])
        )
        return name

    def expression_row(self, table: DecisionTable, row: Any) -> list[str]:
        """Lines setting `entry` for a row with an expression output (evaluated on `local`)."""
        self.expr.start(self.taken)
        out: list[str] = []
        parts: list[str] = []
        for i, (spec, literal, source, node) in enumerate(
            zip(table.outputs, row.literal, row.sources, row.nodes or (None,) * len(row.literal), strict=True)
        ):
            if node is None:
                value = (
                    self.literal(row.outputs[i]({}))
                    if literal
                    else f"{self.bind(row.outputs[i], 'F')}(local)"
                )
            else:
                value = self.expr.value(node)
            out.append(f"o{i} = {value}")
            prefix = "" if len(table.outputs) == 1 else f"{spec.name} = "
            if literal:
                parts.append(repr(prefix + show_value(row.outputs[i]({}))))
            else:
                parts.append(f"{prefix + source + ' = '!r} + show(o{i})")
        out = [*self.expr.loads("local.get"), *out]
        names = "".join(f"o{i}, " for i in range(len(table.outputs)))
        line = f"{f'{table.name} row {row.number}: {row.conditions} -> '!r} + " + " + ', ' + ".join(parts)
        return [*out, f"entry = ({row.number}, ({names}), {line})"]

    def choose(self, table: DecisionTable) -> list[str]:
        if table.hit == "first":
            return ["chosen = chosen[:1]"]
        if table.hit == "unique":
            clash = self.bind(table.clash, "E")
            return ["if len(chosen) > 1:", f"    raise {clash}(chosen[0][0], chosen[1][0])"]
        if table.hit == "priority":
            keys = []
            for i, spec in enumerate(table.outputs):
                if spec.values:
                    order = self.literal(tuple(spec.values))
                    keys.append(
                        f"{order}.index(entry[1][{i}]) if entry[1][{i}] in {order} else {len(spec.values)}"
                    )
            rank = "lambda entry: (" + "".join(f"{k}, " for k in keys) + ")"
            return ["if chosen:", f"    chosen = [min(chosen, key={rank})]"]
        return []  # collect: every matched row

    def outputs(self, table: DecisionTable) -> list[str]:
        if table.hit != "collect":
            got = ", ".join(f"{o.name!r}: chosen[0][1][{i}]" for i, o in enumerate(table.outputs))
            default = ", ".join(f"{o.name!r}: {self.literal(o.default)}" for o in table.outputs)
            return [f"outputs = {{{got}}} if chosen else {{{default}}}"]
        if table.aggregate is None:
            got = ", ".join(
                f"{o.name!r}: tuple(entry[1][{i}] for entry in chosen)" for i, o in enumerate(table.outputs)
            )
            return [f"outputs = {{{got}}}"]
        out = ["outputs = {}"]
        for i, o in enumerate(table.outputs):
            out.append(f"present = [entry[1][{i}] for entry in chosen if entry[1][{i}] is not None]")
            if table.aggregate == "count":
                value = "len(set(present))"
            elif table.aggregate == "sum":
                value = "sum(present, Decimal(0) if any(isinstance(v, Decimal) for v in present) else 0)"
            else:
                value = f"{table.aggregate}(present) if present else {self.literal(o.default)}"
            out.append(f"outputs[{o.name!r}] = {value}")
        return out

    def plan(self) -> list[str]:
        """derive_input and derive_score: the policy's plan, as Policy.derive and derive_late run it."""
        policy = self.policy
        steps = policy.plan or [("input", "derived", name) for name in policy.derived]
        formula_names = {id(formula): name for name, formula in self.formulas}
        table_names = {id(table): name for name, table in self.tables}
        out = []
        planned = {id(policy.decision_tables[name]) for _, kind, name in steps if kind != "derived"}
        kept = {  # the plan's tables whose answer is kept per key: a function of their own each
            id(table): self.kept(name, table)
            for name, table in self.tables
            if name in self.keys and id(table) in planned
        }
        out += [source for _, source in kept.values()]
        for phase, function, what in (
            ("input", "derive_input", "the derived values and decision tables that need no score"),
            ("score", "derive_score", "the derived values and decision tables that read score.*"),
        ):
            lines = [f"def {function}(fact):", f"    # {what}, in dependency order", "    lines = []"]
            for step_phase, kind, name in steps:
                if step_phase != phase:
                    continue
                if kind == "derived":
                    lines.append(f"    fact[{name!r}] = {formula_names[id(policy.derived[name])]}(fact)")
                    continue
                table = policy.decision_tables[name]
                exported_outputs = [o for o in table.outputs if o.exported]
                if id(table) in kept:
                    step = kept[id(table)][0]
                    lines.append(f"    {'values' if exported_outputs else '_'}, more = {step}(fact)")
                    lines += [f"    fact[{o.name!r}] = values[{i}]" for i, o in enumerate(exported_outputs)]
                else:
                    lines.append(f"    _, outputs, more = {table_names[id(table)]}(fact)")
                    lines += [f"    fact[{o.name!r}] = outputs[{o.name!r}]" for o in exported_outputs]
                lines.append("    lines += more")
            if len(lines) > 3 or phase == "input":
                out.append("\n".join([*lines, "    return lines", ""]))
        return out


class _Memo(dict[tuple[Any, ...], tuple[str, ...]]):
    """The rows a decision table's rows fire, per (class, value) of what they read; bounded."""

    def remember(self, key: tuple[Any, ...], fired: list[str]) -> tuple[str, ...]:
        if len(self) >= _MEMO_MAX:  # values from requests: never more than this many kept
            self.clear()
        found = self[key] = tuple(fired)
        return found

    def keep(self, key: tuple[Any, ...], answer: Any) -> Any:
        """Keep `answer` (immutable) for `key`, bounded as `remember`; returns it."""
        if len(self) >= _MEMO_MAX:
            self.clear()
        self[key] = answer
        return answer

    def __repr__(self) -> str:  # the header shows what it is, not what it holds
        return "(rows fired, per input values)"


def _reference_fire(stage: RuleStage) -> Callable[[Mapping[str, Any]], list[str]]:
    """The stage on the reference evaluator (it raises a hoisted value's located error)."""
    reference = ReferenceEvaluator()

    def fire(fact: Mapping[str, Any]) -> list[str]:
        fired: list[str] = reference.fire(stage.ruleset, stage.prepare(fact))
        return fired

    return fire


def _reference_table(table: DecisionTable) -> Callable[[Mapping[str, Any]], Any]:
    """The table on the reference evaluator, on a copy of the fact (it raises the located error)."""

    def evaluate(fact: Mapping[str, Any]) -> tuple[tuple[int, ...], dict[str, Any], list[str]]:
        hit = table.evaluate(dict(fact), None)
        return hit.rows, dict(hit.outputs), list(hit.lines)

    return evaluate


def _name(stage: str) -> str:
    clean = "".join(ch if ch.isascii() and ch.isalnum() else "_" for ch in stage)
    return f"stage_{clean}" if not clean or clean[0].isdigit() else clean


def _hoisted_note(policy: Policy, function: str, stage: RuleStage, field: str) -> str:
    """Where a hoisted value comes from: the first rule comparing it, and that rule's source line."""
    for rule in stage.ruleset.rules:
        if field in _fields(rule.condition):
            where = stage.locations.get(rule.id)
            if where is None:
                break
            lines = policy.text.splitlines()
            text = lines[where.line - 1].strip() if 0 < where.line <= len(lines) else ""
            return f"a value rule {rule.id!r} of {function} compares ({where}: {text})"
    return f"a value {function} compares"


def _comment(text: str) -> str:
    """`text` made safe inside a one-line comment: no line break, nothing unprintable."""
    return "".join(ch if ch.isprintable() else "?" for ch in " ".join(text.split()))


def _show(value: Any) -> str:
    """A constant as Python text, the same on every run (a set's own repr follows string hashing)."""
    if isinstance(value, frozenset):
        return "frozenset({" + ", ".join(sorted(repr(v) for v in value)) + "})"
    return repr(value)


def _fields(node: Any) -> set[str]:
    if isinstance(node, Field):
        return {node.name}
    if isinstance(node, Compare):
        return _fields(node.left) | _fields(node.right)
    if isinstance(node, In):
        return _fields(node.operand)
    if isinstance(node, And | Or):
        return set().union(*(_fields(item) for item in node.items))
    return set()


def _typed_not_dates(policy: Policy) -> set[str]:
    """Fact names whose declared type is never a date (their loads skip the ordinal conversion)."""
    names = {name for name, decl in policy.inputs.items() if decl.type.kind in _NOT_DATES}
    names |= {name for name, formula in policy.derived.items() if formula.type.kind in _NOT_DATES}
    return names | set(_SCORE_NAMES)


def _loader(
    hoisted: Mapping[str, str], not_dates: set[str], shared: Mapping[str, str] = {}
) -> Callable[[str, str], list[str]]:
    def load(name: str, var: str) -> list[str]:
        if name in shared:  # read by the function's setup lines already
            return []
        read = hoisted.get(name, f"get({name!r})")
        if name in not_dates:
            return [f"{var} = {read}"]
        return [f"{var} = {read}", f"if isinstance({var}, date):", f"    {var} = {var}.toordinal()"]

    return load


_BOUND = {
    "B": "computes the score-phase derived values and tables if not yet done",
    "F": "the formula's closure (engine.expr), run only to word an arithmetic error with its location",
    "R": "the reference evaluation, run only to word an arithmetic error with its location",
    "E": "the error of a unique decision table two of whose rows match",
    "M": "the rows the table's rows fire, kept per (class, value) of its inputs (bounded)",
    "K": "a table's exported outputs and trace lines, kept per (class, value) of its inputs (bounded)",
}


def _header(policy: Policy, bindings: Mapping[str, Any], notes: Mapping[str, str]) -> str:
    title = _comment(f"{policy.name} {policy.version}")
    lines = [
        f"# Generated from policy {title} (sha256 {policy.sha256})",
        "# by engine.policy.codegen: one function per formula, ruleset and decision table, and the",
        "# plan (derive_input, derive_score) computing the derived values and tables in order.",
        "# Rule functions return the ids of the rules that hold, in policy order; comparisons take",
        "# the fast path when the value has the constant's exact type and otherwise the reference",
        "# evaluator's own (_cmp, _in). Formulas are Decimal arithmetic in CTX (28 digits, half",
        "# even, traps on): a missing value gives None, a comparison with one is False.",
        "# Names bound by the loader, not spelled out in this text:",
    ]
    tables = {id(table): name for name, table in policy.tables.items()}
    for name, value in bindings.items():
        if name.startswith("H"):
            lines.append(
                f"#   {name}(fact): {_comment(notes.get(name, 'a compared value'))}, computed by engine.expr"
            )
        elif name.startswith("T") and id(value) in tables:
            lines.append(f"#   {name}: the policy's table {_comment(tables[id(value)])}")
        elif name[0] in _BOUND and name[1:].isdigit():
            lines.append(f"#   {name}: {_BOUND[name[0]]}")
        else:
            lines.append(f"#   {name} = {_comment(_show(value))}")
    return "\n".join([*lines, *_plan(policy)]) + "\n"


def _plan(policy: Policy) -> list[str]:
    """The values computed before the rules read them, in order (derive_input, derive_score)."""
    if not policy.plan and not policy.derived:
        return []
    lines = ["# Computed in this order before the rules that read them:"]
    steps = policy.plan or [("input", "derived", name) for name in policy.derived]
    for phase, kind, name in steps:
        when = "after the score" if phase == "score" else "from the application"
        if kind == "derived":
            lines.append(f"#   {_comment(name)} = {_comment(policy.derived[name].source)}  ({when})")
        else:
            table = policy.decision_tables[name]
            outputs = _comment(", ".join(out.name for out in table.outputs))
            lines.append(f"#   {outputs} <- decision table {_comment(name)}, hit {table.hit}  ({when})")
    return lines
