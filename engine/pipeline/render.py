"""The Decision as JSON for the CLI and tests: sorted keys, UTF-8, Decimals as strings, millis as
numbers with 3 decimals — the same input gives the same bytes apart from id, time and millis."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

from engine.decision import (
    Decision,
    Fee,
    Instalment,
    ModelRef,
    Offer,
    Outcome,
    PolicyRef,
    Reason,
    RevolvingTerms,
    Score,
    TraceEntry,
)
from engine.errors import ArchiveMissing
from engine.finance.dates import dates_again
from engine.finance.schedule import schedule_sha256
from engine.pipeline.candidates import offer_schedule

__all__ = [
    "VOLATILE",
    "decision_from_dict",
    "decision_from_record",
    "decision_json",
    "stable_view",
]

VOLATILE = ("decision_id", "decided_at")  # plus trace[].millis


def decision_json(decision: Decision | Mapping[str, Any], indent: int | None = 2) -> str:
    body = decision.to_dict() if isinstance(decision, Decision) else dict(decision)
    return json.dumps(body, ensure_ascii=False, sort_keys=True, indent=indent, allow_nan=False)


def stable_view(body: Mapping[str, Any]) -> dict[str, Any]:
    """A decision dict without what legitimately differs between two runs (ids, time, timings)."""
    out = {k: v for k, v in body.items() if k not in VOLATILE}
    out["trace"] = [{k: v for k, v in entry.items() if k != "millis"} for entry in body.get("trace", [])]
    return out


def decision_from_record(summary: Mapping[str, Any], stages: Sequence[Mapping[str, Any]]) -> Decision:
    """The full Decision of a lean audit record (engine.audit.record.decision_summary and the
    record's stages): each offer's schedule recomputed from its terms and checked against the
    recorded sha256 (ArchiveMissing if it differs: the record cannot be rebuilt as it was), the
    trace rebuilt from the stages."""
    body = dict(summary)
    offers = []
    for offer in summary.get("offers", []):
        recipe = offer["schedule"]
        rows = _recomputed_schedule(offer, recipe, str(summary["decided_at"]))
        offers.append({**offer, "schedule": rows})
    body["offers"] = offers
    body["trace"] = list(stages)
    return decision_from_dict(body)


def _recomputed_schedule(
    offer: Mapping[str, Any], recipe: Mapping[str, Any], decided_at: str
) -> tuple[Instalment, ...]:
    if not recipe["rows"]:  # a revolving line has no schedule
        return ()
    rows = offer_schedule(
        Decimal(offer["amount"]),
        Decimal(offer["annual_rate"]),
        int(offer["term_months"]),
        str(offer["repayment_method"]),
        str(recipe["rounding"]),
    )
    if schedule_sha256(rows) != recipe["sha256"]:
        raise ArchiveMissing(
            f"the {offer['term_months']}-month {offer['repayment_method']} schedule of {offer['product']}"
            f" recomputes to another sha256 than recorded ({recipe['sha256']})"
        )
    if "due" in recipe:
        dates = dates_again(decided_at, str(recipe["due"]), len(rows))
        rows = tuple(replace(row, due_date=day) for row, day in zip(rows, dates, strict=True))
    return rows


def decision_from_dict(body: Mapping[str, Any]) -> Decision:
    """The Decision back from its to_dict() form, Decimals restored (a schedule may be given as
    Instalment rows already)."""

    def dec(value: Any) -> Decimal | None:
        return None if value is None else Decimal(str(value))

    def offer(o: Mapping[str, Any]) -> Offer:
        line = o.get("revolving")
        rows = tuple(
            r
            if isinstance(r, Instalment)
            else Instalment(
                int(r["period"]),
                Decimal(r["payment"]),
                Decimal(r["principal"]),
                Decimal(r["interest"]),
                Decimal(r["balance"]),
                r.get("due_date", ""),
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
            dec(o.get("expected_loss")),
            o.get("offer_id", ""),
            o.get("valid_until", ""),
            o.get("product_name", ""),
            tuple(Fee(f["kind"], Decimal(f["amount"])) for f in o.get("fees", [])),
            None
            if line is None
            else RevolvingTerms(
                Decimal(line["minimum_payment_fixed"]),
                Decimal(line["minimum_payment_rate"]),
                int(line["interest_free_days"]),
                int(line["horizon_months"]),
            ),
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
        arm=body.get("arm", ""),
        objective=body.get("objective", ""),
        outputs=dict(body.get("outputs", {})),
    )
