"""Every key a policy file may hold, read from the schema's models (schema.py), with whether it is
required and its default: what docs/policy-reference.md must document (its test compares the two)."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from engine.policy import schema as s

__all__ = ["ITEMS", "Key", "policy_keys", "shown_default"]

# Slots the schema types as Any because the compiler validates them item by item (so one bad item
# hides nothing): the model each item is validated with. A new slot of that kind is added here.
ITEMS: dict[str, type[BaseModel]] = {
    "stages[].rules[]": s.RuleSpec,
    "limit.adjustments[]": s.AdjustmentSpec,
    "price.adjustments[]": s.AdjustmentSpec,
    "decision_tables.<name>": s.DecisionTableSpec,
    "tests[]": s.TestSpec,
}


@dataclass(frozen=True)
class Key:
    """One key: `path` spells map keys the author names as <name> and list items as []."""

    path: str
    required: bool
    default: Any = None  # None: no default (or a default of none)
    kind: Any = None  # the annotation, for the manual's type column


def policy_keys() -> list[Key]:
    """Every key of a policy file, in schema order."""
    keys: list[Key] = []
    _model(s.Header, "", keys)
    for name, kind in s.SECTIONS.items():
        keys.append(Key(name, name == "inputs", None, kind))
        _walk(kind, name, keys)
    return keys


def _model(model: type[BaseModel], prefix: str, keys: list[Key], within: tuple[type, ...] = ()) -> None:
    if model in within:  # a declaration inside itself (a list's `items` is an input): its keys once
        return
    for name, field in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        default = None if field.default is PydanticUndefined else field.default
        keys.append(Key(path, field.is_required(), default, field.annotation))
        _walk(field.annotation, path, keys, (*within, model))


def _walk(kind: Any, path: str, keys: list[Key], within: tuple[type, ...] = ()) -> None:
    if kind is Any:
        if path in ITEMS:
            _model(ITEMS[path], path, keys, within)
        return
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        _model(kind, path, keys, within)
        return
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin is typing.Annotated:
        _walk(args[0], path, keys)
    elif origin in (typing.Union, types.UnionType):
        for arg in args:
            _walk(arg, path, keys, within)
    elif origin is list:
        _walk(args[0], f"{path}[]", keys, within)
    elif origin is dict:
        entry = f"{path}.<name>"
        if all(k.path != entry for k in keys):
            keys.append(Key(entry, False, None, args[1]))
        _walk(args[1], entry, keys, within)


def shown_default(key: Key) -> str | None:
    """How the manual writes a scalar default (None when the default is not a scalar)."""
    value = key.default
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal, str)):
        return str(value)
    return None
