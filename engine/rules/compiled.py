"""The compiled evaluator: each RuleSet becomes Python source (one function, plain `if` chains over
local variables), compiled once; a decision is one call, with no interpretation of the IR.

Exactness: every comparison has a fast path guarded by the exact class of the fact value (an int or
Decimal against a number constant, a str against a string, a bool against a bool) and otherwise
falls back to the reference evaluator's own comparison, so both agree by construction on every
value, including a missing one (None) and a value of the wrong kind (TypeError, as the reference).
Safety: the source holds no text from a fact. Field names and rule ids appear only as `repr()`
string literals, and constants other than ints and bools are bound by name, never spelled out.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from engine.rules.ir import MIRRORED, And, Compare, Condition, Const, Field, In, Or, RuleSet, Scalar, Truth
from engine.rules.reference import compare, equal, kind_of

__all__ = ["CompiledEvaluator", "compile_ruleset", "ruleset_source"]

FireFn = Callable[[Mapping[str, Any]], list[str]]
_KIND_CLASSES = {"number": "NUM", "string": "STR", "bool": "BOOL"}
_CACHE_MAX = 4096


def _slow_in(operand: Any, values: tuple[Scalar, ...]) -> bool:
    """The reference semantics of `operand in values` (None is False)."""
    if operand is None:
        return False
    return any(equal(operand, value) for value in values)


_RUNTIME: dict[str, Any] = {
    "NUM": frozenset({int, Decimal}),
    "STR": frozenset({str}),
    "BOOL": frozenset({bool}),
    "_cmp": compare,
    "_in": _slow_in,
}


class _Writer:
    """Source of one RuleSet's function: field loads first, then one `if` per rule."""

    def __init__(self, function: str):
        self.function = function
        self.fields: dict[str, str] = {}  # field name -> local variable
        self.constants: dict[str, Any] = {}  # global name -> value bound beside the code

    def local(self, name: str) -> str:
        if name not in self.fields:
            self.fields[name] = f"v{len(self.fields)}"
        return self.fields[name]

    def const(self, value: Scalar) -> str:
        if isinstance(value, bool):
            return repr(value)
        if type(value) is int:
            return repr(value)
        if type(value) is str and len(value) <= 80 and value.isprintable():
            return repr(value)
        name = f"C{len(self.constants)}"
        self.constants[name] = value
        return name

    def operand(self, operand: Const | Field) -> str:
        return self.local(operand.name) if isinstance(operand, Field) else self.const(operand.value)

    def condition(self, node: Condition) -> str:
        if isinstance(node, Truth):
            return repr(node.value)
        if isinstance(node, And):
            return "(" + " and ".join(self.condition(i) for i in node.items) + ")" if node.items else "True"
        if isinstance(node, Or):
            return "(" + " or ".join(self.condition(i) for i in node.items) + ")" if node.items else "False"
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, In):
            return self.member(node)
        raise TypeError(f"not an IR condition: {node!r}")

    def compare(self, node: Compare) -> str:
        left, right, op = node.left, node.right, node.op
        if isinstance(left, Const) and isinstance(right, Field):
            left, right, op = right, left, MIRRORED[op]
        a, b = self.operand(left), self.operand(right)
        if isinstance(left, Field) and isinstance(right, Const) and right.value is not None:
            kind = _KIND_CLASSES[kind_of(right.value)]
            return (
                f"({a} is not None and ({a} {op} {b} if {a}.__class__ in {kind} else _cmp({op!r}, {a}, {b})))"
            )
        return f"_cmp({op!r}, {a}, {b})"

    def member(self, node: In) -> str:
        a = self.operand(node.operand)
        values = self.const_tuple(node.values)
        kinds = {kind_of(v) for v in node.values}
        if isinstance(node.operand, Field) and len(kinds) == 1:
            kind = _KIND_CLASSES[kinds.pop()]
            members = f"C{len(self.constants)}"
            self.constants[members] = frozenset(node.values)
            return (
                f"({a} is not None and ({a} in {members} if {a}.__class__ in {kind} else _in({a}, {values})))"
            )
        return f"_in({a}, {values})"

    def const_tuple(self, values: tuple[Scalar, ...]) -> str:
        name = f"C{len(self.constants)}"
        self.constants[name] = tuple(values)
        return name

    def source(self, ruleset: RuleSet) -> str:
        body = [
            f"    if {self.condition(rule.condition)}:\n        fired.append({rule.id!r})"
            for rule in ruleset.rules
        ]
        loads = [f"    {var} = get({name!r})" for name, var in self.fields.items()]
        head = [
            f"def {self.function}(fact):",
            f"    # ruleset {ruleset.name!r}",
            "    get = fact.get",
            "    fired = []",
        ]
        return "\n".join([*head, *loads, *body, "    return fired", ""])


def _function_name(ruleset: RuleSet) -> str:
    stage = ruleset.name.rsplit("/", 1)[-1]
    clean = "".join(ch if ch.isalnum() and ch.isascii() else "_" for ch in stage)
    return f"fire_{clean}" if clean and not clean[0].isdigit() else "fire_rules"


def ruleset_source(ruleset: RuleSet, function: str | None = None) -> tuple[str, dict[str, Any]]:
    """The Python source of `ruleset` as one function, and the constants it reads by name."""
    writer = _Writer(function or _function_name(ruleset))
    text = writer.source(ruleset)
    return text, writer.constants


def compile_ruleset(ruleset: RuleSet) -> FireFn:
    """`ruleset` as a compiled function: fact -> ids of the rules that hold, in policy order."""
    writer = _Writer("fire")
    text = writer.source(ruleset)
    namespace: dict[str, Any] = {**_RUNTIME, **writer.constants}
    exec(compile(text, f"<ruleset {ruleset.name}>", "exec"), namespace)  # our own source: see module doc
    fire: FireFn = namespace["fire"]
    return fire


class CompiledEvaluator:
    """Evaluates RuleSets as generated Python; each RuleSet object is compiled on first use and kept
    (a policy's rulesets live as long as the policy). Stateless per call, thread-safe."""

    name = "compiled"

    def __init__(self) -> None:
        self._compiled: dict[int, tuple[RuleSet, FireFn]] = {}
        self._lock = threading.Lock()

    def function(self, ruleset: RuleSet) -> FireFn:
        entry = self._compiled.get(id(ruleset))
        if entry is not None and entry[0] is ruleset:
            return entry[1]
        fire = compile_ruleset(ruleset)
        with self._lock:
            if len(self._compiled) >= _CACHE_MAX:  # rulesets made on the fly (tests): start over
                self._compiled.clear()
            self._compiled[id(ruleset)] = (ruleset, fire)  # the ruleset kept alive: its id stays its own
        return fire

    def fire(self, ruleset: RuleSet, fact: Mapping[str, Any]) -> list[str]:
        """Ids of the rules of `ruleset` whose condition holds for `fact`, in policy order."""
        return self.function(ruleset)(fact)
