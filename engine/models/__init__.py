"""Credit models: CatBoost training into verified ONNX packages, scoring, scaling and reasons.

Names are imported lazily so `engine.models.scaling` does not pull in catboost and onnxruntime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.models.scaling import grade, points
    from engine.models.scoring import ModelReason, NativeScorer, OnnxScorer, explain
    from engine.models.store import ModelPackage, ModelStore

_HOMES = {
    "ModelPackage": "store",
    "ModelStore": "store",
    "ModelReason": "scoring",
    "NativeScorer": "scoring",
    "OnnxScorer": "scoring",
    "explain": "scoring",
    "grade": "scaling",
    "points": "scaling",
}

__all__ = [
    "ModelPackage",
    "ModelReason",
    "ModelStore",
    "NativeScorer",
    "OnnxScorer",
    "explain",
    "grade",
    "points",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'engine.models' has no attribute {name!r}")
    return getattr(importlib.import_module(f"engine.models.{home}"), name)
