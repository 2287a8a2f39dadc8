"""Safe YAML loading that keeps positions: parse with PyYAML's SafeLoader composer, refuse tags,
anchors/aliases and huge files, and convert nodes to plain data plus a path -> Location map."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from engine.errors import DiagnosticSink, Location

MAX_BYTES = 1 << 20
_STD = "tag:yaml.org,2002:"
_ALLOWED_TAGS = {None, "!", *(_STD + k for k in ("str", "int", "float", "bool", "null", "map", "seq"))}
PathKey = tuple[Any, ...]


@dataclass
class Source:
    """A loaded YAML document: plain data, where each value and each mapping key sits, and the text."""

    file: str
    text: str
    raw: bytes
    data: Any = None
    values: dict[PathKey, Location] = field(default_factory=dict)
    keys: dict[PathKey, Location] = field(default_factory=dict)
    nodes: dict[PathKey, yaml.Node] = field(default_factory=dict)

    def at(self, path: PathKey) -> Location:
        """The location of `path`, or of its nearest located ancestor."""
        p = tuple(path)
        while p not in self.values and p:
            p = p[:-1]
        return self.values.get(p, Location(self.file, 1, 1))

    def key_at(self, path: PathKey) -> Location:
        return self.keys.get(tuple(path)) or self.at(path)

    def expr_location(self, path: PathKey, line: int, col: int) -> Location:
        """Location of (line 1-based, col 0-based) inside the expression scalar at `path`."""
        node = self.nodes.get(tuple(path))
        base = self.at(path)
        if not isinstance(node, yaml.ScalarNode):
            return base
        style = node.style
        if style in (None, "'", '"') and node.start_mark.line == node.end_mark.line:
            return Location(self.file, base.line, base.col + (1 if style else 0) + col)
        if style in ("|", ">"):
            lines = self.text.split("\n")
            first = node.start_mark.line + 1  # content starts on the line after the indicator
            content = [i for i in range(first, len(lines)) if lines[i].strip()]
            if content:
                idx = content[0] + line - 1
                if idx < len(lines):
                    indent = len(lines[content[0]]) - len(lines[content[0]].lstrip(" "))
                    return Location(self.file, idx + 1, indent + col + 1)
        if line == 1:
            return Location(self.file, base.line, base.col + (1 if style else 0) + col)
        return base


def load_source(path: Path | str, sink: DiagnosticSink) -> Source | None:
    """Read and parse a YAML file; every problem goes to `sink` (None when nothing usable remains)."""
    name = str(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        sink.error("FILE_UNREADABLE", f"cannot read file: {exc.strerror or exc}", Location(name, 1, 1))
        return None
    if len(raw) > MAX_BYTES:
        sink.error("FILE_TOO_LARGE", f"file is larger than {MAX_BYTES} bytes", Location(name, 1, 1))
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        sink.error("YAML_SYNTAX", f"file is not UTF-8: {exc.reason}", Location(name, 1, exc.start + 1))
        return None
    return parse_source(name, text, sink, raw)


def parse_source(name: str, text: str, sink: DiagnosticSink, raw: bytes | None = None) -> Source | None:
    src = Source(name, text, raw if raw is not None else text.encode())
    try:
        forbidden = _scan_events(name, text, sink)
        if forbidden:
            return None
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = Location(name, mark.line + 1, mark.column + 1) if mark else Location(name, 1, 1)
        sink.error("YAML_SYNTAX", yaml_problem(exc, text), loc)
        return None
    except yaml.YAMLError as exc:
        sink.error("YAML_SYNTAX", f"malformed YAML: {exc}", Location(name, 1, 1))
        return None
    if node is None:
        sink.error("WRONG_TYPE", "empty document; expected a mapping", Location(name, 1, 1))
        return None
    src.data = _convert(node, (), src, sink)
    return src


# PyYAML's problems in the words of someone writing a policy (the first match wins)
_PLAIN = (
    (
        "expected <block end>",
        "this line is not indented like the lines above it: the items of one list or "
        "mapping start in the same column",
    ),
    (
        "mapping values are not allowed",
        "unexpected ':': either this line is indented deeper than the keys "
        "beside it, or a value holds ': ' and must be put in quotes",
    ),
    ("cannot start any token", "a tab character: YAML indents with spaces only"),
    ("could not find expected ':'", "a line inside a mapping that is not `key: value`"),
    ("expected ',' or ']'", "a [...] list is not closed, or an item holds ':' and must be put in quotes"),
    ("expected ',' or '}'", "a {...} mapping is not closed, or a value holds ':' and must be put in quotes"),
    ("end of stream", "a quote or bracket opened here is never closed"),
)


def yaml_problem(exc: yaml.MarkedYAMLError, text: str) -> str:
    """A YAML syntax error in plain words, with the offending line quoted."""
    problem = exc.problem or exc.context or "malformed YAML"
    plain = next((words for key, words in _PLAIN if key in problem), None)
    message = plain or f"malformed YAML: {problem}"
    mark = exc.problem_mark or exc.context_mark
    lines = text.split("\n")
    if mark is not None and 0 <= mark.line < len(lines) and lines[mark.line].strip():
        shown = lines[mark.line].rstrip()
        message += f'; line {mark.line + 1} reads "{shown[:80]}{"..." if len(shown) > 80 else ""}"'
    return message


def _scan_events(name: str, text: str, sink: DiagnosticSink) -> bool:
    """Refuse anchors, aliases and non-standard tags before composing (alias bombs never expand)."""
    bad = False
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        mark = event.start_mark
        loc = Location(name, mark.line + 1, mark.column + 1) if mark else Location(name, 1, 1)
        if isinstance(event, yaml.AliasEvent):
            sink.error("YAML_FORBIDDEN", "YAML aliases (*name) are not allowed in policies", loc)
            bad = True
            continue
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            sink.error("YAML_FORBIDDEN", f"YAML anchors (&{anchor}) are not allowed in policies", loc)
            bad = True
        tag = getattr(event, "tag", None)
        if tag not in _ALLOWED_TAGS:
            sink.error("YAML_FORBIDDEN", f"YAML tag {tag!r} is not allowed in policies", loc)
            bad = True
    return bad


_INT = yaml.constructor.SafeConstructor()


def _loc(src: Source, node: yaml.Node) -> Location:
    return Location(src.file, node.start_mark.line + 1, node.start_mark.column + 1)


def _convert(node: yaml.Node, path: PathKey, src: Source, sink: DiagnosticSink) -> Any:
    src.values[path] = _loc(src, node)
    src.nodes[path] = node
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                sink.error("WRONG_TYPE", "mapping keys must be scalars", _loc(src, key_node))
                continue
            if key_node.tag == _STD + "merge":
                sink.error("YAML_FORBIDDEN", "YAML merge keys (<<) are not allowed", _loc(src, key_node))
                continue
            key = _scalar(key_node, src, sink)
            if isinstance(key, Decimal):
                key = str(key)
            if key in out:
                sink.error("DUPLICATE_KEY", f"duplicate key {key!r}", _loc(src, key_node))
                continue
            src.keys[(*path, key)] = _loc(src, key_node)
            out[key] = _convert(value_node, (*path, key), src, sink)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, i), src, sink) for i, item in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    return _scalar(node, src, sink)


def _scalar(node: yaml.ScalarNode, src: Source, sink: DiagnosticSink) -> Any:
    tag = node.tag
    if tag == _STD + "int":
        return _INT.construct_yaml_int(node)
    if tag == _STD + "float":
        text = node.value.replace("_", "")
        if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text):
            sink.error("BAD_VALUE", f"number {node.value!r} is not finite", _loc(src, node))
            return None
        try:
            return Decimal(text)
        except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
            return None
    if tag == _STD + "bool":
        return _INT.construct_yaml_bool(node)
    if tag == _STD + "null":
        return None
    return str(node.value)
