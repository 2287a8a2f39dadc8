"""Options several verbs share."""

from __future__ import annotations

from typing import Any

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
