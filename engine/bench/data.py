"""Benchmark inputs: synthetic consumer-loan applications (engine.models.synthetic) as the nested JSON a
caller sends, and the validated + derived facts the rule stages see."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from engine.models.synthetic import iter_chunks

__all__ = ["CONSUMER_PURPOSES", "applications", "iter_applications"]

# The generator draws purposes the policy does not list (debt_consolidation): those become "other",
# so every generated application is valid input.
CONSUMER_PURPOSES = frozenset(
    {"consumption", "education", "travel", "medical", "home_improvement", "wedding", "car", "other"}
)
_INTS = {
    "applicant.age", "applicant.employment_months", "bureau.score", "bureau.delinquencies_24m",
    "bureau.inquiries_6m", "bureau.months_on_file", "loan.term_months",
}  # fmt: skip
_DROP = {"default_12m", "applicant.name", "applicant.id_number"}


def _nested(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, value in record.items():
        if path in _DROP:
            continue
        if path in _INTS:
            value = int(value)
        elif isinstance(value, bool) or type(value).__name__ == "bool_":
            value = bool(value)
        elif isinstance(value, float) or type(value).__name__.startswith("float"):
            value = float(value)
        elif path == "loan.purpose" and value not in CONSUMER_PURPOSES:
            value = "other"
        else:
            value = str(value)
        group, _, name = path.partition(".")
        out.setdefault(group, {})[name] = value
    return out


def iter_applications(count: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """`count` synthetic applications as nested JSON-ready dicts (deterministic in count and seed)."""
    made = 0
    for frame in iter_chunks(count, seed):
        for record in frame.to_dict("records"):
            yield _nested(record)
            made += 1
            if made >= count:
                return


def applications(count: int, seed: int = 7) -> list[dict[str, Any]]:
    return list(iter_applications(count, seed))
