"""Feature encoding shared by training and scoring: numeric features pass through as float32,
categorical ones become fixed integer codes recorded in the model card (no training/serving skew).

Card feature entries:
  {"name": "age", "type": "numeric", "range": [18, 100], "train_range": [18, 79]}
  {"name": "employment_type", "type": "categorical",
   "encoding": {"kind": "ordinal", "order": "declared" | "bad_rate", "codes": {"salaried": 0, ...},
                "unseen": "error"}}
Scoring refuses (ModelError naming the feature): a missing feature, a wrong type (bool is not a
number; categoricals must be strings), NaN or infinity, a number outside `range`, and a category
absent from `codes` (unseen categories are an error, never silently mapped).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from engine.decision import plain
from engine.errors import (
    FEATURE_MISSING,
    FEATURE_NOT_FINITE,
    FEATURE_OUT_OF_RANGE,
    FEATURE_TYPE,
    FEATURE_UNSEEN,
    FeatureRefused,
    ModelError,
    shown,
)

NUMERIC = "numeric"
CATEGORICAL = "categorical"
# Smoothing weight (pseudo-rows at the overall bad rate) when ordering categories by bad rate.
BAD_RATE_PRIOR_ROWS = 10.0


_MISSING = object()
_PLAIN_NUMBERS = {int, float, Decimal, np.int64, np.int32, np.float64, np.float32}


class _NeedsRowCheck(Exception):
    """A column the fast path cannot vouch for; the row-by-row path finds and names the culprit."""


class FeatureEncoder:
    """Turns feature mappings (or a training frame) into the float32 matrix the model consumes."""

    def __init__(self, features: Sequence[Mapping[str, Any]]):
        self.features = [dict(f) for f in features]
        self.names = [str(f["name"]) for f in self.features]
        self._plan: list[tuple[str, bool, float, float, dict[str, int]]] = []
        for f in self.features:
            if f["type"] == CATEGORICAL:
                codes = {str(k): int(v) for k, v in f["encoding"]["codes"].items()}
                self._plan.append((f["name"], True, 0.0, 0.0, codes))
            else:
                lo, hi = (float(x) for x in f["range"])
                self._plan.append((f["name"], False, lo, hi, {}))
        self._plans = {plan[0]: plan for plan in self._plan}
        # encode_row's fast path: a range that is not finite takes no value there ([inf, -inf])
        self._fast = [
            (name, categorical, lo, hi, codes)
            if math.isfinite(lo) and math.isfinite(hi)
            else (name, categorical, math.inf, -math.inf, codes)
            for name, categorical, lo, hi, codes in self._plan
        ]
        self._encode, self.encode_values = self._generated()

    def encode_row(self, row: Mapping[str, Any]) -> np.ndarray:
        """One row -> float32 vector in card order; raises ModelError naming the bad feature. The
        usual values (a known category string; an int, float or Decimal inside a finite range) take
        a fast path to the same floats; anything else goes through the checks that name it."""
        encoded: np.ndarray = self._encode(row)
        return encoded

    # encode_values(row) -> tuple: encode_row's values before the float32 array is made, same
    # checks and errors (np.array(encode_values(row), np.float32) is encode_row(row)): the score
    # stage writes them straight into the model's input buffer
    encode_values: Callable[[Mapping[str, Any]], tuple[float | int, ...]]

    def _generated(self) -> Any:
        """encode_row's fast path as straight-line code for this card's features, one variable per
        feature (a loop over the plan cost ~2x: tuple unpacking and a list append per feature).
        Names in it are the card's feature names as string literals; bounds and codes are globals."""
        names: dict[str, Any] = {
            "_MISSING": _MISSING,
            "_Decimal": Decimal,
            "_slow": self._slow,
            "_array": np.array,
            "_float32": np.float32,
        }
        body = []
        for i, (name, categorical, lo, hi, codes) in enumerate(self._fast):
            body.append(f"    value = row.get({name!r}, _MISSING)\n")
            if categorical:
                names[f"_codes{i}"] = codes
                body.append(
                    f"    x{i} = _codes{i}.get(value) if value.__class__ is str else None\n"
                    f"    if x{i} is None:\n        x{i} = _slow({name!r}, value)\n"
                )
            else:  # lo and hi finite (or inf > -inf, which takes no value): so is a number between
                names[f"_lo{i}"], names[f"_hi{i}"] = lo, hi
                body.append(
                    "    kind = value.__class__\n"
                    f"    if not ((kind is int or kind is float or kind is _Decimal)"
                    f" and _lo{i} <= (x{i} := float(value)) <= _hi{i}):\n"
                    f"        x{i} = _slow({name!r}, value)\n"
                )
        values = "".join(f"x{i}, " for i in range(len(self._fast)))
        source = (
            f"def encode_row(row):\n{''.join(body)}    return _array(({values}), _float32)\n\n\n"
            f"def encode_values(row):\n{''.join(body)}    return ({values})\n"
        )
        exec(compile(source, "<feature encoder>", "exec"), names)  # names: the card's, as literals
        return names["encode_row"], names["encode_values"]

    def _slow(self, name: str, value: Any) -> float | int:
        """The checked encoding of one feature's value (its error names the feature)."""
        if value is _MISSING:
            raise ModelError(f"feature {name!r} is missing", code=FEATURE_MISSING)
        _, categorical, lo, hi, codes = self._plans[name]
        return _category_code(name, value, codes) if categorical else _number(name, value, lo, hi)

    def encode_rows(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Many rows -> float32 matrix, column by column; any doubt falls back to `encode_row`
        per row so errors read the same, prefixed with the row index."""
        matrix = np.empty((len(rows), len(self._plan)), dtype=np.float32)
        try:
            for i, (name, categorical, lo, hi, codes) in enumerate(self._plan):
                values = [row[name] for row in rows]
                if categorical:
                    if not all(type(v) is str for v in values):
                        raise _NeedsRowCheck
                    matrix[:, i] = [codes[v] for v in values]
                    continue
                if not {type(v) for v in values} <= _PLAIN_NUMBERS:
                    raise _NeedsRowCheck
                column = np.asarray(values, dtype=np.float64)
                if not (np.isfinite(column).all() and (column >= lo).all() and (column <= hi).all()):
                    raise _NeedsRowCheck
                matrix[:, i] = column
        except (KeyError, TypeError, _NeedsRowCheck):
            for r, row in enumerate(rows):
                try:
                    matrix[r] = self.encode_row(row)
                except ModelError as exc:
                    raise ModelError(f"row {r}: {exc.message}", code=exc.code) from None
        return matrix

    def encode_frame(self, frame: pd.DataFrame, *, check_range: bool = True) -> np.ndarray:
        """A frame whose columns are feature names -> float32 matrix (vectorised, same rules)."""
        matrix = np.empty((len(frame), len(self._plan)), dtype=np.float32)
        for i, (name, categorical, lo, hi, codes) in enumerate(self._plan):
            if name not in frame.columns:
                raise ModelError(f"feature {name!r} is missing", code=FEATURE_MISSING)
            column = frame[name]
            if categorical:
                mapped = column.astype("string").map(codes)
                if mapped.isna().any():
                    bad = sorted(set(column[mapped.isna()].astype(str)))[:5]
                    raise ModelError(f"feature {name!r}: unseen categories {bad}", code=FEATURE_UNSEEN)
                matrix[:, i] = mapped.to_numpy(dtype=np.float64)
            else:
                values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
                if not np.isfinite(values).all():
                    raise ModelError(
                        f"feature {name!r} has missing, non-numeric or infinite values",
                        code=FEATURE_NOT_FINITE,
                    )
                if check_range and ((values < lo).any() or (values > hi).any()):
                    raise ModelError(
                        f"feature {name!r} outside its range [{lo:g}, {hi:g}]", code=FEATURE_OUT_OF_RANGE
                    )
                matrix[:, i] = values
        return matrix

    def decode_row(self, vector: Sequence[float]) -> dict[str, Any]:
        """The inverse for categoricals (code -> category); numerics come back as float."""
        row: dict[str, Any] = {}
        for (name, categorical, _lo, _hi, codes), value in zip(self._plan, vector, strict=True):
            if categorical:
                inverse = {code: cat for cat, code in codes.items()}
                row[name] = inverse[int(value)]
            else:
                row[name] = float(value)
        return row


def _category_code(name: str, value: Any, codes: Mapping[str, int]) -> int:
    if not isinstance(value, str):
        raise FeatureRefused(
            name, f"feature {name!r} must be a category string, got {type(value).__name__}", code=FEATURE_TYPE
        )
    code = codes.get(value)
    if code is None:
        raise FeatureRefused(
            name,
            f"feature {name!r}: unseen category {shown(value)} (known: {', '.join(codes)})",
            code=FEATURE_UNSEEN,
        )
    return code


def _number(name: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | np.integer | np.floating):
        raise FeatureRefused(
            name, f"feature {name!r} must be a number, got {type(value).__name__}", code=FEATURE_TYPE
        )
    number = float(value)
    if not math.isfinite(number):
        raise FeatureRefused(
            name, f"feature {name!r} must be finite, got {shown(value)}", code=FEATURE_NOT_FINITE
        )
    if number < lo or number > hi:
        raise FeatureRefused(
            name,
            f"feature {name!r} = {shown(value)} is outside the range the model accepts [{lo:g}, {hi:g}]",
            code=FEATURE_OUT_OF_RANGE,
        )
    return number


def fit_features(
    specs: Sequence[Mapping[str, Any]], frame: pd.DataFrame, bad: np.ndarray
) -> list[dict[str, Any]]:
    """Freeze the encoding of each feature on training rows: category codes (declared order, or
    ascending smoothed bad rate, ties by name) and numeric ranges. `bad` is 0/1 per row."""
    overall = float(bad.mean()) if len(bad) else 0.0
    fitted: list[dict[str, Any]] = []
    for spec in specs:
        name = str(spec["name"])
        column = frame[name]
        if spec["type"] == CATEGORICAL:
            seen = sorted(set(column.astype(str)))
            declared = [str(c) for c in spec.get("categories") or []]
            categories = declared or seen
            order = str(spec.get("order", "declared"))
            stats: dict[str, Any] = {}
            if order == "bad_rate":
                values = column.astype(str).to_numpy()
                rates = {}
                for cat in categories:
                    mask = values == cat
                    n, b = float(mask.sum()), float(bad[mask].sum())
                    rates[cat] = (b + BAD_RATE_PRIOR_ROWS * overall) / (n + BAD_RATE_PRIOR_ROWS)
                    stats[cat] = {"rows": int(n), "smoothed_bad_rate": round(rates[cat], 6)}
                categories = sorted(categories, key=lambda c: (rates[c], c))
            encoding: dict[str, Any] = {
                "kind": "ordinal",
                "order": order,
                "codes": {cat: i for i, cat in enumerate(categories)},
                "unseen": "error",
            }
            if stats:
                encoding["bad_rate_prior_rows"] = BAD_RATE_PRIOR_ROWS
                encoding["stats"] = stats
            fitted.append({"name": name, "type": CATEGORICAL, "encoding": encoding})
        else:
            values = pd.to_numeric(column).to_numpy(dtype=np.float64)
            train_range = [plain(values.min(), "number"), plain(values.max(), "number")]
            declared_range = spec.get("range")
            fitted.append(
                {
                    "name": name,
                    "type": NUMERIC,
                    "range": plain(list(declared_range), "number") if declared_range else train_range,
                    "train_range": train_range,
                }
            )
    return fitted
