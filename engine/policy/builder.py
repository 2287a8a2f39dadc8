"""What one policy load has found so far (`Builder`) and the helpers every compiler stage uses; the
stages themselves are listed, in order, in engine/policy/compiler.py."""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from engine.errors import DiagnosticSink, Location
from engine.expr import BOOLEAN, DATE, DECIMAL, INTEGER, STRING, Scope, Type, check
from engine.expr import types as t
from engine.expr.check import TableInfo
from engine.expr.closure import compile_value
from engine.expr.lower import Lowered, lower_condition
from engine.policy import model as m
from engine.policy import schema as s
from engine.policy.source import PathKey, Source
from engine.rules import ir

TYPES = {"integer": INTEGER, "decimal": DECIMAL, "boolean": BOOLEAN, "string": STRING, "date": DATE}
BROKEN = "\x00"  # marks names whose own declaration failed: their uses add no further diagnostics
SCORE_AFTER = "is only available after the score stage (post_score, segments, limit, price, products, offers)"
RuleEntry = tuple[str, PathKey, Any, m.Effect]


class Builder:
    """What one load has found so far, and the helpers every compiler stage uses; the stages themselves
    are functions in declarations.py, sections.py, table_plan.py and lint.py (see compiler.STAGES)."""

    def __init__(self, src: Source, sink: DiagnosticSink):
        self.src, self.sink = src, sink
        self.data: dict[str, Any] = src.data if isinstance(src.data, dict) else {}
        self.sha256 = hashlib.sha256(src.raw).hexdigest()
        self.refs: list[tuple[str, Location]] = []  # every name a type-checked expression uses
        self.rule_ids: dict[str, Location] = {}
        self.names: dict[str, Type] = {}
        self.tables: dict[str, TableInfo] = {}
        self.unavailable: dict[str, str] = {}
        self.score_names: dict[str, Type] = {}
        self.table_outputs: dict[str, Location] = {}  # decision-table output -> where it is declared
        self.timings: dict[str, float] = {}  # compiler stage metric -> seconds
        self.policy = m.Policy(
            name="policy",
            version="",
            currency="",
            sha256=self.sha256,
            text=src.text,
            languages=("en",),
            path=src.file,
            rounding="half_even",
        )

    # ---- helpers -------------------------------------------------------------------------------
    def scope(self, with_score: bool) -> Scope:
        names = {**self.names, **(self.score_names if with_score else {})}
        unavailable = {k: v for k, v in self.unavailable.items() if k not in names}
        return Scope(names, self.tables, unavailable)

    def expr(self, path: PathKey, value: Any, scope: Scope, want: Type | None) -> t.Node | None:
        loc = self.src.at(path)
        if isinstance(value, bool):
            node: t.Node | None = t.Lit(BOOLEAN, 1, 0, value)
        elif isinstance(value, (int, Decimal)):
            node = t.Lit(INTEGER if isinstance(value, int) else DECIMAL, 1, 0, value)
        else:
            rate = s.percent_message(str(value))
            if rate is not None:
                self.sink.error("RATE_AS_PERCENT", rate, loc)
                return None
            node, errors = check(str(value), scope, want)
            if errors:  # still lint what it names: protected attributes, used inputs
                for name, line, col in mentioned_names(str(value)):
                    self.refs.append((name, self.src.expr_location(path, line, col)))
            for e in errors:
                if e.message.endswith(BROKEN):
                    continue
                self.sink.error(e.code, e.message, self.src.expr_location(path, e.line, e.col))
            if node is not None:
                for n in t.walk(node):
                    if isinstance(n, t.Name):
                        self.refs.append((n.name, self.src.expr_location(path, n.line, n.col)))
            return node
        assert node is not None
        if want is not None and not (node.type == want or (want.numeric and node.type.numeric)):
            self.sink.error("TYPE_MISMATCH", f"expected a {want} expression, got {node.type}", loc)
            return None
        return node

    def formula(
        self, path: PathKey, value: Any, scope: Scope, want: Type | None = DECIMAL
    ) -> m.Formula | None:
        node = self.expr(path, value, scope, want)
        if node is None:
            return None
        loc = self.src.at(path)
        fn = compile_value(
            node, location=loc, source=str(value), rounding=self.policy.rounding, tables=self.policy.tables
        )
        if self.reads_late(node):
            fn = _after_score(self.policy, fn)
        return m.Formula(str(value), loc, node.type, fn, node)

    def reads_late(self, node: t.Node) -> bool:
        """Whether `node` reads a value the "score" phase of the plan computes (decision tables)."""
        late = set(self.policy.late_names)
        return bool(late) and any(isinstance(n, t.Name) and n.name in late for n in t.walk(node))

    def texts(self, path: PathKey, text: Any) -> dict[str, str]:
        """A reason's (or name's) text per declared language: each one present and not empty."""
        langs = self.policy.languages
        texts = {langs[0]: text} if isinstance(text, str) else dict(text)
        for lang in langs:
            if lang not in texts:
                self.sink.error(
                    "MISSING_TEXT",
                    f"no '{lang}' text: the policy declares {list(langs)} and every text needs each",
                    self.src.at(path),
                )
        for lang, words in texts.items():
            if not words.strip():
                where = self.src.at(path if isinstance(text, str) else (*path, lang))
                self.sink.error(
                    "EMPTY_TEXT", f"the '{lang}' text is empty: say what the applicant is told", where
                )
        return texts

    def rule_id(self, rule_id: str, path: PathKey) -> None:
        loc = self.src.at(path)
        if rule_id in self.rule_ids:
            self.sink.error(
                "DUPLICATE_RULE_ID", f"rule id '{rule_id}' already used at {self.rule_ids[rule_id]}", loc
            )
        else:
            self.rule_ids[rule_id] = loc

    def rule_stage(self, stage: str, entries: list[RuleEntry], scope: Scope) -> m.RuleStage:
        lowered = Lowered(compile_value=lambda node: compile_value(node))
        rules: list[ir.Rule] = []
        effects: dict[str, m.Effect] = {}
        locations: dict[str, Location] = {}
        late = False
        for rule_id, when_path, when, effect in entries:
            node = self.expr(when_path, when, scope, BOOLEAN)
            if node is None:
                continue
            late = late or self.reads_late(node)
            loc = self.src.at(when_path)
            lowered.compile_value = _value_compiler(loc, str(when), self.policy)
            rules.append(ir.Rule(rule_id, lower_condition(node, lowered)))
            effects[rule_id] = effect
            locations[rule_id] = loc
        name = f"{self.policy.name}@{self.sha256[:12]}/{stage}"
        ruleset = ir.RuleSet(name, tuple(rules), tuple(sorted(lowered.fields)))
        before = self.policy.ensure_after_score if late else None
        return m.RuleStage(
            stage,
            ruleset,
            effects,
            dict(lowered.hoisted),
            locations,
            before,
            hoisted_nodes=dict(lowered.nodes),
        )

    def salvage(self, raw: Any, path: PathKey, scope: Scope) -> None:
        """A rule that failed its schema still gets its id and `when` checked: all errors in one run."""
        if not isinstance(raw, dict):
            return
        if isinstance(raw.get("id"), str):
            self.rule_id(raw["id"], (*path, "id"))
        if isinstance(raw.get("when"), str):
            self.expr((*path, "when"), raw["when"], scope, BOOLEAN)

    def items(self, key: str, kind: Any) -> list[tuple[PathKey, Any]]:
        """The valid items of a list section, each validated alone so one bad item hides nothing."""
        raw = self.data.get(key)
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.sink.error("WRONG_TYPE", f"wrong type for {key}: expected a list", self.src.at((key,)))
            return []
        out = []
        for i, item in enumerate(raw):
            spec = s.validate_part(kind, item, (key, i), self.src, self.sink)
            if spec is not None:
                out.append(((key, i), spec))
        return out

    def entries(self, key: str) -> dict[Any, Any]:
        raw = self.data.get(key)
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.sink.error("WRONG_TYPE", f"wrong type for {key}: expected a mapping", self.src.at((key,)))
            return {}
        return raw

    # ---- stages --------------------------------------------------------------------------------


