"""Models section: scoring cost of the shipped models, one row and a 1,000-row batch, ONNX Runtime vs
native CatBoost, single-threaded. (Moved here from scripts/bench_models.py, now a thin wrapper.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engine.bench.stats import per_call_us
from engine.models.scoring import NativeScorer, OnnxScorer, explain
from engine.models.store import ModelStore
from engine.models.synthetic import generate

__all__ = ["bench_model", "rows_for"]

ROOT = Path(__file__).resolve().parents[2]


def rows_for(name: str, store: ModelStore, count: int) -> list[dict[str, object]]:
    package = store.load(name, "1.0.0")
    if name == "consumer_pd":
        raw = generate(count, seed=99)
        sources = {f["name"]: f.get("column") or f.get("ratio") for f in package.card["features"]}
        rows = []
        for record in raw.to_dict("records"):
            rows.append(
                {
                    k: (record[s[0]] / record[s[1]] if isinstance(s, list) else record[s])
                    for k, s in sources.items()
                }
            )
        return rows
    import pandas as pd

    frame = pd.read_csv(ROOT / "models" / "data" / "german_credit.csv")
    records = frame[package.feature_names].to_dict("records")
    return [records[i % len(records)] for i in range(count)]


def bench_model(name: str, store: ModelStore, scale: float = 1.0) -> dict[str, Any]:
    """µs per call of each case on both runtimes (checked equal within 1e-6 first); `scale` < 1
    makes fewer calls (--quick)."""
    package = store.load(name, "1.0.0")
    onnx_scorer, native = OnnxScorer(package), NativeScorer(package, thread_count=1)
    rows = rows_for(name, store, 1000)
    one = rows[0]
    matrix = onnx_scorer.encoder.encode_rows(rows)
    single = matrix[:1]
    assert np.max(np.abs(onnx_scorer.pd_matrix(matrix) - native.pd_matrix(matrix))) <= 1e-6
    cases = [
        ("1 row, pd(mapping)", lambda: onnx_scorer.pd(one), lambda: native.pd(one), 300),
        ("1 row, encoded", lambda: onnx_scorer.pd_matrix(single), lambda: native.pd_matrix(single), 300),
        ("1000 rows, encoded", lambda: onnx_scorer.pd_matrix(matrix), lambda: native.pd_matrix(matrix), 10),
        ("1000 rows, pd_batch", lambda: onnx_scorer.pd_batch(rows), lambda: native.pd_batch(rows), 5),
    ]
    out: dict[str, Any] = {"model": name, "cases": {}}
    for label, onnx_fn, native_fn, calls in cases:
        n = max(2, int(calls * scale))
        out["cases"][label] = {"onnx_us": per_call_us(onnx_fn, n), "native_us": per_call_us(native_fn, n)}
    out["explain_us"] = per_call_us(lambda: explain(package, one), max(2, int(100 * scale)))
    return out


def fmt_us(us: float) -> str:
    return f"{us:,.1f} µs" if us < 10_000 else f"{us / 1000:,.2f} ms"
