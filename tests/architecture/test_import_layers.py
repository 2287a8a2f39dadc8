"""Imports run one way, top to bottom (DESIGN.md "Layout"), with no cycle, and an import placed
inside a function is kept for a heavy or optional dependency, never to dodge a cycle.

The graph is read from the source with `ast`, function-local imports included, so a cycle hidden
inside a function body is still a cycle."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "engine"

# Top to bottom; a module may import its own layer (another package only if no cycle) or lower.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"cli", "server", "console", "bench", "__main__"}),
    frozenset({"service", "batch", "release", "replay", "sources", "recent"}),
    frozenset({"pipeline", "monitor", "audit"}),
    frozenset({"policy"}),
    frozenset({"expr"}),
    frozenset({"rules", "models", "finance"}),
    frozenset({"errors", "decision", ""}),  # "" is the package root, engine/__init__.py
)

# Function-local imports of engine modules that stay: entry points that load their heavy parts
# (grpc, onnxruntime, catboost, rich) only for the verb or bench section that runs, the optional
# C extension and database driver, and metrics that must load after their environment is set.
LAZY_IMPORTERS = ("engine.cli", "engine.bench")
LAZY_TARGETS = frozenset({"engine.rules.durable", "engine.audit.postgres", "engine.server.metrics"})


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    local: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in ENGINE.rglob("*.py") if "gen" not in p.relative_to(ENGINE).parts}


def edges(known: dict[str, Path]) -> Iterator[Edge]:
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        local_nodes = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            for inner in ast.walk(node)
        }
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from engine.x import y`: y is a module of its own, or a name defined in engine.x
                targets = [
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                    for a in node.names
                ]
            for target in targets:
                if target == "engine" or target.startswith("engine."):
                    yield Edge(name, target, node.lineno, id(node) in local_nodes)


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    for index, layer in enumerate(LAYERS):
        if top in layer:
            return index
    raise AssertionError(f"{module}: engine.{top} is in no layer of DESIGN.md; add it to LAYERS")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_engine_package_has_a_layer() -> None:
    for name in modules():
        layer_of(name)


def test_imports_never_point_up_the_layers() -> None:
    upward = [
        f"{e.source}:{e.line} imports {e.target}"
        for e in edges(modules())
        if layer_of(e.target) < layer_of(e.source)
    ]
    assert upward == []


def test_the_import_graph_of_engine_has_no_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for e in edges(modules()):
        if e.target != e.source:
            graph.setdefault(e.source, set()).add(e.target)
    assert cycles(graph) == []


def test_function_local_imports_are_only_for_heavy_or_optional_dependencies() -> None:
    hidden = [
        f"{e.source}:{e.line} imports {e.target}"
        for e in edges(modules())
        if e.local and not e.source.startswith(LAZY_IMPORTERS) and e.target not in LAZY_TARGETS
    ]
    assert hidden == []


def test_the_checker_sees_a_cycle_and_an_upward_import() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer_of("engine.audit.log") > layer_of("engine.service")
