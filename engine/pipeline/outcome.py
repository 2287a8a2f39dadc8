"""The closing stage: the outcome (any decline -> DECLINE, else any refer -> REFER, else APPROVE)
and its reasons (fired rule codes first, then the model's adverse factors; at most four)."""

from __future__ import annotations

from typing import Any

from engine.decision import FrozenMap, Outcome, Reason
from engine.models.scoring import reason_texts
from engine.pipeline.context import DecisionContext

__all__ = ["MAX_REASONS", "outcome_stage"]

MAX_REASONS = 4
# an Enum's .value is two Python calls and a member read from its class a lookup: read once here
_TEXT = {outcome: outcome.value for outcome in Outcome}
_APPROVE, _DECLINE, _REFER = Outcome.APPROVE, Outcome.DECLINE, Outcome.REFER
# an outcome's trace values without model reasons (engine.decision.FrozenMap)
_PLAIN = {outcome: FrozenMap(outcome=outcome.value, model_reasons=()) for outcome in Outcome}


def outcome_stage(ctx: DecisionContext) -> dict[str, Any]:
    """DECLINE carries its decline reasons, REFER its referral reasons, each followed by the model's
    reasons when a score was reached; APPROVE carries the limit and price adjustments that applied.
    Fires no rule: its trace values alone (engine.pipeline.runner)."""
    if ctx.declines:
        outcome, ruled = _DECLINE, ctx.declines
    elif ctx.refers:
        outcome, ruled = _REFER, ctx.refers
    else:
        outcome, ruled = _APPROVE, ctx.adjustments
    ctx.outcome = outcome
    reasons = _unique(ruled)[:MAX_REASONS] if ruled else []
    model_codes: list[str] = []
    if outcome is not _APPROVE and ctx.package is not None and len(reasons) < MAX_REASONS:
        seen = {r.code for r in reasons}
        for code, text in reason_texts(ctx.package, ctx.encoded, MAX_REASONS, ctx.language):
            if len(reasons) >= MAX_REASONS:
                break
            if code in seen:
                continue
            seen.add(code)
            reasons.append(Reason(code, text, "score", ""))
            model_codes.append(code)
    ctx.reasons = reasons
    if not model_codes:  # the same values for every such decision: one shared read-only map
        return _PLAIN[outcome]
    return {"outcome": _TEXT[outcome], "model_reasons": tuple(model_codes)}


def _unique(reasons: list[Reason]) -> list[Reason]:
    """One reason per code (two rules may share a code), in the order they fired."""
    seen: set[str] = set()
    out: list[Reason] = []
    for reason in reasons:
        if reason.code not in seen:
            seen.add(reason.code)
            out.append(reason)
    return out
