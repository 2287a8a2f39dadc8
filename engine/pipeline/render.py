"""The Decision as JSON for the CLI and tests: sorted keys, UTF-8, Decimals as strings, millis as
numbers with 3 decimals — the same input gives the same bytes apart from id, time and millis."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from engine.decision import (
    Decision,
    Instalment,
    ModelRef,
    Offer,
    Outcome,
    PolicyRef,
    Reason,
    Score,
    TraceEntry,
)

__all__ = ["VOLATILE", "decision_from_dict", "decision_json", "stable_view"]

VOLATILE = ("decision_id", "decided_at")  # plus trace[].millis


def decision_json(decision: Decision | Mapping[str, Any], indent: int | None = 2) -> str:
    body = decision.to_dict() if isinstance(decision, Decision) else dict(decision)
    return json.dumps(body, ensure_ascii=False, sort_keys=True, indent=indent, allow_nan=False)


def stable_view(body: Mapping[str, Any]) -> dict[str, Any]:
    """A decision dict without what legitimately differs between two runs (ids, time, timings)."""
    out = {k: v for k, v in body.items() if k not in VOLATILE}
    out["trace"] = [{k: v for k, v in entry.items() if k != "millis"} for entry in body.get("trace", [])]
    return out


def decision_from_dict(body: Mapping[str, Any]) -> Decision:
    """The Decision back from its to_dict() form (e.g. a stored record's), Decimals restored."""

    def dec(value: Any) -> Decimal | None:
        return None if value is None else Decimal(str(value))

    def offer(o: Mapping[str, Any]) -> Offer:
        rows = tuple(
            Instalment(
                int(r["period"]),
                Decimal(r["payment"]),
                Decimal(r["principal"]),
                Decimal(r["interest"]),
                Decimal(r["balance"]),
            )
            for r in o.get("schedule", [])
        )
        return Offer(
            o["product"],
            Decimal(o["amount"]),
            int(o["term_months"]),
            o["repayment_method"],
            Decimal(o["annual_rate"]),
            Decimal(o["apr"]),
            Decimal(o["instalment"]),
            Decimal(o["total_interest"]),
            Decimal(o["expected_profit"]),
            rows,
        )

    score = body.get("score")
    return Decision(
        decision_id=body["decision_id"],
        request_id=body["request_id"],
        outcome=Outcome(body["outcome"]),
        reasons=tuple(
            Reason(r["code"], r["text"], r["stage"], r.get("rule_id", "")) for r in body["reasons"]
        ),
        score=None if score is None else Score(Decimal(score["pd"]), int(score["points"]), score["grade"]),
        segments=tuple(body.get("segments", [])),
        limit=dec(body.get("limit")),
        annual_rate=dec(body.get("annual_rate")),
        offers=tuple(offer(o) for o in body.get("offers", [])),
        policy=PolicyRef(**body["policy"]),
        models=tuple(ModelRef(**m) for m in body.get("models", [])),
        trace=tuple(
            TraceEntry(t["stage"], tuple(t["fired"]), float(t["millis"]), dict(t.get("values", {})))
            for t in body.get("trace", [])
        ),
        decided_at=body["decided_at"],
        currency=body.get("currency", "CNY"),
    )
