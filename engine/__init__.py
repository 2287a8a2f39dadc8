"""Credo: a credit decision engine (YAML policies, durable_rules, ONNX CatBoost models, gRPC, audit log)."""

from engine.decision import Decision, Offer, Outcome, Reason, Score
from engine.errors import CredoError, Diagnostic, InvalidInput, Location, PolicyError

__version__ = "0.1.0"

__all__ = [
    "CredoError",
    "Decision",
    "Diagnostic",
    "InvalidInput",
    "Location",
    "Offer",
    "Outcome",
    "PolicyError",
    "Reason",
    "Score",
    "__version__",
]
