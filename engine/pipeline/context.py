"""DecisionContext: the state one decision carries from stage to stage (the fact, what fired, the
score, limit, price and offers so far) and the reasons that will explain the outcome."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any, cast

from engine.decision import EMPTY_MAP, ModelRef, Offer, Outcome, Reason, Score, TraceEntry, plain
from engine.policy.model import Policy
from engine.rules import Evaluator

__all__ = ["DecisionContext", "ModelProvider"]

# (model name, version, pinned sha256 or None) -> (package, scorer); the service caches both.
ModelProvider = Callable[[str, str, str | None], tuple[Any, Any]]

# A map one stage sets whole (validate: fact and input; derive: derived; score: scored) reads as
# this until then: an empty read-only mapping on the class (set below it: a dataclass refuses a
# mapping as a default), not a dict made per decision that the stage then replaces. Read-only, so
# a write before its stage fails instead of reaching every context.
_UNSET: dict[str, Any] = cast(dict[str, Any], MappingProxyType({}))


# its __init__ below: the dataclass one called a factory per list and dict (2x); kw_only lets the
# fields with class defaults stay in their place
@dataclass(init=False, kw_only=True)
class DecisionContext:
    """Everything a decision knows so far. Stages read and extend it; the runner times them."""

    policy: Policy
    application: Mapping[str, Any]
    evaluator: Evaluator
    models: ModelProvider
    language: str
    today: dt.date | None  # the decision date a `default: today` input takes when absent
    # Fields with a default below are read from the class until a stage sets them: a context is
    # made per decision, and each attribute __init__ need not set costs it time.
    dated: tuple[str, ...] = ()  # the inputs that took `today` (the application left them out)
    fact: dict[str, Any]  # set by validate (_UNSET until then)
    input: dict[str, Any]  # the validated fact, before derived values; set by validate
    derived: dict[str, Any]  # set by derive when the policy derives values
    declines: list[Reason]
    refers: list[Reason]
    adjustments: list[Reason]  # limit/price rule reasons
    score: Score | None = None
    model_refs: tuple[ModelRef, ...] = ()  # set by score
    # per model: its PD (a float: the record writes its repr, the exact text) and the features it
    # scored, made plain when model_outputs is read (the audit record and replay read it; a decision
    # without a store never does); set by score
    scored: dict[str, tuple[float, dict[str, Any]]]
    encoded: Any = None  # the model features' encoded row (engine.models.scoring.Row), kept for explanations
    package: Any = None  # the scoring ModelPackage, kept for explanations
    # segments, offers and reasons: set whole by their stages, never appended to; read as empty
    # from the class until then (three lists less per decision)
    segments: Sequence[str] = ()
    limit: Decimal | None = None
    annual_rate: Decimal | None = None
    offers: Sequence[Offer] = ()
    objective: str = ""  # what ranked the offers, under the lifetime objectives
    outputs: dict[str, Any]  # the policy's `outputs:`, set whole by their stage (EMPTY_MAP until then)
    outcome: Outcome | None = None
    reasons: Sequence[Reason] = ()
    trace: list[TraceEntry]

    def __init__(
        self,
        policy: Policy,
        application: Mapping[str, Any],
        evaluator: Evaluator,
        models: ModelProvider,
        language: str = "en",
        today: dt.date | None = None,
    ) -> None:
        self.policy, self.application, self.evaluator, self.models = policy, application, evaluator, models
        self.language, self.today = language, today
        self.declines, self.refers, self.adjustments = [], [], []
        self.trace = []

    @property
    def stages(self) -> list[dict[str, Any]]:
        """Per stage: fired and values, for audit and the shadow check (read from the trace)."""
        return [{"stage": e.stage, "fired": list(e.fired), "values": e.values} for e in self.trace]

    @property
    def model_outputs(self) -> dict[str, Any]:
        """Raw model outputs for the record: per model, its PD (the record writes a float as its repr
        text) and its features (plain text)."""
        return {
            name: {"pd": pd, "features": plain(features, "text")}
            for name, (pd, features) in self.scored.items()
        }

    @property
    def declined(self) -> bool:
        return bool(self.declines)

    @property
    def rounding(self) -> str:
        return self.policy.rounding or "half_even"

    def text(self, texts: Mapping[str, str] | str | None, fallback: str = "") -> str:
        """A reason text in the requested language, else English, else any, else `fallback`."""
        if texts is None:
            return fallback
        if isinstance(texts, str):
            return texts
        return texts.get(self.language) or texts.get("en") or next(iter(texts.values()), fallback)


for _name in ("fact", "input", "derived", "scored"):
    setattr(DecisionContext, _name, _UNSET)
# the Decision's outputs when the policy has none: shared, like its read-only trace values
DecisionContext.outputs = EMPTY_MAP
