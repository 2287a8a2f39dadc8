"""The stage table of a policy (validate -> derive -> eligibility -> score -> post_score ->
segments -> limit -> price -> offers -> outcome) and the Decision a finished context becomes."""

from __future__ import annotations

import datetime as dt
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from engine.decision import Decision, Outcome, PolicyRef, maker
from engine.pipeline.booking import book_offers
from engine.pipeline.context import DecisionContext, ModelProvider
from engine.pipeline.offers import offers_stage
from engine.pipeline.outcome import outcome_stage
from engine.pipeline.runner import CompiledStages, Stage, no_work, stages_body, stages_source
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

__all__ = ["Decide", "build_decision", "decider", "run_pipeline", "stage_source", "stage_table"]


# (policy, application, evaluator, models, language, timer, today, ids, received, request_id,
# decided_at, arm) -> (the finished context, its Decision): `decide` of a policy's generated code
Decide = Callable[..., tuple[DecisionContext, Decision]]
# (ctx, decision_id, request_id, decided_at, book, arm) -> the Decision of a finished context
Build = Callable[[DecisionContext, str, str, str, bool, str], Decision]


class _Prepared(NamedTuple):
    """What a loaded policy decides with (a policy never changes once loaded)."""

    policy: weakref.ref[Policy]
    table: tuple[Stage, ...]
    source: str  # the generated functions below (`credo compile --stages` prints it)
    run: CompiledStages  # the stage table on a context
    build: Build  # the Decision of a finished context
    decide: Decide  # a new context through the stage table to its Decision, in one call


_tables: dict[int, _Prepared] = {}  # per loaded policy, by id (the weakref drops the entry)


def stage_table(policy: Policy) -> tuple[Stage, ...]:
    """The stages this policy needs, in decision order; sections a policy leaves out are left out.
    Built once per loaded policy."""
    return _prepared(policy).table


def stage_source(policy: Policy) -> str:
    """The Python source of the functions that run this policy's decisions (`credo compile --stages`):
    run_stages (the stage table), build (the Decision of a finished context) and decide (both, on a
    new context, as the service runs them)."""
    return _prepared(policy).source


def decider(policy: Policy) -> Decide:
    """The policy's generated `decide` (see stage_source): made once per loaded policy."""
    known = _tables.get(id(policy))  # _prepared's lookup, inline: one call less on every decision
    return (known if known is not None and known.policy() is policy else _prepare(policy)).decide


def _prepared(policy: Policy) -> _Prepared:
    known = _tables.get(id(policy))
    return known if known is not None and known.policy() is policy else _prepare(policy)


def _prepare(policy: Policy) -> _Prepared:
    key = id(policy)
    table = _build_table(policy)
    source, names = _generated(policy, table)
    prepared = _tables[key] = _Prepared(
        weakref.ref(policy, lambda _: _tables.pop(key, None)),
        table,
        source,
        names["run_stages"],
        names["build"],
        names["decide"],
    )
    return prepared


# The Decision of a finished context. A DECLINE keeps the score if reached, but no limit, price or
# offers: nothing is offered to a declined applicant. Positional, in Decision's field order
# (keywords cost a third more: one Decision per answer).
_DECISION = """\
    outcome = ctx.outcome
    declined = outcome is DECLINE
    offers = {offers}
{book}    {returned}Decision(
        decision_id, request_id, outcome or DECLINE, tuple(ctx.reasons), {score}, {segments},
        {limit}, {annual_rate}, offers, REF,
        {models}, tuple(ctx.trace), decided_at, CURRENCY, {objective}, ctx.outputs, "", arm,
    )
"""
# What the Decision reads of the context, by the stage that sets it. A table without that stage
# writes the context's class default instead (nothing else could have set it): no read, no tuple.
_SET_BY = {
    "score": {"score": "ctx.score", "models": "tuple(ctx.model_refs)"},
    "segments": {"segments": "tuple(ctx.segments)"},
    "limit": {"limit": "None if declined else ctx.limit"},
    "price": {"annual_rate": "None if declined else ctx.annual_rate"},
    "offers": {"offers": "() if declined else tuple(ctx.offers)", "objective": "ctx.objective"},
}
_UNSET = {
    "score": "None",
    "models": "()",
    "segments": "()",
    "limit": "None",
    "annual_rate": "None",
    "offers": "()",
    "objective": '""',
}
# the lifetime objectives answer bookable offers (offer id, validity, due dates)
_BOOK = """\
    if {book}offers and ctx.objective:
        offers = book_offers(offers, decision_id, decided_at, VALIDITY_DAYS, DUE_DAY, DUE_MIN_DAYS)
"""


