"""Errors of the rule evaluators: a ruleset name reused for different rules, a failed rule action,
a fact or condition the durable_rules encoding cannot represent exactly."""

from __future__ import annotations

from engine.errors import CredoError

__all__ = ["RuleActionError", "RuleEngineError", "RulesetConflict", "UnencodableValue"]


class RuleEngineError(CredoError):
    """The rule engine failed; never the applicant's fault, so INTERNAL."""

    code = "RULE_ENGINE"
    grpc_status = "INTERNAL"


class RulesetConflict(RuleEngineError):
    """A ruleset name already registered in this process with different rules (names are registered
    once per process: a new policy version must get a new name and is loaded by fresh workers)."""

    code = "RULESET_CONFLICT"


class RuleActionError(RuleEngineError):
    """An exception raised inside a durable_rules action (which durable_rules only stores in the
    session state, `c.s.exception`)."""

    code = "RULE_ACTION_FAILED"


class UnencodableValue(RuleEngineError):
    """A fact value or constant outside what the exact encoding supports (float, NaN, huge exponent)."""

    code = "RULE_UNENCODABLE_VALUE"
