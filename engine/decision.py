"""The Decision: what one call answers. Field names are shared by the gRPC contract, the CLI's
JSON and the audit record. Amounts and rates are `Decimal` here and decimal strings on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any


class Outcome(StrEnum):
    APPROVE = "APPROVE"
    DECLINE = "DECLINE"
    REFER = "REFER"


@dataclass(frozen=True)
class Reason:
    code: str
    text: str
    stage: str
    rule_id: str = ""


@dataclass(frozen=True)
class Score:
    pd: Decimal
    points: int
    grade: str


@dataclass(frozen=True)
class Instalment:
    """One row of a repayment schedule."""

    period: int
    payment: Decimal
    principal: Decimal
    interest: Decimal
    balance: Decimal


@dataclass(frozen=True)
class Offer:
    product: str
    amount: Decimal
    term_months: int
    repayment_method: str
    annual_rate: Decimal
    apr: Decimal
    instalment: Decimal
    total_interest: Decimal
    expected_profit: Decimal
    schedule: tuple[Instalment, ...] = ()


@dataclass(frozen=True)
class PolicyRef:
    name: str
    version: str
    sha256: str


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str
    sha256: str


@dataclass(frozen=True)
class TraceEntry:
    stage: str
    fired: tuple[str, ...]
    millis: float
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    decision_id: str
    request_id: str
    outcome: Outcome
    reasons: tuple[Reason, ...]
    score: Score | None
    segments: tuple[str, ...]
    limit: Decimal | None
    annual_rate: Decimal | None
    offers: tuple[Offer, ...]
    policy: PolicyRef
    models: tuple[ModelRef, ...]
    trace: tuple[TraceEntry, ...]
    decided_at: str
    currency: str = "CNY"
    # The hash of the audit record that holds this decision; set once the record is committed. It
    # cannot be part of the record it hashes, so to_dict() (the record body, the CLI JSON) omits it.
    record_hash: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: Decimals as strings, enums as names, in the contract's field names."""
        plain = _plain(self)
        del plain["record_hash"]
        return plain


def _plain(value: Any) -> Any:
    kind = type(value)
    # exact-type fast paths first: a Decision with full schedules has hundreds of values, and this
    # runs for every answer and every audit record
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is Decimal:
        return str(value)
    if kind is tuple or kind is list:
        return [_plain(v) for v in value]
    if kind is dict:
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Enum):
        return value.value
    fields = getattr(kind, "__dataclass_fields__", None)
    if fields is not None:
        return {name: _plain(getattr(value, name)) for name in fields}
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