def _generated(policy: Policy, table: tuple[Stage, ...]) -> tuple[str, dict[str, Any]]:
    """(source, namespace) of the policy's run_stages, build and decide. Names in the source are
    the stages' (as literals) and this module's; the policy's values are bound in the namespace.
    decide holds run_stages' and build's statements in its own body: one call per decision, not
    three (the service's storeless answer runs nothing else of the pipeline)."""
    names: dict[str, Any] = {
        "DecisionContext": DecisionContext,
        "Decision": maker(Decision),  # the same arguments, without the class call's own steps
        "DECLINE": Outcome.DECLINE,
        "REF": PolicyRef(policy.name, policy.version, policy.sha256),
        "CURRENCY": policy.currency,
        "book_offers": book_offers,
    }
    spec = policy.offers
    if spec is not None:
        names.update(VALIDITY_DAYS=spec.validity_days, DUE_DAY=spec.due_day, DUE_MIN_DAYS=spec.due_min_days)

    read = dict(_UNSET)
    for stage in table:
        read.update(_SET_BY.get(stage.name, {}))

    def decision(returned: str, book: str) -> str:
        booked = _BOOK.format(book=book) if spec is not None else ""
        return _DECISION.format(returned=returned, book=booked, **read)

    source = (
        f"{stages_source(table, names)}"
        "\n\n"
        "def build(ctx, decision_id, request_id, decided_at, book, arm):\n"
        f"{decision('return ', 'book and ')}"
        "\n\n"
        "def decide(\n"
        "    policy, application, evaluator, models, language, timer, today,\n"
        "    ids, received, request_id, decided_at, arm,\n"
        "):\n"
        "    ctx = DecisionContext(policy, application, evaluator, models, language, today)\n"
        "    # run_stages(ctx, timer)\n"
        "    trace, declines = ctx.trace.append, ctx.declines\n"
        f"{stages_body(table, names)}"
        "    # build(ctx, ids(received), request_id, decided_at, True, arm); the id after the stages:\n"
        "    # a refused application takes none\n"
        "    decision_id = ids(received)\n"
        f"{decision('decision = ', '')}"
        "    return ctx, decision\n"
    )
    exec(compile(source, "<stage table>", "exec"), names)  # stage names only, as literals
    return source, names


def _build_table(policy: Policy) -> tuple[Stage, ...]:
    # derive has nothing to do without derived values or decision tables: traced, not called
    derive = derive_stage if policy.derived or policy.plan else no_work
    table = [Stage("validate", validate_stage), Stage("derive", derive)]
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
    ctx = DecisionContext(policy, application, evaluator, models, language, today)
    return _prepared(policy).run(ctx, timer)  # the stage table as one generated function


def build_decision(
    ctx: DecisionContext, decision_id: str, request_id: str, decided_at: str, book: bool = True
) -> Decision:
    """The Decision of a finished context (the policy's generated `build`). A DECLINE keeps the score
    if reached, but no limit, price or offers: nothing is offered to a declined applicant.
    `book=False` leaves the offers unbooked (no offer id, validity or due dates): batch work, which
    reads none of them."""
    return _prepared(ctx.policy).build(ctx, decision_id, request_id, decided_at, book, "")
