"""Shared rows for the model tests (a plain module: conftest fixtures are not importable)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models"


def german_rows(feature_names: list[str]) -> list[dict[str, object]]:
    frame = pd.read_csv(SHIPPED / "data" / "german_credit.csv")
    return frame[feature_names].to_dict("records")


def consumer_row(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "age": 30,
        "income_monthly": 5000,
        "employment_type": "self_employed",
        "employment_months": 6,
        "residence_type": "rent",
        "dti": 0.6,
        "bureau_score": 560,
        "delinquencies_24m": 2,
        "inquiries_6m": 4,
        "utilisation": 0.9,
        "months_on_file": 20,
        "loan_amount": 30000,
        "term_months": 36,
    }
    row.update(overrides)
    return row
