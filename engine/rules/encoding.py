"""Exact translation of the rule IR into durable_rules' JSON ruleset format, and of facts into the
messages it matches: every value becomes an order-preserving string, so comparisons stay exact.

Why strings. durable_rules 2.0.28 parses JSON numbers into a C `long` or `double`: a Decimal sent as
a float is inexact (0.1 + 0.2 != 0.3; a 28-digit ratio is rounded) and integers past 64 bits
overflow (measured: 2**63 > 2**63 - 1 is false). Scaling Decimals to integers would overflow the
same way on long ratios. Its string comparison, by contrast, is a plain `strcmp` of the raw message
bytes, for constants (`$lt`, ...) and for field-to-field comparisons (`{"$m": ...}`) alike. So every
value is encoded as a string whose byte order is the value order of its kind and whose equality is
value equality:

- number (int, Decimal): "N" + sign class ("0" negative, "1" zero, "2" positive) + the adjusted
  exponent in 6 fixed-width digits + the significant digits without trailing zeros. Negatives take
  the exponent and the digits complemented and end with ":" (above every digit), so that -1.2 > -1.23.
  1, 1.0 and Decimal("1.000") encode identically; int and Decimal compare exactly. Limits: NaN,
  infinities, floats and |adjusted exponent| >= 500000 are refused (UnencodableValue).
- string: "S" + lowercase hex of its UTF-8 bytes. Hex never needs a JSON escape (durable compares
  the raw, still-escaped JSON text) and is byte-order (= code point order, as Python orders str)
  preserving. Limit: durable keeps value lengths in an unsigned short, so strings must stay under
  32,000 characters of UTF-8 (refused beyond); lone surrogates are refused.
- bool: "B0" / "B1" (False < True, as in Python).

The kind prefix makes values of different kinds never equal (as the reference evaluator says: True
is not 1); ordering across kinds is not meaningful (the compiler never emits it; the reference raises).

Other durable_rules behaviour the translation relies on or works around (measured, see tests/rules):
- Fact fields are renamed `f0, f1, ...`: durable reads a dotted name `a.b` as a nested path too.
- A missing field (None is left out of the message) makes every comparison False, `$neq` included.
- `In` is an `$or` of equalities; `Truth` is an equality on a sentinel field `t` that every message
  carries; `And([])` is TRUE and `Or([])` FALSE. Constant-vs-constant comparisons are folded here.
- An `$or` whose several branches match fires the rule once per branch (callers de-duplicate), and
  more than 64 activations on one fact crash durable_rules. So each rule's worst case (`activations`:
  its DNF term count) is computed, rules are packed in policy order into chunks of at most
  CHUNK_ACTIVATIONS, one durable ruleset per chunk (`name`, `name#1`, ...), and a rule whose own
  worst case exceeds a chunk is split into its DNF terms (one durable rule each, same rule id).
- A field-to-field comparison (`{"$lt": {"x": {"$m": "y"}}}`) on a message that lacks y compares
  x against stale memory (it fired or not depending on earlier decisions). So fields compared with
  fields get a second, always-present property `g0, g1, ...` holding the value or the marker "M",
  and the comparison is guarded by `$neq "M"` on both sides.
- A field compared with itself (`x <= x`) crashes durable_rules (segfault / "free(): invalid
  pointer"): it is translated to "x is present" (`$ex`) for ==, <=, >= and to FALSE otherwise.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from engine.errors import RuleEngineError, UnencodableValue
from engine.rules.ir import MIRRORED, And, Compare, Condition, Const, Field, In, Or, RuleSet, Truth
from engine.rules.reference import evaluate

__all__ = [
    "ALWAYS",
    "CHUNK_ACTIVATIONS",
    "MISSING",
    "SENTINEL",
    "CompiledRuleSet",
    "activations",
    "compile_ruleset",
    "encode_value",
]

SENTINEL = "t"
MISSING = "M"  # below "N"/"S", above "B": never equal to an encoded value
# durable_rules 2.0.28 crashes ("free(): invalid pointer") when more than 64 rule activations happen
# on one fact; we keep every durable ruleset at <= 60 plus ALWAYS, splitting a RuleSet into chunks.
CHUNK_ACTIVATIONS = 60
MAX_TERMS = 10_000
ALWAYS = "always"  # the durable rule that matches every message (see durable.py for why)
_TRUE: dict[str, Any] = {SENTINEL: "1"}
_FALSE: dict[str, Any] = {SENTINEL: "0"}
_OPS = {"<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte", "!=": "$neq"}
_EXPONENT_OFFSET = 500_000
_MAX_STRING_BYTES = 64_000  # hex doubles it; durable stores value lengths in an unsigned short
_COMPLEMENT = str.maketrans("0123456789", "9876543210")


def _encode_number(value: int | Decimal) -> str:
    if isinstance(value, int):
        if value == 0:
            return "N1"
        digits, negative = str(abs(value)), value < 0
        exponent = len(digits) - 1
    else:
        if not value.is_finite():
            raise UnencodableValue(f"cannot compare the non-finite number {value!r}")
        if value.is_zero():
            return "N1"
        # "{:E}" prints every digit of the coefficient, exactly (normalize() would round to the context
        # precision): "-1.23450E+3" -> digits "123450", exponent 3.
        mantissa, _, power = f"{value:E}".partition("E")
        negative = mantissa.startswith("-")
        digits, exponent = mantissa.lstrip("-").replace(".", ""), int(power)
    if abs(exponent) >= _EXPONENT_OFFSET:
        raise UnencodableValue(f"number {value!r} is out of the comparable range")
    significand = digits.rstrip("0")
    if negative:
        return f"N0{_EXPONENT_OFFSET - 1 - exponent:06d}{significand.translate(_COMPLEMENT)}:"
    return f"N2{_EXPONENT_OFFSET + exponent:06d}{significand}"


def encode_value(value: object) -> str:
    """The order-preserving string durable_rules compares in place of `value` (see module doc)."""
    if isinstance(value, bool):
        return "B1" if value else "B0"
    if isinstance(value, int | Decimal):
        return _encode_number(value)
    if isinstance(value, str):
        try:
            raw = value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise UnencodableValue(f"string {value!r} is not valid Unicode text") from error
        if len(raw) > _MAX_STRING_BYTES // 2:
            raise UnencodableValue(f"string of {len(raw)} bytes is too long to compare")
        return "S" + raw.hex()
    raise UnencodableValue(f"unsupported value {value!r} of type {type(value).__name__}")


class CompiledRuleSet:
    """One IR RuleSet as a durable_rules ruleset definition (without actions) plus the field renaming
    used to build each decision's message."""

    def __init__(
        self,
        ruleset: RuleSet,
        fields: dict[str, str],
        copies: dict[str, str],
        chunks: list[dict[str, dict[str, Any]]],
        rule_ids: dict[str, str],
    ):
        self.ruleset = ruleset
        self.fields = fields  # fact field name -> durable property name, left out when None
        self.copies = copies  # fact field name -> always-present property for field-to-field compares
        # one durable ruleset per chunk: durable rule name ("r<index>[.<term>]") -> condition on `m`
        self.chunks = chunks
        self.rule_ids = rule_ids  # durable rule name -> IR rule id
        self.order = {rule.id: index for index, rule in enumerate(ruleset.rules)}
        # the durable ruleset name of each chunk: the RuleSet's name, then `<name>#1`, `<name>#2`...
        self.chunk_names = [ruleset.name if i == 0 else f"{ruleset.name}#{i}" for i in range(len(chunks))]

    def message(self, fact: Mapping[str, Any], sid: str) -> dict[str, Any]:
        """The durable_rules fact for one decision: referenced fields only, encoded, None left out
        (or MISSING for the copies used by field-to-field comparisons)."""
        message: dict[str, Any] = {"sid": sid, "id": "1", SENTINEL: "1"}
        for name, prop in self.fields.items():
            value = fact.get(name)
            if value is not None:
                message[prop] = encode_value(value)
        for name, prop in self.copies.items():
            value = fact.get(name)
            message[prop] = MISSING if value is None else encode_value(value)
        return message

    def in_policy_order(self, rule_names: Iterable[str]) -> list[str]:
        """Fired durable rule names -> rule ids, de-duplicated, in policy order (ALWAYS left out)."""
        ids = {self.rule_ids[name] for name in rule_names if name != ALWAYS}
        return sorted(ids, key=self.order.__getitem__)