def mentioned_names(source: str) -> list[tuple[str, int, int]]:
    """(dotted name, line, col) an expression mentions, read syntactically (works for ill-typed ones)."""
    text = source.strip("\n")
    shift = 1 if "\n" in text else 0
    try:
        tree = ast.parse(f"({text}\n)" if shift else text, mode="eval")
    except SyntaxError:
        return []
    lines = (f"({text}" if shift else text).split("\n")
    out: list[tuple[str, int, int]] = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Attribute, ast.Name)):
            continue
        parts: list[str] = []
        cur: ast.expr = node
        while isinstance(cur, ast.Attribute):
            parts.append(cur.attr)
            cur = cur.value
        if isinstance(cur, ast.Name):
            line = node.lineno
            raw = lines[line - 1].encode()[: node.col_offset].decode(errors="ignore")
            out.append((".".join([cur.id, *reversed(parts)]), line, len(raw) - (shift if line == 1 else 0)))
    return out


def dec_or_none(x: Any) -> Decimal | None:
    return None if x is None else Decimal(x)


def _after_score(policy: m.Policy, fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def run(fact: Any) -> Any:
        policy.ensure_after_score(fact)
        return fn(fact)

    return run


def _value_compiler(loc: Location, source: str, policy: m.Policy) -> Callable[[t.Node], Any]:
    def build(node: t.Node) -> Any:
        return compile_value(
            node, location=loc, source=source, rounding=policy.rounding, tables=policy.tables
        )

    return build
