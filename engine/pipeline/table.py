"""The stage table of a policy (validate -> derive -> eligibility -> score -> post_score ->
segments -> limit -> price -> offers -> outcome) and the Decision a finished context becomes."""

from __future__ import annotations

import datetime as dt
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from engine.decision import Decision, Outcome, PolicyRef
from engine.pipeline.booking import book_offers
from engine.pipeline.context import DecisionContext, ModelProvider
from engine.pipeline.offers import offers_stage
from engine.pipeline.outcome import outcome_stage
from engine.pipeline.runner import CompiledStages, Stage, compile_stages
from engine.pipeline.stages import (
    derive_stage,
    limit_stage,
    outputs_stage,
    price_stage,
    rule_stage,
    score_stage,
    segments_stage,
    validate_stage,
)
from engine.policy.model import Policy
from engine.rules import Evaluator

__all__ = ["build_decision", "run_pipeline", "stage_source", "stage_table"]


class _Prepared(NamedTuple):
    """What a loaded policy decides with (a policy never changes once loaded)."""

    policy: weakref.ref[Policy]
    table: tuple[Stage, ...]
    ref: PolicyRef
    source: str  # the table as one generated function (engine.pipeline.runner.compile_stages)
    run: CompiledStages


_tables: dict[int, _Prepared] = {}  # per loaded policy, by id (the weakref drops the entry)


def stage_table(policy: Policy) -> tuple[Stage, ...]:
    """The stages this policy needs, in decision order; sections a policy leaves out are left out.
    Built once per loaded policy."""
    return _prepared(policy).table


def stage_source(policy: Policy) -> str:
    """The Python source of the function that runs this policy's stage table (`credo compile --stages`)."""
    return _prepared(policy).source


def _prepared(policy: Policy) -> _Prepared:
    known = _tables.get(id(policy))
    if known is not None and known.policy() is policy:
        return known
    key = id(policy)
    table = _build_table(policy)
    source, run = compile_stages(table)
    prepared = _tables[key] = _Prepared(
        weakref.ref(policy, lambda _: _tables.pop(key, None)),
        table,
        PolicyRef(policy.name, policy.version, policy.sha256),
        source,
        run,
    )
    return prepared


def _build_table(policy: Policy) -> tuple[Stage, ...]:
    table = [Stage("validate", validate_stage), Stage("derive", derive_stage)]
    if policy.stage("eligibility") is not None:
        table.append(Stage("eligibility", rule_stage("eligibility")))
    if policy.score is not None:
        table.append(Stage("score", score_stage))
    if policy.stage("post_score") is not None:
        table.append(Stage("post_score", rule_stage("post_score")))
    if policy.segments is not None:
        table.append(Stage("segments", segments_stage))
    if policy.limit is not None:
        table.append(Stage("limit", limit_stage))
    if policy.price is not None:
        table.append(Stage("price", price_stage))
    if policy.offers is not None and policy.products is not None:
        table.append(Stage("offers", offers_stage))
    if policy.outputs:  # the author's own results, on every outcome (a decline has its risk class too)
        table.append(Stage("outputs", outputs_stage, closing=True))
    table.append(Stage("outcome", outcome_stage, closing=True))
    return tuple(table)


def run_pipeline(
    policy: Policy,
    application: Mapping[str, Any],
    evaluator: Evaluator,
    models: ModelProvider,
    language: str = "en",
    timer: Callable[[], float] = time.perf_counter,
    today: dt.date | None = None,
) -> DecisionContext:
    """Decide one application on one policy; InvalidInput / PolicyRuntimeError / ModelError escape.
    `today` is the decision date a `default: today` input takes (the caller's clock, never read here)."""
    ctx = DecisionContext(policy, application, evaluator, models, language=language, today=today)
    return _prepared(policy).run(ctx, timer)  # the stage table as one generated function


def build_decision(
    ctx: DecisionContext, decision_id: str, request_id: str, decided_at: str, book: bool = True
) -> Decision:
    """The Decision of a finished context. A DECLINE keeps the score if reached, but no limit, price
    or offers: nothing is offered to a declined applicant. `book=False` leaves the offers unbooked
    (no offer id, validity or due dates): batch work, which reads none of them."""
    policy = ctx.policy
    declined = ctx.outcome is Outcome.DECLINE
    offers = () if declined else tuple(ctx.offers)
    spec = policy.offers
    if (
        book and ctx.objective and offers and spec is not None
    ):  # the lifetime objectives answer bookable offers
        offers = book_offers(
            offers, decision_id, decided_at, spec.validity_days, spec.due_day, spec.due_min_days
        )
    # positional, in Decision's field order (keywords cost a third more: one Decision per answer)
    return Decision(
        decision_id,
        request_id,
        ctx.outcome or Outcome.DECLINE,
        tuple(ctx.reasons),
        ctx.score,
        tuple(ctx.segments),
        None if declined else ctx.limit,  # limit
        None if declined else ctx.annual_rate,  # annual_rate
        offers,
        _prepared(policy).ref,  # policy
        tuple(ctx.model_refs),  # models
        tuple(ctx.trace),
        decided_at,
        policy.currency,
        ctx.objective,
        ctx.outputs,
    )
