"""`credo diff`: what changed between two versions of a policy, in the policy's own terms — rules
added, removed or with changed conditions or effects, table rows, thresholds moved (old -> new),
inputs, limits, prices, products — rather than lines of YAML. Text for people, JSON for tools."""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml

from engine.policy import Policy

__all__ = ["Change", "PolicyDiff", "Threshold", "diff_policies"]

# Lists of mappings are matched by these keys (a rule by its id, a stage by its name), so a rule
# moved within its stage is not a change and a rule renamed is one removal and one addition.
_KEYS = ("id", "name")
# Expression fields whose numbers are thresholds (`applicant.age < 22` -> `< 18`).
_EXPRESSIONS = ("when", "expr", "formula")
_SECTION_TITLES = {
    "stages": "rules",
    "decision_tables": "tables",
    "limit": "limit",
    "price": "price",
    "products": "products",
    "offers": "offers",
    "inputs": "inputs",
    "derived": "derived values",
    "score": "score and model",
    "segments": "segments",
    "tests": "tests",
}


@dataclass(frozen=True)
class Threshold:
    """A number in an expression that moved: `where` is the comparison or call it sits in."""

    where: str
    old: Any
    new: Any


@dataclass(frozen=True)
class Change:
    kind: str  # added | removed | changed
    section: str
    path: str
    old: Any = None
    new: Any = None
    thresholds: tuple[Threshold, ...] = ()

    def line(self) -> str:
        mark = {"added": "+", "removed": "-", "changed": "~"}[self.kind]
        if self.kind == "added":
            return f"{mark} {self.path}: {_short(self.new)}"
        if self.kind == "removed":
            return f"{mark} {self.path}: {_short(self.old)}"
        text = f"{mark} {self.path}: {_short(self.old)} -> {_short(self.new)}"
        for t in self.thresholds:
            text += f"\n    threshold {t.where}: {t.old} -> {t.new}"
        return text


@dataclass
class PolicyDiff:
    name: str
    old: dict[str, str]
    new: dict[str, str]
    changes: list[Change] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.name,
            "old": self.old,
            "new": self.new,
            "changes": [{**asdict(c), "thresholds": [asdict(t) for t in c.thresholds]} for c in self.changes],
        }

    def text(self) -> str:
        head = (
            f"{self.name}: {self.old['version']} ({self.old['sha256'][:12]}) -> "
            f"{self.new['version']} ({self.new['sha256'][:12]})"
        )
        if not self.changes:
            return (
                head
                + "\nno semantic change"
                + ("" if self.old["sha256"] == self.new["sha256"] else " (text only)")
            )
        lines = [head]
        for section in dict.fromkeys(c.section for c in self.changes):
            lines.append(f"{section}:")
            lines += ["  " + c.line().replace("\n", "\n  ") for c in self.changes if c.section == section]
        return "\n".join(lines)


def diff_policies(old: Policy, new: Policy) -> PolicyDiff:
    """The semantic diff of two loaded policies (their texts, parsed again as plain data)."""
    result = PolicyDiff(
        new.name,
        {"name": old.name, "version": old.version, "sha256": old.sha256},
        {"name": new.name, "version": new.version, "sha256": new.sha256},
    )
    before, after = yaml.safe_load(old.text) or {}, yaml.safe_load(new.text) or {}
    _walk(before, after, [], result.changes)
    return result


def diff_texts(old: str, new: str) -> PolicyDiff:
    """The semantic diff of two policy texts that need not load (a version archived in the store, say):
    name and version as each text states them, sha256 of its bytes."""
    before, after = _mapping(old), _mapping(new)
    result = PolicyDiff(str(after.get("policy", "")), _stated(before, old), _stated(after, new))
    _walk(before, after, [], result.changes)
    return result


