"""The contract a policy declares for its applications: each input's declaration, and the flat typed
fact an application becomes once validated (engine.policy.inputs) and that the pipeline decides on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import Location
from engine.expr.types import Type

__all__ = ["Fact", "InputDecl"]

Fact = dict[str, Any]


@dataclass(frozen=True)
class InputDecl:
    name: str
    type: Type
    location: Location
    required: bool = True
    default: Any = None
    min: Any = None
    max: Any = None
    pii: bool = False
    protected: bool = False
    subject: bool = False  # its value names the data subject of a record (see engine.audit.pii)
    items: InputDecl | None = None  # a list's item declaration (its `name` is "")
    fields: tuple[InputDecl, ...] = ()  # an object item's fields
    max_items: int = 0  # a list's longest accepted length
    default_today: bool = False  # a date that defaults to the decision date (`default: today`)
