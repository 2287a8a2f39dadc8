"""Rule evaluation: the IR, the `Evaluator` protocol, the compiled evaluator (generated Python, the
default), the pure-Python reference evaluator and (loaded lazily, so importing this package never
loads the C engine) the durable_rules one; `evaluator(name)` gives the process's one of each."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from engine.rules.compiled import CompiledEvaluator
from engine.rules.ir import RuleSet
from engine.rules.reference import ReferenceEvaluator

if TYPE_CHECKING:
    from engine.rules.durable import DurableEvaluator

__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "CompiledEvaluator",
    "DurableEvaluator",
    "Evaluator",
    "ReferenceEvaluator",
    "evaluator",
]

ENGINES = ("compiled", "durable", "reference")  # the names `--rule-engine` and audit records use
DEFAULT_ENGINE = "compiled"


class Evaluator(Protocol):
    name: str  # one of ENGINES: recorded with each decision, so a replay runs on the same engine

    def fire(self, ruleset: RuleSet, fact: Mapping[str, Any]) -> list[str]:
        """Ids of the rules of `ruleset` whose condition holds for `fact`, in policy order."""
        ...


_evaluators: dict[str, Evaluator] = {}
_lock = threading.Lock()


def evaluator(name: str = DEFAULT_ENGINE) -> Evaluator:
    """The process's one evaluator called `name` (compiled, durable or reference); ValueError otherwise.
    One durable evaluator per process: it is the owner of the C engine."""
    with _lock:
        found = _evaluators.get(name)
        if found is None:
            if name == "compiled":
                found = CompiledEvaluator()
            elif name == "reference":
                found = ReferenceEvaluator()
            elif name == "durable":
                from engine.rules.durable import DurableEvaluator  # loads the C engine: only on demand

                found = DurableEvaluator()
            else:
                raise ValueError(f"unknown rule engine {name!r} (choose from {', '.join(ENGINES)})")
            _evaluators[name] = found
        return found


def __getattr__(name: str) -> Any:
    if name == "DurableEvaluator":
        from engine.rules.durable import DurableEvaluator

        return DurableEvaluator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
