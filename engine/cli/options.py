"""Options several verbs share, and how they report a failure."""

from __future__ import annotations

import sys
from typing import Any

from engine.errors import CredoError, PolicyError, ScenarioError
from engine.rules import DEFAULT_ENGINE, ENGINES


def add_rule_engine_option(parser: Any, default: str | None = DEFAULT_ENGINE, help: str = "") -> None:
    """`--rule-engine compiled|durable|reference` on `parser` (a parser or an argument group)."""
    parser.add_argument(
        "--rule-engine",
        choices=ENGINES,
        default=default,
        help=help
        or f"the evaluator that fires the policy's rules (default {DEFAULT_ENGINE}: generated Python)",
    )


def print_error(verb: str, exc: CredoError) -> None:
    """A verb's failure on stderr: every diagnostic of a policy or scenario file, one a line
    (file:line:col: code: message), or else `credo VERB: message`."""
    if isinstance(exc, (PolicyError, ScenarioError)):
        for diagnostic in exc.diagnostics:
            print(diagnostic, file=sys.stderr)
    else:
        print(f"credo {verb}: {exc}", file=sys.stderr)