class _Translator:
    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.copies: dict[str, str] = {}

    def prop(self, field: Field) -> str:
        if field.name not in self.fields:
            self.fields[field.name] = f"f{len(self.fields)}"
        return self.fields[field.name]

    def copy(self, field: Field) -> str:
        if field.name not in self.copies:
            self.copies[field.name] = f"g{len(self.copies)}"
        return self.copies[field.name]

    def condition(self, node: Condition) -> dict[str, Any]:
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, In):
            if isinstance(node.operand, Const):
                return _TRUE if evaluate(node, {}) else _FALSE
            prop = self.prop(node.operand)
            # de-duplicated by encoding, not by Python equality (True == 1 but they are not equal here)
            choices = [{prop: encoded} for encoded in dict.fromkeys(map(encode_value, node.values))]
            if not choices:
                return _FALSE
            return choices[0] if len(choices) == 1 else {"$or": choices}
        if isinstance(node, And):
            items = [self.condition(item) for item in node.items]
            if not items:
                return _TRUE
            return items[0] if len(items) == 1 else {"$and": items}
        if isinstance(node, Or):
            items = [self.condition(item) for item in node.items]
            if not items:
                return _FALSE
            return items[0] if len(items) == 1 else {"$or": items}
        if isinstance(node, Truth):
            return _TRUE if node.value else _FALSE
        raise TypeError(f"not an IR condition: {node!r}")

    def compare(self, node: Compare) -> dict[str, Any]:
        left, right, op = node.left, node.right, node.op
        if isinstance(left, Const) and isinstance(right, Const):
            return _TRUE if evaluate(node, {}) else _FALSE
        if isinstance(left, Const):
            left, right, op = right, left, MIRRORED[op]
        assert isinstance(left, Field)
        if right == left:
            # durable_rules 2.0.28 crashes (free(): invalid pointer) on a field compared with itself.
            return {"$ex": {self.prop(left): 1}} if op in ("==", "<=", ">=") else _FALSE
        if isinstance(right, Field):
            # `{"$m": y}` on a message without y compares against stale memory: both sides are
            # always-present copies, guarded against MISSING.
            prop, other = self.copy(left), self.copy(right)
            compare = {prop: {"$m": other}} if op == "==" else {_OPS[op]: {prop: {"$m": other}}}
            return {"$and": [{"$neq": {prop: MISSING}}, {"$neq": {other: MISSING}}, compare]}
        prop = self.prop(left)
        if op == "==":
            return {prop: encode_value(right.value)}
        return {_OPS[op]: {prop: encode_value(right.value)}}


