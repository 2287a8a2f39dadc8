"""Entry points for loading policies: from a file, from text, or checking many paths for the CLI.
Every problem becomes a located Diagnostic; loading raises PolicyError carrying all of them."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from pathlib import Path

from engine.errors import Diagnostic, DiagnosticSink, Location, PolicyError
from engine.policy.codegen import compile_policy
from engine.policy.compiler import build_policy
from engine.policy.model import Policy
from engine.policy.source import load_source, parse_source

# a policy document: `policy: <name>` and `inputs:` at the top level (test-case files embed policies
# as block scalars, `policy: |`, and are not policies themselves)
_POLICY_HEAD = re.compile(r"^policy\s*:\s*[\w\"']", re.MULTILINE)
_INPUTS_HEAD = re.compile(r"^inputs\s*:", re.MULTILINE)


def _finish(policy: Policy | None, sink: DiagnosticSink) -> Policy:
    if policy is None or sink.has_errors:
        raise PolicyError(sink.items)
    policy.diagnostics = sink.sorted()
    policy.program = compile_policy(policy)  # the generated module: once per policy version
    policy.loaded_at = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
    return policy


def load_policy(path: Path | str) -> Policy:
    """Load, type-check and compile the policy at `path`; PolicyError lists every error found."""
    sink = DiagnosticSink()
    src = load_source(path, sink)
    return _finish(build_policy(src, sink) if src is not None else None, sink)


def load_policy_text(text: str, name: str = "<policy>") -> Policy:
    """Same as load_policy for YAML text (tests, in-memory stores)."""
    sink = DiagnosticSink()
    src = parse_source(name, text, sink)
    return _finish(build_policy(src, sink) if src is not None else None, sink)


def check_file(path: Path | str) -> list[Diagnostic]:
    """Every diagnostic (errors and warnings) for one file; never raises on bad input."""
    sink = DiagnosticSink()
    try:
        src = load_source(path, sink)
        if src is not None:
            build_policy(src, sink)
    except Exception as exc:  # a bug of ours must still not show the user a traceback
        sink.error(
            "INTERNAL",
            f"internal error while checking this file: {type(exc).__name__}: {exc}",
            Location(str(path), 1, 1),
        )
    return sink.sorted()


def check_text(text: str, name: str = "<policy>") -> list[Diagnostic]:
    """Every diagnostic for policy YAML text (used by the case-file tests)."""
    sink = DiagnosticSink()
    src = parse_source(name, text, sink)
    if src is not None:
        build_policy(src, sink)
    return sink.sorted()


def policy_files(paths: Iterable[Path | str]) -> tuple[list[Path], list[Diagnostic]]:
    """Files named by `paths`: a file as is; a folder recursively, its policy.yaml files and other *.yaml
    files whose text starts a `policy:` mapping."""
    files: list[Path] = []
    missing: list[Diagnostic] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for f in sorted([*path.rglob("*.yaml"), *path.rglob("*.yml")]):
                if f.name == "policy.yaml" or _looks_like_policy(f):
                    files.append(f)
        elif path.exists():
            files.append(path)
        else:
            missing.append(Diagnostic("FILE_NOT_FOUND", "no such file or folder", Location(str(path), 1, 1)))
    return list(dict.fromkeys(files)), missing


def _looks_like_policy(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(65536).decode("utf-8", errors="replace")
    except OSError:
        return False
    return bool(_POLICY_HEAD.search(head) and _INPUTS_HEAD.search(head))


def check_paths(paths: Iterable[Path | str]) -> list[Diagnostic]:
    """Diagnostics for every policy file under `paths`, sorted by file and position."""
    files, found = policy_files(paths)
    for f in files:
        found.extend(check_file(f))
    return sorted(found, key=Diagnostic.sort_key)
