"""The pipeline runner: an ordered table of named stages, each timed and traced. A decline stops
the table; only the closing `outcome` stage (outcome and reasons) still runs. `run_stages` walks any
table; `compile_stages` writes a policy's table as one straight-line function that does the same.
A stage returns a StageResult, or only its values dict when it fires no rules (validate, derive,
score, outputs, outcome): one object less to make and read per stage and decision."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.decision import EMPTY_MAP, FrozenMap, TraceEntry, maker, value_object
from engine.pipeline.context import DecisionContext

__all__ = [
    "CompiledStages",
    "Stage",
    "StageResult",
    "StageRun",
    "compile_stages",
    "no_work",
    "run_stages",
    "shared_entry",
    "stages_body",
    "stages_source",
]


@dataclass(slots=True)
class StageResult:
    """What a stage reports for the trace: the rule ids that fired and a few values (JSON-ready)."""

    fired: tuple[str, ...] = ()
    values: Mapping[str, Any] = field(default_factory=dict)


# a stage's run: its StageResult, or its trace values alone when it fired no rule (a dict of its own,
# or a read-only FrozenMap shared by every decision whose values are the same)
StageRun = Callable[[DecisionContext], StageResult | dict[str, Any]]


@value_object
class Stage:
    """One row of the stage table. `closing` stages run even after a decline (outcome, reasons)."""

    name: str
    run: StageRun
    closing: bool = False


def run_stages(
    ctx: DecisionContext, table: Sequence[Stage], timer: Callable[[], float] = time.perf_counter
) -> DecisionContext:
    """Run `table` in order on `ctx`, appending one TraceEntry per stage that ran (the audit's
    per-stage view, ctx.stages, is read from the trace when asked for)."""
    trace, declines = ctx.trace.append, ctx.declines
    for stage in table:
        if declines and not stage.closing:
            continue
        if stage.run is no_work:  # as the generated function does: no call, no timing
            trace(TraceEntry(stage.name, (), 0.0, {}))
            continue
        start = timer()
        result = stage.run(ctx)
        # to the µs: round() to an int, then one division (round(x, 3) formats the float: 3x the cost)
        millis = round((timer() - start) * 1e6) / 1000
        if isinstance(result, dict):  # its values alone: it fired no rule
            trace(TraceEntry(stage.name, (), millis, result))
            continue
        values = result.values  # each stage makes a fresh dict: kept, not copied
        if type(values) is not dict:
            values = dict(values)
        trace(TraceEntry(stage.name, tuple(result.fired), millis, values))
    return ctx


CompiledStages = Callable[[DecisionContext, Callable[[], float]], DecisionContext]


def no_work(ctx: DecisionContext) -> StageResult:
    """The run of a stage with nothing to do for a policy (derive, for one without derived values or
    tables): traced with no rule fired and no values. Generated code writes its trace entry inline,
    without a call or a timing (its time is none: 0.0 ms)."""
    return StageResult()


# How many trace entries with shared values (engine.decision.FrozenMap) a stage of a generated
# table keeps for reuse, one per timing: the fast stages that answer them time to a few µs.
SHARED_ENTRIES = 256


def shared_entry(
    entries: dict[float, TraceEntry], stage: str, millis: float, values: FrozenMap
) -> TraceEntry:
    """A trace entry of `stage` that fired no rule, timed `millis`, with `values` shared by many
    decisions; kept in `entries` (by millis, at most SHARED_ENTRIES) for the next decision whose
    stage answers the same values in the same time. Such an entry is the same for all of them,
    and a kept answer that shares it holds ~90 bytes and one object for the collector less."""
    entry = TraceEntry(stage, (), millis, values)
    if millis in entries or len(entries) < SHARED_ENTRIES:
        entries[millis] = entry
    return entry


def stages_source(table: Sequence[Stage], names: dict[str, Any]) -> str:
    """The source of run_stages(ctx, timer) for `table`: one straight-line function that does what
    `run_stages` does with it (each stage called, timed and traced in turn, the decline check before
    each stage that is not closing; no loop, no Stage rows read per decision). A stage's name is a
    string literal in the source; its function is bound in `names` by position (`stage_3`)."""
    return (
        "def run_stages(ctx, timer):\n"
        f"    {' -> '.join(stage.name for stage in table)!r}\n"
        "    trace, declines = ctx.trace.append, ctx.declines\n"
        f"{stages_body(table, names)}"
        "    return ctx\n"
    )


def stages_body(table: Sequence[Stage], names: dict[str, Any]) -> str:
    """The statements of run_stages for `table`, at one indent, on locals `ctx`, `timer`, `trace`
    (ctx.trace.append) and `declines` (ctx.declines): what a policy's generated decide runs in its
    own body, one call less per stage table. A stage with nothing to do is traced with one entry made
    here, the same for every decision (`nothing_1`: a frozen entry whose values are the shared
    read-only EMPTY_MAP), instead of one made per decision; a stage that answers shared values
    reuses the entry of an earlier decision timed the same (`entries_2`, see shared_entry)."""
    # TraceEntry is the value object's maker here: the same arguments, without the class call's steps
    names.update(
        TraceEntry=maker(TraceEntry),
        StageResult=StageResult,
        FrozenMap=FrozenMap,
        shared_entry=shared_entry,
        dict=dict,
        tuple=tuple,
        round=round,
    )
    body = []
    for i, stage in enumerate(table):
        indent = "    " if stage.closing else "        "
        if not stage.closing:
            body.append("    if not declines:\n")
        closing = " (closing: runs after a decline too)" if stage.closing else ""
        body.append(f"{indent}# {stage.name!r}{closing}\n")
        if stage.run is no_work:
            names[f"nothing_{i}"] = TraceEntry(stage.name, (), 0.0, EMPTY_MAP)
            body.append(f"{indent}trace(nothing_{i})  # nothing to do here\n")
            continue
        names[f"stage_{i}"] = stage.run
        names[f"entries_{i}"] = {}
        # millis as run_stages works it out, round(µs) / 1000, with the float's own __round__ called:
        # the builtin looks the method up and binds it on every call (a fifth of the line's cost)
        body.append(
            f"{indent}start = timer()\n"
            f"{indent}result = stage_{i}(ctx)\n"
            f"{indent}millis = ((timer() - start) * 1e6).__round__() / 1000\n"
            f"{indent}if result.__class__ is FrozenMap:  # shared values: an entry shared too\n"
            f"{indent}    entry = entries_{i}.get(millis)\n"
            f"{indent}    if entry is None or entry.values is not result:\n"
            f"{indent}        entry = shared_entry(entries_{i}, {stage.name!r}, millis, result)\n"
            f"{indent}    trace(entry)\n"
            f"{indent}elif result.__class__ is not StageResult:  # its values alone: it fired no rule\n"
            f"{indent}    trace(TraceEntry({stage.name!r}, (), millis, result))\n"
            f"{indent}else:\n"
            f"{indent}    values = result.values\n"
            f"{indent}    if values.__class__ is not dict:\n"
            f"{indent}        values = dict(values)\n"
            f"{indent}    trace(TraceEntry({stage.name!r}, tuple(result.fired), millis, values))\n"
        )
    return "".join(body)


def compile_stages(table: Sequence[Stage]) -> tuple[str, CompiledStages]:
    """(source, function) of `table` as run_stages(ctx, timer) (see stages_source)."""
    names: dict[str, Any] = {}
    source = stages_source(table, names)
    exec(compile(source, "<stage table>", "exec"), names)  # stage names only, as literals
    run: CompiledStages = names["run_stages"]
    return source, run
