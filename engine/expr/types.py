"""Value types of the expression language and their typed syntax tree.

The checker (check.py) produces these nodes; closure.py and lower.py consume them."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TypeAlias


@dataclass(frozen=True)
class Type:
    """integer | decimal | boolean | string | enum (a string with `values`) | date | table, and the
    containers: list (of `item`) and object (named `fields`, in declaration order)."""

    kind: str
    values: tuple[str, ...] = ()
    item: Type | None = None
    fields: tuple[tuple[str, Type], ...] = ()

    @property
    def numeric(self) -> bool:
        return self.kind in ("integer", "decimal")

    @property
    def textual(self) -> bool:
        return self.kind in ("string", "enum")

    @property
    def container(self) -> bool:
        return self.kind in ("list", "object")

    def field(self, name: str) -> Type | None:
        return dict(self.fields).get(name)

    def __str__(self) -> str:
        if self.kind == "list" and self.item is not None:
            return f"list of {self.item}"
        return self.kind


INTEGER = Type("integer")
DECIMAL = Type("decimal")
BOOLEAN = Type("boolean")
STRING = Type("string")
DATE = Type("date")
TABLE = Type("table")


def enum_type(values: tuple[str, ...] | list[str]) -> Type:
    return Type("enum", tuple(values))


def list_of(item: Type) -> Type:
    return Type("list", item=item)


def object_of(fields: dict[str, Type] | tuple[tuple[str, Type], ...]) -> Type:
    return Type("object", fields=tuple(fields.items()) if isinstance(fields, dict) else fields)


def comparable(a: Type, b: Type) -> bool:
    if a.numeric and b.numeric:
        return True
    if a.textual and b.textual:
        return True
    return a.kind == b.kind and a.kind in ("boolean", "date")


def join(a: Type, b: Type) -> Type | None:
    """The type of a value that is either `a` or `b` (conditional expression, coalesce); None if none."""
    if a == b:
        return a
    if a.kind == "list" and b.kind == "list" and a.item is not None and b.item is not None:
        item = join(a.item, b.item)
        return None if item is None else list_of(item)
    if a.numeric and b.numeric:
        return DECIMAL
    if a.textual and b.textual:
        if a.kind == "enum" and b.kind == "enum":
            return enum_type(tuple(dict.fromkeys(a.values + b.values)))
        return STRING
    return None


Scalar: TypeAlias = int | Decimal | bool | str


@dataclass(frozen=True)
class Node:
    """Base of the typed tree; `col`/`line` are the node's position inside the expression source
    (1-based line, 0-based character column)."""

    type: Type
    line: int
    col: int


@dataclass(frozen=True)
class Lit(Node):
    value: Scalar


@dataclass(frozen=True)
class Name(Node):
    """A fact field: input path, derived name or score.* value."""

    name: str


@dataclass(frozen=True)
class Item(Node):
    """The current item of a list function's predicate or field (`.balance`; `field` "" for `.`)."""

    field: str


@dataclass(frozen=True)
class Member(Node):
    """`operand in collection` where the collection is a list value (not a literal list)."""

    operand: Node
    collection: Node
    negated: bool


@dataclass(frozen=True)
class TableRef(Node):
    name: str


@dataclass(frozen=True)
class Neg(Node):
    operand: Node


@dataclass(frozen=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True)
class BoolOp(Node):
    op: str  # "and" | "or"
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Compare(Node):
    """A chain `a < b <= c`: ops[i] compares operands[i] and operands[i+1]."""

    ops: tuple[str, ...]
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class InList(Node):
    operand: Node
    values: tuple[Scalar, ...]
    negated: bool


@dataclass(frozen=True)
class Arith(Node):
    op: str  # + - * /
    left: Node
    right: Node


@dataclass(frozen=True)
class IfExp(Node):
    test: Node
    body: Node
    orelse: Node


@dataclass(frozen=True)
class Call(Node):
    func: str
    args: tuple[Node, ...]


def walk(node: Node) -> list[Node]:
    """Every node of the tree, parents before children."""
    out = [node]
    children: tuple[Node, ...] = ()
    if isinstance(node, (Neg, Not)):
        children = (node.operand,)
    elif isinstance(node, BoolOp):
        children = node.items
    elif isinstance(node, Compare):
        children = node.operands
    elif isinstance(node, InList):
        children = (node.operand,)
    elif isinstance(node, Member):
        children = (node.operand, node.collection)
    elif isinstance(node, Arith):
        children = (node.left, node.right)
    elif isinstance(node, IfExp):
        children = (node.test, node.body, node.orelse)
    elif isinstance(node, Call):
        children = node.args
    for child in children:
        out.extend(walk(child))
    return out
