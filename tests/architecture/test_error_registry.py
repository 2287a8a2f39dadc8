"""One error module, one code registry: every code a client can see is registered, maps to one status
everywhere, and is listed in docs/errors.md."""

from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import engine
from engine import errors
from engine.errors import REGISTRY, CredoError

ROOT = Path(__file__).resolve().parents[2]


def _all_subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


@pytest.fixture(scope="module")
def error_classes() -> list[type]:
    for info in pkgutil.walk_packages(engine.__path__, "engine."):
        if ".gen" in info.name or info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)
    return _all_subclasses(CredoError)


def test_docs_errors_md_equals_the_registry() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "errors_doc.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr


def test_every_credo_error_lives_in_engine_errors_with_a_registered_code(error_classes: list[type]) -> None:
    engine_classes = [c for c in error_classes if c.__module__.startswith("engine.")]
    misplaced = [f"{c.__module__}.{c.__name__}" for c in engine_classes if c.__module__ != "engine.errors"]
    assert misplaced == []
    assert [c.__name__ for c in engine_classes if c.code not in REGISTRY] == []


def test_no_error_class_overrides_its_codes_status(error_classes: list[type]) -> None:
    overriding = [c.__name__ for c in error_classes if "grpc_status" in vars(c) or "http_status" in vars(c)]
    assert overriding == []


def test_codes_are_raised_by_constant_never_by_string_literal() -> None:
    literal = re.compile(r'\bcode="[A-Z_]+"')  # a keyword argument; diagnostics use their own codes
    offenders = []
    for path in (ROOT / "engine").rglob("*.py"):
        if "gen" in path.parts or (path.name == "errors.py" and path.parent.name == "engine"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if literal.search(line) and "labels(" not in line:
                offenders.append(f"{path.relative_to(ROOT)}:{number}")
    assert offenders == []


def test_a_pinned_version_not_loaded_is_one_status_everywhere() -> None:
    error = errors.VersionNotLoaded("policy x version 9 is not loaded")
    assert (error.grpc_status, error.http_status) == ("FAILED_PRECONDITION", 412)


def test_an_unregistered_code_is_internal() -> None:
    assert CredoError("x", code="NOT_A_CODE").grpc_status == "INTERNAL"
