"""Turn a parsed policy document into a `Policy`: the compiler as an ordered table of named stages
(as OPA's compiler runs {name, metric, func}), each timed, all diagnostics collected in one sink."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from engine.errors import DiagnosticSink
from engine.policy import declarations as d
from engine.policy import model as m
from engine.policy import sections as sec
from engine.policy.builder import Builder
from engine.policy.experiment_section import experiment
from engine.policy.lint import lint
from engine.policy.outputs import outputs
from engine.policy.source import Source
from engine.policy.table_plan import derived, table_lint

__all__ = ["STAGES", "CompilerStage", "build_policy"]


@dataclass(frozen=True)
class CompilerStage:
    """One compiler stage: `metric` names its timing in `Builder.timings` (seconds)."""

    name: str
    metric: str
    func: Callable[[Builder], None]


def _stage(name: str, func: Callable[[Builder], None]) -> CompilerStage:
    return CompilerStage(name, f"compile_stage_{name}", func)


STAGES: tuple[CompilerStage, ...] = (
    _stage("header", d.header),
    _stage("inputs", d.inputs),
    _stage("labels", d.labels),
    _stage("input_groups", d.input_groups),
    _stage("tables", d.tables),
    _stage("derived", derived),
    _stage("score", sec.score),
    _stage("stages", sec.stages),
    _stage("segments", sec.segments),
    _stage("limit", sec.limit),
    _stage("price", sec.price),
    _stage("products", sec.products),
    _stage("offers", sec.offers),
    _stage("outputs", outputs),
    _stage("tests", sec.tests),
    _stage("experiment", experiment),
    _stage("table_lint", table_lint),
    _stage("lint", lint),
)


def build_policy(src: Source, sink: DiagnosticSink) -> m.Policy:
    """Run every compiler stage in order; all diagnostics go to `sink`."""
    b = Builder(src, sink)
    for stage in STAGES:
        started = time.perf_counter()
        stage.func(b)
        b.timings[stage.metric] = time.perf_counter() - started
    return b.policy
