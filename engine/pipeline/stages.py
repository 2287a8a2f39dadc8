"""The decision stages before the offers: validate, derive, rule stages (eligibility, post_score),
score, segments, limit and price; each reads and extends the DecisionContext, all in Decimal."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_DOWN, Context, Decimal
from typing import Any

from engine.decision import EMPTY_MAP, FrozenMap, Reason, Score, maker, plain
from engine.errors import FeatureRefused, FieldViolation, InvalidInput, PolicyRuntimeError
from engine.finance import to_decimal
from engine.finance.money import rounding_mode
from engine.models.scaling import pd_decimal
from engine.pipeline.context import DecisionContext
from engine.pipeline.runner import StageResult

__all__ = [
    "LIMIT_FLOOR_CODE",
    "after_score",
    "derive_stage",
    "limit_stage",
    "outputs_stage",
    "price_stage",
    "rule_stage",
    "score_stage",
    "segments_stage",
    "validate_stage",
]

LIMIT_FLOOR_CODE = "LIMIT_BELOW_FLOOR"
LIMIT_FLOOR_TEXT = {
    "en": "The credit limit is below the minimum we can lend",
    "zh": "授信额度低于最低放款金额",
}
CENT = Decimal("0.01")
_ZERO = Decimal(0)
_WIDE = Context(prec=50)  # the limit's rounding to its step: room for any amount, default traps
_SCORE = maker(Score)  # Score(pd, points, grade) without the class call's own steps


# the validate stage's trace values by field count, shared by every decision (engine.decision.FrozenMap)
_FIELD_COUNTS: dict[int, FrozenMap] = {}


def validate_stage(ctx: DecisionContext) -> dict[str, Any]:
    """Typed flat fact from the nested application (InvalidInput, listing every bad field, escapes).
    Fires no rule: its trace values alone (engine.pipeline.runner)."""
    ctx.input, ctx.dated = ctx.policy.validated(ctx.application, ctx.today)
    ctx.fact = dict(ctx.input)
    count = len(ctx.input)
    values = _FIELD_COUNTS.get(count)
    if values is None:  # at most one per input count a policy can validate
        values = _FIELD_COUNTS[count] = FrozenMap(fields=count)
    return values


def derive_stage(ctx: DecisionContext) -> dict[str, Any]:
    if not ctx.policy.derived and not ctx.policy.plan:  # no derived values, no decision tables
        return EMPTY_MAP
    tables = ctx.policy.derive(ctx.fact, ctx.evaluator)
    ctx.derived = {name: ctx.fact.get(name) for name in ctx.policy.derived}
    values: dict[str, Any] = plain(ctx.derived, "text")
    if tables:
        values["tables"] = tables
    return values


# a rule stage's trace values when none of its rules fired (engine.decision.FrozenMap)
_NO_EFFECTS = FrozenMap(declines=(), refers=())


def rule_stage(name: str) -> Any:
    """The stage function of the policy's rule stage `name` (eligibility or post_score): every rule
    is evaluated, so every failing reason is reported, then declines and refers are collected."""

    def run(ctx: DecisionContext) -> StageResult | FrozenMap:
        stage = ctx.policy.stage(name)
        assert stage is not None  # stage_table schedules this stage only when the policy has the section
        fired = stage.fire(ctx.evaluator, ctx.fact)
        if not fired:  # the same values for every such decision: one shared read-only map
            return _NO_EFFECTS
        declines: list[str] = []
        refers: list[str] = []
        effects, language = stage.effects, ctx.language
        for rule_id in fired:
            effect = effects[rule_id]
            if effect.kind == "decline":
                ctx.declines.append(stage.reason(rule_id, language, name))
                declines.append(effect.code)
            elif effect.kind == "refer":
                ctx.refers.append(stage.reason(rule_id, language, name))
                refers.append(effect.code)
        return StageResult(tuple(fired), {"declines": tuple(declines), "refers": tuple(refers)})

    run.__name__ = f"{name}_stage"
    return run


def _fed_by(spec: Any, inputs: Mapping[str, Any], feature: str) -> str:
    """The application field behind a model feature: the input it copies, else the feature itself
    (computed by a formula from several inputs)."""
    formula = spec.feature_formulas.get(feature)
    return formula.source if formula is not None and formula.source in inputs else feature


def score_stage(ctx: DecisionContext) -> dict[str, Any]:
    """Model features from the policy's mapping -> ONNX PD -> points -> grade; adds score.* to the fact.
    Fires no rule: its trace values alone (engine.pipeline.runner)."""
    spec = ctx.policy.score
    assert spec is not None  # stage_table schedules this stage only when the policy has the section
    package, scorer = ctx.models(spec.model_name, spec.model_version, spec.model_sha256)
    features = spec.features(ctx.fact, ctx.evaluator)
    try:
        raw_pd, row = scorer.scored(features)
    except FeatureRefused as exc:  # the caller's values made it: INVALID_ARGUMENT naming the input
        field = _fed_by(spec, ctx.policy.inputs, exc.feature)
        decl = ctx.policy.inputs.get(field)
        message = exc.message
        if decl is not None and decl.pii:  # never echo personal data into an error or a log line
            message = f"refused by model feature {exc.feature!r} (a personal value: not repeated here)"
        raise InvalidInput([FieldViolation(field, message)]) from None
    points = spec.scaling.scale(raw_pd)
    pd = pd_decimal(raw_pd)
    ctx.package = package
    ctx.encoded = row
    ctx.model_refs = (*ctx.model_refs, package.ref)  # set whole: the context's default is shared
    # the first model's entry: a dict of its own, not the context's shared default unpacked (a
    # read-only mapping, which ** walks by keys and lookups)
    scored = {**ctx.scored} if ctx.scored else {}
    scored[package.name] = (raw_pd, features)  # the record writes the float as its repr: exact text
    ctx.scored = scored
    tables = after_score(ctx, pd, points)
    values: dict[str, Any] = {"pd": pd, "points": points, "grade": ctx.fact["score.grade"]}
    if tables:
        values["tables"] = tables
    return values


def after_score(ctx: DecisionContext, pd: Decimal, points: int) -> list[str]:
    """Grade `points` (the grade table evaluated once), put score.* in the fact and compute the
    values that read it; returns the trace lines of the table rows that matched."""
    spec = ctx.policy.score
    assert spec is not None  # only a policy with a score section reaches a score
    grade, lines = spec.graded(points, ctx.evaluator)
    ctx.score = _SCORE(pd, points, grade)
    fact = ctx.fact
    fact["score.pd"], fact["score.points"], fact["score.grade"] = pd, points, grade
    late = ctx.policy.derive_late(fact, ctx.evaluator)
    return [*lines, *late] if late else list(lines)


def segments_stage(ctx: DecisionContext) -> StageResult:
    spec = ctx.policy.segments
    assert spec is not None  # stage_table schedules this stage only when the policy has the section
    fired = spec.stage.fire(ctx.evaluator, ctx.fact)
    ctx.segments = list(fired)
    return StageResult(tuple(fired), {"segments": list(fired)})


def limit_stage(ctx: DecisionContext) -> StageResult:
    """formula -> adjustments (policy order) -> cap -> round down -> floor (below it: decline)."""
    spec = ctx.policy.limit
    assert spec is not None  # stage_table schedules this stage only when the policy has the section
    formula = spec.formula.run(ctx.fact, ctx.evaluator)
    if formula.__class__ is not Decimal or not formula.is_finite():  # _number's own first test, inline
        formula = _number(formula, spec.formula)
    value, fired = _adjust(ctx, spec.adjustments, formula, "limit")
    cap, step = spec.cap, spec.round_to
    capped = cap is not None and value > cap
    if capped and cap is not None:
        value = cap
    quantum = spec.step_quantum
    if quantum is not None:  # _to_step's usual case, inline: a power of ten is one quantize
        value = value.quantize(quantum, rounding_mode(spec.rounding), _WIDE)
    else:
        value = _to_step(value, step, rounding_mode(spec.rounding), quantum)
    if cap is not None and value > cap:  # rounding up never lends above the cap
        value = _to_step(cap, step, ROUND_DOWN, quantum)
    value = value.quantize(CENT, ROUND_DOWN)  # money: in cents (the step is whole cents)
    # a stated floor admits a limit equal to it, 0 included; without one a limit must be above 0
    if value < spec.floor if spec.floor is not None else value <= 0:
        ctx.declines.append(Reason(LIMIT_FLOOR_CODE, ctx.text(LIMIT_FLOOR_TEXT), "limit", ""))
    ctx.limit = value
    values = {"formula": formula, "capped": capped, "limit": value}
    return StageResult(fired, values)


def _to_step(value: Decimal, step: Decimal, rounding: str, quantum: Decimal | None) -> Decimal:
    """`value` rounded to a multiple of `step` (in 50 digits: exact for any amount). A step that is a
    power of ten 1Ek (`quantum`: a cent, a unit, a hundred) is a quantize to exponent k: the same
    number (the limit is then written in cents)."""
    if quantum is not None:
        return value.quantize(quantum, rounding, _WIDE)  # (positional: keywords cost more)
    whole = _WIDE.divide(value, step).to_integral_value(rounding, _WIDE)
    return _WIDE.multiply(whole, step)


def price_stage(ctx: DecisionContext) -> StageResult:
    """base rate + spread -> adjustments (policy order) -> floor -> cap (the legal ceiling)."""
    spec = ctx.policy.price
    assert spec is not None  # stage_table schedules this stage only when the policy has the section
    fact, evaluator = ctx.fact, ctx.evaluator
    base = spec.base_rate.run(fact, evaluator)
    if base.__class__ is not Decimal or not base.is_finite():  # _number's own first test, inline
        base = _number(base, spec.base_rate)
    spread = _ZERO if spec.spread is None else spec.spread.run(fact, evaluator)
    if spread.__class__ is not Decimal or not spread.is_finite():
        assert spec.spread is not None  # _ZERO is a finite Decimal
        spread = _number(spread, spec.spread)
    value, fired = _adjust(ctx, spec.adjustments, base + spread, "price")
    floored = spec.floor is not None and value < spec.floor
    if floored and spec.floor is not None:
        value = spec.floor
    capped = spec.cap is not None and value > spec.cap
    if capped and spec.cap is not None:
        value = spec.cap
    ctx.annual_rate = value
    return StageResult(
        fired,
        {"base_rate": base, "spread": spread, "floored": floored, "capped": capped, "annual_rate": value},
    )


def _adjust(ctx: DecisionContext, stage: Any, value: Decimal, name: str) -> tuple[Decimal, tuple[str, ...]]:
    """Apply the fired adjustment rules of `stage` in policy order; each adds a reason."""
    if stage is None or not stage.ruleset.rules:
        return value, ()
    fired = tuple(stage.fire(ctx.evaluator, ctx.fact))
    for rule_id in fired:
        effect = stage.effects[rule_id]
        if effect.multiply is not None:
            value = value * effect.multiply
        if effect.add is not None:
            value = value + effect.add
        ctx.adjustments.append(stage.reason(rule_id, ctx.language, name))
    return value, fired


def _number(value: Any, formula: Any) -> Decimal:
    """A formula's value as Decimal; a missing (None) or non-numeric value refuses the decision."""
    if value.__class__ is Decimal and value.is_finite():  # the usual case, as to_decimal returns it
        return value
    if value is None or isinstance(value, bool) or not isinstance(value, int | Decimal):
        where = getattr(formula, "location", None)
        source = getattr(formula, "source", "?")
        raise PolicyRuntimeError(f"formula '{source}' gave {value!r}, not a number", location=where)
    return to_decimal(value)


def outputs_stage(ctx: DecisionContext) -> dict[str, Any]:
    """The policy's own typed results (`outputs:`), computed from the fact as the decision left it."""
    ctx.outputs = ctx.policy.compute_outputs(ctx.fact)
    return {"outputs": len(ctx.outputs)}
