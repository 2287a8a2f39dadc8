"""Compiler stage of the `experiment` section (engine.policy.experiment): the key must be a declared
input, challengers and shadows are NAME@VERSION, and the shares leave the champion some traffic."""

from __future__ import annotations

import difflib

from engine.policy import schema as s
from engine.policy.builder import Builder
from engine.policy.experiment import Arm, Experiment

__all__ = ["experiment"]


def experiment(b: Builder) -> None:
    """Compiler stage: validate the section; the key must be a declared input and the shares leave
    the champion some traffic."""
    if "experiment" not in b.data:
        return
    spec = s.validate_part(s.ExperimentSpec, b.data["experiment"], ("experiment",), b.src, b.sink)
    if spec is None:
        return
    if spec.key not in b.policy.inputs:
        close = difflib.get_close_matches(spec.key, list(b.policy.inputs), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        b.sink.error(
            "UNKNOWN_NAME",
            f"experiment key '{spec.key}' is not a declared input{hint}",
            b.src.at(("experiment", "key")),
        )
        return
    if sum(a.share for a in spec.arms) >= 1:
        b.sink.error(
            "BAD_VALUE",
            "the arms' shares must leave the champion some traffic (sum < 1)",
            b.src.at(("experiment", "arms")),
        )
        return
    arms = tuple(Arm(*_ref(a.policy), a.share) for a in spec.arms)
    shadows = tuple(_ref(ref) for ref in spec.shadows)
    b.policy.experiment = Experiment(spec.key, b.policy.name, arms, shadows)


def _ref(text: str) -> tuple[str, str]:
    name, _, version = text.partition("@")
    return name, version
