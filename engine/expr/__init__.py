"""The policy expression language: a safe, typed subset of Python expression syntax.

`check` parses and type-checks a source string; `compile_value`/`compile_condition` build Python closures;
`lower_condition` turns a rule's `when` into the rule IR (hoisting what the IR cannot compute)."""

from engine.expr.check import ExprError, Scope, check
from engine.expr.closure import compile_condition, compile_value
from engine.expr.lower import Lowered, lower_condition
from engine.expr.types import BOOLEAN, DATE, DECIMAL, INTEGER, STRING, Type, enum_type, list_of, object_of

__all__ = [
    "BOOLEAN",
    "DATE",
    "DECIMAL",
    "INTEGER",
    "STRING",
    "ExprError",
    "Lowered",
    "Scope",
    "Type",
    "check",
    "compile_condition",
    "compile_value",
    "enum_type",
    "list_of",
    "lower_condition",
    "object_of",
]