def _mapping(text: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _stated(data: dict[str, Any], text: str) -> dict[str, str]:
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return {"name": str(data.get("policy", "")), "version": str(data.get("version", "")), "sha256": sha}


def _walk(old: Any, new: Any, path: list[str], out: list[Change]) -> None:
    if old == new:
        return
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in dict.fromkeys([*old, *new]):
            here = [*path, str(key)]
            if key not in new:
                out.append(_change("removed", here, old[key], None))
            elif key not in old:
                out.append(_change("added", here, None, new[key]))
            else:
                _walk(old[key], new[key], here, out)
        return
    keyed_old, keyed_new = _keyed(old), _keyed(new)
    if keyed_old is not None and keyed_new is not None:
        _walk(keyed_old, keyed_new, path, out)
        return
    if _is_rows(old) and _is_rows(new):  # decision table rows, matched by position
        for index in range(max(len(old), len(new))):
            here = [*path, f"row {index + 1}"]
            if index >= len(new):
                out.append(_change("removed", here, old[index], None))
            elif index >= len(old):
                out.append(_change("added", here, None, new[index]))
            elif old[index] != new[index]:
                out.append(_change("changed", here, old[index], new[index]))
        return
    out.append(_change("changed", path, old, new))


def _keyed(items: Any) -> dict[str, Any] | None:
    """A list of mappings that all carry the same identifying key, as {key value: item}."""
    if not isinstance(items, list) or not items or not all(isinstance(i, Mapping) for i in items):
        return None
    for key in _KEYS:
        values = [i.get(key) for i in items]
        if all(isinstance(v, str | int) for v in values) and len(set(values)) == len(values):
            return {str(v): i for v, i in zip(values, items, strict=True)}
    return None


def _is_rows(items: Any) -> bool:
    return isinstance(items, list) and all(isinstance(i, list) for i in items)


def _change(kind: str, path: list[str], old: Any, new: Any) -> Change:
    section = _SECTION_TITLES.get(path[0], path[0]) if path else "policy"
    thresholds: tuple[Threshold, ...] = ()
    if (
        kind == "changed"
        and path
        and path[-1] in _EXPRESSIONS
        and isinstance(old, str)
        and isinstance(new, str)
    ):
        thresholds = moved_thresholds(old, new)
    shown = path[1:] if path and path[0] == "stages" else path
    return Change(kind, section, ".".join(shown) or "policy", old, new, thresholds)


def moved_thresholds(old: str, new: str) -> tuple[Threshold, ...]:
    """The numbers that moved between two expressions of the same shape (else none: the condition
    changed, not a threshold)."""
    try:
        before, after = ast.parse(str(old), mode="eval"), ast.parse(str(new), mode="eval")
    except SyntaxError:
        return ()
    if _shape(before) != _shape(after):
        return ()
    found = []
    for a, b, parent in _constants(before, after):
        if a != b:
            found.append(Threshold(_where(parent), a, b))
    return tuple(found)


def _shape(tree: ast.AST) -> str:
    copy = ast.parse(ast.unparse(tree), mode="eval")
    for node in ast.walk(copy):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, int | float)
            and not isinstance(node.value, bool)
        ):
            node.value = 0
    return ast.dump(copy)


def _constants(a: ast.AST, b: ast.AST) -> list[tuple[Any, Any, ast.AST]]:
    pairs: list[tuple[Any, Any, ast.AST]] = []

    def visit(x: ast.AST, y: ast.AST, parent: ast.AST) -> None:
        if isinstance(x, ast.Constant) and isinstance(y, ast.Constant):
            pairs.append((x.value, y.value, parent))
            return
        for cx, cy in zip(ast.iter_child_nodes(x), ast.iter_child_nodes(y), strict=False):
            visit(cx, cy, x if isinstance(x, ast.Compare | ast.Call | ast.BinOp) else parent)

    visit(a, b, a)
    return pairs


def _where(node: ast.AST) -> str:
    """`applicant.age <` for a comparison, the call or operation's text otherwise."""
    if isinstance(node, ast.Compare):
        ops = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
        return f"{ast.unparse(node.left)} {ops.get(type(node.ops[0]), '?')}"
    return ast.unparse(node)


def _short(value: Any) -> str:
    if isinstance(value, Mapping) and "when" in value:  # a rule: its condition and its effect
        effect = next((f"{k} {v.get('code')}" for k, v in value.items() if isinstance(v, Mapping)), "")
        return f"when {value['when']} -> {effect}".strip()
    if isinstance(value, Mapping | list):
        text = yaml.safe_dump(
            value, default_flow_style=True, allow_unicode=True, sort_keys=False, width=1 << 16
        ).strip()
    else:
        text = str(value)
    return text if len(text) <= 160 else text[:157] + "..."
