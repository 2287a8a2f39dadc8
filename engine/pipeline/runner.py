"""The pipeline runner: an ordered table of named stages, each timed and traced. A decline stops
the table; only the closing `outcome` stage (outcome and reasons) still runs."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.decision import TraceEntry, value_object
from engine.pipeline.context import DecisionContext

__all__ = ["Stage", "StageResult", "run_stages"]


@dataclass(slots=True)
class StageResult:
    """What a stage reports for the trace: the rule ids that fired and a few values (JSON-ready)."""

    fired: tuple[str, ...] = ()
    values: Mapping[str, Any] = field(default_factory=dict)


@value_object
class Stage:
    """One row of the stage table. `closing` stages run even after a decline (outcome, reasons)."""

    name: str
    run: Callable[[DecisionContext], StageResult]
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
        start = timer()
        result = stage.run(ctx)
        # to the µs: round() to an int, then one division (round(x, 3) formats the float: 3x the cost)
        millis = round((timer() - start) * 1e6) / 1000
        values = result.values  # each stage makes a fresh dict: kept, not copied
        if type(values) is not dict:
            values = dict(values)
        trace(TraceEntry(stage.name, tuple(result.fired), millis, values))
    return ctx
