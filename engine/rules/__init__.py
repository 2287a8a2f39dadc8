"""Rule evaluation: the IR, the `Evaluator` protocol, the pure-Python reference evaluator and (loaded
lazily, so importing this package never loads the C engine) the durable_rules one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from engine.rules.ir import RuleSet
from engine.rules.reference import ReferenceEvaluator

if TYPE_CHECKING:
    from engine.rules.durable import DurableEvaluator

__all__ = ["DurableEvaluator", "Evaluator", "ReferenceEvaluator"]


class Evaluator(Protocol):
    def fire(self, ruleset: RuleSet, fact: Mapping[str, Any]) -> list[str]:
        """Ids of the rules of `ruleset` whose condition holds for `fact`, in policy order."""
        ...


def __getattr__(name: str) -> Any:
    if name == "DurableEvaluator":
        from engine.rules.durable import DurableEvaluator

        return DurableEvaluator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