def activations(node: Condition) -> int:
    """How many times durable_rules can fire a rule with this condition on one fact (once per
    matching branch of every `$or`): the number of terms of the condition's disjunctive normal form."""
    if isinstance(node, And):
        return math.prod(activations(item) for item in node.items)
    if isinstance(node, Or):
        return sum(activations(item) for item in node.items) or 1
    return 1  # Compare, Truth, and In (its values are distinct, so at most one branch matches)


def _terms(node: Condition) -> list[tuple[Condition, ...]]:
    """The disjunctive normal form of `node`: a list of conjunctions of leaves."""
    if isinstance(node, And):
        return [tuple(itertools.chain(*parts)) for parts in itertools.product(*map(_terms, node.items))]
    if isinstance(node, Or):
        return [term for item in node.items for term in _terms(item)]
    return [(node,)]


def compile_ruleset(ruleset: RuleSet) -> CompiledRuleSet:
    """Translate every rule of `ruleset` into chunks of at most CHUNK_ACTIVATIONS activations each;
    raises UnencodableValue for a constant out of range, RuleEngineError for a rule too complex."""
    translator = _Translator()
    units: list[tuple[str, str, Condition, int]] = []  # (durable name, rule id, condition, activations)
    for index, rule in enumerate(ruleset.rules):
        count = activations(rule.condition)
        if count <= CHUNK_ACTIVATIONS:
            units.append((f"r{index}", rule.id, rule.condition, count))
        elif count <= MAX_TERMS:  # split into its DNF terms, one durable rule (one activation) each
            terms = _terms(rule.condition) or [(Truth(False),)]
            units += [(f"r{index}.{n}", rule.id, And(term), 1) for n, term in enumerate(terms)]
        else:
            raise RuleEngineError(f"rule {rule.id!r} has {count} disjunctive terms, more than {MAX_TERMS}")
    chunks: list[dict[str, dict[str, Any]]] = [{}]
    load = 0
    for name, _, condition, count in units:
        if load + count > CHUNK_ACTIVATIONS:
            chunks.append({})
            load = 0
        chunks[-1][name] = translator.condition(condition)
        load += count
    for chunk in chunks:
        chunk[ALWAYS] = _TRUE
    rule_ids = {name: rule_id for name, rule_id, _, _ in units}
    return CompiledRuleSet(ruleset, translator.fields, translator.copies, chunks, rule_ids)
