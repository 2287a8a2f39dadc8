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

import functools
import threading
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from engine.rules.ir import MIRRORED, And, Compare, Condition, Const, Field, In, Or, RuleSet, Scalar, Truth
from engine.rules.reference import ReferenceEvaluator, compare, equal, kind_of

__all__ = [
    "RUNTIME",
    "CompiledEvaluator",
    "RuleWriter",
    "compile_module",
    "compile_ruleset",
    "ruleset_source",
]

FireFn = Callable[[Mapping[str, Any]], list[str]]
Loader = Callable[[str, str], list[str]]  # (field name, local variable) -> source lines setting it
_KIND_CLASSES = {"number": "NUM", "string": "STR", "bool": "BOOL"}
_CACHE_MAX = 4096


def _slow_in(operand: Any, values: tuple[Scalar, ...]) -> bool:
    """The reference semantics of `operand in values` (None is False)."""
    if operand is None:
        return False
    return any(equal(operand, value) for value in values)


RUNTIME: dict[str, Any] = {
    "NUM": frozenset({int, Decimal}),
    "STR": frozenset({str}),
    "BOOL": frozenset({bool}),
    "_cmp": compare,
    "_in": _slow_in,
}


class RuleWriter:
    """Source of one function firing one RuleSet: field loads first, then one `if` per rule.
    `constants` may be shared by the writers of one module (names stay unique across it); `load`
    gives the lines that set a field's local variable (default: read it from the fact)."""

    def __init__(self, constants: dict[str, Any] | None = None, load: Loader | None = None):
        self.fields: dict[str, str] = {}  # field name -> local variable
        self.constants: dict[str, Any] = {} if constants is None else constants
        self.load = load or _plain_load

    def local(self, name: str) -> str:
        if name not in self.fields:
            self.fields[name] = f"v{len(self.fields)}"
        return self.fields[name]

    def bind(self, value: Any, prefix: str = "C") -> str:
        """A module-level name for `value` (a constant, a closure): the source never spells it out."""
        name = f"{prefix}{len(self.constants)}"  # unique across a shared dict, in constant time
        self.constants[name] = value
        return name

    def const(self, value: Scalar) -> str:
        if isinstance(value, bool) or type(value) is int:
            return repr(value)
        if type(value) is str and len(value) <= 80 and value.isprintable():
            return repr(value)
        return self.bind(value)

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
        if isinstance(left, Field) and isinstance(right, Const):
            kind = _KIND_CLASSES[kind_of(right.value)]  # None is of no kind: the test comes after
            return (
                f"({a} {op} {b} if {a}.__class__ in {kind} else ({a} is not None and _cmp({op!r}, {a}, {b})))"
            )
        if isinstance(left, Field) and isinstance(right, Field):  # two numbers: Python's own comparison
            fast = f"{a}.__class__ in NUM and {b}.__class__ in NUM"
            slow = f"_cmp({op!r}, {a}, {b})"
            return f"({a} {op} {b} if {fast} else ({a} is not None and {b} is not None and {slow}))"
        return f"_cmp({op!r}, {a}, {b})"

    def member(self, node: In) -> str:
        a = self.operand(node.operand)
        values = self.bind(tuple(node.values))
        kinds = {kind_of(v) for v in node.values}
        if isinstance(node.operand, Field) and len(kinds) == 1:
            kind = _KIND_CLASSES[kinds.pop()]
            members = self.bind(frozenset(node.values))
            return (
                f"({a} in {members} if {a}.__class__ in {kind} else _in({a}, {values}))"  # _in: None is False
            )
        return f"_in({a}, {values})"

    def function(
        self,
        name: str,
        ruleset: RuleSet,
        preload: tuple[str, ...] = (),
        prologue: tuple[str, ...] = (),
        guard: str | None = None,
        setup: tuple[str, ...] = (),
    ) -> str:
        """The source of `def name(fact)`: `prologue` lines, the loads of `preload` and of every field
        the rules compare (in that order), then the rules; returns the ids that fired, in order.
        `setup` lines run after `get = fact.get`, before the loads; with `guard`, loads that raise one
        of `TRAPS` (bound by the caller) return `guard(fact)`."""
        for field_name in preload:
            self.local(field_name)
        body = [
            f"    if {self.condition(rule.condition)}:\n        fired.append({rule.id!r})"
            for rule in ruleset.rules
        ]
        indent = "        " if guard else "    "
        loads = [f"{indent}{line}" for name, var in self.fields.items() for line in self.load(name, var)]
        if guard and loads:
            loads = ["    try:", *loads, "    except TRAPS:", f"        return {guard}(fact)"]
        head = [f"def {name}(fact):", f"    # ruleset {ruleset.name!r}", *(f"    {p}" for p in prologue)]
        head += ["    get = fact.get", *(f"    {line}" for line in setup), "    fired = []"]
        return "\n".join([*head, *loads, *body, "    return fired", ""])


def _plain_load(name: str, var: str) -> list[str]:
    return [f"{var} = get({name!r})"]


def _function_name(ruleset: RuleSet) -> str:
    stage = ruleset.name.rsplit("/", 1)[-1]
    clean = "".join(ch if ch.isalnum() and ch.isascii() else "_" for ch in stage)
    return f"fire_{clean}" if clean and not clean[0].isdigit() else "fire_rules"


def ruleset_source(ruleset: RuleSet, function: str | None = None) -> tuple[str, dict[str, Any]]:
    """The Python source of `ruleset` as one function, and the constants it reads by name."""
    writer = RuleWriter()
    text = writer.function(function or _function_name(ruleset), ruleset)
    return text, writer.constants


def compile_module(source: str, bindings: Mapping[str, Any], filename: str) -> dict[str, Any]:
    """Run generated `source` (ours, built by RuleWriter: see the module doc) with the runtime
    helpers and `bindings`; returns its namespace."""
    namespace: dict[str, Any] = {**RUNTIME, **bindings}
    exec(compile(source, filename, "exec"), namespace)
    return namespace


def compile_ruleset(ruleset: RuleSet) -> FireFn:
    """`ruleset` as a compiled function: fact -> ids of the rules that hold, in policy order."""
    writer = RuleWriter()
    text = writer.function("fire", ruleset)
    fire: FireFn = compile_module(text, writer.constants, f"<ruleset {ruleset.name}>")["fire"]
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
        try:
            fire = compile_ruleset(ruleset)
        except (SyntaxError, RecursionError):  # nesting beyond Python's parser: interpret this one
            fire = functools.partial(ReferenceEvaluator().fire, ruleset)
        with self._lock:
            if len(self._compiled) >= _CACHE_MAX:  # rulesets made on the fly (tests): start over
                self._compiled.clear()
            self._compiled[id(ruleset)] = (ruleset, fire)  # the ruleset kept alive: its id stays its own
        return fire

    def fire(self, ruleset: RuleSet, fact: Mapping[str, Any]) -> list[str]:
        """Ids of the rules of `ruleset` whose condition holds for `fact`, in policy order."""
        return self.function(ruleset)(fact)
