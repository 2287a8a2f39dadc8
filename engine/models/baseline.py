"""A model's training baseline, recorded in its card: the population the model was developed on,
binned, so drift monitoring (engine.monitor.drift) can compare the applicants scored today with it.

Card entry `baseline`:
  {"sample": ..., "rows": N,
   "score": {"of": "pd", "edges": [e1, ..., e9], "shares": [s0, ..., s9]},
   "features": {"age": {"type": "numeric", "edges": [...], "shares": [...]},
                "employment_type": {"type": "categorical", "categories": [...], "shares": [...]}}}
Numeric bins are right-closed between the deciles of the development data: bin i holds
edges[i-1] < x <= edges[i] (the first bin is open below, the last above). Deciles that coincide (a
count such as delinquencies_24m) are kept once, so such a feature has fewer bins. A categorical
feature's bins are its categories in code order. Shares sum to 1 (as rounded to 6 places).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["BASELINE_DECILES", "bin_counts", "numeric_bin", "training_baseline"]

BASELINE_DECILES = tuple(k / 10 for k in range(1, 10))
EDGE_DIGITS = 6  # significant digits of a recorded edge (the shares are computed on the rounded edges)


def _rounded(value: float) -> float:
    return float(f"{value:.{EDGE_DIGITS}g}")


def decile_edges(values: np.ndarray) -> list[float]:
    """The distinct deciles of `values`, rounded to EDGE_DIGITS significant digits."""
    quantiles = np.quantile(values.astype(np.float64), BASELINE_DECILES)
    return sorted({_rounded(float(q)) for q in quantiles})


def numeric_bin(edges: Sequence[float], value: float) -> int:
    """The index of the right-closed bin holding `value` (0 .. len(edges))."""
    return int(np.searchsorted(np.asarray(edges, dtype=np.float64), value, side="left"))


def bin_counts(bins: Mapping[str, Any], values: Sequence[Any]) -> list[int]:
    """How many of `values` fall in each bin of a baseline entry (numeric or categorical). Values a
    categorical baseline does not list are counted in no bin (the caller reports them)."""
    if "categories" in bins:
        index = {str(c): i for i, c in enumerate(bins["categories"])}
        counts = [0] * len(index)
        for value in values:
            slot = index.get(str(value))
            if slot is not None:
                counts[slot] += 1
        return counts
    edges = np.asarray(bins["edges"], dtype=np.float64)
    slots = np.searchsorted(edges, np.asarray(values, dtype=np.float64), side="left")
    return [int(n) for n in np.bincount(slots, minlength=len(edges) + 1)]


def _shares(counts: Sequence[int]) -> list[float]:
    total = sum(counts)
    return [round(n / total, 6) for n in counts]


def training_baseline(
    features: Sequence[Mapping[str, Any]], frame: pd.DataFrame, pd_values: np.ndarray, sample: str
) -> dict[str, Any]:
    """The card's `baseline` of a development sample: `features` are the card's fitted feature
    entries, `frame` holds one column per feature, `pd_values` the model's P(bad) per row."""
    score_edges = decile_edges(pd_values)
    binned: dict[str, Any] = {}
    for feature in features:
        name = str(feature["name"])
        column = frame[name]
        if feature["type"] == "categorical":
            categories = sorted(feature["encoding"]["codes"], key=lambda c: feature["encoding"]["codes"][c])
            bins: dict[str, Any] = {"type": "categorical", "categories": categories}
            values: list[Any] = list(column.astype(str))
        else:
            values = list(pd.to_numeric(column).to_numpy(dtype=np.float64))
            bins = {"type": "numeric", "edges": decile_edges(np.asarray(values))}
        bins["shares"] = _shares(bin_counts(bins, values))
        binned[name] = bins
    score: dict[str, Any] = {"of": "pd", "edges": score_edges}
    score["shares"] = _shares(bin_counts(score, list(pd_values)))
    return {"sample": sample, "rows": len(frame), "score": score, "features": binned}
