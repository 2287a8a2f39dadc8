"""The cell syntax of decision tables, read without types: `-`, literals, `< 600`, `[700..749]`,
`(0.3..0.5]`, lists `a, b`, `not(...)` and full expressions; the compiler type-checks the values."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

CellKind = Literal["any", "cmp", "range", "value", "or", "not"]
_OP = re.compile(r"(<=|>=|!=|==|<|>|=)\s*")
_RANGE = re.compile(r"^([\[(])(.+?)\.\.(.+)([\])])$", re.DOTALL)


@dataclass(frozen=True)
class Piece:
    """A value sub-expression of a cell and where it starts (character offset in the cell text);
    `literal` holds a YAML scalar given directly (a number or boolean cell)."""

    text: str
    offset: int
    literal: Any = None


@dataclass(frozen=True)
class Cell:
    kind: CellKind
    text: str
    op: str = ""
    pieces: tuple[Piece, ...] = ()
    lo_closed: bool = True
    hi_closed: bool = True
    items: tuple[Cell, ...] = ()


class CellError(Exception):
    def __init__(self, message: str, offset: int = 0):
        super().__init__(message)
        self.message, self.offset = message, offset


ANY = Cell("any", "-")


def parse_cell(raw: Any) -> Cell:
    """The syntax tree of one input cell; CellError (with an offset into the text) if malformed."""
    if raw is None:
        return ANY
    if isinstance(raw, (bool, int, Decimal)):
        return Cell(
            "value", str(raw).lower() if isinstance(raw, bool) else str(raw), "", (Piece("", 0, raw),)
        )
    if isinstance(raw, list):
        if not raw:
            raise CellError("an empty list matches nothing; use '-' for any value")
        items = tuple(parse_cell(x) for x in raw)
        return Cell("or", ", ".join(i.text for i in items), items=items)
    if not isinstance(raw, str):
        raise CellError(f"a cell must be text, a number, a boolean or a list, not {type(raw).__name__}")
    return _parse(raw, 0)


def _parse(text: str, base: int) -> Cell:
    body = text.strip()
    start = base + len(text) - len(text.lstrip())
    if body in ("-", ""):
        return ANY
    m = re.match(r"not\s*\(", body)
    if m and _closing(body, m.end() - 1) == len(body) - 1:
        inner = _parse(body[m.end() : -1], start + m.end())
        if inner.kind == "any":
            raise CellError("not(-) matches nothing", start)
        items = inner.items if inner.kind == "or" else (inner,)
        return Cell("not", body, items=items)
    parts = _split(body, start)
    if len(parts) > 1:
        items = tuple(_test(p, off) for p, off in parts)
        return Cell("or", body, items=items)
    return _test(body, start)


def _test(body: str, start: int) -> Cell:
    if not body:
        raise CellError("empty entry in a list of values", start)
    if body[0] in "[(" and ".." in body:
        m = _RANGE.match(body)
        lo, hi = (m.group(2), m.group(3)) if m else ("", "")
        if not m or not lo.strip() or not hi.strip():
            raise CellError(f"malformed range {body!r}: write [a..b], (a..b], [a..b) or (a..b)", start)
        return Cell(
            "range",
            body,
            pieces=(
                Piece(lo.strip(), start + 1 + len(lo) - len(lo.lstrip())),
                Piece(hi.strip(), start + m.start(3) + len(hi) - len(hi.lstrip())),
            ),
            lo_closed=m.group(1) == "[",
            hi_closed=m.group(4) == "]",
        )
    m = _OP.match(body)
    if m:
        op = "==" if m.group(1) == "=" else m.group(1)
        rest = body[m.end() :]
        if not rest.strip():
            raise CellError(f"'{m.group(1)}' needs a value after it, like '{m.group(1)} 600'", start)
        return Cell("cmp", body, op, (Piece(rest.strip(), start + m.end()),))
    return Cell("value", body, "", (Piece(body, start),))


def _closing(text: str, open_at: int) -> int:
    depth = 0
    quote = ""
    for i in range(open_at, len(text)):
        c = text[i]
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "[(":
            depth += 1
        elif c in "])":
            depth -= 1
            if depth == 0:
                return i
    return -1


def _split(body: str, start: int) -> list[tuple[str, int]]:
    """Split at commas outside brackets and quotes; (part stripped, its offset)."""
    parts: list[tuple[str, int]] = []
    depth, quote, last = 0, "", 0
    for i, c in enumerate(body + ","):
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "[(":
            depth += 1
        elif c in "])":
            depth = max(depth - 1, 0)
        elif c == "," and depth == 0:
            raw = body[last:i]
            parts.append((raw.strip(), start + last + len(raw) - len(raw.lstrip())))
            last = i + 1
    return parts


def render(cell: Cell) -> str:
    """How a matched cell reads in a decision trace, after the input's name."""
    if cell.kind == "any":
        return "any"
    if cell.kind == "range":
        return f"in {cell.text}"
    if cell.kind == "cmp":
        return f"{cell.op} {cell.pieces[0].text}"
    if cell.kind == "value":
        return f"= {cell.text}"
    inner = ", ".join(i.text for i in cell.items)
    return f"in ({inner})" if cell.kind == "or" else f"not in ({inner})"
