"""Credit policies as YAML: load, type-check, compile (rule IR + closures) and lint them.

Public surface: load_policy, load_policy_text, check_paths and the compiled Policy objects."""

from engine.policy.contract import InputDecl
from engine.policy.decision_table import DecisionTable, TableHit
from engine.policy.loader import (
    check_file,
    check_paths,
    check_text,
    load_policy,
    load_policy_text,
    policy_files,
)
from engine.policy.model import (
    Effect,
    Formula,
    LimitSpec,
    OffersSpec,
    Policy,
    PolicyTest,
    PriceSpec,
    Product,
    ProductsSpec,
    RuleStage,
    ScoreSpec,
    Segment,
    SegmentsSpec,
)

__all__ = [
    "DecisionTable",
    "Effect",
    "Formula",
    "InputDecl",
    "LimitSpec",
    "OffersSpec",
    "Policy",
    "PolicyTest",
    "PriceSpec",
    "Product",
    "ProductsSpec",
    "RuleStage",
    "ScoreSpec",
    "Segment",
    "SegmentsSpec",
    "TableHit",
    "check_file",
    "check_paths",
    "check_text",
    "load_policy",
    "load_policy_text",
    "policy_files",
]
