"""Pipeline test helpers: the consumer_mini policy (tests/pipeline/fixtures) scored by the shipped
consumer_pd model, applications to decide, a frozen clock, policy variants."""

from __future__ import annotations

import copy
import datetime as dt
import itertools
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
MINI = FIXTURES / "consumer_mini" / "policy.yaml"
MODELS = ROOT / "models"

GOOD: dict[str, Any] = {
    "applicant": {
        "age": 35,
        "income_monthly": "20000",
        "employment_type": "salaried",
        "employment_months": 60,
        "residence_type": "own",
    },
    "debt": {"monthly_payments": "1000"},
    "bureau": {
        "score": 780,
        "delinquencies_24m": 0,
        "inquiries_6m": 1,
        "utilisation": "0.2",
        "months_on_file": 120,
    },
    "loan": {"amount": "50000", "term_months": 24},
}


def application(**changes: Any) -> dict[str, Any]:
    """GOOD with dotted-path changes: application(**{"applicant.age": 19})."""
    app = copy.deepcopy(GOOD)
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        node = app
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return app


class FrozenClock:
    """A clock that moves one second per call, from a fixed instant."""

    def __init__(self) -> None:
        self.ticks = itertools.count()

    def __call__(self) -> dt.datetime:
        return dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC) + dt.timedelta(seconds=next(self.ticks))


def variant(tmp_path: Path, replacements: dict[str, str]) -> Path:
    """A copy of consumer_mini with some text replaced (each must occur exactly once)."""
    text = MINI.read_text(encoding="utf-8")
    for old, new in replacements.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    folder = tmp_path / "consumer_variant"
    folder.mkdir(exist_ok=True)
    path = folder / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return path
