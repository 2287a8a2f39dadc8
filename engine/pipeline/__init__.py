"""The decision pipeline: a DecisionContext carried through an ordered table of named, timed
stages (validate -> derive -> rules -> score -> rules -> segments -> limit -> price -> offers -> outcome)."""

from engine.pipeline.context import DecisionContext, ModelProvider
from engine.pipeline.runner import Stage, StageResult, run_stages
from engine.pipeline.table import build_decision, run_pipeline, stage_table

__all__ = [
    "DecisionContext",
    "ModelProvider",
    "Stage",
    "StageResult",
    "build_decision",
    "run_pipeline",
    "run_stages",
    "stage_table",
]
